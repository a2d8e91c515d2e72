"""How a command gets its :class:`~nexus.app.Project` and its logging: the global options.

``--config FILE`` (before the command's name or after it: the same option) is
kept on the Typer context (:class:`CliOptions`), never put in the
environment; each command loads one project from it (:func:`project_of`) and
passes that project down, so ``nexus.toml`` is read once per command and the
tools are built once. The engine itself is built by
:meth:`nexus.app.Project.engine`, as for the Python API.

``--log-level LEVEL`` and ``-v``/``--verbose`` are taken the same way, before
or after the command's name (:func:`keep_log_level`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from nexus.app import Project


@dataclass(frozen=True, slots=True)
class CliOptions:
    """The global options of one ``nexus`` invocation."""

    #: ``--config FILE`` (resolved), or None: ``NEXUS_CONFIG``, else the nearest ``nexus.toml``
    config: Path | None = None
    #: the level of the log lines shown on stderr, when one was asked for
    log_level: str | None = None


def options_of(ctx: typer.Context | None) -> CliOptions:
    """The global options, as the ``nexus`` callback stored them."""
    found = None if ctx is None else ctx.find_root().obj
    return found if isinstance(found, CliOptions) else CliOptions()


def keep_config(ctx: typer.Context, value: Path | None) -> None:
    """Record ``--config FILE`` (given before or after the command) on the root context.

    Exits 4 when the file does not exist, 2 when two different files are named.
    """
    if value is None:
        return
    from nexus.cli.output import EXIT_NOT_FOUND, EXIT_USER, fail  # only when a file is named

    if not value.is_file():
        fail(f"--config {value}: no such file", EXIT_NOT_FOUND)
    root = ctx.find_root()
    current = options_of(ctx)
    path = value.resolve()
    if current.config is not None and current.config != path:
        fail(f"--config is given twice, as {current.config} and {path}: name one file", EXIT_USER)
    root.obj = replace(current, config=path)


def keep_log_level(ctx: typer.Context, level: str | None, *, verbose: bool) -> None:
    """Show log lines on stderr from ``level`` up (``--verbose``: from ``info`` up).

    Whether given before the command's name, after it or both, the most
    verbose level asked for holds (``nexus -v run --log-level debug`` shows
    debug; ``--log-level error -v`` shows info). Only logging asked for loads
    the logging stack (structlog). Exits 2 naming a level that is not one.
    """
    if level is None and not verbose:
        return
    from nexus.cli.output import fail
    from nexus.cli.runlog import LEVELS, configure

    if level is not None and level.lower() not in LEVELS:
        fail(f"--log-level: '{level}' is not a level: use one of {', '.join(LEVELS)}")
    current = options_of(ctx)
    asked = [level.lower() if level is not None else "warning", "info" if verbose else "warning"]
    if current.log_level is not None:
        asked.append(current.log_level)
    wanted = min(asked, key=LEVELS.index)
    if wanted != current.log_level:
        configure(wanted)
        ctx.find_root().obj = replace(current, log_level=wanted)


def project_of(ctx: typer.Context | None) -> Project:
    """The project of this command: settings and ``nexus.toml``, read now (once).

    Raises:
        NotFoundError: the configuration file named does not exist.
        UserError: the configuration file is invalid.
    """
    from nexus.app import Project  # the engine's whole stack: only for commands that need it

    return Project.load(options_of(ctx).config)


def import_from_here() -> None:
    """Let a Python function agent's ``module:function`` load from the working directory.

    ``nexus`` is a console script: Python puts the script's own folder on
    ``sys.path``, not the directory it was started in, so a ``roles.py`` beside
    the agents file could not be imported. The directory goes *last*, after the
    standard library and the installed packages, so a file there named like
    one of them (``json.py``, ``yaml.py``) cannot take its place.
    """
    here = os.getcwd()
    if here not in sys.path:
        sys.path.append(here)
