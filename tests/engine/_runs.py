"""What the engine tests of loops, state machines, trees, sagas, fan-outs, barriers,
plan extensions and writes share: running a plan over a SQLite file, checking that
its replay is identical and calls no tool, "crashing" a run part-way and resuming
it, and forging a sealed event log for the fold's own checks.

A test module imports these by name (``from _runs import run_plan``), as the CLI
tests import ``cli_support``: pytest puts this folder on ``sys.path``.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nexus.domain.events import Draft, Event, EventType, seal
from nexus.domain.plan import Plan, plan_hash
from nexus.engine.facade import Engine, ReplayReport, RunResult
from nexus.store.base import Lease
from nexus.store.sqlite import SQLiteStore
from nexus.tools.base import ToolRegistry

#: how long any one run, resume or replay may take before the test fails
RUN_TIMEOUT = 30.0
#: the time stamp of every forged event
AT = "2026-01-01T00:00:00.000000Z"


async def run_plan(
    db: Path, plan: Plan, tools: ToolRegistry, **engine: Any
) -> tuple[RunResult, list[Event]]:
    """Run ``plan`` to its end in the store ``db``; its result and its whole log.

    ``engine`` holds any other ``Engine`` option (``providers=``, ``clock=``...).
    """
    store = SQLiteStore.open(db)
    try:
        result = await asyncio.wait_for(
            Engine(store, tools=tools, **engine).start(plan), RUN_TIMEOUT
        )
        return result, await store.load(result.run_id)
    finally:
        await store.close()


async def check_replay(db: Path, run_id: str, tools: ToolRegistry, **engine: Any) -> ReplayReport:
    """Replay run ``run_id`` and assert what a replay promises.

    The new chain is identical and complete, every recorded event was replayed, no
    tool ran (give ``tools`` that would answer differently: they must not be
    called), and the stored log is untouched.
    """
    store = SQLiteStore.open(db)
    try:
        before = await store.load(run_id)
        report = await asyncio.wait_for(
            Engine(store, tools=tools, **engine).replay(run_id), RUN_TIMEOUT
        )
        assert report.identical, report.first_divergence
        assert report.complete
        assert report.replayed_events == len(before)
        assert report.tools_executed == 0
        assert await store.load(run_id) == before
        return report
    finally:
        await store.close()


def dead_pid() -> int:
    """The id of a process that has ended: a lease it holds is a crashed owner's."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


async def crash(
    db: Path,
    plan: Plan,
    tools: ToolRegistry,
    *,
    until: Callable[[list[Event]], bool],
    waiting: str,
    within: float = 10.0,
) -> str:
    """Start ``plan`` and "kill" its process once ``until(log)`` holds; the run's id.

    ``until`` is asked every 20 ms with the run's log so far (empty before the run
    is recorded); it may look at the tools' own notes instead. When it holds, the
    run's driver is cancelled and its lease handed to a process that no longer
    exists, as ``kill -9`` would leave it, so that a resume takes it over.

    Raises:
        AssertionError: ``until`` did not hold within ``within`` seconds (the
            message says what was awaited: ``waiting``).
    """
    store = SQLiteStore.open(db)
    try:
        driver = asyncio.create_task(Engine(store, tools=tools).start(plan))
        deadline = time.monotonic() + within
        while True:
            runs = await store.list_runs()
            if until(await store.load(runs[0].run_id) if runs else []):
                break
            assert time.monotonic() < deadline, waiting
            assert not driver.done(), f"the run ended before the crash: {waiting}"
            await asyncio.sleep(0.02)
        driver.cancel()
        with pytest.raises(asyncio.CancelledError):
            await driver
        (record,) = await store.list_runs()
        dead = Lease(
            owner="crashed", host=socket.gethostname(), pid=dead_pid(), heartbeat=time.time()
        )
        assert await store.swap_lease(record.run_id, dead, None)
        return record.run_id
    finally:
        await store.close()


async def load(db: Path, run_id: str) -> list[Event]:
    """The log of run ``run_id`` as stored in ``db``."""
    store = SQLiteStore.open(db)
    try:
        return await store.load(run_id)
    finally:
        await store.close()


async def resume(
    db: Path, run_id: str, tools: ToolRegistry, **engine: Any
) -> tuple[RunResult, list[Event]]:
    """Resume run ``run_id`` (a crashed one) to its end; its result and whole log."""
    store = SQLiteStore.open(db)
    try:
        result = await asyncio.wait_for(
            Engine(store, tools=tools, **engine).resume(run_id), RUN_TIMEOUT
        )
        return result, await store.load(run_id)
    finally:
        await store.close()


def of(events: list[Event], kind: EventType, task: str | None = None) -> list[Event]:
    """The events of type ``kind`` (about ``task``, when one is named)."""
    return [e for e in events if e.type is kind and (task is None or e.data.get("task") == task)]


def run_started(plan: Plan) -> dict[str, Any]:
    """The data of the ``run.started`` event of a run of ``plan`` with no inputs."""
    return {
        "name": plan.name,
        "plan": plan.to_dict(),
        "plan_hash": plan_hash(plan),
        "inputs": {},
        "workspace": ".",
        "source": None,
    }


def forge(plan: Plan, *rows: tuple[EventType, dict[str, Any]]) -> list[Event]:
    """A sealed log of run ``R``: ``plan`` started, then one event a row."""
    events = [seal("R", 1, Draft(EventType.RUN_STARTED, AT, run_started(plan)), "0" * 64)]
    for kind, data in rows:
        events.append(next_event(events, kind, data))
    return events


def next_event(events: list[Event], kind: EventType, data: dict[str, Any]) -> Event:
    """The event that would follow ``events`` in the chain (not appended)."""
    return seal("R", len(events) + 1, Draft(kind, AT, data), events[-1].hash)
