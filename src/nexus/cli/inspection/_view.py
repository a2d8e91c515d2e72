"""``nexus inspect``'s document, read from a run's events (what ``--json`` prints)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from nexus.domain.errors import NexusError
from nexus.domain.events import Event, EventType
from nexus.domain.payloads import (
    ApprovalRequested,
    AttemptFinished,
    AttemptInterrupted,
    AttemptStarted,
    BtTicked,
    CompensationStarted,
    ConflictDetected,
    EffectRecord,
    ErrorRecord,
    FsmTransitioned,
    RetryScheduled,
    SagaFinished,
    TaskEndedUnrun,
    TaskFailed,
    TaskIterated,
    TaskPaused,
    TaskSucceeded,
    payload_of,
    task_of,
)
from nexus.domain.plan import COMPENSATE_SUFFIX, fsm_body
from nexus.domain.state import RunState, TaskState, TaskStatus, fsm_state_of

__all__ = ["view_run", "view_task"]


def _seconds(start: str | None, end: str | None) -> float | None:
    """Seconds between two recorded times (None when either is missing)."""
    if not start or not end:
        return None
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except ValueError:
        return None


def _reasons(events: Iterable[Event]) -> dict[str, str]:
    """Why each task stands where it does, on one line: the latest reason recorded."""
    why: dict[str, str] = {}
    for event in events:
        kind = event.type
        if kind is EventType.TASK_FAILED:
            failed = TaskFailed.from_event(event)
            record = ErrorRecord.of(failed.error)
            why[failed.task] = f"{record.kind}: {record.message}"
        elif kind in (EventType.TASK_SKIPPED, EventType.TASK_CANCELLED):
            ended = TaskEndedUnrun.from_event(event)
            why[ended.task] = ended.reason
        elif kind is EventType.TASK_PAUSED:
            paused = TaskPaused.from_event(event)
            why[paused.task] = paused.reason
        elif kind is EventType.RETRY_SCHEDULED:
            retry = RetryScheduled.from_event(event)
            record = ErrorRecord.of(retry.error)
            why[retry.task] = f"retrying after {record.kind}: {record.message}"
        elif kind is EventType.APPROVAL_REQUESTED:
            gated = ApprovalRequested.from_event(event).task
            why[gated] = f"awaits approval: nexus approve {event.run_id} {gated}"
        elif kind in (EventType.TASK_SUCCEEDED, EventType.ATTEMPT_STARTED):
            moving = task_of(event)
            if moving is not None:
                why.pop(moving, None)
        elif kind is EventType.COMPENSATION_STARTED:
            step = CompensationStarted.from_event(event)
            why[step.task] = f"compensating: {step.compensation}"
        elif kind is EventType.SAGA_FINISHED:
            saga = SagaFinished.from_event(event)
            for tid in saga.compensated:
                why[tid] = f"compensated after {saga.task} failed"
            for tid in saga.failed:
                why[tid] = f"compensation failed after {saga.task} failed"
            for tid in saga.not_run:
                why[tid] = "not compensated: the run was cancelled"
    return why


def saga_of(state: RunState) -> dict[str, Any] | None:
    """The run's saga, if it has one: what failed, each step in order with its state."""
    saga = state.saga
    if saga is None:
        return None
    steps = []
    for tid in saga.steps:
        compensation = state.tasks.get(tid + COMPENSATE_SUFFIX)
        status = "not started" if compensation is None else str(compensation.status)
        steps.append({"task": tid, "compensation": tid + COMPENSATE_SUFFIX, "status": status})
    return {
        "failed": saga.task,
        "state": "finished" if saga.finished else "compensating",
        "steps": steps,
    }


def view_run(summary: dict[str, Any], state: RunState, events: Sequence[Event]) -> dict[str, Any]:
    """The run's document: ``summary`` (status, counts...) and every task with its why."""
    why = _reasons(events)
    doc = dict(summary)
    doc["tasks"] = {
        tid: {**t.to_dict(), "why": " ".join(why.get(tid, "").split()) or None}
        for tid, t in state.tasks.items()
    }
    conflicts = [
        ConflictDetected.from_event(e).to_data()
        for e in events
        if e.type is EventType.CONFLICT_DETECTED
    ]
    if conflicts:  # two attempts wrote one file at the same time (docs/workflows.md, Writes)
        doc["conflicts"] = conflicts
    saga = saga_of(state)
    if saga is not None:
        doc["saga"] = saga
    return doc


def _call(record: EffectRecord) -> dict[str, Any]:
    """One call an attempt made across the effect boundary."""
    call: dict[str, Any] = {
        "kind": record.kind,
        "duration_s": _seconds(record.started, record.ended),
        "error": record.error,
    }
    request = record.request if isinstance(record.request, dict) else {}
    response = record.response if isinstance(record.response, dict) else {}
    if record.kind == "tool":
        call["tool"] = request.get("tool")
        call["args"] = request.get("args")
        if record.source is not None:
            call["source"] = record.source
    elif record.kind == "model":
        call["model"] = request.get("model")
        call["answered_by"] = response.get("model")
        call["route"] = response.get("route")
        call["usage"] = response.get("usage")
        call["cache"] = response.get("cache")
    if record.spend is not None:
        call["spend"] = record.spend
    return call


def _attempts(task: str, events: Sequence[Event]) -> list[dict[str, Any]]:
    """Each attempt of ``task``: what it ran, its calls, how long it took and how it ended."""
    attempts: dict[int, dict[str, Any]] = {}
    for event in events:
        if task_of(event) != task:
            continue
        kind = event.type
        if kind is EventType.ATTEMPT_STARTED:
            started = AttemptStarted.from_event(event)
            entry = {
                k: v
                for k, v in started.to_data().items()
                if k not in ("task", "output_schema", "feedback") and v is not None
            }
            entry.update(started_at=event.at, ended_at=None, outcome="running", calls=[])
            attempts[started.attempt] = entry
        elif kind is EventType.EFFECT_RECORDED:
            record = EffectRecord.from_event(event)
            if record.attempt in attempts:
                attempts[record.attempt]["calls"].append(_call(record))
        elif kind is EventType.ATTEMPT_FINISHED:
            finished = AttemptFinished.from_event(event)
            if finished.attempt in attempts:
                entry = attempts[finished.attempt]
                entry["ended_at"] = event.at
                entry["outcome"] = "failed" if finished.error is not None else "succeeded"
                if finished.error is not None:
                    entry["error"] = finished.error
        elif kind is EventType.TASK_ITERATED or kind is EventType.TASK_SUCCEEDED:
            # a loop's iteration was judged: what its until gave
            judged = payload_of(event)
            assert isinstance(judged, TaskIterated | TaskSucceeded)
            if judged.iteration is not None and judged.attempt in attempts:
                attempts[judged.attempt]["until"] = judged.value
        elif kind is EventType.FSM_TRANSITIONED:
            # an fsm's step was judged: where it went, and what the when taken gave
            moved = FsmTransitioned.from_event(event)
            if moved.attempt in attempts:
                attempts[moved.attempt]["to"] = moved.to
                attempts[moved.attempt]["when"] = moved.value
        elif kind is EventType.ATTEMPT_INTERRUPTED:
            stopped = AttemptInterrupted.from_event(event)
            if stopped.attempt in attempts:
                entry = attempts[stopped.attempt]
                entry.update(ended_at=event.at, outcome="interrupted", error=stopped.error)
    for entry in attempts.values():
        entry["duration_s"] = _seconds(entry["started_at"], entry["ended_at"])
    return [attempts[n] for n in sorted(attempts)]


def _fsm_path(task: str, events: Sequence[Event], initial: str) -> dict[str, Any]:
    """An ``fsm`` task's way through its states: each one entered, in order (its
    ``initial`` first), and each transition taken."""
    path = [initial]
    steps: list[dict[str, Any]] = []
    for event in events:
        if event.type is EventType.FSM_TRANSITIONED and task_of(event) == task:
            moved = FsmTransitioned.from_event(event)
            path.append(moved.to)
            steps.append(
                {"step": moved.step, "from": moved.state, "to": moved.to, "value": moved.value}
            )
    return {"path": path, "transitions": steps}


def _path(task: str, events: Sequence[Event]) -> list[dict[str, Any]]:
    """A ``bt`` task's path through its tree: each ``bt.ticked``, in order."""
    return [
        {k: v for k, v in BtTicked.from_event(e).to_data().items() if k != "task"}
        for e in events
        if e.type is EventType.BT_TICKED and task_of(e) == task
    ]


def _conversation(task: str, events: Sequence[Event]) -> list[dict[str, Any]]:
    """Per attempt of an agent task, the messages its last model call saw, then the answer."""
    from nexus.gateway.base import full_requests  # only for --conversation

    by_attempt: dict[int, list[EffectRecord]] = {}
    for event in events:
        if event.type is EventType.EFFECT_RECORDED and task_of(event) == task:
            record = EffectRecord.from_event(event)
            if record.kind == "model":
                by_attempt.setdefault(record.attempt, []).append(record)
    talks = []
    for attempt, records in sorted(by_attempt.items()):
        requests = full_requests(r.request for r in records)
        last, asked = records[-1], requests[-1]
        messages: list[dict[str, Any]] = list(asked["messages"])
        if isinstance(last.response, dict):
            answer: dict[str, Any] = {"role": "assistant", "content": last.response.get("text", "")}
            if last.response.get("tool_calls"):
                answer["tool_calls"] = last.response["tool_calls"]
            messages.append(answer)
        talk: dict[str, Any] = {"attempt": attempt, "model_calls": len(records)}
        talk["messages"] = messages
        if last.error is not None:
            talk["error"] = last.error
        talks.append(talk)
    return talks


def _pending(state: RunState, task: TaskState) -> dict[str, Any]:
    """What approving ``task`` will run: its tool and arguments, or its agent and prompt.

    Rendered now, from the run's inputs and the outputs of the tasks it needs
    (all done: approval is asked when they are), as the attempt will render them.
    """
    from nexus.engine.reactions import template_context
    from nexus.templating import render_deep, render_text

    spec = task.spec if task.spec.fsm is None else fsm_body(task.spec, fsm_state_of(task))
    action: dict[str, Any] = {}
    context = template_context(state, task)
    if spec.fsm is not None:
        action["state"] = fsm_state_of(task)
    try:
        if spec.switch is not None:  # it runs nothing: approving it picks a case
            action["switch"] = spec.switch
            action["cases"] = {name: list(targets) for name, targets in (spec.cases or {}).items()}
        elif spec.tool is not None:
            action["tool"] = spec.tool
            action["args"] = render_deep(spec.args, context, task=task.id, field="with")
            if spec.profile is not None:
                action["profile"] = spec.profile
        else:
            if spec.agent is not None:
                agent = state.plan.agents.get(spec.agent)
                action["agent"] = spec.agent
                action["model"] = None if agent is None else agent.model
            else:
                action["capability"] = spec.capability
                action["agents"] = sorted(
                    name
                    for name, agent in state.plan.agents.items()
                    if spec.capability in agent.capabilities
                )
            where = f"task '{task.id}', field 'prompt'"
            action["prompt"] = render_text(spec.prompt or "", context, where=where)
    except NexusError as exc:
        action["unrendered"] = exc.message
    return action


def view_task(
    state: RunState, events: Sequence[Event], task_id: str, *, conversation: bool = False
) -> dict[str, Any]:
    """One task's document: its state, why, attempts (and conversation, if asked)."""
    task = state.tasks[task_id]
    doc = task.to_dict()
    spec = task.spec
    doc["kind"] = (
        "switch"
        if spec.switch is not None
        else "bt"
        if spec.bt is not None
        else "fsm"
        if spec.fsm is not None
        else "tool"
        if spec.tool
        else "agent"
    )
    if task.compensates is not None:  # a saga's step: what it undoes
        doc["kind"] = "compensation"
        doc["compensates"] = task.compensates
    elif spec.compensate is not None:
        compensation = state.tasks.get(task_id + COMPENSATE_SUFFIX)
        doc["compensation"] = {
            "task": task_id + COMPENSATE_SUFFIX,
            "status": "not started" if compensation is None else str(compensation.status),
        }
    doc["retries"] = task.spec.retry.retries
    doc["why"] = _reasons(events).get(task_id)
    doc["history"] = _attempts(task_id, events)
    if spec.bt is not None:
        doc["tree"] = _path(task_id, events)
    if spec.fsm is not None:
        doc["fsm"] = _fsm_path(task_id, events, spec.fsm.initial)
        doc["fsm"]["state"] = fsm_state_of(task)
    if task.status is TaskStatus.AWAITING_APPROVAL:
        requested = next(
            (
                ApprovalRequested.from_event(e)
                for e in reversed(events)
                if e.type is EventType.APPROVAL_REQUESTED and task_of(e) == task_id
            ),
            None,
        )
        doc["pending"] = {
            "action": _pending(state, task),
            "deadline": None if requested is None else requested.deadline,
            "on_timeout": None if requested is None else requested.on_timeout,
        }
    if spec.aggregate is not None:
        doc["aggregate"] = _aggregated(task_id, events)
    if spec.barrier is not None and task.parent is None:
        doc["barrier"] = _barrier(task, events)
    if conversation:
        doc["conversation"] = _conversation(task_id, events)
    doc["events"] = [e.to_dict() for e in events if task_of(e) == task_id]
    return doc


def _aggregated(task: str, events: Sequence[Event]) -> dict[str, Any] | None:
    """How a fan-out's items added up (the ``aggregate`` its end recorded); None before."""
    for event in reversed(events):
        if event.type in (EventType.TASK_SUCCEEDED, EventType.TASK_FAILED) and (
            task_of(event) == task
        ):
            ended = payload_of(event)
            assert isinstance(ended, TaskSucceeded | TaskFailed)
            return ended.aggregate
    return None


def _barrier(task: TaskState, events: Sequence[Event]) -> dict[str, Any]:
    """Where a task's barrier stands: what it counts, its needs by outcome when it was
    decided (started, skipped or failed; now, if it still waits), its wait."""
    barrier = task.spec.barrier
    assert barrier is not None
    needs = set(task.spec.needs)
    ended: dict[str, str] = {}  # need -> how it ended, up to the decision
    for event in events:
        tid = task_of(event)
        if tid == task.id and event.type in _BARRIER_DECISIONS:
            break
        if tid in needs and event.type in _ENDINGS:
            ended[tid] = _ENDINGS[event.type]
    return {
        "quorum": barrier.quorum,
        "of": list(barrier.of),
        "succeeded": [n for n in task.spec.needs if ended.get(n) == "succeeded"],
        "unsuccessful": [n for n in task.spec.needs if ended.get(n, "succeeded") != "succeeded"],
        "open": [n for n in task.spec.needs if n not in ended],
        "timeout": barrier.timeout,
        "on_timeout": barrier.on_timeout if barrier.timeout is not None else None,
        "deadline": task.barrier_deadline,
        "timed_out": task.barrier_expired,
    }


#: What ends a barrier's wait for its task (a switch task succeeds without an attempt).
_BARRIER_DECISIONS = frozenset(
    {
        EventType.ATTEMPT_STARTED,
        EventType.TASK_EXPANDED,
        EventType.TASK_SKIPPED,
        EventType.TASK_FAILED,
        EventType.TASK_SUCCEEDED,
        EventType.TASK_CANCELLED,
        EventType.APPROVAL_REQUESTED,
    }
)
_ENDINGS = {
    EventType.TASK_SUCCEEDED: "succeeded",
    EventType.TASK_FAILED: "failed",
    EventType.TASK_SKIPPED: "skipped",
    EventType.TASK_CANCELLED: "cancelled",
}
