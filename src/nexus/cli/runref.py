"""What a user may type where a command takes a RUN: a unique prefix, ``latest``, ``latest-failed``.

Run ids are ULIDs, 26 characters nobody types: any prefix that names one run
is enough (``nexus status 01JD3F``), in either case, and two words name the
newest runs: ``latest`` (the newest run) and ``latest-failed`` (the newest
failed one). A prefix that names several runs is refused, listing them (exit
2); one that names none is "not found" (exit 4), and when the store holds no
run at all the message names the home it looked in.

One resolver serves every command: a command taking a RUN checks its own
options first, then calls :func:`resolve_run_arg` where it first needs the id,
so a mistyped option is named before the run is looked up (a bad option and an
unknown run: exit 2 for the option, not 4 for the run), and a command that
needs no run (``events --schema``) looks none up. ``tests/cli/test_cli_runref.py``
holds every command with a ``run_id`` argument to it.
"""

from __future__ import annotations

from pathlib import Path

from nexus.cli.output import EXIT_NOT_FOUND, fail, open_store, run_async
from nexus.config import Settings
from nexus.domain.errors import NotFoundError, UserError
from nexus.store.base import RunFilter, Store

__all__ = ["LATEST", "LATEST_FAILED", "AmbiguousRun", "resolve_run", "resolve_run_arg"]

LATEST = "latest"
LATEST_FAILED = "latest-failed"
#: How many of the runs an ambiguous prefix names the message lists.
SHOWN = 10


class AmbiguousRun(UserError):
    """A prefix names more than one run; the message lists them."""


async def resolve_run(store: Store, ref: str) -> str:
    """The full id of the run ``ref`` names.

    Args:
        store: where the runs are.
        ref: a run id, a unique prefix of one (in either case), ``latest`` or
            ``latest-failed``.

    Raises:
        NotFoundError: no run has that id or prefix (or no run has failed).
        AmbiguousRun: the prefix names several runs.

    Example:
        >>> run_id = await resolve_run(store, "01jd3f")  # doctest: +SKIP
    """
    if ref in (LATEST, LATEST_FAILED):
        status = "failed" if ref == LATEST_FAILED else None
        newest = await store.search_runs(RunFilter(status=status, limit=1))
        if not newest:
            raise NotFoundError("no run has failed" if status else "no runs yet")
        return newest[0].run_id
    found = await store.runs_with_prefix(ref, SHOWN + 1)
    if not found and ref.upper() != ref:  # ULIDs are upper case; users type either
        found = await store.runs_with_prefix(ref.upper(), SHOWN + 1)
    if ref in found or len(found) == 1:
        return ref if ref in found else found[0]
    if not found:
        raise NotFoundError(f"no run with id {ref}")
    listed = ", ".join(found[:SHOWN]) + (", ..." if len(found) > SHOWN else "")
    raise AmbiguousRun(
        f"run id prefix '{ref}' names {'more than ' if len(found) > SHOWN else ''}"
        f"{min(len(found), SHOWN)} runs: {listed}; type more of the id"
    )


def resolve_run_arg(ref: str, *, as_json: bool = False) -> str:
    """:func:`resolve_run` in the configured home, for a command about to run; exits on error.

    A command calls it once its own options are checked, before it first uses
    the id. An empty home (no database yet) is not created: the message names it.

    Example:
        >>> run_id = resolve_run_arg("latest", as_json=False)  # doctest: +SKIP
    """
    settings = Settings()
    home = settings.home.resolve()
    if not settings.db_path.exists():
        fail(_none_in(home, ref), EXIT_NOT_FOUND, as_json=as_json)

    async def go() -> str:
        async with open_store(settings, sign=False) as store:
            try:
                return await resolve_run(store, ref)
            except NotFoundError:
                if await store.list_runs(1):
                    raise
                raise NotFoundError(_none_in(home, ref)) from None

    return run_async(go, as_json=as_json)


def _none_in(home: Path, ref: str) -> str:
    if ref in (LATEST, LATEST_FAILED):
        return f"no runs yet in {home}"
    return f"no run with id {ref}: no runs yet in {home}"
