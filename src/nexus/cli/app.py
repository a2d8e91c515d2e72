"""The ``nexus`` command: one table of commands, each module imported only when used.

Every command is an :class:`~nexus.cli.registry.Entry` of :data:`COMMANDS`:
where it lives, the line ``nexus --help`` shows and an example for its own
``--help``. ``nexus --help`` and shell completion read the table alone; a
command's module is imported when that command runs (see
:mod:`nexus.cli.registry`). This module and the ones it imports load Typer and
nothing heavy (``tests/cli/test_cli_startup.py`` holds them to it): start-up
is measured by ``bench/cli_startup.py``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from nexus.cli.registry import ConfigOpt, Entry, LazyGroup, LogLevelOpt, VerboseOpt, example
from nexus.cli.wiring import CliOptions, keep_config, keep_log_level

#: The distribution ``nexus --version`` reports.
DISTRIBUTION = "nexus-missions"

_RUN = "nexus.cli.commands_run"
_QUERY = "nexus.cli.commands_query"

COMMANDS: tuple[Entry, ...] = (
    Entry(
        "init",
        "nexus.cli.commands_init:init",
        "Start a project: nexus.toml, a workflow to run, .nexus/ in .gitignore.",
        ("nexus init", "nexus init my-agent --template agent", "nexus init --list"),
    ),
    Entry(
        "new",
        "nexus.cli.commands_init:new",
        "Write one file: a workflow, an agent (NAME.yaml) or a WASM tool (tools/NAME.wat).",
        ("nexus new workflow nightly", "nexus new tool slugify"),
    ),
    Entry(
        "validate",
        f"{_RUN}:validate",
        "Check a workflow file; say what is wrong and where, every problem of it.",
        ("nexus validate flow.yaml",),
    ),
    Entry(
        "plan",
        f"{_RUN}:plan",
        "Show the plan: task graph, order, critical path and plan hash.",
        ("nexus plan flow.yaml -i topic=cats", "nexus plan flow.yaml --estimate"),
    ),
    Entry(
        "run",
        f"{_RUN}:run",
        "Run a workflow file to its end, with live progress.",
        ("nexus run flow.yaml -i topic=cats", "nexus run flow.yaml --config ci.toml --json"),
    ),
    Entry(
        "runs",
        "nexus.cli.commands_runs:runs",
        "List runs, newest first.",
        ("nexus runs", "nexus runs --status failed --since 2h"),
    ),
    Entry(
        "status",
        f"{_QUERY}:status",
        "Where a run stands: status, task counts, whether a process drives it.",
        ("nexus status latest", "nexus status 01JD3F --at 12"),
    ),
    Entry(
        "inspect",
        f"{_QUERY}:inspect",
        "Show a run's tasks, or one task with its attempts, effects and output.",
        ("nexus inspect latest-failed", "nexus inspect 01JD3F --task draft"),
    ),
    Entry(
        "events",
        f"{_QUERY}:events",
        "Print a run's event log, or (--schema) the schema of every event type.",
        ("nexus events latest --type task.", "nexus events --schema --markdown"),
    ),
    Entry(
        "cost",
        f"{_QUERY}:cost",
        "What a run spent: per agent, task, model and call; estimate vs actual; cache savings.",
        ("nexus cost latest", "nexus cost --tenant acme --json"),
    ),
    Entry(
        "resume",
        f"{_RUN}:resume",
        "Finish a run whose process stopped, or that paused for budget.",
        ("nexus resume latest", "nexus resume 01JD3F --budget usd=5"),
    ),
    Entry(
        "cancel",
        f"{_RUN}:cancel",
        "Cancel a run (its live process stops it, or it is cancelled here).",
        ("nexus cancel 01JD3F",),
    ),
    Entry(
        "pause",
        "nexus.cli.commands_control:pause",
        "Pause a run: running attempts finish, no new one starts, until `nexus resume`.",
        ("nexus pause latest --reason 'reviewing the plan'",),
    ),
    Entry(
        "stop",
        "nexus.cli.commands_control:stop",
        "Emergency stop: cancel every running run at once and kill their processes.",
        ("nexus stop --all --reason 'agents are looping'",),
    ),
    Entry(
        "approve",
        f"{_RUN}:approve",
        "Approve a task that awaits approval; the run goes on.",
        ("nexus approve latest deploy --reason 'diff reviewed'",),
    ),
    Entry(
        "reject",
        f"{_RUN}:reject",
        "Reject a task that awaits approval; it fails with policy_denied.",
        ("nexus reject latest deploy --reason 'touches prod'",),
    ),
    Entry(
        "replay",
        f"{_RUN}:replay",
        "Re-execute a run from its recorded effects and compare the event chains.",
        ("nexus replay latest", "nexus replay 01JD3F --json"),
    ),
    Entry(
        "logs",
        "nexus.cli.commands_logs:logs",
        "Print the structured log a run kept: its steps and what the libraries it used said.",
        ("nexus logs latest", "nexus logs 01JD3F --level warning --json"),
    ),
    Entry(
        "export",
        f"{_QUERY}:export",
        "Export a run as one JSON bundle: record, plan, events, final state, audit.",
        ("nexus export latest -o run.json",),
    ),
    Entry(
        "mission",
        "nexus.cli.commands_mission:mission",
        "Run a code mission: a design spec and a repository in, verified merged changes out.",
        (
            "nexus mission SPEC.md --repo . --model openai:gpt-4.1-mini",
            "nexus mission SPEC.md --repo ~/src/shop --mode brownfield --plan-only",
        ),
    ),
    Entry(
        "demo",
        "nexus.cli.commands_mission:demo",
        "The flagship demo: a code mission on a bundled spec, offline, from plan to evidence.",
        ("nexus demo", "nexus demo --model openai:gpt-4.1-mini"),
    ),
    Entry(
        "spec",
        "nexus.cli.commands_spec:spec",
        "Read a design spec: requirements with stable ids, criteria, interfaces, ambiguities.",
        ("nexus spec SPEC.md", "nexus spec SPEC.md --json"),
    ),
    Entry(
        "index",
        "nexus.cli.commands_index:index",
        "Index a repository (files, symbols, tests); with --query, print ranked context.",
        (
            "nexus index .",
            "nexus index ~/src/shop --query 'retry the upload on timeout' --budget 3000",
        ),
    ),
    Entry(
        "backup",
        "nexus.cli.commands_store:backup",
        "Copy the store while runs may be writing; verify the copy's audit chain.",
        ("nexus backup /backups/nexus-monday", "nexus backup --with-keys"),
    ),
    Entry(
        "restore",
        "nexus.cli.commands_store:restore",
        "Bring a backup back as the store, after verifying its audit chain and signed heads.",
        ("nexus restore /backups/nexus-monday",),
    ),
    Entry(
        "audit",
        "nexus.cli.commands_audit:audit_app",
        "Check the tamper-evident event log and its signed heads.",
        ("nexus audit verify", "nexus audit head --json > heads.json"),
        subcommands={
            "verify": ("nexus audit verify", "nexus audit verify latest --against heads.json"),
            "head": ("nexus audit head --json > heads.json",),
            "sign": ("nexus audit sign",),
        },
    ),
    Entry(
        "evidence",
        "nexus.cli.commands_evidence:evidence_app",
        "Check the signed evidence bundles of code missions.",
        ("nexus evidence verify evidence/", "nexus evidence verify evidence/ --key audit.pub"),
        subcommands={
            "verify": (
                "nexus evidence verify evidence/",
                "nexus evidence verify evidence/ --key audit.pub --json",
            ),
        },
    ),
    Entry(
        "tools",
        "nexus.cli.commands_tools:tools_app",
        "List tools; approve or revoke MCP tool pins.",
        ("nexus tools", "nexus tools --workflow flow.yaml"),
        subcommands={
            "approve": ("nexus tools approve time.get_current_time --pin 3f9a1c",),
            "revoke": ("nexus tools revoke wasm:slugify",),
            "pins": ("nexus tools pins --json",),
        },
    ),
)


class _Nexus(LazyGroup):
    table = COMMANDS


app = typer.Typer(
    name="nexus",
    help="Run multi-agent missions reliably: durable, replayable, auditable.",
    epilog=example("nexus run flow.yaml", "nexus status latest", "nexus run --help"),
    cls=_Nexus,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def package_version() -> str:
    """The installed version of Nexus (``0+unknown`` when run from an uninstalled tree)."""
    from importlib.metadata import PackageNotFoundError, version  # for --version only

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "0+unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"nexus {package_version()}")
        raise typer.Exit()


@app.callback()
def _options(
    ctx: typer.Context,
    config: ConfigOpt = None,
    log_level: LogLevelOpt = None,
    verbose: VerboseOpt = False,
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version of Nexus and exit.",
            callback=_show_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Run multi-agent missions reliably: durable, replayable, auditable."""
    # a value the commands read from the context, not an environment variable
    ctx.obj = CliOptions()
    keep_config(ctx, config)
    keep_log_level(ctx, log_level, verbose=verbose)


def main() -> None:
    """Console entry point: ``nexus``.

    A Nexus error raised before a command's own error handling (a bad
    ``NEXUS_*`` variable read as a command starts) is reported like any other:
    one line, its exit code, no traceback.
    """
    try:
        app()
    except Exception as exc:
        # imported here: `nexus --help` loads neither the domain nor the output helpers
        from nexus.cli.output import exit_code_for, fail
        from nexus.domain.errors import NexusError

        if not isinstance(exc, NexusError):
            raise
        try:
            fail(exc.message, exit_code_for(exc))
        except typer.Exit as done:
            raise SystemExit(done.exit_code) from None
