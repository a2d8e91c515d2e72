"""``nexus stop --all``, the emergency stop: five live ``nexus run`` processes, each with a
long ``sleep`` in the shell tool, all stop within 2 s; no sandboxed process is left, and
each run's log says who stopped it and why."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import NEXUS, cli_env, host_pids, nexus

RUNS = 5


def _workflow(marker: str) -> str:
    return f"""\
version: 1
name: sleeper
tasks:
  sleep: {{tool: shell, with: {{cmd: "sleep {marker}"}}}}
"""


@contextlib.contextmanager
def _live_runs(
    home: Path, tmp_path: Path, markers: list[str]
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """One ``nexus run`` per marker, each in its own process group; killed on the way out."""
    procs = []
    try:
        for index, marker in enumerate(markers):
            folder = tmp_path / f"run{index}"
            folder.mkdir()
            (folder / "flow.yaml").write_text(_workflow(marker))
            procs.append(
                subprocess.Popen(
                    [str(NEXUS), "run", "flow.yaml", "--json"],
                    env=cli_env(home),
                    cwd=folder,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.mark.slow
def test_stop_all_stops_five_live_runs_within_two_seconds(nexus_home: Path, tmp_path: Path) -> None:
    nonce = random.randrange(10_000, 99_999)
    markers = [f"86{nonce}.{i}" for i in range(RUNS)]  # each sleep's unique argument
    with _live_runs(nexus_home, tmp_path, markers) as procs:
        deadline = time.monotonic() + 60
        while not all(host_pids(m) for m in markers):
            assert time.monotonic() < deadline, "the five sleeps never all started"
            assert all(p.poll() is None for p in procs), "a run ended before the stop"
            time.sleep(0.1)

        began = time.monotonic()
        stop = nexus(
            nexus_home, "stop", "--all", "--reason", "runaway test", "--by", "ops", "--json"
        )
        took = time.monotonic() - began
        assert stop.code == 0, stop.text
        # every sleep is gone the moment the stop returns: it waits for the runs' processes
        assert [m for m in markers if host_pids(m)] == [], "an orphan sleep outlived the stop"
        # from its first cancel request to the last run stopped, its process gone
        assert stop.json()["took_s"] < 2.0, stop.json()
        # and the command as a whole, Python's start-up and the store's opening included
        # (about 1 s on an idle machine; a loaded one stretches it)
        assert took < 10.0, f"nexus stop --all took {took:.2f} s"
        for proc in procs:
            assert proc.wait(timeout=10) == 1  # each `nexus run` ends: its run was cancelled

    report = stop.json()
    assert report["stopped"] is True
    assert report["by"] == "ops"
    assert report["reason"] == "emergency stop: runaway test"
    assert len(report["runs"]) == RUNS
    assert {(r["outcome"], r["status"], r["driven_by"]) for r in report["runs"]} == {
        ("requested", "cancelled", None)
    }
    for run in report["runs"]:
        events = nexus(nexus_home, "events", run["run_id"], "--json").json()
        (cancel,) = [e for e in events if e["type"] == "run.cancel_requested"]
        assert cancel["data"] == {"reason": "emergency stop: runaway test", "by": "ops"}
        assert events[-1]["type"] == "run.cancelled"
        lines = nexus(nexus_home, "events", run["run_id"], "--type", "run.cancel").stdout
        assert "emergency stop: runaway test" in lines
    assert nexus(nexus_home, "audit", "verify", "--json").json()["ok"] is True
    again = nexus(nexus_home, "stop", "--all")
    assert again.code == 0, again.text
    assert "no running run to stop" in again.stdout


def test_stop_needs_all(nexus_home: Path) -> None:
    out = nexus(nexus_home, "stop")
    assert out.code == 2
    assert "nexus stop needs --all" in out.stderr
    bad = nexus(nexus_home, "stop", "--all", "--wait", "-1")
    assert bad.code == 2
    assert "--wait must be 0 or more seconds" in bad.stderr
