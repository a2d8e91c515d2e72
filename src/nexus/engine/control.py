"""Run control from outside a run's process: who asks, and the emergency stop.

:func:`os_user` names who pauses or stops a run (the user the process runs
as), for the events that record it.

The emergency stop cancels every live run of a store at once, and waits until they stop.

``nexus stop --all`` (:meth:`nexus.engine.Engine.stop_all`) lists the runs whose
status is ``running`` and asks each to cancel. A run whose process is alive gets
the request in the store's command inbox; that process takes it within
:data:`~nexus.engine.controller.COMMAND_POLL_S` and cancels its attempts, which
kills their sandboxed processes. A run no process drives is cancelled on the
spot (by ``cancel_here``, the engine's cancel). Then the stop waits until each
run has ended and its process has let it go: the lease is released only after
the run's workers (and their sandboxes) have stopped, so a run reported stopped
has no process left running for it.

``run.cancel_requested`` records who stopped the run (``by``) and why
(``emergency stop: <reason>``). Paused runs are left as they are: nothing of
theirs runs, and they stay resumable.

This module needs only the store: the command line loads the engine only when a
run has no live process (``cancel_here``), so the stop starts fast.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nexus.engine.leases import lease_alive
from nexus.store.base import RunFilter, Store

__all__ = ["StopReport", "StoppedRun", "os_user", "stop_all", "stop_reason"]

#: How often the stop looks whether the runs it asked have ended.
POLL_S = 0.05
#: ``search_runs`` takes a limit: every run there is.
_EVERY_RUN = 2**31

Cancel = Callable[[str], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class StoppedRun:
    """One run the stop asked to cancel, and where it stood when the stop returned.

    Attributes:
        run_id: the run.
        outcome: what the cancel answered: ``requested`` (its process was
            asked), ``cancelled`` (no process drove it: cancelled here) or
            ``finished`` (it had ended meanwhile).
        status: the run's status when the stop returned.
        driven_by: ``pid on host`` of a process still driving it (it did not
            stop the run in time); None once nothing drives it.
    """

    run_id: str
    outcome: str
    status: str
    driven_by: str | None = None

    @property
    def stopped(self) -> bool:
        """The run ended and no process drives it any more."""
        return self.status not in ("running", "paused") and self.driven_by is None

    def to_dict(self) -> dict[str, str | bool | None]:
        return {
            "run_id": self.run_id,
            "outcome": self.outcome,
            "status": self.status,
            "driven_by": self.driven_by,
            "stopped": self.stopped,
        }


@dataclass(frozen=True, slots=True)
class StopReport:
    """What :func:`stop_all` did: each run it stopped, and who stopped them why."""

    by: str
    reason: str
    runs: tuple[StoppedRun, ...]
    #: seconds from the first cancel request to the last run stopped (or the wait's end)
    took_s: float = 0.0

    @property
    def stopped(self) -> bool:
        """Every run it asked has stopped (true when there was none)."""
        return all(run.stopped for run in self.runs)

    def to_dict(self) -> dict[str, object]:
        return {
            "by": self.by,
            "reason": self.reason,
            "stopped": self.stopped,
            "took_s": round(self.took_s, 3),
            "runs": [run.to_dict() for run in self.runs],
        }


def os_user() -> str:
    """The name of the user this process runs as (who a pause or a stop is recorded as)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid with no name (a container's)
        return f"uid {os.getuid()}"


def stop_reason(reason: str) -> str:
    """The reason ``run.cancel_requested`` records for an emergency stop."""
    reason = reason.strip()
    return f"emergency stop: {reason}" if reason else "emergency stop"


async def stop_all(
    store: Store,
    cancel_here: Cancel,
    *,
    by: str,
    reason: str,
    within: float,
) -> StopReport:
    """Cancel every running run of ``store`` at once, then wait up to ``within`` seconds.

    Args:
        store: where the runs are.
        cancel_here: cancels one run (by id) that no live process drives, with
            the stop's ``by`` and reason; answers as
            :meth:`nexus.engine.Engine.cancel` does.
        by: who stops them (recorded).
        reason: why, as recorded (see :func:`stop_reason`).
        within: how long to wait for the runs' processes to stop them (0: do not wait).

    Returns:
        Each run asked, in the order the store lists them (newest first).
    """
    found = await store.search_runs(RunFilter(status="running", limit=_EVERY_RUN))
    runs = [record.run_id for record in found]

    async def cancel(run_id: str) -> str:
        lease = await store.get_lease(run_id)
        if lease is not None and lease_alive(lease):
            await store.push_command(run_id, "cancel", {"reason": reason, "by": by})
            return "requested"
        return await cancel_here(run_id)

    began = time.monotonic()
    outcomes = await asyncio.gather(*(cancel(run_id) for run_id in runs))
    asked = list(zip(runs, outcomes, strict=True))
    waiting = [run_id for run_id, outcome in asked if outcome == "requested"]
    while waiting and time.monotonic() < began + within:
        await asyncio.sleep(POLL_S)
        waiting = [run_id for run_id in waiting if not await _let_go(store, run_id)]
    took = time.monotonic() - began
    stopped = [await _where(store, run_id, outcome) for run_id, outcome in asked]
    return StopReport(by=by, reason=reason, runs=tuple(stopped), took_s=took)


async def _let_go(store: Store, run_id: str) -> bool:
    """Whether the run has ended and its process has let it go (or died)."""
    record = await store.get_run(run_id)
    if record is None or record.status == "running":
        return False
    lease = await store.get_lease(run_id)
    return lease is None or not lease_alive(lease)


async def _where(store: Store, run_id: str, outcome: str) -> StoppedRun:
    record = await store.get_run(run_id)
    lease = await store.get_lease(run_id)
    driven = None if lease is None or not lease_alive(lease) else f"pid {lease.pid} on {lease.host}"
    status = "unknown" if record is None else record.status
    return StoppedRun(run_id=run_id, outcome=outcome, status=status, driven_by=driven)
