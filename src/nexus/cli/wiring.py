"""How a command gets its :class:`~nexus.app.Project`: ``--config`` as a value.

The global ``--config FILE`` option is kept on the Typer context
(:class:`CliOptions`), never put in the environment; each command loads one
project from it (:func:`project_of`) and passes that project down, so
``nexus.toml`` is read once per command and the tools are built once. The
engine itself is built by :meth:`nexus.app.Project.engine`, as for the Python API.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from nexus.app import Project


@dataclass(frozen=True, slots=True)
class CliOptions:
    """The global options of one ``nexus`` invocation."""

    #: ``--config FILE`` (resolved), or None: ``NEXUS_CONFIG``, else ``./nexus.toml``
    config: Path | None = None


def options_of(ctx: typer.Context | None) -> CliOptions:
    """The global options, as the ``nexus`` callback stored them."""
    found = None if ctx is None else ctx.find_root().obj
    return found if isinstance(found, CliOptions) else CliOptions()


def project_of(ctx: typer.Context | None) -> Project:
    """The project of this command: settings and ``nexus.toml``, read now (once).

    Raises:
        NotFoundError: the configuration file named does not exist.
        UserError: the configuration file is invalid.
    """
    return Project.load(options_of(ctx).config)
