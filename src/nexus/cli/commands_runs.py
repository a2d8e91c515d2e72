"""``nexus runs``: the runs of the home, newest first, filtered by status, name and start.

Its own module because it is the command people run most and it must start
fast: it imports neither the run-state fold nor SQLAlchemy, and a home without
a database is answered without opening (or creating) a store.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from nexus.cli.output import emit_json, fail, open_store, out, run_async
from nexus.config import Settings
from nexus.domain.durations import parse_seconds
from nexus.domain.errors import UserError

if TYPE_CHECKING:
    from nexus.store.base import RunRecord

__all__ = ["STATUS_STYLE", "Status", "runs"]

#: What ``--status`` takes: every run status (a test holds it to ``RunStatus``).
Status = Literal["running", "paused", "succeeded", "failed", "cancelled"]

#: How each run status is coloured wherever the CLI shows one.
STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
    "running": "cyan",
    "paused": "yellow",
}

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _since(text: str, now: datetime) -> str:
    """``--since``: a duration back from ``now`` (``2h``, ``3d``) or an ISO date or time.

    A date or time without a zone is local time. Returns the UTC instant as runs
    record ``created_at`` (text that sorts as time does).
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            moment = now - timedelta(seconds=parse_seconds(text))
        except (ValueError, OverflowError):
            raise UserError(
                f"--since {text!r}: give a duration back from now (30m, 2h, 3d) "
                "or an ISO date or time (2026-01-05, 2026-01-05T10:00)"
            ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the user's local time
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _took(record: RunRecord) -> str:
    """How long a run ran, from its first event to its last: ``4.2s``, ``3m05s``, ``2h03m``."""
    seconds = max(0.0, (_moment(record.updated_at) - _moment(record.created_at)).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _started(record: RunRecord, now: datetime) -> str:
    """When a run started, in local time, as short as it can be said: 14:05, 01-05 14:05."""
    local = _moment(record.created_at).astimezone()
    if local.date() == now.astimezone().date():
        return local.strftime("%H:%M")
    if local.year == now.astimezone().year:
        return local.strftime("%m-%d %H:%M")
    return local.strftime("%Y-%m-%d")


def runs(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many runs.", min=1)] = 20,
    status: Annotated[
        Status | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            help="Only runs in this status: running, paused, succeeded, failed, cancelled.",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Only runs whose name contains this text (any case)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only runs started since: a duration back from now (30m, 2h, 3d) "
            "or an ISO date or time (2026-01-05, 2026-01-05T10:00, local time).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List runs, newest first."""
    now = datetime.now(UTC)
    settings = Settings()
    try:
        after = None if since is None else _since(since, now)
    except UserError as exc:
        fail(exc.message, as_json=as_json)

    async def go() -> list[RunRecord]:
        from nexus.store.base import RunFilter

        where = RunFilter(status=status, name=name, since=after, limit=limit)
        async with open_store(settings) as store:
            found: list[RunRecord] = await store.search_runs(where)
            return found

    # a home without a database has no runs: it is not created by listing it
    records = run_async(go, as_json=as_json) if settings.db_path.exists() else []
    if as_json:
        emit_json(
            [
                {
                    "run_id": r.run_id,
                    "name": r.name,
                    "status": r.status,
                    "created_at": r.created_at,
                    "updated_at": r.updated_at,
                    "events": r.events,
                    "plan_hash": r.plan_hash,
                }
                for r in records
            ]
        )
        return
    if not records:
        filters = [
            f"{label} {value}"
            for label, value in (("status", status), ("name", name), ("since", since))
            if value is not None
        ]
        home = settings.home.resolve()
        if filters:
            out.print(f"no runs match {', '.join(filters)} in {home}", markup=False)
        else:
            out.print(
                f"no runs yet in {home}: try `nexus run examples/release-notes/workflow.yaml`",
                markup=False,
            )
        return
    rows = [
        (r.run_id, r.name, r.status, _started(r, now), _took(r), str(r.events)) for r in records
    ]
    headers = ("run", "name", "status", "started", "duration", "events")
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    # run ids are what users copy: never cut; the name alone gives way (fits 80 columns)
    room = out.width - (sum(widths) - widths[1]) - 2 * (len(headers) - 1)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for i, header in enumerate(headers):
        table.add_column(
            header,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if i >= 4 else "left",
            min_width=widths[i] if i != 1 else None,
            max_width=max(8, room) if i == 1 else None,
        )
    for run_id, name_, state, started, took, count in rows:
        style = STATUS_STYLE.get(state, "none")
        table.add_row(run_id, escape(name_), f"[{style}]{state}[/]", started, took, count)
    out.print(table)
