"""Kill ``nexus run`` with SIGKILL, then ``nexus resume``; cancel a run from another process.

Each run is a real ``nexus run`` process in its own process group; the tests
watch its progress in the SQLite file (read-only) and kill the whole group.
Shell tasks run in sessions of their own, so a task killed mid-command may
still finish its command: such a task may leave its side effect twice, but a
task whose success was committed before the kill must never run again.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cli_support import NEXUS, WORKFLOWS, cli_env, host_pids, nexus

pytestmark = pytest.mark.slow

T = TypeVar("T")


def copy_workflow(name: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(WORKFLOWS / name, into / name))


@contextlib.contextmanager
def running(home: Path, file: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``nexus run FILE --json`` in its own process group; killed and reaped on exit."""
    with (
        open(file.parent / "run.stdout", "wb") as out,
        open(file.parent / "run.stderr", "wb") as err,
    ):
        proc = subprocess.Popen(
            [str(NEXUS), "run", str(file), "--json"],
            env=cli_env(home),
            cwd=file.parent,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the run's whole process group (not the tools' own sessions)."""
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def query(home: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the store directly (read-only); nothing while it does not exist yet."""
    db = home / "nexus.db"
    if not db.exists():
        return []
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
            return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # the schema is being created
        return []


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    proc: subprocess.Popen[bytes] | None = None,
    timeout: float = 30.0,
) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"nexus run exited with {proc.returncode} before {what}")
        time.sleep(0.01)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def tasks_with(home: Path, run_id: str, event_type: str) -> set[str]:
    rows = query(home, "SELECT task FROM events WHERE run_id = ? AND type = ?", run_id, event_type)
    return {task for (task,) in rows}


def marker_lines(path: Path) -> Counter[str]:
    return Counter(path.read_text(encoding="utf-8").split()) if path.exists() else Counter()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has finished
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(") ", 1)[-1][:1] != "Z"
    except OSError:
        return False


# --------------------------------------------------------------------------- kill mid-task


def test_kill_during_a_task_then_resume(nexus_home: Path, tmp_path: Path) -> None:
    file = copy_workflow("crash.yaml", tmp_path / "wf")
    marker = file.parent / "marker.txt"

    def slow_is_running() -> bool:
        started = query(
            nexus_home,
            "SELECT 1 FROM events WHERE type = 'attempt.started' AND task = 'slow'",
        )
        return bool(started) and marker_lines(marker)["slow"] == 1

    with running(nexus_home, file) as proc:
        wait_for("the slow task to start", slow_is_running, proc)
        kill_group(proc)

    (record,) = nexus(nexus_home, "runs", "--json").json()
    rid = record["run_id"]
    assert record["status"] == "running"

    status = nexus(nexus_home, "status", rid, "--json")
    assert status.code == 1  # not succeeded (yet)
    doc = status.json()
    assert doc["status"] == "running"
    assert doc["driven_by"] is None  # its process is dead
    assert doc["tasks"]["first"]["status"] == "succeeded"
    assert doc["tasks"]["slow"] == {"status": "running", "attempts": 1}
    assert doc["tasks"]["last"]["status"] == "pending"
    text = nexus(nexus_home, "status", rid)
    assert "running" in text.stdout
    assert f"no process drives it: `nexus resume {rid}` continues it" in text.stdout

    resumed = nexus(nexus_home, "resume", rid, "--json")
    assert resumed.code == 0, resumed.text
    result = resumed.json()
    assert result["run_id"] == rid
    assert result["status"] == "succeeded"
    assert result["tasks"] == {
        "first": {"status": "succeeded", "attempts": 1},
        "second": {"status": "succeeded", "attempts": 1},
        "slow": {"status": "succeeded", "attempts": 2},
        "last": {"status": "succeeded", "attempts": 1},
    }
    # finished tasks did not run again; the interrupted one ran twice
    assert marker_lines(marker) == {"first": 1, "second": 1, "slow": 2, "last": 1}

    events = nexus(nexus_home, "events", rid, "--json").json()
    interrupted = [e for e in events if e["type"] == "attempt.interrupted"]
    assert [(e["data"]["task"], e["data"]["attempt"]) for e in interrupted] == [("slow", 1)]
    (resume_event,) = [e for e in events if e["type"] == "run.resumed"]
    assert resume_event["data"]["interrupted"] == ["slow"]
    assert resume_event["seq"] < interrupted[0]["seq"]

    audit = nexus(nexus_home, "audit", "verify", "--json")
    assert audit.code == 0, audit.text
    assert audit.json()["ok"] is True
    replay = nexus(nexus_home, "replay", rid, "--json")
    assert replay.code == 0, replay.text
    assert replay.json()["identical"] is True
    assert replay.json()["tools_executed"] == 0


# --------------------------------------------------------------------------- kill at random

_SEED = 20261121
_RNG = random.Random(_SEED)
_DELAYS = sorted(_RNG.uniform(0.02, 1.0) for _ in range(3))


@pytest.mark.parametrize("delay", _DELAYS, ids=[f"kill-after-{d:.2f}s" for d in _DELAYS])
def test_kill_at_a_random_moment_then_resume(
    nexus_home: Path, tmp_path: Path, delay: float
) -> None:
    file = copy_workflow("many.yaml", tmp_path / "wf")
    marker = file.parent / "marker.txt"
    names = [f"t{i:02d}" for i in range(12)]

    def run_id() -> str | None:
        rows = query(nexus_home, "SELECT run_id FROM runs")
        return rows[0][0] if rows else None

    with running(nexus_home, file) as proc:
        rid = wait_for("the run to be created", run_id, proc)
        time.sleep(delay)
        if proc.poll() is None:
            kill_group(proc)
    done_before = tasks_with(nexus_home, rid, "task.succeeded")
    started_before = tasks_with(nexus_home, rid, "attempt.started")
    context = f"killed {delay:.2f} s in (seed {_SEED}); done before the kill: {sorted(done_before)}"

    resumed = nexus(nexus_home, "resume", rid, "--json")
    assert resumed.code == 0, (context, resumed.text)
    assert resumed.json()["status"] == "succeeded", context

    counts = marker_lines(marker)
    assert set(counts) == set(names), (context, counts)
    for name in done_before:
        assert counts[name] == 1, (context, name, counts)
    for name, n in counts.items():
        # only an attempt under way at the kill may have run its command twice
        assert n == 1 or (n == 2 and name in started_before - done_before), (context, name, n)

    replay = nexus(nexus_home, "replay", rid, "--json")
    assert replay.code == 0, (context, replay.text)
    assert replay.json()["identical"] is True, context


# --------------------------------------------------------------------------- a live run


def test_cancel_a_live_run_and_refuse_to_resume_it(nexus_home: Path, tmp_path: Path) -> None:
    file = copy_workflow("long.yaml", tmp_path / "wf")
    marker = "30.4242"  # the slow task's unique sleep argument (see long.yaml)
    try:
        with running(nexus_home, file) as proc:
            wait_for("the slow task to start", lambda: host_pids(marker) or None, proc)
            ((rid,),) = query(nexus_home, "SELECT run_id FROM runs")

            refused = nexus(nexus_home, "resume", rid)
            assert refused.code == 3, refused.text
            assert f"being driven by pid {proc.pid}" in refused.stderr
            driven = nexus(nexus_home, "status", rid, "--json").json()
            assert driven["status"] == "running"
            assert driven["driven_by"]["pid"] == proc.pid

            cancel = nexus(nexus_home, "cancel", rid, "--json")
            assert cancel.code == 0, cancel.text
            answer = cancel.json()
            assert (answer["run_id"], answer["outcome"]) == (rid, "requested")
            assert answer["reason"] == "cancelled by user"
            assert proc.wait(timeout=5) == 1  # the running process stops the run itself
        result = json.loads((file.parent / "run.stdout").read_text(encoding="utf-8"))
        assert result["status"] == "cancelled"
        assert result["tasks"]["quick"]["status"] == "succeeded"
        assert result["tasks"]["slow"]["status"] == "cancelled"
        assert result["tasks"]["after"]["status"] == "skipped"
        # the task's command was stopped with it
        wait_for("the cancelled command to die", lambda: not host_pids(marker), timeout=5)
    finally:
        for pid in host_pids(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    status = nexus(nexus_home, "status", rid, "--json")
    assert status.code == 1
    assert status.json()["status"] == "cancelled"
    assert status.json()["driven_by"] is None
    assert marker_lines(file.parent / "marker.txt") == {"quick": 1}
    replay = nexus(nexus_home, "replay", rid, "--json")
    assert replay.code == 0, replay.text
    assert replay.json()["identical"] is True
