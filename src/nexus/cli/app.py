"""The ``nexus`` command: one Typer app, commands in per-group modules."""

from __future__ import annotations

from pathlib import Path

import typer

from nexus.cli import commands_audit, commands_query, commands_run, commands_store, commands_tools
from nexus.cli.output import EXIT_NOT_FOUND, fail
from nexus.cli.wiring import CliOptions

app = typer.Typer(
    name="nexus",
    help="Run multi-agent missions reliably: durable, replayable, auditable.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for command in (
    commands_run.validate,
    commands_run.plan,
    commands_run.run,
    commands_query.runs,
    commands_query.status,
    commands_query.inspect,
    commands_query.events,
    commands_query.cost,
    commands_run.resume,
    commands_run.cancel,
    commands_run.approve,
    commands_run.reject,
    commands_run.replay,
    commands_query.export,
    commands_store.backup,
    commands_store.restore,
):
    app.command()(command)
app.add_typer(commands_audit.audit_app, name="audit")


@app.callback()
def _options(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None,
        "--config",
        help="The project file (default: $NEXUS_CONFIG, else ./nexus.toml if present).",
        show_default=False,
    ),
) -> None:
    """Run multi-agent missions reliably: durable, replayable, auditable."""
    if config is not None and not config.is_file():
        fail(f"--config {config}: no such file", EXIT_NOT_FOUND)
    # a value the commands read from the context, not an environment variable
    ctx.obj = CliOptions(config=None if config is None else config.resolve())


app.add_typer(commands_tools.tools_app, name="tools")


def main() -> None:
    """Console entry point."""
    app()
