"""What ``nexus inspect`` shows, read from a run's events through the typed payload views.

* **The run**: every task with its state, attempts, agent and *why* -- the
  one-line error of a failed task, the reason a task was skipped, cancelled or
  paused, the command that answers a pending approval.
* **One task** (``--task``): its error pretty-printed (kind, message, the
  details a tool reported, a hint of what to do); per attempt its duration,
  what it ran (the tool and its rendered arguments, or the agent, its route,
  model and rendered prompt), each call it made across the effect boundary
  (model calls: who answered, the fallback route, tokens, money, time) and how
  it ended; for a task awaiting approval, exactly what approving it will run;
  for a skipped task, why.
* **A conversation** (``--conversation``): an agent task's messages, tool
  calls and tool results, rebuilt from its recorded model calls.

Everything is computed from the events (``view_run``/``view_task``: plain
JSON, what ``--json`` prints) and printed from that document
(``print_run``/``print_task``), so both forms say the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.markup import escape
from rich.table import Table

from nexus.cli.output import out
from nexus.domain.errors import NexusError
from nexus.domain.events import Event, EventType
from nexus.domain.payloads import (
    ABSENT,
    ApprovalRequested,
    AttemptFinished,
    AttemptInterrupted,
    AttemptStarted,
    BtTicked,
    ConflictDetected,
    EffectRecord,
    ErrorRecord,
    RetryScheduled,
    TaskEndedUnrun,
    TaskFailed,
    TaskIterated,
    TaskPaused,
    TaskSucceeded,
    payload_of,
    task_of,
)
from nexus.domain.state import RunState, TaskState, TaskStatus

__all__ = ["hint_for", "print_run", "print_task", "view_run", "view_task"]

_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
    "running": "cyan",
    "paused": "yellow",
    "awaiting_approval": "yellow",
    "retry_wait": "yellow",
    "skipped": "dim",
}
#: the longest message text shown in a conversation (``--json`` has all of it)
_MESSAGE_CHARS = 2000
#: the longest tool output tail shown under an error
_TAIL_CHARS = 600


# -- reading the events -------------------------------------------------------------------


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
    return why


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
        elif kind is EventType.ATTEMPT_INTERRUPTED:
            stopped = AttemptInterrupted.from_event(event)
            if stopped.attempt in attempts:
                entry = attempts[stopped.attempt]
                entry.update(ended_at=event.at, outcome="interrupted", error=stopped.error)
    for entry in attempts.values():
        entry["duration_s"] = _seconds(entry["started_at"], entry["ended_at"])
    return [attempts[n] for n in sorted(attempts)]


def _path(task: str, events: Sequence[Event]) -> list[dict[str, Any]]:
    """A ``bt`` task's path through its tree: each ``bt.ticked``, in order."""
    return [
        {k: v for k, v in BtTicked.from_event(e).to_data().items() if k != "task"}
        for e in events
        if e.type is EventType.BT_TICKED and task_of(e) == task
    ]


def _print_path(path: list[dict[str, Any]]) -> None:
    out.print("  tree path")
    for tick in path:
        line = f"{tick['node']} ({tick['kind']}) {tick['status']}"
        if tick.get("attempt") is not None:
            line += f", attempt {tick['attempt']}"
        if tick.get("deadline") is not None:
            line += f", deadline {tick['deadline']}"
        if tick.get("reason"):
            line += f": {tick['reason']}"
        elif "value" in tick:
            line += f": gave {_json(tick['value'])}"
        out.print(f"    [dim]step {tick['step']:>3}[/]  {escape(line)}")


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
    from nexus.engine.decider import template_context
    from nexus.templating import render_deep, render_text

    spec = task.spec
    action: dict[str, Any] = {}
    context = template_context(state, task)
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
        else "tool"
        if spec.tool
        else "agent"
    )
    doc["retries"] = task.spec.retry.retries
    doc["why"] = _reasons(events).get(task_id)
    doc["history"] = _attempts(task_id, events)
    if spec.bt is not None:
        doc["tree"] = _path(task_id, events)
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
    if conversation:
        doc["conversation"] = _conversation(task_id, events)
    doc["events"] = [e.to_dict() for e in events if task_of(e) == task_id]
    return doc


# -- errors -------------------------------------------------------------------------------

_HINTS = {
    "transient": "a retry may succeed: give the task `retries:` (it had {retries}), "
    "or run it again",
    "timeout": "the attempt ran past its time: raise the task's `timeout:` "
    "(or the profile's wall_seconds)",
    "rate_limited": "the provider limited the calls: retry later, or lower `max_parallel`",
    "validation": "the input or the answer did not fit: check the workflow "
    "(`nexus validate FILE`), the template or the output_schema named above",
    "auth": "the provider refused the credentials: set its key "
    "(docs/gateway.md, Keys and settings)",
    "policy_denied": "a deny-by-default policy refused it (profile, residency, a pin, "
    "an approval): the message names which grant is missing",
    "budget_exceeded": "a budget ran out: `nexus cost {run}` shows the spend, "
    "`nexus resume {run} --budget ...` raises it",
    "not_found": "something the task names does not exist: check the name in the message",
    "conflict": "the state changed under it: run it again",
    "internal": "a bug in Nexus: please report it with `nexus export {run}`",
}


def hint_for(error: Mapping[str, Any], run_id: str, retries: int) -> str | None:
    """What the user can do about a recorded error, by its kind (None for unknown kinds)."""
    kind = str(error.get("kind", ""))
    if error.get("retried_by") == "gateway":
        return (
            "the gateway already retried this call (and its fallbacks); "
            "the task does not retry it again"
        )
    hint = _HINTS.get(kind)
    return None if hint is None else hint.format(run=run_id, retries=retries)


def _error_lines(error: Mapping[str, Any]) -> list[str]:
    """An error record as lines of text: kind and message, then what the tool reported."""
    record = ErrorRecord.of(dict(error))
    lines = [f"{record.kind}: {record.message}"]
    details = record.details
    if isinstance(details, dict):
        code = details.get("exit_code")
        if code is not None:
            lines.append(f"exit code {code}")
        for stream in ("stderr", "stdout"):
            text = details.get(stream)
            if isinstance(text, str) and text.strip():
                tail = text.strip()[-_TAIL_CHARS:]
                lines.append(f"{stream}: {tail}")
        for what in ("denials", "limits_hit"):
            if details.get(what):
                lines.append(f"{what.replace('_', ' ')}: {json.dumps(details[what])}")
    elif details is not ABSENT and details not in (None, "", [], {}):
        lines.append(f"details: {json.dumps(details, ensure_ascii=False, default=str)}")
    extra = record.extra or {}
    said = [f"{k} {v}" for k, v in extra.items() if isinstance(v, str | int | float | bool)]
    if said:
        lines.append(", ".join(said))
    return lines


# -- printing -----------------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def print_run(doc: dict[str, Any], note: str | None = None) -> None:
    """The run's tasks as a table (``nexus inspect RUN``), ``note`` (markup) under its name."""
    out.print(f"run {doc['run_id']}  {escape(doc['name'])}  {doc['status']}")
    if note is not None:
        out.print(f"  {note}")
    table = Table(box=None, header_style="bold")
    for col in ("task", "status", "attempts", "agent", "why"):
        table.add_column(col, overflow="fold")
    for tid, t in doc["tasks"].items():
        style = _STYLE.get(t["status"], "none")
        table.add_row(
            escape(tid),
            f"[{style}]{t['status']}[/]",
            str(t["attempts"]),
            escape(t["agent"] or ""),
            escape(t["why"] or ""),
        )
    out.print(table)
    for c in doc.get("conflicts", ()):
        out.print(
            f"  [yellow]conflict[/] {escape(c['path'])}: written by {escape(c['task'])} "
            f"(attempt {c['attempt']}) and {escape(c['other'])} (attempt "
            f"{c['other_attempt']}) at the same time"
        )


def _say(label: str, text: str, indent: int = 2, width: int = 9) -> None:
    """``label  text``, continuation lines indented under the text; never markup."""
    pad = " " * indent
    lines = text.splitlines() or [""]
    out.print(f"{pad}{label:<{width}}{lines[0]}", markup=False, highlight=False)
    for line in lines[1:]:
        out.print(f"{pad}{'':<{width}}{line}", markup=False, highlight=False)


def _print_error(error: Mapping[str, Any], hint: str | None, indent: int = 2) -> None:
    lines = _error_lines(error)
    _say("error", lines[0], indent)
    for line in lines[1:]:
        _say("", line, indent)
    if hint:
        _say("hint", hint, indent)


def _print_call(number: int, call: dict[str, Any], failure: Any) -> None:
    took = _duration(call.get("duration_s"))
    if call["kind"] == "tool":
        text = f"tool {call.get('tool')} {_json(call.get('args'))}  ({took})"
    elif call["kind"] == "model":
        asked, answered = call.get("model"), call.get("answered_by")
        text = f"model {answered or asked}"
        usage = call.get("usage") or {}
        if usage:
            tokens = int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))
            text += f"  {tokens:,} tokens"
        spend = call.get("spend") or {}
        if "usd" in spend:
            text += f"  ${spend['usd']}"
        if (call.get("cache") or {}).get("hit"):
            text += "  (cache hit)"
        text += f"  ({took})"
        route = call.get("route") or []
        if len(route) > 1 or (answered and asked and answered != asked):
            steps = ", ".join(
                f"{s.get('model')} {s.get('outcome')}"
                + (f" ({s.get('reason')})" if s.get("reason") not in ("primary", None) else "")
                for s in route
            )
            text += f"\n  route: {steps}"
    else:
        text = f"{call['kind']}  ({took})"
    if call.get("error") and call["error"] != failure:
        record = ErrorRecord.of(call["error"])
        text += f"\n  -> {record.kind}: {record.message}"
    _say(f"{number}.", text, indent=6, width=4)


def _print_attempt(attempt: dict[str, Any], final: Any) -> None:
    """One attempt; ``final`` is the task's error, not repeated under its last attempt."""
    head = f"attempt {attempt.get('attempt')}  {attempt['outcome']}"
    if attempt.get("node") is not None:  # a bt task: the action node it ran
        head = f"attempt {attempt.get('attempt')} (node {attempt['node']})  {attempt['outcome']}"
    if attempt.get("iteration") is not None:  # a loop task: the iteration, what until gave
        head = f"attempt {attempt.get('attempt')} (iteration {attempt['iteration']})"
        head += f"  {attempt['outcome']}"
        if "until" in attempt:
            head += f", until gave {_json(attempt['until'])}"
    out.print(
        f"  [bold]{escape(head)}[/]  {_duration(attempt.get('duration_s'))}  "
        f"[dim]{attempt['started_at']}[/]"
    )
    if attempt.get("tool") is not None:
        _say("tool", f"{attempt['tool']} {_json(attempt.get('args'))}", 4)
    if attempt.get("agent") is not None:
        route = attempt.get("route") or {}
        _say("agent", f"{attempt['agent']}  ({route.get('why', 'named by the task')})", 4)
        model = str(attempt.get("model"))
        if attempt.get("models"):
            model += f"  (chain: {' -> '.join(attempt['models'])})"
        _say("model", model, 4)
        why_model = (attempt.get("model_route") or {}).get("why")
        if why_model:
            _say("routing", str(why_model), 4)
        _say("prompt", str(attempt.get("prompt", "")), 4)
    if attempt["calls"]:
        out.print("    calls")
        for number, call in enumerate(attempt["calls"], 1):
            _print_call(number, call, attempt.get("error"))
    if attempt.get("error") and attempt["error"] != final:
        _print_error(attempt["error"], None, indent=4)


def _print_pending(doc: dict[str, Any], run_id: str) -> None:
    pending = doc["pending"]
    action = pending["action"]
    out.print(
        f"  [bold yellow]awaits approval[/]: nexus approve {run_id} {escape(doc['id'])}"
        f"  (or: nexus reject {run_id} {escape(doc['id'])} --reason ...)"
    )
    if pending.get("deadline"):
        _say("deadline", f"{pending['deadline']} (then: {pending['on_timeout']})")
    if "switch" in action:
        _say("picks", f"a case of {_json(action['cases'])} by {action['switch']}")
    elif "tool" in action:
        _say("will run", f"tool {action['tool']} with {_json(action['args'])}")
        if action.get("profile") is not None:
            _say("profile", _json(action["profile"]))
    else:
        who = (
            f"agent {action['agent']} (model {action['model']})"
            if "agent" in action
            else f"an agent with capability '{action['capability']}' "
            f"({', '.join(action['agents']) or 'none'})"
        )
        _say("will ask", who)
        if "prompt" in action:
            _say("prompt", action["prompt"])
    if "unrendered" in action:
        _say("cannot", f"render it yet: {action['unrendered']}")


def _print_conversation(talks: list[dict[str, Any]]) -> None:
    if not talks:
        out.print("  conversation: none (the task made no model call)")
        return
    for talk in talks:
        calls = talk["model_calls"]
        out.print(
            f"  [bold]conversation, attempt {talk['attempt']}[/] "
            f"[dim]({calls} model call{'s' if calls != 1 else ''})[/]"
        )
        names: dict[str, str] = {}
        for message in talk["messages"]:
            role = str(message.get("role"))
            head = f"[{role}]"
            if role == "tool":
                call_id = str(message.get("tool_call_id", ""))
                head = f"[tool result: {names.get(call_id, '?')} {call_id}]"
            wanted = message.get("tool_calls") or []
            for call in wanted:
                names[str(call.get("id"))] = str(call.get("name"))
            out.print(f"    {head}", markup=False, highlight=False)
            content = str(message.get("content") or "")
            if len(content) > _MESSAGE_CHARS:
                more = len(content) - _MESSAGE_CHARS
                content = content[:_MESSAGE_CHARS] + f"… ({more:,} more characters: --json)"
            if content:
                _say("", content, indent=6, width=0)
            for call in wanted:
                asked = f"calls {call.get('name')} {call.get('arguments')}  ({call.get('id')})"
                _say("", asked, indent=6, width=0)
        if talk.get("error"):
            _print_error(talk["error"], None, indent=4)


def print_task(doc: dict[str, Any], run_id: str) -> None:
    """One task in detail (``nexus inspect RUN --task T``)."""
    out.print(
        f"task {escape(doc['id'])}: {doc['status']} after {doc['attempts']} attempt(s)"
        f"  [dim]({doc['kind']} task)[/]"
    )
    if doc["status"] in ("skipped", "cancelled", "paused") and doc.get("why"):
        _say("why", doc["why"])
    if doc.get("pending"):
        _print_pending(doc, run_id)
    if doc["error"]:
        _print_error(doc["error"], hint_for(doc["error"], run_id, doc["retries"]))
    if doc.get("tree") is not None:
        _print_path(doc["tree"])
    for attempt in doc["history"]:
        _print_attempt(attempt, doc["error"])
    if "conversation" in doc:
        _print_conversation(doc["conversation"])
    if doc["output"] is not None:
        _say("output", json.dumps(doc["output"], indent=2, ensure_ascii=False, default=str))
    else:
        _say("output", "null")
    seqs = " ".join(f"{e['seq']}:{e['type']}" for e in doc["events"])
    out.print(f"  [dim]events   {escape(seqs)}[/]")
