"""``nexus mission SPEC --repo PATH``: a code mission, from a design spec to merged changes.

The mission is a run like any other (live progress, ``nexus resume`` after a
crash, ``nexus replay``, ``nexus cost``, ``nexus audit verify``). Its work lands
on the branch ``nexus/<mission>`` of the repository; the user's checkout is
never touched. When the run ends, the signed evidence bundle is written
(``--evidence DIR``, default ``$NEXUS_HOME/evidence/<run>``) and the worktrees
are removed (``--keep-worktrees`` keeps them).

Exit codes: 0 every requirement met; 1 the mission ended with requirements
unmet, or failed; 2 bad input; 4 a file not found; 5 paused (a budget, or
``--plan-only``: the plan awaits ``nexus approve RUN work``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.markup import escape
from rich.table import Table

from nexus.cli.output import (
    EXIT_FAILED,
    EXIT_PAUSED,
    emit_json,
    err,
    exit_code_for,
    fail,
    out,
    run_async,
)
from nexus.cli.wiring import import_from_here, project_of
from nexus.domain.errors import NexusError

if TYPE_CHECKING:
    from nexus.app import Project
    from nexus.domain.events import Event
    from nexus.domain.state import RunState
    from nexus.missions.mission import MissionSummary

__all__ = ["demo", "drive_mission", "finish_and_report", "mission"]

SpecArg = Annotated[Path, typer.Argument(help="The design spec (Markdown).", show_default=False)]
RepoOpt = Annotated[
    Path,
    typer.Option("--repo", help="The git repository to work on (never changed in place)."),
]
ModeOpt = Annotated[
    str,
    typer.Option(
        "--mode",
        help="greenfield, brownfield (index the repository) or hardening (brownfield, and "
        "each item proves its fix with tests and changes no public API).",
    ),
]
AgentsOpt = Annotated[
    Path | None,
    typer.Option(
        "--agents",
        help="Agents by role (YAML `agents:`; an entry may be `function: module:function`).",
    ),
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="The model of every role without its own.")
]


def mission(
    ctx: typer.Context,
    spec: SpecArg,
    repo: RepoOpt = Path("."),
    mode: ModeOpt = "greenfield",
    agents: AgentsOpt = None,
    model: ModelOpt = None,
    plan_only: Annotated[
        bool,
        typer.Option(
            "--plan-only", help="Plan, show the work items and their estimate, run nothing."
        ),
    ] = False,
    max_attempts: Annotated[
        int | None, typer.Option("--max-attempts", min=1, max=20, help="Gate attempts per item.")
    ] = None,
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="Where the worktrees go.")
    ] = None,
    evidence: Annotated[
        Path | None, typer.Option("--evidence", help="Write the evidence bundle here.")
    ] = None,
    keep_worktrees: Annotated[
        bool, typer.Option("--keep-worktrees", help="Keep the worktrees when the mission ends.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Run a code mission: a design spec and a repository in, verified merged changes out.

    The spec is planned into work items, which are tested, coded, checked, reviewed and
    merged one at a time onto the branch nexus/<mission>; see docs/missions.md.
    """
    import_from_here()  # function agents (--agents: function: mod:fn) beside the spec
    if mode not in ("greenfield", "brownfield", "hardening"):
        fail(f"--mode '{mode}': use greenfield, brownfield or hardening", as_json=as_json)
    chosen: Literal["greenfield", "brownfield", "hardening"] = mode  # type: ignore[assignment]

    def agents_file() -> dict[str, Any] | None:
        from nexus.planning.goal import read_agents

        return read_agents(agents) if agents is not None else None

    state, events, project = drive_mission(
        ctx,
        spec,
        repo,
        mode=chosen,
        model=model,
        agents_file=agents_file,
        workdir=workdir,
        max_attempts=max_attempts,
        plan_only=plan_only,
        shown=not (as_json or quiet),
        as_json=as_json,
    )
    if plan_only:
        _show_plan(state, events, as_json)
        return
    finish_and_report(
        project, events, evidence=evidence, keep_worktrees=keep_worktrees, as_json=as_json
    )


def drive_mission(
    ctx: typer.Context,
    spec: Path,
    repo: Path,
    *,
    mode: Literal["greenfield", "brownfield", "hardening"],
    model: str | None,
    agents_file: Callable[[], dict[str, Any] | None],
    workdir: Path | None = None,
    max_attempts: int | None = None,
    plan_only: bool = False,
    shown: bool = True,
    as_json: bool = False,
) -> tuple[RunState, list[Event], Project]:
    """Prepare and run a code mission to its end (or, with ``plan_only``, to its plan)."""
    from nexus.cli.progress import Progress
    from nexus.cli.runlog import RunLog

    run_ids: list[str] = []
    source = f"mission:{spec.resolve()}"

    async def go() -> tuple[RunState, list[Event], Project]:
        from nexus.missions.mission import WORK_TASK, prepare_mission
        from nexus.missions.spec import read_spec

        project = project_of(ctx)
        setup = prepare_mission(
            read_spec(spec),
            repo,
            project=project.config.mission,
            source=str(project.config.path or "nexus.toml"),
            home=project.home,
            mode=mode,
            model=model,
            agents_file=agents_file(),
            workdir=workdir,
            max_attempts=max_attempts,
            plan_review=plan_only,
        )
        compiled, registry = project.mission_plan(setup)
        proposed = asyncio.Event()
        seen: list[RunState] = []

        def watch(events: Sequence[Event], state: RunState) -> None:
            from nexus.domain.events import EventType

            seen[:] = [state]
            run_ids[:] = [state.run_id]
            if plan_only and any(
                e.type is EventType.APPROVAL_REQUESTED and e.data.get("task") == WORK_TASK
                for e in events
            ):
                proposed.set()

        async with (
            project.open_store() as store,
            project.engine(store, plan=compiled, tools=registry) as engine,
        ):
            with Progress(err, live=None if shown else False) as view, RunLog(project.home) as log:
                observers: list[Any] = [watch, log, view] if shown else [watch, log]
                driving = asyncio.create_task(
                    engine.start(compiled, source=source, observers=observers)
                )
                waiting = asyncio.create_task(proposed.wait())
                await asyncio.wait({driving, waiting}, return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
                if not driving.done():
                    driving.cancel()  # --plan-only: the run stays, awaiting approval
                with contextlib.suppress(asyncio.CancelledError):
                    await driving
            events = await store.load(seen[0].run_id)
        return seen[0], events, project

    def hint() -> str:
        if not run_ids:
            return "interrupted before the mission started; nothing was recorded"
        return f"interrupted; `nexus resume {run_ids[0]}` continues the mission"

    return run_async(go, as_json=as_json, interrupted=hint)


def _show_plan(state: RunState, events: Sequence[Event], as_json: bool) -> None:
    from nexus.engine.facade import preflight
    from nexus.missions.mission import WORK_TASK, mission_record

    record = mission_record(events)
    work = state.tasks.get(WORK_TASK)
    if record.plan is None or work is None or not work.added:
        task = state.tasks.get("architect")
        error = (task.error if task is not None else None) or {}
        message = str(error.get("message", "the architect proposed no plan it could accept"))
        fail(f"no plan (run {state.run_id}): {message}", EXIT_FAILED, as_json=as_json)
    from dataclasses import replace

    plan = state.plan
    proposal = replace(plan, tasks={tid: state.tasks[tid].spec for tid in work.added})
    estimate, _ = preflight(proposal)
    items = list(record.plan.get("items") or [])
    unmet = list(record.plan.get("unmet") or [])
    if as_json:
        emit_json(
            {
                "run_id": state.run_id,
                "mission": record.config.id,
                "branch": record.config.branch,
                "items": items,
                "unmet": unmet,
                "estimate": estimate.to_dict(),
                "approve": f"nexus approve {state.run_id} {WORK_TASK}",
            }
        )
        raise typer.Exit(EXIT_PAUSED)
    out.print(f"[bold]mission {record.config.id}[/]: {len(items)} work items (run {state.run_id})")
    table = Table(box=None, header_style="bold")
    for col in ("item", "owns", "needs", "requirements", "checks"):
        table.add_column(col)
    for item in items:
        table.add_row(
            escape(str(item["id"])),
            escape(", ".join(item.get("owns") or []) or "-"),
            escape(", ".join(item.get("needs") or []) or "-"),
            escape(", ".join(item.get("requirements") or []) or "-"),
            escape(", ".join(item.get("checks") or []) or "all"),
        )
    out.print(table)
    for entry in unmet:
        out.print(
            f"  unmet {escape(str(entry.get('requirement')))}: {escape(str(entry.get('reason')))}"
        )
    out.print(
        f"estimate ${estimate.usd:.4f}, {estimate.tokens:,} tokens, {estimate.calls} model calls"
    )
    out.print(
        f"nothing has run: [bold]nexus approve {state.run_id} {WORK_TASK}[/] runs it, "
        f"nexus reject {state.run_id} {WORK_TASK} --reason ... drops it"
    )
    raise typer.Exit(EXIT_PAUSED)


def finish_and_report(
    project: Project,
    events: Sequence[Event],
    *,
    evidence: Path | None = None,
    keep_worktrees: bool = False,
    as_json: bool = False,
    extra: dict[str, Any] | None = None,
) -> None:
    """Close a mission's run (evidence, worktrees), print its summary and exit with its code."""
    from nexus.missions.mission import finish_mission

    run_id = events[0].run_id
    target = evidence if evidence is not None else project.home / "evidence" / run_id
    try:
        summary = finish_mission(
            events, home=project.home, evidence_dir=target, keep_worktrees=keep_worktrees
        )
    except NexusError as exc:
        fail(exc.message, exit_code_for(exc), as_json=as_json)
    _report(run_id, summary, as_json, extra or {})
    if summary.status == "running":
        raise typer.Exit(EXIT_PAUSED)
    if summary.status != "succeeded" or summary.unmet:
        raise typer.Exit(EXIT_FAILED)


def demo(
    ctx: typer.Context,
    model: ModelOpt = None,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where the demo's repository goes (default: a new temp dir)."),
    ] = None,
    keep_worktrees: Annotated[
        bool, typer.Option("--keep-worktrees", help="Keep the worktrees when the mission ends.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """The flagship demo: a code mission on a bundled spec, offline, from plan to evidence.

    A small git repository is made in a new directory; the bundled spec asks
    for four requirements. Without --model the roles play back recorded
    answers (one change fails the tests on its first attempt and passes on
    its second from the gate's feedback); with --model they ask that model.
    """
    import tempfile
    import time

    from nexus.missions.demo import DEMO_AGENTS, demo_spec, make_demo_repo

    base = directory if directory is not None else Path(tempfile.mkdtemp(prefix="nexus-demo-"))
    try:
        repo = make_demo_repo(base.resolve() / "textkit")
    except (FileExistsError, OSError) as exc:
        fail(f"--dir {base}: cannot make the demo repository there: {exc}", as_json=as_json)
    agents = None if model else {"agents": {r: {"function": f} for r, f in DEMO_AGENTS.items()}}
    started = time.monotonic()
    _, events, project = drive_mission(
        ctx,
        demo_spec(),
        repo,
        mode="greenfield",
        model=model,
        agents_file=lambda: agents,
        workdir=base.resolve() / "work",
        shown=not (as_json or quiet),
        as_json=as_json,
    )
    finish_and_report(
        project,
        events,
        keep_worktrees=keep_worktrees,
        as_json=as_json,
        extra={"repository": str(repo), "seconds": round(time.monotonic() - started, 1)},
    )


def _report(run_id: str, summary: MissionSummary, as_json: bool, extra: dict[str, Any]) -> None:
    if as_json:
        emit_json({"run_id": run_id, **summary.to_data(), **extra})
        return
    style = "green" if summary.status == "succeeded" and not summary.unmet else "red"
    if summary.status == "running":
        style = "yellow"
    out.print(f"[bold {style}]mission {summary.status}[/]  run {run_id}  branch {summary.branch}")
    out.print(
        f"  work items: {len(summary.merged)} of {summary.items} merged"
        + (f" (not merged: {', '.join(summary.not_merged)})" if summary.not_merged else "")
    )
    out.print(
        f"  attempts {summary.attempts}, checks run {summary.checks_run}, "
        f"model calls {summary.model_calls}, tokens {summary.tokens:,}, cost ${summary.cost_usd}"
    )
    met, unmet = len(summary.met), len(summary.unmet)
    out.print(
        f"  requirements: {met} met, {unmet} unmet"
        + (f" ({', '.join(summary.unmet)})" if summary.unmet else "")
    )
    if summary.proposed:
        out.print(
            f"  failures that recur, proposed as constraints: {', '.join(summary.proposed)} "
            f"(accept them in {escape(str(summary.constraints))})"
        )
    if "repository" in extra:
        out.print(
            f"  merged code: {escape(extra['repository'])}, branch {summary.branch} "
            f"(git -C {escape(extra['repository'])} log --stat {summary.branch})"
        )
    if "seconds" in extra:
        out.print(f"  time: {extra['seconds']} s")
    if summary.evidence:
        out.print(
            f"  evidence: {summary.evidence}/report.html (nexus evidence verify {summary.evidence})"
        )
    if summary.status == "running":
        out.print(f"  continue it with: nexus resume {run_id}")
    elif summary.status != "succeeded":
        out.print(f"  inspect with: nexus inspect {run_id}")
