"""One line that says what an event holds, for ``nexus events``: ``draft attempt 1 agent writer``.

Each event's payload is read through its typed view
(:mod:`nexus.domain.payloads`), so a summary names the same fields the engine
reads. A summary is plain text on one line, cut at :data:`WIDTH` characters;
the full payload is in ``nexus events RUN --json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from nexus.domain.events import Event
from nexus.domain.payloads import (
    ABSENT,
    ApprovalAnswered,
    ApprovalEscalated,
    ApprovalRequested,
    ApprovalTimedOut,
    AttemptFinished,
    AttemptInterrupted,
    AttemptStarted,
    BarrierArmed,
    BarrierTimedOut,
    BtTicked,
    BudgetCrossed,
    BudgetRaised,
    CancelRequested,
    CompensationStarted,
    ConflictDetected,
    EffectRecord,
    FsmTransitioned,
    InterruptsReset,
    PauseRequested,
    Payload,
    PlanCached,
    PlanExtended,
    PlanReplanning,
    RetryScheduled,
    RunContinued,
    RunEnded,
    RunPaused,
    RunResumed,
    RunStarted,
    SagaFinished,
    SagaStarted,
    TaskEndedUnrun,
    TaskExpanded,
    TaskFailed,
    TaskIterated,
    TaskPaused,
    TaskSucceeded,
    TimerFired,
    payload_of,
)

__all__ = ["WIDTH", "summary"]

#: The longest summary shown; longer ones end in "…".
WIDTH = 100


def summary(event: Event) -> str:
    """What ``event`` holds, on one line of at most :data:`WIDTH` characters."""
    payload = payload_of(event)
    describe = _DESCRIBE.get(type(payload))
    text = describe(payload) if describe is not None else ""
    line = " ".join(text.split())
    return line if len(line) <= WIDTH else line[: WIDTH - 1] + "…"


def _error(error: Mapping[str, Any] | None) -> str:
    if not error:
        return ""
    kind, message = error.get("kind", "error"), error.get("message", "")
    return f"{kind}: {message}" if message else str(kind)


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _run_started(p: RunStarted) -> str:
    tasks = p.plan.get("tasks")
    shown = f"{p.name}, {_count(len(tasks), 'task')}" if isinstance(tasks, dict) else p.name
    return f"{shown}, plan {p.plan_hash[:12]}" + (f", tenant {p.tenant}" if p.tenant else "")


def _run_resumed(p: RunResumed) -> str:
    interrupted = f", interrupted: {', '.join(p.interrupted)}" if p.interrupted else ""
    return f"by pid {p.pid}{interrupted}"


def _effect(p: EffectRecord) -> str:
    head = f"{p.task} attempt {p.attempt}: {p.kind}"
    request = p.request if isinstance(p.request, dict) else {}
    response = p.response if isinstance(p.response, dict) else {}
    if p.kind == "model":
        head += f" {request.get('model') or response.get('model') or ''}".rstrip()
        usage = response.get("usage")
        if isinstance(usage, dict):
            tokens = sum(v for v in usage.values() if isinstance(v, int))
            head += f", {_count(tokens, 'token')}"
    elif p.kind == "tool" and request.get("tool"):
        head += f" {request['tool']}"
        if request.get("args"):
            head += " " + json.dumps(request["args"], ensure_ascii=False, separators=(", ", ": "))
    spend = p.spend or {}
    usd = spend.get("usd")
    if usd not in (None, "0", 0):
        head += f", ${usd}"
    if p.error:
        head += f", failed ({_error(p.error)})"
    return head


def _attempt_started(p: AttemptStarted) -> str:
    head = f"{p.task} attempt {p.attempt}"
    if p.iteration is not None:
        head += f" (iteration {p.iteration})"
    if p.node is not None:
        head += f" (node {p.node})"
    if p.state is not None:
        head += f" (state {p.state}, step {p.step})"
    held = f", writes {', '.join(p.writes)}" if p.writes else ""
    if p.tool:
        return f"{head} tool {p.tool}{held}"
    if p.agent:
        return f"{head} agent {p.agent}" + (f" ({p.model})" if p.model else "") + held
    return head + held


def _attempt_finished(p: AttemptFinished) -> str:
    outcome = f"failed, {_error(p.error)}" if p.error else "done"
    return f"{p.task} attempt {p.attempt} {outcome}"


def _task_succeeded(p: TaskSucceeded) -> str:
    head = p.task if p.attempt is None else f"{p.task} attempt {p.attempt}"
    if p.case is not None:  # a switch: what it picked, and why
        return f"{head}: case {p.case} ({_json(p.value)})"
    if p.iteration is not None:  # a loop: the iteration that ended it, and until's value
        return f"{head}, iteration {p.iteration}: until gave {_json(p.value)}"
    if p.aggregate is not None:  # a fan-out: how its items' answers added up
        return f"{head}: {_aggregate(p.aggregate)}"
    return head


def _aggregate(record: Mapping[str, Any]) -> str:
    """``vote: item 0 won, "yes" x2, "no" x1 (3 of 3 answered)``."""
    method = record.get("method")
    winner = record.get("winner")
    items = record.get("items")
    if method == "first_success":
        return f"first_success: item {winner} of {items} succeeded first"
    tallies = record.get("tallies") or []
    counts = ", ".join(f"{t.get('answer')} x{t.get('count')}" for t in tallies[:5])
    won = f"item {winner} won, " if winner is not None else ""
    return f"{method}: {won}{counts} ({record.get('answers')} of {items} answered)"


def _task_failed(p: TaskFailed) -> str:
    if p.aggregate is not None:  # the reason names the tallies
        return f"{p.task}: {_error(p.error)}"
    return f"{p.task} after {_count(p.attempts, 'attempt')}: {_error(p.error)}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _fsm_transitioned(p: FsmTransitioned) -> str:
    # a transition taken on its ``when`` gave a true value (never null): null is the default
    why = "default" if p.value is None else f"when gave {_json(p.value)}"
    return f"{p.task} step {p.step}: {p.state} -> {p.to} ({why})"


def _task_iterated(p: TaskIterated) -> str:
    return f"{p.task} iteration {p.iteration} (attempt {p.attempt}): until gave {_json(p.value)}"


def _plan_extended(p: PlanExtended) -> str:
    ids = [str(task.get("id")) for task in p.tasks]
    shown = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
    return (
        f"{p.task} attempt {p.attempt} added {_count(len(ids), 'task')} (depth {p.depth}): {shown}"
    )


def _plan_cached(p: PlanCached) -> str:
    saved = p.saved
    return (
        f"{p.task} attempt {p.attempt} took the plan of run {p.source_run} from the cache "
        f"(saved ${saved.get('usd', '0')}, {saved.get('calls', 0)} model calls)"
    )


def _replanning(p: PlanReplanning) -> str:
    shown = ", ".join(p.failed[:8]) + (
        f" and {len(p.failed) - 8} more" if len(p.failed) > 8 else ""
    )
    return f"{p.task} re-plans (round {p.round}): {shown} did not succeed"


def _bt_ticked(p: BtTicked) -> str:
    """``tree node fetch (action, attempt 2) failure at step 3: transient: ...``."""
    what = p.kind if p.attempt is None else f"{p.kind}, attempt {p.attempt}"
    head = f"{p.task} node {p.node} ({what}) {p.status}"
    if p.status == "running" and p.deadline is not None:
        return f"{head} until {p.deadline}"
    head += f" at step {p.step}"
    if p.reason:
        return f"{head}: {p.reason}"
    if p.value is not ABSENT:
        return f"{head}: gave {_json(p.value)}"
    return head


def _approval_answered(p: ApprovalAnswered) -> str:
    by = f" by {p.by}" if p.by else ""
    return f"{p.task}{by}" + (f": {p.reason}" if p.reason else "")


def _budget_crossed(p: BudgetCrossed) -> str:
    where = p.scope if not p.key else f"{p.scope} {p.key}"
    return f"{where} {p.dimension} {p.percent}%: {p.spent} of {p.limit} (task {p.task})"


def _budget_raised(p: BudgetRaised) -> str:
    scope = p.scope.get("kind", "run")
    key = p.scope.get("key")
    limits = ", ".join(f"{k}={v}" for k, v in p.limits.items())
    return f"{scope}{' ' + str(key) if key else ''}: {limits}"


def _retry(p: RetryScheduled) -> str:
    return f"{p.task} attempt {p.attempt} ({_error(p.error)}); next in {p.delay_ms} ms"


def _run_ended(p: RunEnded) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(p.tasks.items()))


def _run_paused(p: RunPaused) -> str:
    if p.reason == "user":  # a person paused it: who and why
        return f"user: by {p.by}" + (f": {p.why}" if p.why else "")
    return f"{p.reason}: {', '.join(p.paused)}"


def _names(tasks: list[str]) -> str:
    return ", ".join(tasks) or "nothing"


def _saga_finished(p: SagaFinished) -> str:
    text = f"after {p.task} failed: compensated {_names(p.compensated)}"
    if p.failed:
        text += f"; compensation failed: {_names(p.failed)}"
    if p.not_run:
        text += f"; not run: {_names(p.not_run)}"
    return text


_DESCRIBE: dict[type[Payload], Callable[[Any], str]] = {
    RunStarted: _run_started,
    RunResumed: _run_resumed,
    CancelRequested: lambda p: p.reason,
    PauseRequested: lambda p: f"by {p.by}" + (f": {p.reason}" if p.reason else ""),
    TimerFired: lambda p: p.task,
    EffectRecord: _effect,
    AttemptFinished: _attempt_finished,
    ApprovalAnswered: _approval_answered,
    ApprovalTimedOut: lambda p: p.task,
    BudgetRaised: _budget_raised,
    InterruptsReset: lambda p: f"{', '.join(p.tasks)} (limit {p.limit})",
    RunContinued: lambda p: p.reason,
    ApprovalRequested: lambda p: f"{p.task} (on timeout: {p.on_timeout})",
    ApprovalEscalated: lambda p: f"{p.task}: {p.reason}",
    TaskExpanded: lambda p: f"{p.task} into {_count(len(p.items), 'item')}",
    TaskIterated: _task_iterated,
    PlanExtended: _plan_extended,
    PlanCached: _plan_cached,
    PlanReplanning: _replanning,
    BtTicked: _bt_ticked,
    SagaStarted: lambda p: f"{p.task} failed: compensating {_names(p.steps)}, in this order",
    CompensationStarted: lambda p: f"{p.task} by {p.compensation} (step {p.step} of {p.total})",
    SagaFinished: _saga_finished,
    FsmTransitioned: _fsm_transitioned,
    BarrierArmed: lambda p: f"{p.task} waits for its needs until {p.deadline}",
    BarrierTimedOut: lambda p: f"{p.task}: the barrier wait is over",
    AttemptStarted: _attempt_started,
    AttemptInterrupted: lambda p: f"{p.task} attempt {p.attempt}: {_error(p.error)}",
    RetryScheduled: _retry,
    TaskSucceeded: _task_succeeded,
    TaskFailed: _task_failed,
    TaskEndedUnrun: lambda p: f"{p.task}: {p.reason}",
    RunEnded: _run_ended,
    BudgetCrossed: _budget_crossed,
    TaskPaused: lambda p: f"{p.task}: {p.reason}",
    RunPaused: _run_paused,
    ConflictDetected: lambda p: (
        f"{p.path} written by {p.task} attempt {p.attempt} and {p.other} attempt "
        f"{p.other_attempt} at the same time"
    ),
}
