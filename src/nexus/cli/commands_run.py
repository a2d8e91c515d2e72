"""Commands that make runs move: validate, plan, run, resume, cancel, replay."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from nexus.cli.output import (
    EXIT_FAILED,
    EXIT_PAUSED,
    EXIT_REFUSED,
    EXIT_USER,
    emit_json,
    err,
    fail,
    open_store,
    out,
    run_async,
)
from nexus.cli.runref import resolve_run_arg
from nexus.cli.wiring import import_from_here, project_of
from nexus.domain.budget import Limits, Scope
from nexus.domain.errors import UserError, WorkflowError
from nexus.domain.events import Event, EventType
from nexus.domain.graph import critical_path, topological_order
from nexus.domain.plan import CACHE_KINDS, COMPENSATE_SUFFIX, Plan, plan_hash

if TYPE_CHECKING:
    from nexus.app import Project
    from nexus.cli.progress import Progress
    from nexus.domain.state import RunState
    from nexus.engine.facade import RunResult

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
FileArg = Annotated[Path, typer.Argument(help="Workflow file (YAML).", show_default=False)]
RunArg = Annotated[str, typer.Argument(help="Run id.", show_default=False)]


def _malformed(pair: str) -> str:
    """Why an ``-i`` is malformed, without repeating it (it may be a secret)."""
    if "=" not in pair:
        return f"an input must be written key=value; one -i has no '=' ({len(pair)} characters)"
    return "an input must be written key=value; one -i has no name before '='"


def _parse_inputs(pairs: list[str] | None) -> dict[str, Any]:
    """``-i key=value``; values are parsed as JSON when they are valid JSON."""
    inputs: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            fail(_malformed(pair))
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        inputs[key.strip()] = value
    return inputs


def _secret_texts(pairs: list[str] | None) -> dict[str, str]:
    """``-i key=value`` as given, not parsed: the values of secret inputs."""
    texts: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            fail(_malformed(pair))
        texts[key.strip()] = raw
    return texts


def _load(project: Project, file: Path, inputs: dict[str, Any] | None = None) -> Plan:
    from nexus.planning.workflow import load_workflow

    return load_workflow(file, inputs=inputs, context=project.workflow_context())


def _load_with(project: Project, file: Path, pairs: list[str] | None) -> Plan:
    """The plan of ``file`` with ``-i`` inputs; a secret input keeps its text as typed."""
    compiled = _load(project, file, _parse_inputs(pairs))
    texts = {k: v for k, v in _secret_texts(pairs).items() if k in compiled.secret_inputs}
    return replace(compiled, inputs={**compiled.inputs, **texts}) if texts else compiled


GoalOpt = Annotated[
    str | None,
    typer.Option(
        "--goal",
        help="Run a mission from this goal instead of a file: the agents file's planner "
        "turns it into tasks (docs/planning.md).",
    ),
]
AgentsOpt = Annotated[
    Path | None,
    typer.Option("--agents", help="With --goal: the agents file (YAML; default agents.yaml)."),
]
ReviewOpt = Annotated[
    bool,
    typer.Option("--review", help="With --goal: the plan waits for `nexus approve RUN plan`."),
]
MaxTasksOpt = Annotated[
    int,
    typer.Option("--max-tasks", min=1, max=10_000, help="With --goal: the most tasks planned."),
]
PlannerOpt = Annotated[
    str | None,
    typer.Option("--planner", help="With --goal: the planning agent (default: role planner)."),
]
CacheOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--cache",
        help="Re-use what earlier runs made: plans (the plan of an earlier run of the same "
        "goal, agents and inputs; docs/planning.md). As the workflow's `cache:` says.",
    ),
]


def _with_cache(plan: Plan, cache: list[str] | None) -> Plan:
    """``plan`` with ``--cache`` added to what its ``cache:`` says."""
    if not cache:
        return plan
    unknown = [kind for kind in cache if kind not in CACHE_KINDS]
    if unknown:
        raise UserError(
            f"--cache {unknown[0]!r}: what a run may re-use is {', '.join(CACHE_KINDS)}"
        )
    return replace(plan, cache=tuple(sorted({*plan.cache, *cache})))


def _goal_plan(
    project: Project,
    goal: str,
    agents: Path | None,
    *,
    review: bool,
    max_tasks: int,
    planner: str | None,
) -> tuple[Plan, str]:
    """The plan of a mission from ``goal`` and the source it is recorded with."""
    from nexus.app import goal_document
    from nexus.planning.workflow import compile_workflow

    path = agents if agents is not None else Path("agents.yaml")
    if agents is None and not path.exists():
        raise UserError(
            "a goal needs agents: pass --agents FILE (YAML with `agents:`, one of them "
            "`role: planner`), or put them in ./agents.yaml"
        )
    doc = goal_document(
        goal, path, project.tools(), review=review, max_tasks=max_tasks, planner=planner
    )
    compiled = compile_workflow(
        doc,
        file=f"the goal mission of {path}",
        base_dir=Path.cwd(),
        context=project.workflow_context(),
    )
    return compiled, f"goal:{path.resolve()}"


def _one_source(file: Path | None, goal: str | None) -> None:
    if file is not None and goal is not None:
        raise UserError("give a workflow file or --goal, not both")
    if file is None and goal is None:
        raise UserError('give a workflow file to run, or --goal "..." with --agents FILE')


SecretsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "-i",
        "--input",
        help="A secret input's value, name=value (it is not recorded; "
        "default: the environment variable the workflow names).",
    ),
]


def _parse_budget(pairs: list[str] | None) -> dict[Scope, Limits]:
    """``--budget usd=5``, ``--budget agent.coder.tokens=20000``, ``--budget task.t.usd=1``."""
    raised: dict[Scope, dict[str, str]] = {}
    for pair in pairs or []:
        target, sep, value = pair.partition("=")
        parts = target.strip().split(".")
        if not sep or not value.strip():
            fail(f"budget '{pair}' must be written [agent.NAME.|task.ID.]DIMENSION=VALUE")
        if len(parts) == 1:
            scope = Scope("run")
        elif len(parts) == 3 and parts[0] in ("agent", "task"):
            scope = Scope(parts[0], parts[1])  # type: ignore[arg-type]
        else:
            fail(f"budget '{pair}': write usd=5, agent.NAME.usd=5 or task.ID.tool_calls=50")
        raised.setdefault(scope, {})[parts[-1]] = value.strip()
    limits: dict[Scope, Limits] = {}
    for scope, values in raised.items():
        where = "--budget " + ("" if scope.kind == "run" else f"{scope.kind}.{scope.key}.")
        try:
            limits[scope] = Limits.from_dict(values, where.rstrip("."))
        except UserError as exc:
            fail(exc.message)
    return limits


class _Resumable:
    """Remembers the run a command drives, for the hint Ctrl-C prints.

    An observer: it learns the run's id from the first events (``nexus run``
    has none before ``run.started`` is recorded).
    """

    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id

    def __call__(self, events: Sequence[Event], state: RunState) -> None:
        self.run_id = state.run_id

    def hint(self) -> str:
        if self.run_id is None:
            return "interrupted before the run started; nothing was recorded"
        return f"interrupted; `nexus resume {self.run_id}` continues the run"


def _view(*, shown: bool, stream: bool) -> Progress:
    """The progress view of a command: a live table on a terminal, else lines.

    With ``stream`` it prints lines, which the streamed text interleaves
    with; when not ``shown`` it only prints streamed text (if any).
    """
    from nexus.cli.progress import Progress

    return Progress(err, live=None if shown and not stream else False)


def _result_exit(result: RunResult) -> None:
    if result.status == "paused":
        raise typer.Exit(EXIT_PAUSED)
    if result.status != "succeeded":
        raise typer.Exit(EXIT_FAILED)


def _report(result: RunResult, as_json: bool) -> None:
    from nexus.budget.pause import pause_advice

    if as_json:
        emit_json(result.to_dict())
        return
    style = "green" if result.status == "succeeded" else "red"
    counts: dict[str, int] = {}
    for task in result.tasks.values():
        counts[task["status"]] = counts.get(task["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    if result.status == "paused":
        style = "yellow"
    out.print(f"[bold {style}]{result.status}[/]  run {result.run_id}  ({summary})")
    saga = _saga_line(result)
    if saga is not None:
        out.print(f"  {escape(saga)}")
    if result.pause is not None and result.pause["kind"] == "user":
        why = f": {result.pause['reason']}" if result.pause["reason"] else ""
        out.print(f"  paused by {escape(result.pause['by'] + why)}")
        out.print(f"  continue it with: nexus resume {result.run_id}")
    elif result.status == "paused":
        for line in pause_advice(result.run_id, result.paused_by):
            out.print(f"  {escape(line)}")
    elif result.status != "succeeded":
        out.print(f"  inspect with: nexus inspect {result.run_id}")


def _saga_line(result: RunResult) -> str | None:
    """What a saga compensated, in the order it did (its compensations are the tasks
    named ``<task>.compensate``, created in that order); None without a saga."""
    done: list[str] = []
    failed: list[str] = []
    for tid, task in result.tasks.items():
        if tid.endswith(COMPENSATE_SUFFIX):
            name = tid.removesuffix(COMPENSATE_SUFFIX)
            (done if task["status"] == "succeeded" else failed).append(name)
    if not done and not failed:
        return None
    line = f"saga: compensated {', '.join(done) or 'nothing'}"
    if failed:
        line += f"; compensation failed: {', '.join(failed)}"
    return line


def _invalid(problems: Sequence[WorkflowError], as_json: bool) -> NoReturn:
    """Report every problem of a workflow file, one a line, and exit 2."""
    if as_json:
        listed = [
            {"file": p.file, "task": p.task, "field": p.field, "message": p.detail}
            for p in problems
        ]
        message = "\n".join(p.message for p in problems)
        emit_json({"error": {"message": message, "exit_code": EXIT_USER, "problems": listed}})
    for problem in problems:
        err.print(f"[bold red]error:[/] {escape(problem.message)}", highlight=False)
    if len(problems) > 1:
        err.print(f"{len(problems)} problems", highlight=False)
    raise typer.Exit(EXIT_USER)


def validate(ctx: typer.Context, file: FileArg, as_json: JsonOpt = False) -> None:
    """Check a workflow file; say what is wrong and where, every problem of it."""
    from nexus.planning.workflow import validate_workflow

    async def go() -> None:
        checked = validate_workflow(file, context=project_of(ctx).workflow_context())
        if checked.plan is None:
            _invalid(checked.problems, as_json)
        plan = checked.plan
        if as_json:
            emit_json({"valid": True, "name": plan.name, "tasks": len(plan.tasks)})
        else:
            out.print(f"[green]valid[/]  {escape(str(file))}: {plan.name}, {len(plan.tasks)} tasks")

    run_async(go, as_json=as_json)


def plan(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Argument(help="Workflow file (YAML); or use --goal.", show_default=False),
    ] = None,
    inputs: Annotated[list[str] | None, typer.Option("-i", "--input", help="key=value")] = None,
    estimate: Annotated[
        bool, typer.Option("--estimate", help="Estimate the cost and check the budgets.")
    ] = False,
    as_json: JsonOpt = False,
    goal: GoalOpt = None,
    agents: AgentsOpt = None,
    max_tasks: MaxTasksOpt = 50,
    planner: PlannerOpt = None,
    cache: CacheOpt = None,
) -> None:
    """Show the plan: task graph, order, critical path and plan hash."""
    if goal is not None or file is None:
        _one_source(file, goal)
        assert goal is not None
        _plan_goal(
            ctx, goal, agents, max_tasks=max_tasks, planner=planner, as_json=as_json, cache=cache
        )
        return
    assert file is not None

    async def go() -> None:
        project = project_of(ctx)
        compiled = _load_with(project, file, inputs)
        if estimate:
            _show_estimate(project, compiled, as_json)
            return
        needs = {tid: t.needs for tid, t in compiled.tasks.items()}
        order = topological_order(needs)
        path = critical_path(needs)
        doc = {
            "name": compiled.name,
            "plan_hash": plan_hash(compiled),
            "tasks": len(order),
            "order": order,
            "critical_path": path,
            "edges": [[d, t] for t in order for d in sorted(compiled.tasks[t].needs)],
        }
        if as_json:
            emit_json(doc)
            return
        out.print(f"[bold]{compiled.name}[/]  plan {doc['plan_hash']}")
        table = Table(box=None, header_style="bold")
        for col in ("task", "kind", "needs", "critical"):
            table.add_column(col)
        on_path = set(path)
        for tid in order[:200]:
            spec = compiled.tasks[tid]
            if spec.switch is not None:
                kind = "switch"
            elif spec.fsm is not None:
                kind = f"fsm ({len(spec.fsm.states)} states)"
            elif spec.tool:
                kind = f"tool:{spec.tool}"
            elif spec.agents is not None:
                kind = f"agents:{','.join(spec.agents)}"
            else:
                kind = f"agent:{spec.agent or spec.capability}"
            if spec.foreach is not None:
                kind += " (foreach)"
            if spec.aggregate is not None:
                kind += f" ({spec.aggregate.method})"
            if spec.compensate is not None:  # a saga may undo it
                kind += " +compensate"
            table.add_row(tid, kind, ", ".join(sorted(spec.needs)), "*" if tid in on_path else "")
        out.print(table)
        if len(order) > 200:
            out.print(f"[dim]... and {len(order) - 200} more tasks[/]")
        out.print(f"critical path ({len(path)}): {' -> '.join(path[:20])}")

    run_async(go, as_json=as_json)


def _plan_goal(
    ctx: typer.Context,
    goal: str,
    agents: Path | None,
    *,
    max_tasks: int,
    planner: str | None,
    as_json: bool,
    cache: list[str] | None = None,
) -> None:
    """``nexus plan --goal``: the planner proposes, nothing it proposes runs.

    The planning task runs in a run of its own with ``review`` on; once the
    plan awaits review this process stops driving it, shows the proposed
    tasks and their estimate, and leaves the run for ``nexus approve RUN
    plan`` (which runs it) or ``nexus reject``.
    """
    from nexus.cli.runlog import RunLog
    from nexus.planning.goal import PLAN_TASK

    async def go() -> tuple[RunState, Plan]:
        project = project_of(ctx)
        compiled, source = _goal_plan(
            project, goal, agents, review=True, max_tasks=max_tasks, planner=planner
        )
        compiled = _with_cache(compiled, cache)
        proposed = asyncio.Event()
        seen: list[RunState] = []

        def watch(events: Sequence[Event], state: RunState) -> None:
            seen[:] = [state]
            if state.status.terminal or any(
                e.type is EventType.APPROVAL_REQUESTED and e.data.get("task") == PLAN_TASK
                for e in events
            ):
                proposed.set()

        async with (
            project.open_store() as store,
            project.engine(store, plan=compiled, base_dir=Path.cwd()) as engine,
        ):
            log = RunLog(project.home)
            with log:
                driving = asyncio.create_task(
                    engine.start(compiled, source=source, observers=[watch, log])
                )
                waiting = asyncio.create_task(proposed.wait())
                await asyncio.wait({driving, waiting}, return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
                if not driving.done():
                    driving.cancel()  # the run stays, awaiting review; its lease is released
                with contextlib.suppress(asyncio.CancelledError):
                    await driving
        return seen[0], compiled

    state, compiled = run_async(go, as_json=as_json)
    _show_proposal(state, compiled, as_json)


def _show_proposal(state: RunState, compiled: Plan, as_json: bool) -> None:
    from nexus.engine.facade import preflight
    from nexus.planning.goal import PLAN_TASK

    task = state.tasks[PLAN_TASK]
    added = [state.tasks[tid].spec for tid in task.added]
    if not added:
        error = task.error or {}
        message = str(error.get("message", f"the planner ended {task.status}"))
        if as_json:
            emit_json({"run_id": state.run_id, "status": str(task.status), "error": error})
        else:
            err.print(f"[bold red]no plan[/] (run {state.run_id}): {escape(message)}")
        raise typer.Exit(EXIT_FAILED)
    proposal = replace(compiled, tasks={spec.id: spec for spec in added})
    result, _ = preflight(proposal)
    summary = task.last_output.get("data", {}).get("summary") if task.last_output else None
    if as_json:
        emit_json(
            {
                "run_id": state.run_id,
                "summary": summary,
                "tasks": [spec.to_dict() for spec in added],
                "estimate": result.to_dict(),
                "approve": f"nexus approve {state.run_id} {PLAN_TASK}",
            }
        )
        return
    out.print(f"[bold]plan proposed[/] for run {state.run_id}: {escape(str(summary or ''))}")
    table = Table(box=None, header_style="bold")
    for col in ("task", "kind", "needs", "prompt / arguments"):
        table.add_column(col)
    for spec in added[:200]:
        kind = f"tool:{spec.tool}" if spec.tool else f"agent:{spec.agent or spec.capability}"
        body = spec.prompt if spec.tool is None else json.dumps(spec.args)
        text = (body or "").replace("\n", " ")
        table.add_row(spec.id, kind, ", ".join(sorted(spec.needs)), escape(text[:80]))
    out.print(table)
    out.print(
        f"estimate ${result.usd:.4f}, {result.tokens:,} tokens, {result.calls} model calls, "
        f"{result.tool_calls} tool calls"
    )
    out.print(
        f"nothing has run: [bold]nexus approve {state.run_id} {PLAN_TASK}[/] runs it, "
        f"nexus reject {state.run_id} {PLAN_TASK} --reason ... drops it"
    )


def _show_estimate(project: Project, compiled: Plan, as_json: bool) -> None:
    from nexus.engine.facade import preflight

    config = project.config
    run_budget = Limits.from_dict(config.run_budget, "budgets.run") if config.run_budget else None
    tenant: dict[Scope, Limits] = {}
    if config.tenant_budget:
        tenant[Scope("tenant", config.tenant)] = Limits.from_dict(
            config.tenant_budget, "budgets.tenant"
        )
    result, over = preflight(
        compiled, pricing=config.pricing(), run_budget=run_budget, extra=tenant
    )
    problems = [str(e) for e in over]
    if as_json:
        emit_json({**result.to_dict(), "over_budget": problems})
    else:
        out.print(
            f"[bold]{compiled.name}[/]  estimate ${result.usd:.4f}, "
            f"{result.tokens:,} tokens, {result.calls} model calls, "
            f"{result.tool_calls} tool calls"
        )
        table = Table(box=None, header_style="bold")
        for col in ("task", "agent", "model", "calls", "tokens", "usd", "notes"):
            table.add_column(col)
        for tid, share in list(result.per_task.items())[:200]:
            usd = "?" if share.usd is None else f"{share.usd:.4f}"
            tokens = share.prompt_tokens + share.completion_tokens
            table.add_row(
                tid,
                share.agent or "",
                share.model or "",
                str(share.calls),
                f"{tokens:,}",
                usd,
                "; ".join(share.notes),
            )
        out.print(table)
        if result.unpriced:
            out.print(f"[yellow]unpriced models:[/] {', '.join(result.unpriced)}")
        out.print(f"[dim]method: {escape(result.method)}[/]")
        for problem in problems:
            err.print(f"[bold red]over budget:[/] {escape(problem)}")
    if over:
        # what `nexus run` would be refused for: the same exit code
        raise typer.Exit(EXIT_REFUSED)


def run(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Argument(help="Workflow file (YAML); or use --goal.", show_default=False),
    ] = None,
    inputs: Annotated[list[str] | None, typer.Option("-i", "--input", help="key=value")] = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    record: Annotated[
        Path | None,
        typer.Option("--record", help="Save every model exchange to this cassette (YAML)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Start even if the estimate exceeds a budget.")
    ] = False,
    stream: Annotated[
        bool, typer.Option("--stream", help="Show model output as it is generated.")
    ] = False,
    goal: GoalOpt = None,
    agents: AgentsOpt = None,
    review: ReviewOpt = False,
    max_tasks: MaxTasksOpt = 50,
    planner: PlannerOpt = None,
    cache: CacheOpt = None,
) -> None:
    """Run a workflow file to its end, with live progress."""
    from nexus.cli.runlog import RunLog

    driven = _Resumable()
    shown = not (as_json or quiet)

    async def go() -> RunResult:
        project = project_of(ctx)
        _one_source(file, goal)
        if goal is not None:
            compiled, source = _goal_plan(
                project, goal, agents, review=review, max_tasks=max_tasks, planner=planner
            )
            base_dir = Path.cwd()
        else:
            assert file is not None
            compiled = _load_with(project, file, inputs)
            base_dir = file.resolve().parent
            source = str(file.resolve())
        compiled = _with_cache(compiled, cache)
        async with (
            project.open_store() as store,
            project.engine(store, plan=compiled, base_dir=base_dir, record=record) as engine,
        ):
            with _view(shown=shown, stream=stream) as view, RunLog(project.home) as log:
                return await engine.start(
                    compiled,
                    source=source,
                    observers=[driven, log, view] if shown else [driven, log],
                    force=force,
                    on_delta=view.delta if stream and not as_json else None,
                )

    result = run_async(go, as_json=as_json, interrupted=driven.hint)
    _report(result, as_json)
    _result_exit(result)


def resume(
    ctx: typer.Context,
    run_id: RunArg,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    budget: Annotated[
        list[str] | None,
        typer.Option(
            "--budget",
            help="Raise a limit first: usd=5, tokens=1e5, agent.NAME.usd=2, task.ID.tool_calls=9.",
        ),
    ] = None,
    inputs: SecretsOpt = None,
    retry_interrupted: Annotated[
        bool,
        typer.Option(
            "--retry-interrupted",
            help="Retry tasks whose attempts were interrupted 3 times in a row (recorded).",
        ),
    ] = False,
) -> None:
    """Finish a run whose process stopped, or that paused for budget.

    Completed tasks are not run again. Secret inputs are not in the log: give
    them again with -i (or through the environment variable the workflow names).
    A task whose process died during 3 attempts in a row holds the run until
    you resume it with --retry-interrupted.
    """
    from nexus.app import MISSION_WORKFLOW, recorded_plan
    from nexus.cli.runlog import RunLog

    raised = _parse_budget(budget)
    secrets = _secret_texts(inputs)
    run_id = resolve_run_arg(run_id, as_json=as_json)
    import_from_here()  # a mission's function agents load as they did at the start

    mission: list[tuple[Project, list[Event]]] = []

    async def go() -> RunResult:
        project = project_of(ctx)
        async with project.open_store() as store:
            plan = await recorded_plan(store, run_id)
            async with project.engine(store, plan=plan) as engine:
                options: dict[str, Any] = {
                    "budget": raised,
                    "secrets": secrets,
                    "retry_interrupted": retry_interrupted,
                }
                shown = not (as_json or quiet)
                with _view(shown=shown, stream=False) as view, RunLog(project.home) as log:
                    result = await engine.resume(
                        run_id, observers=[log, view] if shown else [log], **options
                    )
            if plan.name == MISSION_WORKFLOW:
                mission.append((project, await store.load(run_id)))
        return result

    result = run_async(go, as_json=as_json, interrupted=_Resumable(run_id).hint)
    if mission:  # a code mission: its summary, evidence and worktrees, as `nexus mission` ends
        from nexus.cli.commands_mission import finish_and_report

        finish_and_report(*mission[0], as_json=as_json)
        return
    _report(result, as_json)
    _result_exit(result)


def cancel(
    run_id: RunArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "",
    by: Annotated[str | None, typer.Option("--by", help="Who asks (default: $USER).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a run (its live process stops it, or it is cancelled here).

    Who asked (--by, default the user this command runs as) and why (--reason,
    default "cancelled by user") are recorded in run.cancel_requested.
    """
    from nexus.engine.control import os_user
    from nexus.engine.facade import Engine

    run_id = resolve_run_arg(run_id, as_json=as_json)
    who = by or os_user()
    why = reason.strip() or "cancelled by user"  # the engine's own default

    async def go() -> str:
        async with open_store() as store:
            return await Engine(store).cancel(run_id, why, by=who)

    outcome = run_async(go, as_json=as_json)
    if as_json:
        emit_json({"run_id": run_id, "outcome": outcome, "by": who, "reason": why})
    else:
        words = {
            "requested": "cancel requested; the process running it will stop it",
            "cancelled": "cancelled",
            "finished": "had already finished; nothing to cancel",
        }
        out.print(f"run {run_id}: {words[outcome]}")


def _answer(
    ctx: typer.Context,
    run_id: str,
    task: str,
    granted: bool,
    by: str | None,
    reason: str,
    as_json: bool,
    inputs: list[str] | None = None,
) -> None:
    from nexus.app import MISSION_WORKFLOW, recorded_plan
    from nexus.cli.runlog import RunLog

    who = by or getpass.getuser()
    secrets = _secret_texts(inputs)
    run_id = resolve_run_arg(run_id, as_json=as_json)
    import_from_here()

    mission: list[tuple[Project, list[Event]]] = []

    async def go() -> tuple[str, RunResult | None]:
        project = project_of(ctx)
        async with project.open_store() as store:
            plan = await recorded_plan(store, run_id)
            async with project.engine(store, plan=plan) as engine:
                with _view(shown=not as_json, stream=False) as view, RunLog(project.home) as log:
                    answered = await engine.answer_approval(
                        run_id,
                        task,
                        granted=granted,
                        by=who,
                        reason=reason,
                        observers=[log] if as_json else [log, view],
                        secrets=secrets,
                    )
            if answered[1] is not None and plan.name == MISSION_WORKFLOW:
                mission.append((project, await store.load(run_id)))
        return answered

    outcome, result = run_async(go, as_json=as_json, interrupted=_Resumable(run_id).hint)
    verb = "approved" if granted else "rejected"
    if result is None:
        if as_json:
            emit_json({"run_id": run_id, "task": task, "outcome": outcome, "answer": verb})
        else:
            out.print(f"{verb} {task}; the process running {run_id} continues it")
        return
    if mission:  # a code mission driven to its end here: closed as `nexus mission` closes it
        from nexus.cli.commands_mission import finish_and_report

        finish_and_report(*mission[0], as_json=as_json)
        return
    _report(result, as_json)
    _result_exit(result)


TaskArg = Annotated[str, typer.Argument(help="Task id.", show_default=False)]
ByOpt = Annotated[str | None, typer.Option("--by", help="Who answers (default: $USER).")]


def approve(
    ctx: typer.Context,
    run_id: RunArg,
    task: TaskArg,
    by: ByOpt = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "",
    as_json: JsonOpt = False,
    inputs: SecretsOpt = None,
) -> None:
    """Approve a task that awaits approval; the run goes on."""
    _answer(ctx, run_id, task, True, by, reason, as_json, inputs)


def reject(
    ctx: typer.Context,
    run_id: RunArg,
    task: TaskArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")],
    by: ByOpt = None,
    as_json: JsonOpt = False,
    inputs: SecretsOpt = None,
) -> None:
    """Reject a task that awaits approval; it fails with policy_denied."""
    _answer(ctx, run_id, task, False, by, reason, as_json, inputs)


def replay(
    ctx: typer.Context, run_id: RunArg, as_json: JsonOpt = False, inputs: SecretsOpt = None
) -> None:
    """Re-execute a run from its recorded effects and compare the event chains.

    A secret input given with -i (or its environment variable) is checked
    against the run's record; one not given replays as "[redacted]". Cassette
    paths are found next to the run's workflow file; Python function agents
    are imported from the module:function the run recorded, as `python -m`
    would, from the working directory or the installed packages. One that
    cannot be loaded stops the replay before it starts (exit 2).
    """
    from nexus.app import recorded_plan, recorded_workflow_dir

    secrets = _secret_texts(inputs)
    run_id = resolve_run_arg(run_id, as_json=as_json)
    import_from_here()

    async def go() -> Any:
        # the providers, residency and tools of nexus.toml, as the run had them;
        # no MCP server is connected: a replay executes nothing
        project = project_of(ctx)
        async with project.open_store() as store:
            base_dir = await recorded_workflow_dir(store, run_id)
            # a code mission's plan grows with tasks that name its tools: they are
            # checked again, never called
            tools = project.tools_for(await recorded_plan(store, run_id))
            async with project.engine(store, base_dir=base_dir, tools=tools) as engine:
                return await engine.replay(run_id, secrets=secrets)

    report = run_async(go, as_json=as_json)
    if as_json:
        emit_json(report.to_dict())
    elif report.identical:
        out.print(
            f"[green]identical[/]  {report.replayed_events} events, "
            f"{report.effects_served} effects served from the record, "
            f"{report.tools_executed} tools executed"
        )
    else:
        div = report.first_divergence or {}
        err.print(f"[red]diverged[/] at seq {div.get('seq')}: {div.get('reason', 'events differ')}")
    if not report.identical:
        raise typer.Exit(EXIT_FAILED)


__all__ = [
    "EXIT_USER",
    "approve",
    "cancel",
    "plan",
    "reject",
    "replay",
    "resume",
    "run",
    "validate",
]
