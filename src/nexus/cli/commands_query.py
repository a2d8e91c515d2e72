"""Commands that read runs: status, inspect, events, cost, export (``runs``: ``commands_runs``).

They read the store's projection and the event log only (never a live
engine), so they work the same while a run is going, after it ended, or
after its process died.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from nexus.cli.commands_runs import STATUS_STYLE as _STATUS_STYLE
from nexus.cli.output import EXIT_FAILED, emit_json, err, fail, open_store, out, run_async
from nexus.cli.runref import resolve_run_arg
from nexus.domain.errors import NotFoundError, UserError
from nexus.domain.events import Event, EventType

if TYPE_CHECKING:
    from nexus.domain.state import RunState
    from nexus.store.base import Store

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
RunArg = Annotated[str, typer.Argument(help="Run id.", show_default=False)]
AtOpt = Annotated[int | None, typer.Option("--at", help="The state as of event SEQ (time travel).")]


async def _fold(store: Store, run_id: str, at: int | None = None) -> tuple[RunState, list[Event]]:
    """Fold a run's log, or only its first ``at`` events (time travel)."""
    from nexus.domain.state import RunState

    events = await store.load(run_id)
    if not events:
        raise NotFoundError(f"no run with id {run_id}")
    if at is not None:
        if not 1 <= at <= len(events):
            raise UserError(f"--at must be between 1 and {len(events)} (the run's events)")
        events = events[:at]
    return RunState.fold(events), events


def _summary(state: RunState, record_status: str | None = None) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for task in state.tasks.values():
        counts[str(task.status)] = counts.get(str(task.status), 0) + 1
    doc: dict[str, Any] = {
        "run_id": state.run_id,
        "name": state.plan.name,
        "status": str(state.status),
        "started_at": state.started_at,
        "ended_at": state.ended_at,
        "events": state.seq,
        "counts": dict(sorted(counts.items())),
        "tasks": {
            tid: {"status": str(t.status), "attempts": t.attempts} for tid, t in state.tasks.items()
        },
    }
    pause = state.pause_summary()
    if pause is not None:
        doc["pause"] = pause
    return doc


def _pause_line(doc: dict[str, Any]) -> str | None:
    """Why the run is paused (or pausing): a person, who and why; or a budget."""
    pause = doc.get("pause")
    if pause is None:
        return None
    run_id = doc["run_id"]
    if pause["kind"] == "budget":
        return (
            f"paused for budget: see `nexus cost {run_id}`, "
            f"then `nexus resume {run_id} --budget ...`"
        )
    who = f"by {escape(pause['by'])}" + (f": {escape(pause['reason'])}" if pause["reason"] else "")
    if pause.get("state") == "pausing":
        running = doc["counts"].get("running", 0)
        return f"pausing ({who}): no new attempt starts, {running} running to finish"
    return f"paused {who} (since {pause['since'][:19]}Z); `nexus resume {run_id}` continues it"


#: the most added or skipped tasks ``nexus status`` lists (the rest: ``nexus inspect``)
_STATUS_TASKS = 20


def _plan_changes(doc: dict[str, Any], state: RunState, events: list[Event]) -> None:
    """Mark in ``doc["tasks"]`` the tasks a plan extension added (``added_by``) and the
    skipped ones (``why``: the reason recorded when they were skipped)."""
    from nexus.domain.payloads import TaskEndedUnrun

    for tid, task in state.tasks.items():
        if task.extended_by is not None:
            doc["tasks"][tid]["added_by"] = task.extended_by
    for event in events:
        if event.type is EventType.TASK_SKIPPED:
            skipped = TaskEndedUnrun.from_event(event)
            if skipped.task in doc["tasks"]:
                doc["tasks"][skipped.task]["why"] = " ".join(skipped.reason.split())


def _plan_change_lines(doc: dict[str, Any]) -> list[str]:
    """The added (``+ task ... added by X``) and skipped (``skipped task: why``) tasks."""
    lines: list[str] = []
    marked = [
        (tid, t) for tid, t in doc["tasks"].items() if "added_by" in t or t["status"] == "skipped"
    ]
    for tid, task in marked[:_STATUS_TASKS]:
        style = _STATUS_STYLE.get(task["status"], "none")
        mark = "+" if "added_by" in task else " "
        notes = [f"added by {escape(task['added_by'])}"] if "added_by" in task else []
        if task.get("why"):
            notes.append(escape(task["why"]))
        line = f"  {mark} {escape(tid)}  [{style}]{task['status']}[/]"
        lines.append(line + (f"  [dim]{'; '.join(notes)}[/]" if notes else ""))
    if len(marked) > _STATUS_TASKS:
        lines.append(f"  ... and {len(marked) - _STATUS_TASKS} more: nexus inspect {doc['run_id']}")
    return lines


def status(run_id: RunArg, at: AtOpt = None, as_json: JsonOpt = False) -> None:
    """Where a run stands: status, task counts, whether a process drives it.

    The tasks a plan extension added (``+``) and the skipped ones are listed, with why.
    """
    from nexus.engine.leases import lease_alive

    run_id = resolve_run_arg(run_id, as_json=as_json)

    async def go() -> dict[str, Any]:
        async with open_store() as store:
            state, events = await _fold(store, run_id, at)
            lease = await store.get_lease(run_id)
            if lease is not None and not lease_alive(lease):
                lease = None  # its process died: nothing drives the run
            doc = _summary(state)
            _plan_changes(doc, state, events)
            doc["driven_by"] = None if lease is None else {"host": lease.host, "pid": lease.pid}
            return doc

    doc = run_async(go, as_json=as_json)
    if as_json:
        emit_json(doc)
    else:
        style = _STATUS_STYLE.get(doc["status"], "none")
        out.print(f"run {doc['run_id']}  {doc['name']}  [{style}]{doc['status']}[/]")
        out.print("  " + ", ".join(f"{n} {s}" for s, n in doc["counts"].items()))
        for change in _plan_change_lines(doc):
            out.print(change)
        if (line := _pause_line(doc)) is not None:
            out.print(f"  {line}")
        if doc["status"] == "running" and doc["driven_by"] is None:
            out.print(f"  no process drives it: `nexus resume {run_id}` continues it")
    if doc["status"] != "succeeded":
        raise typer.Exit(EXIT_FAILED)


def cost(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Argument(help="Run id.", show_default=False)] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Total spend of a tenant's runs instead.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """What a run spent: per agent, task, model and call; estimate vs actual; cache savings."""
    from nexus.budget.report import cost_report, tenant_report
    from nexus.cli.wiring import project_of

    if (run_id is None) == (tenant is None):
        fail("name a run (nexus cost RUN) or a tenant (nexus cost --tenant NAME)", as_json=as_json)
    if run_id is not None:
        run_id = resolve_run_arg(run_id, as_json=as_json)

    async def go() -> dict[str, Any]:
        project = project_of(ctx)
        async with project.open_store() as store:
            if tenant is not None:
                return tenant_report(tenant, await store.tenant_spend(tenant))
            assert run_id is not None
            _, events = await _fold(store, run_id)
        return cost_report(events, project.config.pricing())

    report = run_async(go, as_json=as_json)
    if as_json:
        emit_json(report)
        return
    if tenant is not None:
        out.print(
            f"tenant {tenant}: [bold]${report['usd']}[/], {report['tokens']:,} tokens in "
            f"{report['calls']} model calls, {report['tool_calls']} tool calls"
        )
        return
    total = report["total"]
    out.print(
        f"run {report['run_id']}  {report['name']}  [bold]${total['usd']}[/]  "
        f"{total['tokens']:,} tokens in {total['calls']} model calls, "
        f"{report['tool_calls']} tool calls  (tenant {report['tenant']})"
    )
    for title, key in (("agent", "by_agent"), ("task", "by_task"), ("model", "by_model")):
        groups = report[key]
        if not groups:
            continue
        table = Table(box=None, header_style="bold", title_justify="left")
        for col in (title, "calls", "prompt", "completion", "cached", "usd"):
            table.add_column(col, justify="left" if col == title else "right")
        for name, row in groups.items():
            table.add_row(
                escape(name or "-"),
                str(row["calls"]),
                f"{row['prompt_tokens']:,}",
                f"{row['completion_tokens']:,}",
                f"{row.get('cached_tokens', 0):,}",
                row["usd"],
            )
        out.print(table)
    estimate = report.get("estimate")
    if estimate is not None:
        vs = estimate["vs_actual"]
        relative = vs["relative_error"]
        share = "n/a" if relative is None else f"{relative:.0%}"
        out.print(f"estimate ${vs['estimate']} vs actual ${vs['actual']}  (error {share})")
    for hit in report.get("plan_cache", {}).get("hits", ()):
        out.print(
            f"plan cache: task {escape(hit['task'])} took the plan of run {hit['source_run']}, "
            f"saved ${hit['usd']} ({hit['calls']} model calls, {hit['tokens']:,} tokens)"
        )
    saved = report["cache"]
    if saved["hits"]:
        out.print(
            f"cache: {saved['hits']} hits saved {saved['tokens_saved']:,} tokens, "
            f"${saved['usd_saved']}"
        )
    for name, budget in report["budgets"].items():
        out.print(f"budget {name}: limits {budget['limits']}, spent {budget['spent']}")
    for event in report["budget_events"]:
        held = ""
        if event.get("asked") is not None:
            held = f" (a call asking {event['asked']} did not fit; {event['reserved']} held)"
        out.print(
            f"[yellow]{event['type']}[/] {event['scope']} {event['key']} {event['dimension']} "
            f"{event['percent']}%: {event['spent']} of {event['limit']}{held}"
        )
    if report["unpriced_models"]:
        out.print(f"[yellow]unpriced (counted as $0):[/] {', '.join(report['unpriced_models'])}")


def inspect(
    run_id: RunArg,
    task: Annotated[str | None, typer.Option("--task", "-t", help="One task in detail.")] = None,
    at: AtOpt = None,
    conversation: Annotated[
        bool,
        typer.Option(
            "--conversation",
            help="With --task: the agent's messages, tool calls and tool results.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a run's tasks, or one task with its attempts, effects and output.

    The run: each task's state and why (the error of a failed task, the reason
    one was skipped, the command that answers a pending approval). One task
    (--task): its error with a hint, then per attempt its duration, what it ran
    (tool and arguments, or agent, route, model and prompt) and every call it
    made; for a task awaiting approval, what approving it will run.
    """
    from nexus.cli import inspection

    if conversation and task is None:
        fail("--conversation shows one agent task: add --task TASK", as_json=as_json)
    run_id = resolve_run_arg(run_id, as_json=as_json)

    async def go() -> dict[str, Any]:
        async with open_store() as store:
            state, events = await _fold(store, run_id, at)
        if task is None:
            return inspection.view_run(_summary(state), state, events)
        if task not in state.tasks:
            known = ", ".join(list(state.tasks)[:20])
            raise NotFoundError(f"run {run_id} has no task '{task}' (tasks: {known})")
        return inspection.view_task(state, events, task, conversation=conversation)

    doc = run_async(go, as_json=as_json)
    if as_json:
        emit_json(doc)
    elif task is None:
        inspection.print_run(doc, note=_pause_line(doc))
    else:
        inspection.print_task(doc, run_id)


def events(
    run_id: Annotated[
        str | None, typer.Argument(help="Run id (not with --schema).", show_default=False)
    ] = None,
    task: Annotated[str | None, typer.Option("--task", "-t", help="Only this task.")] = None,
    type_: Annotated[
        str | None, typer.Option("--type", help="Only this type (prefix, e.g. 'task.').")
    ] = None,
    as_json: JsonOpt = False,
    schema: Annotated[
        bool,
        typer.Option("--schema", help="Print the JSON Schema of every event type, not a log."),
    ] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="With --schema: as docs/events.md (Markdown).")
    ] = False,
) -> None:
    """Print a run's event log, or (--schema) the schema of every event type.

    Each line is an event's number, time, type and what it holds in short
    (task, attempt, tool or model, tokens, error); --json prints every field.
    """
    from nexus.cli.summaries import summary
    from nexus.domain.payloads import task_of

    if schema:
        from nexus.domain import event_schema

        if run_id is not None or task is not None or type_ is not None:
            fail("--schema takes no run id, --task or --type", as_json=as_json)
        if markdown:
            typer.echo(event_schema.markdown(), nl=False)
        else:
            typer.echo(json.dumps(event_schema.json_schema(), indent=2, ensure_ascii=False))
        return
    if markdown:
        fail("--markdown goes with --schema", as_json=as_json)
    if run_id is None:
        fail("give a run id (see `nexus runs`), or --schema", as_json=as_json)
    run_id = resolve_run_arg(run_id, as_json=as_json)

    async def go() -> list[Event]:
        async with open_store() as store:
            found = await store.load(run_id)
        if not found:
            raise NotFoundError(f"no run with id {run_id}")
        return [
            e
            for e in found
            if (task is None or task_of(e) == task)
            and (type_ is None or str(e.type).startswith(type_))
        ]

    found = run_async(go, as_json=as_json)
    if as_json:
        emit_json([e.to_dict() for e in found])
        return
    for e in found:
        at = e.at[:23] + "Z" if len(e.at) > 24 else e.at  # to the millisecond
        out.print(f"[dim]{e.seq:>5} {at}[/] {e.type:<20} {escape(summary(e))}")


def export(
    ctx: typer.Context,
    run_id: RunArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    as_json: JsonOpt = False,
    evidence: Annotated[
        Path | None,
        typer.Option(
            "--evidence",
            help="A code mission's run: write its signed evidence bundle to this directory.",
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="With --evidence: sign with this Ed25519 key (PEM)."),
    ] = None,
) -> None:
    """Export a run as one JSON bundle: record, plan, events, final state, audit.

    The bundle is JSON either way; with ``-o FILE --json`` a JSON summary of
    what was written goes to stdout. ``--evidence DIR`` writes a code mission's
    evidence bundle instead (reports, check outputs, signed manifest).
    """
    from nexus.domain.payloads import RunStarted
    from nexus.store.audit import verify_chain

    run_id = resolve_run_arg(run_id, as_json=as_json)
    if evidence is not None:
        _export_evidence(ctx, run_id, evidence, key, as_json)
        return

    async def go() -> dict[str, Any]:
        async with open_store() as store:
            record = await store.get_run(run_id)
            state, found = await _fold(store, run_id)
            audit = await asyncio.to_thread(
                verify_chain, store.chain(run_id), {run_id: record.events if record else 0}
            )
        started = RunStarted.from_event(found[0])
        return {
            "format": "nexus-run-export/1",
            "run": _summary(state),
            "source": started.source,
            "plan": started.plan,
            "plan_hash": started.plan_hash,
            "audit": audit.to_dict(),
            "events": [e.to_dict() for e in found],
        }

    bundle = run_async(go, as_json=as_json)
    text = json.dumps(bundle, indent=2, ensure_ascii=False)
    if output is None:
        typer.echo(text)
    else:
        try:
            output.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            err.print(f"[red]error:[/] cannot write {escape(str(output))}: {exc.strerror}")
            raise typer.Exit(2) from None
        if as_json:
            emit_json({"run_id": run_id, "output": str(output), "events": len(bundle["events"])})
        else:
            err.print(f"exported {len(bundle['events'])} events to {escape(str(output))}")


def _export_evidence(
    ctx: typer.Context, run_id: str, directory: Path, key: Path | None, as_json: bool
) -> None:
    """``nexus export RUN --evidence DIR``: the mission's signed evidence bundle, from its log."""
    from nexus.cli.wiring import project_of
    from nexus.missions.mission import export_evidence

    project = project_of(ctx)

    async def go() -> list[Event]:
        async with project.open_store(sign=False) as store:
            return await store.load(run_id)

    found = run_async(go, as_json=as_json)
    try:
        record, info = export_evidence(found, directory, home=project.home, key_file=key)
    except (UserError, NotFoundError) as exc:
        fail(exc.message, 2 if isinstance(exc, UserError) else 4, as_json=as_json)
    if as_json:
        emit_json(
            {
                "run_id": run_id,
                "evidence": str(info.path),
                "key_id": info.key_id,
                "met": list(info.met),
                "unmet": list(info.unmet),
            }
        )
        return
    out.print(
        f"evidence of mission {escape(record.config.id)} written to {escape(str(info.path))}: "
        f"{len(info.met)} requirements met, {len(info.unmet)} unmet "
        f"(report.html; check it with: nexus evidence verify {escape(str(info.path))})"
    )
