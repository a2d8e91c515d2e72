"""``nexus spec SPEC.md``: what a design document asks for, as Nexus reads it.

Prints the SpecMap the deterministic reader makes of a Markdown document
(:mod:`nexus.missions.spec`): requirements by section with their ids and
levels, how many acceptance criteria each has, interfaces, constraints and
the ambiguities a human should settle. ``--json`` prints the SpecMap itself.
The reader is imported when the command runs, not with the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from nexus.cli.output import emit_json, exit_code_for, fail, out
from nexus.domain.errors import NexusError

if TYPE_CHECKING:
    from nexus.missions.spec import SpecMap

__all__ = ["spec"]

SpecArg = Annotated[
    Path, typer.Argument(help="The design document (Markdown).", show_default=False)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the SpecMap as JSON.")]

#: Longest requirement text shown on one line of the summary.
_WIDTH = 110


def spec(file: SpecArg, as_json: JsonOpt = False) -> None:
    """Read a design spec: requirements with stable ids, criteria, interfaces, ambiguities.

    Requirements are list items or paragraphs with MUST/SHOULD/MAY, items with
    an explicit id (R1:, REQ-3) or items under a "Requirements" heading; see
    docs/missions.md. Ambiguities are listed, not guessed; they do not fail
    the command.
    """
    from nexus.missions.spec import read_spec

    try:
        spec_map = read_spec(file)
    except NexusError as exc:
        fail(exc.message, exit_code_for(exc), as_json=as_json)
    if as_json:
        emit_json(spec_map.model_dump(mode="json"))
        return
    _summary(spec_map)


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
