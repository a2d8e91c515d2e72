"""Sagas: when a task with ``on_failure: compensate`` fails for good, what had
succeeded is undone, one compensation at a time, the last to succeed first.

:meth:`SagaReactions.start` fixes the saga's steps and stops the rest of the
plan; :meth:`SagaReactions.advance` starts the next compensation once the one
before has ended, and records the saga's end.
"""

from __future__ import annotations

from nexus.domain.events import EventType
from nexus.domain.payloads import CompensationStarted, SagaFinished, SagaStarted
from nexus.domain.plan import COMPENSATE_SUFFIX
from nexus.domain.state import TaskState, TaskStatus
from nexus.engine.reactions._base import Decisions

__all__ = ["SagaReactions"]


class SagaReactions:
    """What the decider does for a run's saga: one per decider.

    Args:
        decider: what the reactions emit decisions through.
    """

    __slots__ = ("_decider",)

    def __init__(self, decider: Decisions) -> None:
        self._decider = decider

    def start(self, task: TaskState, at: str) -> None:
        """Fix the saga's steps -- every task that succeeded and has ``compensate``, the
        last to succeed first -- then cancel and skip what has not ended (running
        attempts are cancelled as a cancel does): nothing of the plan runs any more."""
        state = self._decider.state
        steps = [
            tid
            for tid in reversed(state.finished_ids)
            if state.tasks[tid].status is TaskStatus.SUCCEEDED
            and state.tasks[tid].spec.compensate is not None
        ]
        self._decider.emit_decision(
            EventType.SAGA_STARTED, at, SagaStarted(task=task.id, steps=steps)
        )
        self._decider.cancel_all(at, f"saga: task '{task.id}' failed, compensating")

    def advance(self, at: str) -> bool:
        """Move the saga on: once its current step has ended, start the next, or finish
        it. True when a step was started (it is ready to schedule)."""
        state = self._decider.state
        saga = state.saga
        if saga is None or saga.finished:
            return False
        if saga.current is not None and not state.tasks[saga.current].status.terminal:
            return False
        if saga.started < len(saga.steps) and not state.cancel_requested:
            tid = saga.steps[saga.started]
            started = CompensationStarted(
                task=tid,
                compensation=tid + COMPENSATE_SUFFIX,
                step=saga.started + 1,
                total=len(saga.steps),
            )
            self._decider.emit_decision(EventType.COMPENSATION_STARTED, at, started)
            return True
        done: list[str] = []
        failed: list[str] = []
        for tid in saga.steps[: saga.started]:
            ended = state.tasks[tid + COMPENSATE_SUFFIX].status is TaskStatus.SUCCEEDED
            (done if ended else failed).append(tid)
        finished = SagaFinished(
            task=saga.task,
            compensated=done,
            failed=failed,
            not_run=saga.steps[saga.started :],
        )
        self._decider.emit_decision(EventType.SAGA_FINISHED, at, finished)
        return False
