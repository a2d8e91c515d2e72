"""What a run's result says about each task and about its cost.

:class:`~nexus.engine.facade.RunResult` is what :meth:`Engine.start` and
:meth:`Workflow.run <nexus.app.Workflow.run>` return; its parts live here:

* :class:`TaskResult` -- one task's status, attempts, output and error, read
  from the run's state (plan tasks and ``foreach`` items alike);
* :class:`RunCost` -- the run's cost, exact ``Decimal``s in total and per task,
  agent and model, read from the run's log by the code ``nexus cost RUN``
  prints (:func:`nexus.budget.report.cost_report`), so the two always agree.

Example:
    >>> result = wf.run_sync(home=".nexus")  # doctest: +SKIP
    >>> result.outputs["draft"]["text"], result.task("draft").attempts  # doctest: +SKIP
    ('Release 1.0: faster, safer.', 1)
    >>> result.cost.total, result.cost.by_model["openai:gpt-4.1-mini"].usd  # doctest: +SKIP
    (Decimal('0.00112'), Decimal('0.00112'))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from nexus.domain.state import RunState, TaskState, TaskStatus

if TYPE_CHECKING:
    from nexus.domain.events import Event
    from nexus.gateway.pricing import PricingTable

__all__ = ["CostLine", "RunCost", "TaskError", "TaskResult", "task_results"]


@dataclass(frozen=True, slots=True)
class TaskError:
    """Why a task's last attempt failed, as the log records it.

    Attributes:
        kind: the error's kind in the taxonomy (``nexus.ErrorKind``:
            ``transient``, ``timeout``, ``policy_denied``...).
        message: what went wrong, for a person.
        retryable: whether a retry could cure it, when the error says.
        record: the whole recorded error (``details`` of a failed tool:
            exit code and output tails; a refused budget...).
    """

    kind: str
    message: str
    retryable: bool | None = None
    record: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> TaskError:
        """The error recorded as ``record`` (a task's ``error``)."""
        retryable = record.get("retryable")
        return cls(
            kind=str(record.get("kind", "internal")),
            message=str(record.get("message", "")),
            retryable=retryable if isinstance(retryable, bool) else None,
            record=dict(record),
        )


@dataclass(frozen=True, slots=True)
class TaskResult:
    """Where one task ended up.

    Attributes:
        id: the task's id (``id[0]``, ``id[1]``... for the items of a ``foreach``).
        status: ``succeeded``, ``failed``, ``skipped``, ``cancelled``... (a
            :class:`~nexus.domain.state.TaskStatus`, equal to its text).
        attempts: attempts started.
        output: what it produced (a tool's result; an agent's answer,
            ``{"text": ...}`` or with an ``output_schema`` ``{"data": ...}``);
            None unless it succeeded.
        error: why its last attempt failed; None if it did not.
        agent: the agent that ran its last attempt (agent tasks).
    """

    id: str
    status: TaskStatus
    attempts: int = 0
    output: Any = None
    error: TaskError | None = None
    agent: str | None = None

    @property
    def succeeded(self) -> bool:
        """True when the task succeeded."""
        return self.status is TaskStatus.SUCCEEDED

    @classmethod
    def of(cls, task: TaskState) -> TaskResult:
        """The result of ``task`` as the run's state holds it."""
        return cls(
            id=task.id,
            status=task.status,
            attempts=task.attempts,
            output=task.output if task.status is TaskStatus.SUCCEEDED else None,
            error=None if task.error is None else TaskError.of(task.error),
            agent=task.agent,
        )


def task_results(state: RunState) -> dict[str, TaskResult]:
    """Each task's result (plan tasks and ``foreach`` items), in the state's order."""
    return {tid: TaskResult.of(task) for tid, task in state.tasks.items()}


@dataclass(frozen=True, slots=True)
class CostLine:
    """The spend of one task, agent or model: money, model calls and tokens."""

    usd: Decimal = Decimal(0)
    calls: int = 0
    tokens: int = 0

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> CostLine:
        """A line of the cost report (``{"usd": "0.0012", "calls": 2, "tokens": 900, ...}``)."""
        return cls(usd=Decimal(str(data["usd"])), calls=data["calls"], tokens=data["tokens"])


@dataclass(frozen=True, slots=True)
class RunCost:
    """What a run cost, exactly: the figures of ``nexus cost RUN``.

    Money is :class:`~decimal.Decimal`, summed without rounding from the
    spend recorded with each model call (priced when the call was made).

    Attributes:
        total: money spent, in USD.
        tokens: model tokens, input and output.
        calls: model calls answered (cache hits included).
        tool_calls: tool calls made.
        by_task: per task id (``foreach`` items by their own ids).
        by_agent: per agent name.
        by_model: per ``provider:model`` that answered.
        estimate: the preflight estimate recorded when the run started, if any.
        unpriced_models: models that answered but have no price (counted as $0).
    """

    total: Decimal = Decimal(0)
    tokens: int = 0
    calls: int = 0
    tool_calls: int = 0
    by_task: Mapping[str, CostLine] = field(default_factory=dict)
    by_agent: Mapping[str, CostLine] = field(default_factory=dict)
    by_model: Mapping[str, CostLine] = field(default_factory=dict)
    estimate: Decimal | None = None
    unpriced_models: tuple[str, ...] = ()

    @classmethod
    def of(cls, events: Sequence[Event], pricing: PricingTable | None = None) -> RunCost:
        """The cost of the run whose whole log is ``events`` (``run.started`` first).

        Args:
            events: the run's log, as :meth:`Store.load` returns it.
            pricing: prices for what the cache saved (the default table when None).
        """
        from nexus.budget.report import cost_report

        return cls.from_report(cost_report(events, pricing))

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> RunCost:
        """The typed form of a :func:`~nexus.budget.report.cost_report`."""
        total = report["total"]
        estimate = report.get("estimate")

        def lines(key: str) -> dict[str, CostLine]:
            return {name: CostLine.of(line) for name, line in report[key].items()}

        return cls(
            total=Decimal(str(total["usd"])),
            tokens=total["tokens"],
            calls=total["calls"],
            tool_calls=report["tool_calls"],
            by_task=lines("by_task"),
            by_agent=lines("by_agent"),
            by_model=lines("by_model"),
            estimate=None if estimate is None else Decimal(str(estimate["usd"])),
            unpriced_models=tuple(report["unpriced_models"]),
        )
