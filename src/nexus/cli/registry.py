"""How the table of ``nexus`` commands becomes a Click group, loading each module on use.

:mod:`nexus.cli.app` lists every command as an :class:`Entry`: its name, where
it lives (``"module:attribute"``, a command function or a Typer sub-app), the
one line ``nexus --help`` shows, and an example. :class:`LazyGroup` lists the
commands from that table alone and imports a command's module only when the
command runs (or its own ``--help`` is asked for), so ``nexus --help`` and
``nexus runs`` do not pay for the engine, the SDKs or SQLAlchemy.

Each command is finished the same way when it is loaded (:func:`finish`):

* its ``--help`` ends with the example of its table entry;
* metavars read as words: a flag shows none, a path option ``PATH``, a number
  ``INTEGER``, an argument its own name (``FILE``, ``RUN``) -- Typer would show
  ``<bool>``, ``<path>``, ``{file}``;
* it accepts ``--config FILE``, ``--log-level LEVEL`` and ``-v``/``--verbose``
  after its name as well (``nexus run flow.yaml --config x.toml -v`` means
  ``nexus --config x.toml -v run flow.yaml``).

A command taking a RUN resolves it itself, after checking its options
(:func:`nexus.cli.runref.resolve_run_arg`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
import typer.core
import typer.main

from nexus.cli.wiring import keep_config, keep_log_level

__all__ = ["Entry", "LazyGroup", "example", "finish", "readable"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One command of ``nexus``, as the table in :mod:`nexus.cli.app` lists it.

    Attributes:
        name: what the user types (``runs``).
        target: ``"module:attribute"``: a command function, or a Typer sub-app.
        summary: the line ``nexus --help`` shows; the first line of the
            command's docstring (a test holds them equal).
        example: command lines shown under "Example:" in the command's help.
        subcommands: for a sub-app, the example lines of each of its commands.
    """

    name: str
    target: str
    summary: str
    example: tuple[str, ...]
    subcommands: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def load(self) -> Any:
        """The command function or Typer sub-app (imports its module)."""
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


def example(*lines: str) -> str:
    """The "Example:" section that ends a command's help, one command line a line."""
    # Rich markup is on in help text: a literal "[" must not open a tag
    shown = "\n".join("  " + line.replace("[", r"\[") for line in lines)
    return f"Example{'s' if len(lines) > 1 else ''}:\n{shown}"


# -- coercion that loads pydantic only when a value needs it --------------------------------

_Deferred: Any = None
try:  # Typer 0.29's coercion; see _deferred
    from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
except ImportError:  # pragma: no cover - an older Typer coerces without pydantic
    pass
else:

    @dataclass(frozen=True)
    class _Deferred(RuntimeParam):  # type: ignore[no-redef]
        """Typer's coercion of one parameter, built when a value needs converting.

        A value left out (None) never reaches this (``RuntimeParam.coerce``
        returns it as it is). A string for a ``str`` parameter is what Typer's
        coercion would return; so is an ``int`` or ``float`` of the parameter's
        own type, which only a default written in the code can be (the command
        line gives text, converted and bounds-checked by Typer's coercion).
        """

        descriptor: TypeDescriptor

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            own_type = type(value) is self.annotation and self.annotation in (str, int, float)
            if own_type and self.parameter_info.parser is None:
                return value
            typer_own = build_runtime_param(self.descriptor)
            param._runtime_param = typer_own
            return typer_own._coerce_value(value, param=param, ctx=ctx)


# -- metavars that read as words ------------------------------------------------------------

_WORDS: dict[object, str] = {int: "INTEGER", float: "NUMBER", str: "TEXT", Path: "PATH"}


def _word(param: Any) -> str:
    """The metavar of an option that takes a value: PATH, INTEGER, TEXT, [a|b]..."""
    desc = getattr(param, "type_descriptor", None)
    if desc is None:  # a plain Click parameter
        return str(getattr(getattr(param, "type", None), "name", "text")).upper()
    if desc.is_choice and desc.choices:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in desc.choices) + "]"
    if desc.is_path:
        return "PATH"
    annotation = desc.annotation
    if desc.is_list and get_args(annotation):
        annotation = get_args(annotation)[0]
    return _WORDS.get(annotation, "TEXT")


class _Argument(typer.core.TyperArgument):
    """An argument shown by its name alone (``FILE``, ``[RUN]``): the name says what it is."""

    def display_type_rich(self, ctx: typer.Context) -> str | None:  # type: ignore[override]
        return None

    def _usage_display_name(self) -> str:
        name = self.metavar or (self.name or "").upper()
        return name if self.required else f"[{name}]"


def _deferred(param: Any) -> None:
    """Let ``param`` skip Typer's pydantic coercion for a value that needs none.

    Typer 0.29 coerces a parameter's value through a pydantic ``TypeAdapter``
    it builds on the parameter's first use, even for an option left out:
    ``nexus runs`` imported pydantic and its plugin loader for its unset
    ``--config`` (half of the command's CPU time: docs/benchmarks.md, CLI
    start-up). :class:`_Deferred` answers
    what needs no conversion and builds Typer's own coercion for the rest.
    Older Typers coerce without pydantic: nothing to do.
    """
    if _Deferred is None or getattr(param, "_runtime_param", False) is not None:
        return
    desc = getattr(param, "type_descriptor", None)
    if desc is None:
        return
    param._runtime_param = _Deferred(
        parameter_info=desc.parameter_info, annotation=desc.annotation, descriptor=desc
    )


def readable(param: Any) -> None:
    """Give ``param`` a metavar that reads as a word (kept if the command set one)."""
    if isinstance(param, typer.core.TyperArgument):
        if param.metavar is None:
            param.metavar = "RUN" if param.name == "run_id" else (param.name or "").upper()
        if type(param) is typer.core.TyperArgument:
            param.__class__ = _Argument  # same fields; shows no "<path>" beside the name
        return
    if param.metavar is not None:
        return
    flag = getattr(param, "is_flag", False) or getattr(param, "count", False)
    param.metavar = "" if flag else _word(param)


# -- --config after the command's name ------------------------------------------------------

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="PATH",
        help="The project file (default: $NEXUS_CONFIG, else the nearest nexus.toml).",
        show_default=False,
    ),
]


def config_option() -> Any:
    """``--config PATH`` for a subcommand: kept on the context (:func:`keep_config`), not passed."""

    def probe(config: ConfigOpt = None) -> None:
        """Only its parameter is used."""

    probe_app = typer.Typer(add_completion=False)
    probe_app.command()(probe)
    (param,) = typer.main.get_command(probe_app).params
    param.expose_value = False

    def keep(ctx: Any, _param: Any, value: Path | None) -> None:
        keep_config(ctx, value)

    param.callback = keep
    return param


LogLevelOpt = Annotated[
    str | None,
    typer.Option(
        "--log-level",
        metavar="LEVEL",
        help="Show log lines of this level and up on stderr: debug, info, warning (default) "
        "or error. A run's log file ($NEXUS_HOME/logs) keeps info and up, debug with debug.",
        show_default=False,
    ),
]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show log lines from info up (--log-level info).")
]


def log_options() -> list[Any]:
    """``--log-level LEVEL`` and ``-v`` for a subcommand: they configure logging, not passed."""

    def probe(log_level: LogLevelOpt = None, verbose: VerboseOpt = False) -> None:
        """Only its parameters are used."""

    probe_app = typer.Typer(add_completion=False)
    probe_app.command()(probe)
    level, verbose = typer.main.get_command(probe_app).params

    def keep_level(ctx: Any, _param: Any, value: str | None) -> None:
        keep_log_level(ctx, value, verbose=False)

    def keep_verbose(ctx: Any, _param: Any, value: bool) -> None:
        keep_log_level(ctx, None, verbose=value)

    for param, callback in ((level, keep_level), (verbose, keep_verbose)):
        param.expose_value = False
        param.callback = callback
    return [level, verbose]


# -- finishing a loaded command -------------------------------------------------------------


def finish(cmd: Any, ctx: typer.Context, entry: Entry) -> None:
    """Examples, readable metavars and ``--config`` for ``cmd`` and its commands."""
    cmd.epilog = example(*entry.example)
    _finish_one(cmd, ctx)
    for name, sub in getattr(cmd, "commands", {}).items():
        lines = entry.subcommands.get(name)
        if lines:
            sub.epilog = example(*lines)
        _finish_one(sub, ctx)


def _finish_one(cmd: Any, ctx: typer.Context) -> None:
    # same fields: only the help is drawn by nexus (without Typer's Markdown and tracebacks)
    if type(cmd) is typer.core.TyperCommand:
        cmd.__class__ = _Command
    elif type(cmd) is typer.core.TyperGroup:
        cmd.__class__ = _Group
    if not any(p.name == "config" for p in cmd.params):
        cmd.params.append(config_option())
    if not any(p.name in ("log_level", "verbose") for p in cmd.params):
        cmd.params.extend(log_options())
    help_option = cmd.get_help_option(ctx)  # made (and cached) now, to be made readable
    for param in [*cmd.params, *([help_option] if help_option is not None else [])]:
        readable(param)
        _deferred(param)


class _Command(typer.core.TyperCommand):
    """A loaded command: its ``--help`` is drawn by :func:`nexus.cli._help.render_help`."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from nexus.cli._help import render_help  # for --help only: Rich's panels and tables

        render_help(self, ctx)


class _Group(typer.core.TyperGroup):
    """A loaded group of commands (``nexus audit``), its help drawn as a command's."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from nexus.cli._help import render_help

        render_help(self, ctx)


class _Summary(typer.core.TyperCommand):
    """A command not loaded yet: its name and summary, for listings and completion."""


class LazyGroup(typer.core.TyperGroup):
    """The ``nexus`` group: commands from a table of :class:`Entry`, each loaded on use.

    A subclass sets :attr:`table`; Typer builds the group itself.
    """

    table: tuple[Entry, ...] = ()

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._entries = {e.name: e for e in self.table}
        for entry in self.table:  # eagerly registered commands keep their place
            self.commands.setdefault(
                entry.name, _Summary(name=entry.name, help=entry.summary, callback=None)
            )

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from nexus.cli._help import render_help  # for --help only: Rich's panels and tables

        render_help(self, ctx)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            # what Click does (the help, exit 2) without raising its NoArgsIsHelpError,
            # whose report loads Typer's Rich error formatter to print nothing
            self.format_help(ctx, None)
            raise typer.Exit(2)
        parsed: list[str] = super().parse_args(ctx, args)
        return parsed

    def get_params(self, ctx: typer.Context) -> list[Any]:  # type: ignore[override]
        params: list[Any] = super().get_params(ctx)
        for param in params:
            readable(param)
            _deferred(param)
        return params

    def load(self, ctx: typer.Context, name: str) -> Any:
        """The command ``name``, imported and finished on first use."""
        cmd = self.commands.get(name)
        entry = self._entries.get(name)
        if entry is None or not isinstance(cmd, _Summary):
            return cmd
        target = entry.load()
        if isinstance(target, typer.Typer):
            cmd = typer.main.get_group(target)  # no completion options of its own
        else:
            single = typer.Typer(add_completion=False)
            single.command(name)(target)
            cmd = typer.main.get_command(single)
        cmd.name = name
        finish(cmd, ctx, entry)
        self.commands[name] = cmd
        return cmd

    def resolve_command(  # type: ignore[override]
        self, ctx: typer.Context, args: list[str]
    ) -> tuple[str | None, Any, list[str]]:
        if args:
            self.load(ctx, args[0])
        return super().resolve_command(ctx, args)
