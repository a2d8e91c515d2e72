"""Events: the append-only, hash-chained record of everything a run did.

An event is ``{run_id, seq, type, at, data, prev_hash, hash}``. Its *body* is
the RFC 8785 canonical JSON of ``{run_id, seq, type, at, data}`` and
``hash = sha256(prev_hash || body)``; the first event links to
:data:`~nexus.domain.canonical.GENESIS_HASH`. The stored body is the event:
every other column a store keeps is an index derived from it.

Event types fall in two classes, which is what makes exact replay possible:

* **inputs** enter the run from outside the deterministic core: a start or
  resume command, a cancel request, a fired timer, a recorded effect, the end
  of an attempt. Inputs carry the time they arrived; nothing else reads the
  clock.
* **decisions** are computed by the decider from the folded state alone, and
  take the time of the input that triggered them.

Replay feeds the recorded inputs, in their recorded order, to the same decider
and re-executes the workers against recorded effects; the decisions must then
come out byte for byte the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from nexus.domain.canonical import canonical_json, chain_hash

JSONDict = dict[str, Any]


class EventType(StrEnum):
    """Every event type, with its class (input or decision) in :data:`INPUT_TYPES`."""

    # inputs
    RUN_STARTED = "run.started"
    RUN_RESUMED = "run.resumed"
    CANCEL_REQUESTED = "run.cancel_requested"
    PAUSE_REQUESTED = "run.pause_requested"
    TIMER_FIRED = "timer.fired"
    EFFECT_RECORDED = "effect.recorded"
    ATTEMPT_FINISHED = "attempt.finished"
    APPROVAL_GRANTED = "approval.granted"
    APPROVAL_REJECTED = "approval.rejected"
    APPROVAL_TIMED_OUT = "approval.timed_out"
    BUDGET_RAISED = "budget.raised"
    INTERRUPTS_RESET = "interrupts.reset"
    RUN_CONTINUED = "run.continued"
    BARRIER_TIMED_OUT = "barrier.timed_out"
    PLAN_CACHED = "plan.cached"
    # decisions
    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_ESCALATED = "approval.escalated"
    TASK_EXPANDED = "task.expanded"
    TASK_ITERATED = "task.iterated"
    PLAN_EXTENDED = "plan.extended"
    PLAN_REPLANNING = "plan.replanning"
    BT_TICKED = "bt.ticked"
    SAGA_STARTED = "saga.started"
    COMPENSATION_STARTED = "compensation.started"
    SAGA_FINISHED = "saga.finished"
    FSM_TRANSITIONED = "fsm.transitioned"
    BARRIER_ARMED = "barrier.armed"
    ATTEMPT_STARTED = "attempt.started"
    ATTEMPT_INTERRUPTED = "attempt.interrupted"
    RETRY_SCHEDULED = "task.retry_scheduled"
    TASK_SUCCEEDED = "task.succeeded"
    TASK_FAILED = "task.failed"
    TASK_SKIPPED = "task.skipped"
    TASK_CANCELLED = "task.cancelled"
    RUN_SUCCEEDED = "run.succeeded"
    RUN_FAILED = "run.failed"
    RUN_CANCELLED = "run.cancelled"
    BUDGET_WARNING = "budget.warning"
    BUDGET_EXCEEDED = "budget.exceeded"
    TASK_PAUSED = "task.paused"
    RUN_PAUSED = "run.paused"
    CONFLICT_DETECTED = "conflict.detected"


INPUT_TYPES: frozenset[EventType] = frozenset(
    {
        EventType.RUN_STARTED,
        EventType.RUN_RESUMED,
        EventType.CANCEL_REQUESTED,
        EventType.PAUSE_REQUESTED,
        EventType.TIMER_FIRED,
        EventType.EFFECT_RECORDED,
        EventType.ATTEMPT_FINISHED,
        EventType.APPROVAL_GRANTED,
        EventType.APPROVAL_REJECTED,
        EventType.APPROVAL_TIMED_OUT,
        EventType.BUDGET_RAISED,
        EventType.INTERRUPTS_RESET,
        EventType.RUN_CONTINUED,
        EventType.BARRIER_TIMED_OUT,
        EventType.PLAN_CACHED,
    }
)


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds: the only time format events use.

    Example:
        >>> format_time(datetime(2026, 11, 21, 9, 5, tzinfo=UTC))
        '2026-11-21T09:05:00.000000Z'
    """
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # isoformat is several times cheaper than strftime; it ends in "+00:00" here
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time`."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Draft:
    """An event before it has a place in the chain."""

    type: EventType
    at: str
    data: JSONDict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Event:
    """One link of a run's chain."""

    run_id: str
    seq: int
    type: EventType
    at: str
    data: JSONDict
    prev_hash: str
    hash: str
    body: str

    def to_dict(self) -> JSONDict:
        """The event as exported and shown with ``--json``."""
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "type": str(self.type),
            "at": self.at,
            "data": self.data,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def event_body(run_id: str, seq: int, type_: str, at: str, data: JSONDict) -> str:
    """Canonical body of an event: what the chain hashes."""
    return canonical_json({"run_id": run_id, "seq": seq, "type": type_, "at": at, "data": data})


def seal(run_id: str, seq: int, draft: Draft, prev_hash: str) -> Event:
    """Give a draft its place in the chain: seq, body and hash.

    Raises:
        ValueError: the draft's data is not JSON.
    """
    body = event_body(run_id, seq, str(draft.type), draft.at, draft.data)
    return Event(
        run_id=run_id,
        seq=seq,
        type=draft.type,
        at=draft.at,
        data=draft.data,
        prev_hash=prev_hash,
        hash=chain_hash(prev_hash, body),
        body=body,
    )
