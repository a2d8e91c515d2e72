"""``nexus logs RUN``: the structured log a run kept (see :mod:`nexus.cli.runlog`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from nexus.cli.output import EXIT_NOT_FOUND, EXIT_USER, emit_json, fail, out
from nexus.cli.runref import resolve_run_arg
from nexus.config import Settings

__all__ = ["logs"]

#: fields every record has, shown in the line's head rather than as key=value
_HEAD = ("timestamp", "level", "event", "logger")


def _line(record: dict[str, Any]) -> str:
    """A record as one readable line: time, level, message, then its other fields."""
    stamp = str(record.get("timestamp", ""))[:23]
    level = str(record.get("level", ""))
    rest = " ".join(
        f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)}"
        for k, v in record.items()
        if k not in _HEAD and k not in ("run", "seq", "type", "task")
    )
    where = "" if record.get("logger") in (None, "nexus.run") else f"[{record['logger']}] "
    text = f"{stamp} {level:<7} {where}{record.get('event', '')}"
    return f"{text}  {rest}" if rest else text


def logs(
    run_id: Annotated[str, typer.Argument(help="Run id.", show_default=False)],
    level: Annotated[
        str,
        typer.Option(
            "--level", metavar="LEVEL", help="Only records of this level and up (debug...error)."
        ),
    ] = "debug",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print the structured log a run kept: its steps and what the libraries it used said.

    The log is $NEXUS_HOME/logs/RUN.jsonl (JSON lines, redacted like the events,
    at most 8 MiB a run: the newest lines are kept), written while the nexus
    command drives the run. Runs driven from the Python API keep none; their
    events (nexus events RUN) hold what happened.
    """
    from nexus.cli.runlog import LEVELS, log_files, read_log

    if level.lower() not in LEVELS:
        fail(f"--level: '{level}' is not a level: use one of {', '.join(LEVELS)}", EXIT_USER)
    least = LEVELS.index(level.lower())
    run_id = resolve_run_arg(run_id, as_json=as_json)
    home = Settings().home
    if not log_files(home, run_id):
        fail(
            f"run {run_id} kept no log in {home / 'logs'}: logs are written while the nexus "
            "command drives a run (not the Python API); `nexus events "
            f"{run_id}` shows what happened",
            EXIT_NOT_FOUND,
            as_json=as_json,
        )
    records = [
        r
        for r in read_log(home, run_id)
        if str(r.get("level", "info")) not in LEVELS
        or LEVELS.index(str(r.get("level", "info"))) >= least
    ]
    if as_json:
        emit_json(records)
        return
    for record in records:
        out.print(_line(record), markup=False, highlight=False)
