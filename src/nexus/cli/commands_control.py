"""Commands that hold runs back: pause one run, stop every live run at once.

``nexus pause RUN`` lets the running attempts finish, starts no new one, and
leaves the run ``paused`` until ``nexus resume RUN``. ``nexus stop --all`` is the
emergency stop: every running run of this home is cancelled at once, its
sandboxed processes killed (:mod:`nexus.engine.control`). Both record who asked
(the user this command runs as, or ``--by``) and why (``--reason``); a process
driving a run takes the request as a command, a run no process drives is
paused or cancelled here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from nexus.cli.output import EXIT_FAILED, emit_json, err, fail, open_store, out, run_async
from nexus.cli.runref import resolve_run_arg

if TYPE_CHECKING:
    from nexus.engine.control import StopReport

__all__ = ["pause", "stop"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
RunArg = Annotated[str, typer.Argument(help="Run id.", show_default=False)]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (recorded).")]
ByOpt = Annotated[str | None, typer.Option("--by", help="Who asks (default: $USER).")]

_PAUSE_WORDS = {
    "requested": "pause requested; the process running it pauses it once its running "
    "attempts finish",
    "paused": "paused",
    "already": "is paused already (or pausing)",
    "finished": "had already finished; nothing to pause",
}


def pause(
    run_id: RunArg, reason: ReasonOpt = "", by: ByOpt = None, as_json: JsonOpt = False
) -> None:
    """Pause a run: running attempts finish, no new one starts, until `nexus resume`.

    Who asked (--by, default the user this command runs as) and why (--reason)
    are recorded in run.pause_requested and shown by `nexus status`.
    """
    from nexus.engine.control import os_user
    from nexus.engine.facade import Engine  # the engine's whole stack: only here

    run_id = resolve_run_arg(run_id, as_json=as_json)
    who = by or os_user()

    async def go() -> str:
        async with open_store() as store:
            return await Engine(store).pause(run_id, reason=reason, by=who)

    outcome = run_async(go, as_json=as_json)
    if as_json:
        emit_json({"run_id": run_id, "outcome": outcome, "by": who, "reason": reason})
        return
    out.print(f"run {run_id}: {escape(_PAUSE_WORDS[outcome])}")
    if outcome in ("requested", "paused", "already"):
        out.print(f"  continue it with: nexus resume {run_id}")


def stop(
    all_runs: Annotated[
        bool, typer.Option("--all", help="Every running run of this home (required).")
    ] = False,
    reason: ReasonOpt = "",
    by: ByOpt = None,
    wait: Annotated[
        float,
        typer.Option("--wait", help="Seconds to wait for the runs to stop (0: do not wait)."),
    ] = 10.0,
    as_json: JsonOpt = False,
) -> None:
    """Emergency stop: cancel every running run at once and kill their processes.

    Each run's process cancels its attempts, killing their sandboxed processes;
    a run no process drives is cancelled here. run.cancel_requested records who
    (--by, default the user this command runs as) and why (--reason). Paused
    runs are left as they are. Exit 1 when a run has not stopped within --wait.
    """
    from nexus.engine.control import os_user, stop_all, stop_reason

    if not all_runs:
        fail(
            "nexus stop needs --all (it stops every running run); one run: nexus cancel RUN",
            as_json=as_json,
        )
    if wait < 0:
        fail("--wait must be 0 or more seconds", as_json=as_json)
    who = by or os_user()

    why = stop_reason(reason)

    async def go() -> StopReport:
        async with open_store() as store:

            async def cancel_here(run_id: str) -> str:
                # no live process drives it: the engine records the cancel (loaded only now)
                from nexus.engine.facade import Engine

                return await Engine(store).cancel(run_id, why, by=who)

            return await stop_all(store, cancel_here, by=who, reason=why, within=wait)

    report = run_async(go, as_json=as_json)
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_stop(report)
    if not report.stopped:
        raise typer.Exit(EXIT_FAILED)


def _print_stop(report: StopReport) -> None:
    if not report.runs:
        out.print("no running run to stop")
        return
    done = sum(run.stopped for run in report.runs)
    out.print(
        f"stopped {done} of {len(report.runs)} running runs "
        f"(by {escape(report.by)}: {escape(report.reason)})"
    )
    for run in report.runs:
        how = {
            "requested": "its process stopped it",
            "cancelled": "no process drove it: cancelled here",
            "finished": "it had ended",
        }[run.outcome]
        if run.stopped:
            out.print(f"  {run.run_id}  {run.status}  ({how})")
        elif run.driven_by is not None:
            err.print(
                f"  {run.run_id}  still {run.status}: its process ({run.driven_by}) has not "
                "stopped it; kill that process (its sandboxed processes die with it)"
            )
        else:
            err.print(f"  {run.run_id}  {run.status}: not stopped yet")
