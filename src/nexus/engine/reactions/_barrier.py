"""Barriers (``needs_any``, ``quorum``, ``wait``): whether a task may start on the
needs that have ended, waits on, or ends (skipped, or failed when its wait ran out).
"""

from __future__ import annotations

from datetime import timedelta

from nexus.domain.errors import ErrorKind
from nexus.domain.events import EventType, format_time, parse_time
from nexus.domain.payloads import BarrierArmed, ErrorRecord, TaskEndedUnrun
from nexus.domain.state import BarrierStanding, TaskState
from nexus.engine.reactions._base import Decisions

__all__ = ["BarrierReactions"]


class BarrierReactions:
    """What the decider does for a task with a barrier: one per decider.

    Args:
        decider: what the reactions emit decisions through.
    """

    __slots__ = ("_decider",)

    def __init__(self, decider: Decisions) -> None:
        self._decider = decider

    def holds(self, task: TaskState, at: str) -> bool:
        """Judge ``task``'s barrier: False when it may go on (to its condition, approval
        and start); True when it ended the task or the task waits on.

        A task that waits is not put back on the ready heap: the fold puts it
        there again when another need ends or its deadline passes. The first time
        it is seen waiting its ``wait`` deadline is armed (``barrier.armed``).
        """
        barrier = task.spec.barrier
        assert barrier is not None
        standing = self._decider.state.barrier_standing(task)
        if standing.verdict == "ready":
            return False
        if standing.verdict == "impossible":
            skipped = TaskEndedUnrun(task=task.id, reason=standing.reason)
            self._decider.emit_decision(EventType.TASK_SKIPPED, at, skipped)
            return True
        if task.barrier_expired:
            return self._timed_out(task, at, standing)
        if barrier.timeout is not None and task.barrier_deadline is None:
            delay = int(barrier.timeout * 1000)
            deadline = format_time(parse_time(at) + timedelta(milliseconds=delay))
            armed = BarrierArmed(task=task.id, timeout_ms=delay, deadline=deadline)
            self._decider.emit_decision(EventType.BARRIER_ARMED, at, armed)
        return True

    def _timed_out(self, task: TaskState, at: str, standing: BarrierStanding) -> bool:
        """The wait of ``task``'s barrier is over before it was met: ``on_timeout: fail``
        fails it naming the needs still open; ``continue`` lets it go on with the needs
        that succeeded (skipped when none did)."""
        barrier = task.spec.barrier
        assert barrier is not None
        waited = f"{barrier.timeout:g} s"
        still = ", ".join(standing.open)
        if barrier.on_timeout == "continue" and standing.succeeded:
            return False
        if barrier.on_timeout == "continue":
            reason = f"barrier wait of {waited} ended with no need succeeded (still open: {still})"
            self._decider.emit_decision(
                EventType.TASK_SKIPPED, at, TaskEndedUnrun(task=task.id, reason=reason)
            )
            return True
        error = ErrorRecord(
            kind=str(ErrorKind.TIMEOUT),
            message=(
                f"barrier wait of {waited} ended before its needs were met: still open: {still}"
                f" ({barrier.quorum} of {', '.join(barrier.of)} needed; succeeded: "
                f"{', '.join(standing.succeeded) or 'none'})"
            ),
            retryable=False,
            details={
                "succeeded": list(standing.succeeded),
                "unsuccessful": list(standing.unsuccessful),
                "open": list(standing.open),
                "quorum": barrier.quorum,
            },
        )
        self._decider.fail(task, at, error.to_data())
        return True
