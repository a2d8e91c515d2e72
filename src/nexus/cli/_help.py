"""The ``--help`` of ``nexus`` and its commands, drawn with Rich's panels and tables alone.

Typer draws help with ``typer.rich_utils``, which imports ``rich.markdown``
(with ``markdown_it`` and, through ``rich.syntax``, Pygments) and
``rich.traceback`` (with ``rich.pretty`` and ``attrs``) whatever the help
holds: about a third of the CPU time of ``nexus --help`` (docs/benchmarks.md,
CLI start-up). Nexus's help text is Rich markup, never Markdown, and a help
page shows no traceback, so :func:`render_help` draws the same page -- the
usage line, the command's help, the ``Arguments`` and ``Options`` panels, the
``Commands`` panel of a group, the examples -- from ``rich.console``,
``rich.panel`` and ``rich.table``, reading the commands and parameters through
Click's public attributes. The ``nexus`` group and every command that
:mod:`nexus.cli.registry` loads draw their help with it (this module is
imported only then). Errors (``No such option``) are still drawn by Typer.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import typer.core
from rich.console import Console, Group, RenderableType
from rich.highlighter import RegexHighlighter
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.theme import Theme

__all__ = ["render_help"]

_THEME = Theme(
    {
        "option": "bold cyan",
        "switch": "bold green",
        "negative_option": "bold magenta",
        "negative_switch": "bold red",
        "metavar": "bold yellow",
        "metavar_sep": "dim",
        "usage": "yellow",
    }
)


class _Options(RegexHighlighter):
    """Options (``--json``) and switches (``-v``) in help text, and the usage label."""

    highlights = [
        r"(^|\W)(?P<switch>\-\w+)(?![a-zA-Z0-9])",
        r"(^|\W)(?P<option>\-\-[\w\-]+)(?![a-zA-Z0-9])",
        r"(?P<usage>Usage: )",
    ]


class _Negatives(RegexHighlighter):
    """The ``--no-x`` side of a boolean flag."""

    highlights = [
        r"(^|\W)(?P<negative_switch>\-\w+)(?![a-zA-Z0-9])",
        r"(^|\W)(?P<negative_option>\-\-[\w\-]+)(?![a-zA-Z0-9])",
    ]


class _Metavars(RegexHighlighter):
    """The brackets and bars of ``[a|b]`` and ``[1<=x<=10]``, dimmed."""

    highlights = [
        r"^(?P<metavar_sep>\[)",
        r"(?P<metavar_sep>\|)",
        r"(?P<metavar_sep>\])(\.\.\.)?$",
    ]


_OPTIONS, _NEGATIVES, _METAVARS = _Options(), _Negatives(), _Metavars()


def _console() -> Console:
    """A console on standard output, as Typer's: ``TERMINAL_WIDTH`` caps its width."""
    width = os.environ.get("TERMINAL_WIDTH", "")
    return Console(
        theme=_THEME,
        highlighter=_OPTIONS,
        width=int(width) if width.isdigit() else None,
    )


def _markup(text: str, style: str = "") -> Text:
    """Help text as written (Rich markup), its options highlighted."""
    return _OPTIONS(Text.from_markup(inspect.cleandoc(text), style=style))


def _description(cmd: Any) -> RenderableType:
    """A command's help: the first paragraph in full, the rest dimmed (``\\f`` ends it)."""
    text = inspect.cleandoc(cmd.help or "").partition("\f")[0]
    first, _, rest = text.partition("\n\n")
    if not first.startswith("\b"):
        first = first.replace("\n", " ")
    parts: list[RenderableType] = []
    if cmd.deprecated:
        parts.append(Text("(deprecated) ", style="red"))
    parts.append(_markup(first.strip()))
    if rest:  # as written, but for the ``\b`` that keeps a paragraph's lines
        kept = "\n\n".join(p.removeprefix("\b\n") for p in rest.split("\n\n"))
        parts.extend([Text(""), _markup(kept, style="dim")])
    return Group(*parts)


def _param_help(text: str) -> Text:
    """A parameter's help: paragraphs on lines of their own, each one line of text
    (a paragraph opening with ``\\b`` keeps its lines)."""
    paragraphs = [
        p.strip("\b\n") if p.startswith("\b") else p.replace("\n", " ").strip()
        for p in text.split("\n\n")
    ]
    return _markup("\n".join(paragraphs).strip()) if text else Text("")


def _extras(param: Any, ctx: Any) -> str:
    """What Click adds after a parameter's help: ``[default: 50; 1<=x<=10000; required]``.

    Taken from Click's own help record, whose text is the help, two spaces and
    this bracket; shown apart from the help, which is Rich markup and this is not.
    """
    record = param.get_help_record(ctx)
    if record is None:
        return ""
    shown: str = record[1]
    own = param.help or ""
    if own and shown.startswith(own):
        shown = shown[len(own) :]
    return shown.strip()


def _row(param: Any, ctx: Any) -> tuple[str, list[Text]]:
    """One parameter's row: its names, metavar and help; and its required mark."""
    argument = isinstance(param, typer.core.TyperArgument)
    longs = [o for o in param.opts if o.startswith("--")]
    shorts = [o for o in param.opts if not o.startswith("--")]
    negatives = [o for o in getattr(param, "secondary_opts", ())]
    if argument:
        longs, shorts = [param.metavar or (param.name or "").upper()], []
        metavar = ""
    elif param.metavar is not None:
        metavar = param.metavar
    elif getattr(param, "is_flag", False) or getattr(param, "count", False):
        metavar = ""  # a flag takes no value
    else:  # nexus gives every parameter one (registry.readable); Typer's label otherwise
        metavar = getattr(param, "display_type_rich", lambda _ctx: "")(ctx) or ""
    help_text = _param_help(param.help or "")
    extras = _extras(param, ctx)
    if extras:
        help_text.append((" " if param.help else "") + extras, style="dim")
    cells = [
        _OPTIONS(Text(", ".join(longs))),
        _OPTIONS(Text(", ".join(shorts))),
        _NEGATIVES(Text(", ".join(negatives))),
        _METAVARS(Text(metavar or "", style="metavar")),
        help_text,
    ]
    return ("*" if param.required else ""), cells


def _params_panel(title: str, rows: list[tuple[str, list[Text]]]) -> Panel | None:
    """A panel of parameters; a column no row fills is left out, and the required
    mark's column when nothing is required."""
    if not rows:
        return None
    marked = any(mark for mark, _ in rows)
    width = len(rows[0][1])
    used = [
        any(cells[i].plain for _, cells in rows if isinstance(cells[i], Text)) for i in range(width)
    ]
    used[-1] = True
    table = Table(show_header=False, box=None, expand=True, pad_edge=False, padding=(0, 1))
    if marked:
        table.add_column(no_wrap=True, style="red")
    for index in range(width):
        if used[index]:
            last = index == width - 1
            table.add_column(no_wrap=not last, ratio=10 if last else None)
    for mark, cells in rows:
        kept = [cell for cell, keep in zip(cells, used, strict=True) if keep]
        table.add_row(*([mark] if marked else []), *kept)
    return Panel(table, title=title, title_align="left", border_style="dim")


def _commands_panel(group: Any, ctx: Any) -> Panel | None:
    table = Table(show_header=False, box=None, expand=True, pad_edge=False, padding=(0, 1))
    commands = [group.get_command(ctx, name) for name in group.list_commands(ctx)]
    shown = [cmd for cmd in commands if cmd is not None and not cmd.hidden]
    if not shown:
        return None
    table.add_column(style="bold cyan", no_wrap=True, width=max(len(c.name or "") for c in shown))
    table.add_column(ratio=10)
    for cmd in shown:
        summary = inspect.cleandoc(cmd.short_help or cmd.help or "").split("\n\n")[0]
        name = Text(cmd.name or "", style="dim" if cmd.deprecated else "")
        line = _markup(summary.replace("\n", " ").strip())
        if cmd.deprecated:
            line = Text.assemble(("(deprecated) ", "red"), line)
        table.add_row(name, line)
    return Panel(table, title="Commands", title_align="left", border_style="dim")


def render_help(cmd: Any, ctx: Any) -> None:
    """Print the help of ``cmd`` (a Click command or group) in context ``ctx``."""
    console = _console()
    console.print(Padding(_OPTIONS(Text(cmd.get_usage(ctx))), 1), style="bold")
    if cmd.help:
        console.print(Padding(_description(cmd), (0, 1, 1, 1)))
    arguments, options = [], []
    for param in cmd.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        if isinstance(param, typer.core.TyperArgument):
            arguments.append(_row(param, ctx))
        else:
            options.append(_row(param, ctx))
    panels = [
        _params_panel("Arguments", arguments),
        _params_panel("Options", options),
        _commands_panel(cmd, ctx) if hasattr(cmd, "list_commands") else None,
    ]
    for panel in panels:
        if panel is not None:
            console.print(panel)
    if cmd.epilog:
        console.print(Padding(Text.from_markup(cmd.epilog), 1))
