"""``nexus spec SPEC.md``: what a design document asks for, as Nexus reads it.

Prints the SpecMap the deterministic reader makes of a Markdown document
(:mod:`nexus.missions.spec`): requirements by section with their ids and
levels, how many acceptance criteria each has, interfaces, constraints and
the ambiguities a human should settle. ``--json`` prints the SpecMap itself.
The reader is imported when the command runs, not with the CLI.

``--llm MODEL`` has a model read the document instead (a free-form one the
parser finds nothing in): a one-task run of
:func:`~nexus.missions.spec.extraction_workflow` through the project's engine
(:class:`nexus.app.Workflow`), so the model call is recorded, replayable
(``nexus replay``), costed (``nexus cost``) and held to the project's
budgets, providers and residency like any run's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from nexus.cli.output import EXIT_FAILED, emit_json, err, exit_code_for, fail, out, run_async
from nexus.cli.wiring import project_of
from nexus.domain.errors import NexusError, WorkflowError

if TYPE_CHECKING:
    from nexus.engine.facade import RunResult
    from nexus.missions.spec import SpecMap

__all__ = ["spec"]

SpecArg = Annotated[
    Path, typer.Argument(help="The design document (Markdown).", show_default=False)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the SpecMap as JSON.")]
LlmOpt = Annotated[
    str | None,
    typer.Option(
        "--llm",
        metavar="MODEL",
        help="Have this model (provider:model) read the document, as a recorded run.",
        show_default=False,
    ),
]

#: Longest requirement text shown on one line of the summary.
_WIDTH = 110


def spec(ctx: typer.Context, file: SpecArg, as_json: JsonOpt = False, llm: LlmOpt = None) -> None:
    """Read a design spec: requirements with stable ids, criteria, interfaces, ambiguities.

    Requirements are list items or paragraphs with MUST/SHOULD/MAY, items with
    an explicit id (R1:, REQ-3) or items under a "Requirements" heading; see
    docs/missions.md. A free-form document: --llm MODEL has a model read it,
    in a run that is recorded and costed. Ambiguities are listed, not
    guessed; they do not fail the command.
    """
    from nexus.missions.spec import SpecError, found_no_requirements, read_spec

    if llm is not None:
        spec_map = run_async(lambda: _extract(ctx, file, llm), as_json=as_json)
    else:
        try:
            spec_map = read_spec(file)
        except SpecError as exc:
            hint = ""
            if found_no_requirements(exc):
                hint = "; a free-form document can be read by a model: --llm provider:model"
            fail(exc.message + hint, exit_code_for(exc), as_json=as_json)
        except NexusError as exc:
            fail(exc.message, exit_code_for(exc), as_json=as_json)
    if as_json:
        emit_json(spec_map.model_dump(mode="json"))
        return
    _summary(spec_map)


async def _extract(ctx: typer.Context, file: Path, model: str) -> SpecMap:
    """The SpecMap ``model`` drafts of ``file``, in a one-task run of this project."""
    from nexus.app import Workflow
    from nexus.missions.spec import (
        EXTRACTION_TASK,
        extraction_workflow,
        read_spec_text,
        spec_from_draft,
    )

    text = read_spec_text(file)
    source = str(file)
    flow = extraction_workflow(text, source=source, model=model, builder=Workflow)
    try:
        result = await flow.run(project=project_of(ctx))
    except WorkflowError as exc:  # the model named is not one this project serves
        details = "; ".join(problem.detail for problem in exc.problems)
        fail(f"--llm '{model}': {details}", exit_code_for(exc))
    task = result.task(EXTRACTION_TASK)
    if not task.succeeded:
        why = task.error.message if task.error is not None else f"the run is {result.status}"
        fail(
            f"{source}: model {model} could not read it into a SpecMap: {why} "
            f"(run {result.run_id}; {_inspect(result.run_id)} shows the exchange)",
            EXIT_FAILED,
        )
    _note_run(result, model)
    return spec_from_draft(task.output["data"], text=text, source=source, model=model)


def _note_run(result: RunResult, model: str) -> None:
    """On stderr: which run read the document, and what it cost."""
    cost = result.cost
    spent = ""
    if cost is not None:
        calls = _count(cost.calls, "model call")
        spent = f": {calls}, {cost.tokens:,} tokens, ${cost.total}"
    err.print(
        f"[dim]read by {escape(model)} in run {result.run_id}{spent} ({_inspect(result.run_id)})[/]"
    )


def _inspect(run_id: str) -> str:
    from nexus.missions.spec import EXTRACTION_TASK

    return f"nexus inspect {run_id} --task {EXTRACTION_TASK} --conversation"


def _short(text: str) -> str:
    return text if len(text) <= _WIDTH else text[: _WIDTH - 1] + "\u2026"


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _summary(spec_map: SpecMap) -> None:
    reqs = spec_map.requirements
    out.print(f"[bold]{escape(spec_map.title)}[/]  ({escape(spec_map.source)})")
    out.print(
        ", ".join(
            (
                _count(len(reqs), "requirement"),
                _count(sum(len(r.criteria) for r in reqs), "criterion", "criteria"),
                _count(len(spec_map.interfaces), "interface"),
                _count(len(spec_map.constraints), "constraint"),
                _count(len(spec_map.ambiguities), "ambiguity", "ambiguities"),
            )
        )
    )
    width = max(len(r.id) for r in reqs)
    section: tuple[str, ...] | None = None
    out.print("\n[bold]Requirements[/]")
    for req in reqs:
        if req.section != section:
            section = req.section
            out.print(f"  [dim]{escape(' > '.join(section) or '(no heading)')}[/]")
        level = req.level or "-"
        criteria = f"  [dim]({_count(len(req.criteria), 'criterion', 'criteria')})[/]"
        out.print(
            f"    {req.id:<{width}}  {level:<10}  {escape(_short(req.text))}{criteria}"
            f"  [dim]line {req.lines[0]}[/]"
        )
    if spec_map.interfaces:
        out.print("\n[bold]Interfaces[/]")
        for iface in spec_map.interfaces:
            names = ", ".join(iface.symbols) or "(no declared names)"
            owner = f" -> {iface.requirement}" if iface.requirement else ""
            out.print(
                f"  {iface.language or 'text':<10}  {escape(names)}{owner}"
                f"  [dim]lines {iface.lines[0]}-{iface.lines[1]}[/]"
            )
    if spec_map.constraints:
        out.print("\n[bold]Constraints[/]")
        for con in spec_map.constraints:
            out.print(
                f"  {con.id}  {con.kind:<13}  {con.level or '-':<10}  {escape(_short(con.text))}"
                f"  [dim]line {con.lines[0]}[/]"
            )
    if spec_map.ambiguities:
        out.print("\n[bold]Ambiguities[/] (listed, not guessed)")
        for note in spec_map.ambiguities:
            where = f"line {note.line}" if note.line is not None else ""
            out.print(f"  [yellow]{note.kind:<15}[/]  {escape(note.message)}  [dim]{where}[/]")
