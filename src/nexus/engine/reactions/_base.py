"""What a reaction module needs of the decider, and what templates see.

The decider (:mod:`nexus.engine.decider`) keeps the dispatch: it reads each
input and calls the reaction of the construct it concerns. Those reactions --
behaviour trees, state machines, sagas, barriers, aggregation -- live in
modules of their own and call back through :class:`Decisions`, the few
operations they share with the rest of the decider, so none of them imports
the decider (the import graph stays acyclic).
"""

from __future__ import annotations

from typing import Any, Protocol

from nexus.domain.errors import NexusError
from nexus.domain.events import EventType
from nexus.domain.payloads import Payload
from nexus.domain.plan import TaskSpec, scope_of
from nexus.domain.state import RunState, TaskState, fsm_state_of
from nexus.engine.scopes import scoped_context

__all__ = ["Decisions", "compensating", "template_context"]


class Decisions(Protocol):
    """The decider as its reaction modules see it."""

    @property
    def state(self) -> RunState:
        """The folded run state (each decision is applied to it as it is emitted)."""
        ...

    def emit_decision(self, type_: EventType, at: str, payload: Payload) -> None:
        """Emit a decision whose data is ``payload``."""
        ...

    def fail(self, task: TaskState, at: str, error: dict[str, Any]) -> None:
        """Fail ``task`` for good with ``error`` (and what that does to the run)."""
        ...

    def render_failed(self, task: TaskState, at: str, exc: NexusError) -> None:
        """Fail ``task``: one of its templates did not render."""
        ...

    def attempt(
        self,
        task: TaskState,
        at: str,
        spec: TaskSpec,
        timeout_ms: int | None,
        node: str | None = None,
        writes: tuple[str, ...] = (),
    ) -> bool:
        """Start an attempt of ``spec``'s body; False when no agent has a free slot."""
        ...

    def cancel_all(self, at: str, reason: str) -> None:
        """Cancel every task that has not ended."""
        ...

    def failure_threshold(self, at: str) -> None:
        """End the run when its failures passed ``max_failures``/``max_failure_rate``."""
        ...


def template_context(state: RunState, task: TaskState, upto: int | None = None) -> dict[str, Any]:
    """What a task's templates see: ``inputs``, ``tasks``, ``item``, ``run``, ``loop``.

    ``upto`` pins ``tasks`` to the plan tasks that had ended when the attempt
    was decided (see :meth:`RunState.outputs`). A ``loop`` task's body sees
    ``loop.iteration`` (the one it runs) and ``loop.output`` (the previous
    iteration's output, null in the first); a ``bt`` task's leaves see
    ``bt.outputs`` (each action's latest output, by node id) and ``bt.step``
    (the leaves ticked so far).
    """
    ctx: dict[str, Any] = {
        "inputs": state.inputs,
        "tasks": state.outputs(upto),
        "run": {"id": state.run_id, "name": state.plan.name},
    }
    scope = scope_of(task.id, task.spec)
    if scope is not None:  # inside a sub-workflow: its own inputs and tasks
        ctx["inputs"], ctx["tasks"] = scoped_context(state, scope, ctx["tasks"])
    if task.parent is not None:
        ctx["item"] = task.item
        ctx["index"] = task.index
    if task.spec.loop is not None:
        ctx["loop"] = {"iteration": task.iteration, "output": task.loop_output}
    if task.spec.bt is not None:
        ctx["bt"] = {"outputs": task.bt_outputs or {}, "step": task.bt_steps}
    if task.spec.fsm is not None:
        ctx["fsm"] = {
            "state": fsm_state_of(task),
            "step": task.iteration,
            "output": task.loop_output,
            "outputs": dict(task.fsm_outputs or {}),
        }
    if task.compensates is not None:
        ctx["compensating"] = compensating(state, task.compensates)
    return ctx


def compensating(state: RunState, tid: str) -> dict[str, Any]:
    """What a compensation's templates see as ``compensating``: the task it undoes
    (``task``, its ``output``) and the task whose failure started the saga (``failed``)."""
    return {
        "task": tid,
        "output": state.tasks[tid].output,
        "failed": state.saga.task if state.saga is not None else None,
    }
