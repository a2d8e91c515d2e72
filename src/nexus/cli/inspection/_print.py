"""``nexus inspect``'s document printed: the run's table, one task in detail."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rich.markup import escape
from rich.table import Table

from nexus.cli.inspection._errors import error_lines, hint_for
from nexus.cli.output import out
from nexus.domain.payloads import ErrorRecord

__all__ = ["print_run", "print_task"]

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
    saga = doc.get("saga")
    if saga is not None:
        steps = ", ".join(f"{s['task']} {s['status']}" for s in saga["steps"]) or "none"
        out.print(
            f"  saga ({saga['state']}): {escape(saga['failed'])} failed; "
            f"compensations in order: {escape(steps)}"
        )


def _say(label: str, text: str, indent: int = 2, width: int = 9) -> None:
    """``label  text``, continuation lines indented under the text; never markup."""
    pad = " " * indent
    lines = text.splitlines() or [""]
    out.print(f"{pad}{label:<{width}}{lines[0]}", markup=False, highlight=False)
    for line in lines[1:]:
        out.print(f"{pad}{'':<{width}}{line}", markup=False, highlight=False)


def _print_error(error: Mapping[str, Any], hint: str | None, indent: int = 2) -> None:
    lines = error_lines(error)
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
    if attempt.get("state") is not None:  # an fsm task: the state and step, where it went
        head = f"attempt {attempt.get('attempt')} (state {attempt['state']}, step "
        head += f"{attempt.get('step')})  {attempt['outcome']}"
        if "to" in attempt:
            why = "default" if attempt["when"] is None else f"when gave {_json(attempt['when'])}"
            head += f", -> {attempt['to']} ({why})"
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


def _print_aggregate(record: Mapping[str, Any]) -> None:
    """A fan-out's ``aggregate``: the method, each answer's count and items, the winner."""
    method = record.get("method")
    head = f"{method} over {record.get('items')} items"
    if method != "first_success":
        head += f", {record.get('answers')} answered"
    if record.get("key"):
        head += f" (key {record['key']})"
    if record.get("winner") is not None:
        head += f"; item {record['winner']} gives the output"
    _say("aggregate", head, width=10)
    for tally in record.get("tallies") or []:
        items = ", ".join(str(i) for i in tally.get("items") or [])
        _say("", f"{tally.get('count')} x {tally.get('answer')}  (items {items})", width=10)
    for label in ("failed", "unanswered"):
        if record.get(label):
            _say("", f"{label}: items {', '.join(str(i) for i in record[label])}", width=10)


def _print_barrier(barrier: dict[str, Any]) -> None:
    counts = f"{barrier['quorum']} of {', '.join(barrier['of'])} must succeed"
    _say("barrier", counts)
    for label, key in (("ok", "succeeded"), ("not ok", "unsuccessful"), ("open", "open")):
        if barrier[key]:
            _say(label, ", ".join(barrier[key]))
    if barrier["timeout"] is not None:
        waits = f"{barrier['timeout']:g} s after the first need ended, then {barrier['on_timeout']}"
        if barrier["deadline"]:
            waits += f" (deadline {barrier['deadline']}"
            waits += ", passed)" if barrier["timed_out"] else ")"
        _say("wait", waits)


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
    if "compensates" in doc:
        _say("undoes", doc["compensates"])
    if "compensation" in doc:
        comp = doc["compensation"]
        _say("undone by", f"{comp['task']} ({comp['status']})", width=10)
    out.print(
        f"task {escape(doc['id'])}: {doc['status']} after {doc['attempts']} attempt(s)"
        f"  [dim]({doc['kind']} task)[/]"
    )
    if doc["status"] in ("skipped", "cancelled", "paused") and doc.get("why"):
        _say("why", doc["why"])
    if doc.get("fsm"):
        _say("path", " -> ".join(doc["fsm"]["path"]))
    if doc.get("pending"):
        _print_pending(doc, run_id)
    if doc.get("barrier"):
        _print_barrier(doc["barrier"])
    if doc["error"]:
        _print_error(doc["error"], hint_for(doc["error"], run_id, doc["retries"]))
    if doc.get("aggregate"):
        _print_aggregate(doc["aggregate"])
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
