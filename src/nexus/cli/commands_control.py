"""Commands that hold runs back: pause one run, stop every live run at once.

``nexus pause RUN`` lets the running attempts finish, starts no new one, and
leaves the run ``paused`` until ``nexus resume RUN``. Both record who asked (the
user this command runs as, or ``--by``) and why (``--reason``); a process
driving the run takes the request as a command, a run no process drives is
paused here.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from nexus.cli.output import emit_json, open_store, out, run_async
from nexus.engine.facade import Engine, os_user

__all__ = ["pause"]

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
