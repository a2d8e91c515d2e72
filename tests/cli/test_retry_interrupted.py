"""A task whose process dies during 3 attempts in a row holds the run, not fails it.

The run's process is stopped four times while the same task runs (the driver
is cancelled and its lease left behind by a dead pid, as after ``kill -9``);
then ``nexus resume RUN`` refuses and explains ``--retry-interrupted``, which
records ``interrupts.reset`` before ``run.resumed`` and finishes the run. The
resumed run replays identically.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path

import pytest
from cli_support import nexus

from nexus.domain.errors import ConflictError
from nexus.domain.events import EventType
from nexus.domain.plan import Plan, TaskSpec
from nexus.domain.state import RunState
from nexus.engine.decider import MAX_INTERRUPTS
from nexus.engine.facade import Engine
from nexus.store.audit import verify_chain
from nexus.store.base import Lease
from nexus.store.sqlite import SQLiteStore
from nexus.tools.builtins import builtin_tools

pytestmark = pytest.mark.slow

MARKER = "41.4141"


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def plan_in(ws: Path) -> Plan:
    tasks = (
        TaskSpec(
            id="fragile",
            tool="shell",
            args={"cmd": f"echo run >> fragile.log; test -f go || sleep {MARKER}"},
        ),
        TaskSpec(id="last", tool="shell", needs=("fragile",), args={"cmd": "echo done"}),
    )
    return Plan(name="fragile", tasks={t.id: t for t in tasks}, workspace=str(ws))


def runs_logged(ws: Path) -> int:
    log = ws / "fragile.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


async def crash_while_running(store: SQLiteStore, ws: Path, plan: Plan, run_id: str | None) -> str:
    """Start (or resume) the run, wait for the fragile task's attempt, then 'kill -9' it."""
    engine = Engine(store, tools=builtin_tools())
    before = runs_logged(ws)
    driver = asyncio.create_task(
        engine.start(plan) if run_id is None else engine.resume(run_id),
    )
    deadline = time.monotonic() + 20
    while runs_logged(ws) == before:
        assert time.monotonic() < deadline, "the attempt never started"
        assert not driver.done(), driver
        await asyncio.sleep(0.02)
    driver.cancel()
    with pytest.raises(asyncio.CancelledError):
        await driver
    if run_id is None:
        run_id = (await store.list_runs())[0].run_id
    dead = Lease(owner="killed", host=socket.gethostname(), pid=dead_pid(), heartbeat=time.time())
    assert await store.swap_lease(run_id, dead, None)
    return run_id


@pytest.mark.timeout(240)
def test_the_fourth_crash_holds_the_run_until_retry_interrupted(tmp_path: Path) -> None:
    home = tmp_path / ".nexus"
    home.mkdir()
    ws = tmp_path / "ws"
    ws.mkdir()
    plan = plan_in(ws)

    async def crashes() -> tuple[str, int]:
        store = SQLiteStore.open(home / "nexus.db")
        try:
            run_id: str | None = None
            for _ in range(MAX_INTERRUPTS + 1):  # the first attempt, then 3 retries
                run_id = await crash_while_running(store, ws, plan, run_id)
            assert run_id is not None
            state = RunState.fold(await store.load(run_id))
            assert state.tasks["fragile"].attempts == MAX_INTERRUPTS + 1
            # an engine resume without the flag is refused and records nothing
            count = len(await store.load(run_id))
            with pytest.raises(ConflictError, match="--retry-interrupted"):
                await Engine(store, tools=builtin_tools()).resume(run_id)
            assert len(await store.load(run_id)) == count
            assert await store.get_lease(run_id) is None, "the refusal let go of the run"
            return run_id, count
        finally:
            await store.close()

    run_id, count = asyncio.run(crashes())
    assert runs_logged(ws) == MAX_INTERRUPTS + 1

    # the CLI explains the flag; exit 3 (the run's state forbids it), nothing recorded
    refused = nexus(home, "resume", run_id)
    assert refused.code == 3, refused.text
    assert "interrupted 3 times" in refused.text
    assert f"nexus resume {run_id} --retry-interrupted" in refused.text

    (ws / "go").write_text("")
    done = nexus(home, "resume", run_id, "--retry-interrupted", "--json")
    assert done.code == 0, done.text
    assert done.json()["status"] == "succeeded"
    assert runs_logged(ws) == MAX_INTERRUPTS + 2

    async def events() -> list[dict[str, object]]:
        store = SQLiteStore.open(home / "nexus.db")
        try:
            assert verify_chain(list(store.chain(run_id))).ok
            return [e.to_dict() for e in await store.load(run_id)]
        finally:
            await store.close()

    log = asyncio.run(events())
    new = log[count:]
    first = [e["type"] for e in new[:3]]
    assert first == ["interrupts.reset", "run.resumed", "attempt.interrupted"]
    assert new[0]["data"] == {"tasks": ["fragile"], "limit": MAX_INTERRUPTS}
    retry = next(e for e in new if e["type"] == EventType.RETRY_SCHEDULED)
    assert retry["data"]["error"]["interrupts"] == 1  # type: ignore[index]
    assert not [e for e in log if e["type"] == "task.failed"]

    replayed = nexus(home, "replay", run_id, "--json")
    assert replayed.code == 0, replayed.text
    assert replayed.json()["identical"] is True

    # a run that has ended cannot be "retried": the flag says so
    again = nexus(home, "resume", run_id, "--retry-interrupted")
    assert again.code == 3
    assert "already ended" in again.text
