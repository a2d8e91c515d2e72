"""Aggregation (``aggregate:``): a fan-out whose items make one answer.

``first_success`` ends the fan-out as soon as one item succeeds (the others
are cancelled); the other methods decide once every item has ended (see
:func:`nexus.engine.aggregate.decide`). An item's failure does not stop a
fail-fast run (its fan-out decides), and an item out-voted by a fan-out that
succeeded does not fail the run.
"""

from __future__ import annotations

from typing import Any

from nexus.domain.errors import ErrorKind
from nexus.domain.events import EventType
from nexus.domain.payloads import ErrorRecord, TaskEndedUnrun, TaskFailed, TaskSucceeded
from nexus.domain.state import TaskState, TaskStatus
from nexus.engine.aggregate import decide
from nexus.engine.reactions._base import Decisions

__all__ = ["AggregateReactions"]


class AggregateReactions:
    """What the decider does for fan-outs with ``aggregate``: one per decider.

    Args:
        decider: what the reactions emit decisions through.
    """

    __slots__ = ("_decider",)

    def __init__(self, decider: Decisions) -> None:
        self._decider = decider

    def first_success(self, parent: TaskState, winner: TaskState, at: str) -> None:
        """``winner`` is the first item of ``parent`` to succeed (in the order the log
        records): the parent takes its output, the items still open are cancelled
        (a running one's process is stopped)."""
        state = self._decider.state
        assert winner.index is not None
        others = [state.tasks[c] for c in parent.children if c != winner.id]
        failed = [t.index for t in others if t.status.terminal and t.index is not None]
        record: dict[str, Any] = {
            "method": "first_success",
            "items": len(parent.children),
            "winner": winner.index,
        }
        if failed:
            record["failed"] = failed
        done = TaskSucceeded(task=parent.id, aggregate=record)
        self._decider.emit_decision(EventType.TASK_SUCCEEDED, at, done)
        reason = f"first_success: item '{winner.id}' of '{parent.id}' succeeded first"
        for other in others:
            if not other.status.terminal:
                cancelled = TaskEndedUnrun(task=other.id, reason=reason)
                self._decider.emit_decision(EventType.TASK_CANCELLED, at, cancelled)

    def tolerated(self, task: TaskState) -> bool:
        """Whether ``task`` is an item whose failure its fan-out tolerates (``aggregate``):
        it does not stop a fail-fast run; its parent decides."""
        if task.parent is None:
            return False
        return self._decider.state.tasks[task.parent].spec.aggregate is not None

    def settle(self, parent: TaskState, bad: list[str], at: str) -> None:
        """A fan-out with ``aggregate`` whose items have ended: combine their answers,
        unless the run stopped some of them (a cancel, fail-fast, ``max_failures``):
        then it is cancelled too, not decided on what happened to be done."""
        state = self._decider.state
        stopped = [
            c for c in bad if state.tasks[c].status in (TaskStatus.CANCELLED, TaskStatus.SKIPPED)
        ]
        if not stopped:
            self._decide(parent, at)
            return
        reason = (
            "cancelled by request"
            if state.cancel_requested
            else f"{len(stopped)} of its {len(parent.children)} items were stopped before "
            f"they ended: {', '.join(stopped[:5])}"
        )
        self._decider.emit_decision(
            EventType.TASK_CANCELLED, at, TaskEndedUnrun(task=parent.id, reason=reason)
        )

    def _decide(self, parent: TaskState, at: str) -> None:
        """Every item of a fan-out with ``aggregate`` has ended: combine their answers.

        The parent succeeds with the winning item's output, or fails with the
        reason (the tallies are in both events' ``aggregate``).
        """
        policy = parent.spec.aggregate
        assert policy is not None
        state = self._decider.state
        outputs: list[tuple[int, Any]] = []
        failed: list[int] = []
        for index, cid in enumerate(parent.children):
            child = state.tasks[cid]
            if child.status is TaskStatus.SUCCEEDED:
                outputs.append((index, child.output))
            else:
                failed.append(index)
        agent = parent.spec.tool is None
        decision = decide(policy, outputs, failed, len(parent.children), agent=agent)
        if decision.reason is None:
            done = TaskSucceeded(task=parent.id, aggregate=decision.record)
            self._decider.emit_decision(EventType.TASK_SUCCEEDED, at, done)
            return
        error = ErrorRecord(
            kind=str(ErrorKind.VALIDATION), message=decision.reason, retryable=False
        )
        failure = TaskFailed(
            task=parent.id, attempts=0, error=error.to_data(), aggregate=decision.record
        )
        self._decider.emit_decision(EventType.TASK_FAILED, at, failure)
        if state.plan.fail_fast:
            self._decider.cancel_all(at, f"fail-fast: task '{parent.id}' failed")
        else:
            self._decider.failure_threshold(at)

    def outvoted(self, task: TaskState) -> bool:
        """An item that failed or was cancelled, of a fan-out that succeeded all the same
        (its ``aggregate`` made one answer of the others)."""
        if task.parent is None:
            return False
        parent = self._decider.state.tasks[task.parent]
        return parent.spec.aggregate is not None and parent.status is TaskStatus.SUCCEEDED
