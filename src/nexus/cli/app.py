"""The ``nexus`` command: one Typer app, commands in per-group modules."""

from __future__ import annotations

import typer

from nexus.cli import commands_query, commands_run, commands_tools

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
    commands_run.resume,
    commands_run.cancel,
    commands_run.approve,
    commands_run.reject,
    commands_run.replay,
    commands_query.export,
):
    app.command()(command)
app.add_typer(commands_query.audit_app, name="audit")
app.add_typer(commands_tools.tools_app, name="tools")


def main() -> None:
    """Console entry point."""
    app()
