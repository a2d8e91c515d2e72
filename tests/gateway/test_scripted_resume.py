"""A scripted fan-out killed with SIGKILL mid-item, then `nexus resume`: each item calls its tool.

The real ``nexus`` script runs in its own process group (as in
tests/cli/test_crash_resume.py); the test waits until the second item's tool
command is under way, kills the group, resumes, and reads the log. Before the
scripted provider took its position from the engine, items after the first
skipped their ``@call`` line, and the resumed item skipped it too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

NEXUS = Path(sys.executable).parent / "nexus"
ITEMS = ["oslo", "bergen", "tromso", "bodo", "alta"]
WORKFLOW = """\
version: 1
name: scripted-fan-out
max_parallel: 1
agents:
  r:
    model: scripted:r
    tools: [shell]
    scripted:
      - '@call shell {"cmd": "echo {{ item }} >> marker.txt; sleep 0.6"}'
      - "{{ item }} noted"
tasks:
  each:
    agent: r
    foreach: [oslo, bergen, tromso, bodo, alta]
    prompt: "Note {{ item }}"
"""


def env(home: Path) -> dict[str, str]:
    values = {**os.environ, "NEXUS_HOME": str(home), "NO_COLOR": "1"}
    values.pop("FORCE_COLOR", None)
    return values


def nexus(home: Path, cwd: Path, *args: str) -> Any:
    proc = subprocess.run(
        [str(NEXUS), *args],
        capture_output=True,
        text=True,
        env=env(home),
        cwd=cwd,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def marker(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split() if path.exists() else []


def item_outputs(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        e["data"]["task"]: e["data"]["output"]
        for e in events
        if e["type"] == "attempt.finished" and "output" in e["data"]
    }


def test_a_killed_scripted_fan_out_resumes_with_every_tool_call(tmp_path: Path) -> None:
    home = tmp_path / "home"
    wf = tmp_path / "wf"
    wf.mkdir()
    (wf / "wf.yaml").write_text(WORKFLOW, encoding="utf-8")
    marks = wf / "marker.txt"

    with (
        open(wf / "run.out", "wb") as out,
        open(wf / "run.err", "wb") as err,
    ):
        proc = subprocess.Popen(
            [str(NEXUS), "run", "wf.yaml", "--json"],
            env=env(home),
            cwd=wf,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while len(marker(marks)) < 2:  # the second item's tool command is running
            assert proc.poll() is None, (wf / "run.err").read_text()
            assert time.monotonic() < deadline, "the fan-out did not reach its second item"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    (record,) = nexus(home, wf, "runs", "--json")
    rid = record["run_id"]
    assert record["status"] == "running"
    resumed = nexus(home, wf, "resume", rid, "--json")
    assert resumed["status"] == "succeeded", resumed

    events = nexus(home, wf, "events", rid, "--json")
    interrupted = [e["data"]["task"] for e in events if e["type"] == "attempt.interrupted"]
    assert interrupted == ["each[1]"]
    outputs = item_outputs(events)
    for index, city in enumerate(ITEMS):
        out = outputs[f"each[{index}]"]
        assert out["tool_calls"] == 1, (city, out)
        assert out["text"] == f"{city} noted"
    # every item ran its command; only the interrupted one may have run it twice
    seen = marker(marks)
    assert sorted(set(seen)) == sorted(ITEMS)
    assert all(seen.count(city) == 1 for city in ITEMS if city != "bergen")

    replay = nexus(home, wf, "replay", rid, "--json")
    assert replay["identical"] is True
    assert replay["tools_executed"] == 0
