"""``nexus pause``: a live ``nexus run`` finishes its running attempt and exits paused; a
run nobody drives pauses at once; ``status``, ``inspect`` and ``events`` say who paused it
and why, a budget pause reads differently, and ``nexus resume`` goes on."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from cli_support import NEXUS, cli_env, nexus

WORKFLOW = """\
version: 1
name: held
max_parallel: 1
tasks:
  slow:
    tool: shell
    with: {cmd: "echo run >> slow.log; until test -f go; do sleep 0.05; done; echo done"}
  after: {needs: [slow], tool: shell, with: {cmd: "echo after >> after.log"}}
"""

GATED = """\
version: 1
name: gated
tasks:
  deploy: {tool: shell, with: {cmd: "echo deployed"}, approval: required}
"""

BUDGET = """\
version: 1
name: budget
budget: {tool_calls: 1}
tasks:
  a: {tool: shell, with: {cmd: "echo a"}}
  b: {needs: [a], tool: shell, with: {cmd: "echo b"}}
"""


def _events(home: Path, run_id: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = nexus(home, "events", run_id, "--json").json()
    return found


def _run_with(
    home: Path, tmp_path: Path, text: str, until: str
) -> tuple[subprocess.Popen[str], str]:
    """``nexus run`` of ``text`` in the background, once its log holds an ``until`` event."""
    wf = tmp_path / "flow.yaml"
    wf.write_text(text)
    proc = subprocess.Popen(
        [str(NEXUS), "run", str(wf), "--json"],
        env=cli_env(home),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = nexus(home, "runs", "--json").json() if (home / "nexus.db").exists() else []
        if runs and any(e["type"] == until for e in _events(home, runs[0]["run_id"])):
            return proc, runs[0]["run_id"]
        time.sleep(0.1)
    proc.kill()
    proc.communicate()
    raise AssertionError(f"the run never recorded {until}")


@pytest.mark.slow
def test_pause_a_live_run_then_resume_it(nexus_home: Path, tmp_path: Path) -> None:
    proc, run_id = _run_with(nexus_home, tmp_path, WORKFLOW, "attempt.started")
    try:
        asked = nexus(
            nexus_home, "pause", run_id, "--reason", "check slow", "--by", "ana", "--json"
        )
        assert asked.code == 0, asked.text
        assert asked.json() == {
            "run_id": run_id,
            "outcome": "requested",
            "by": "ana",
            "reason": "check slow",
        }
        deadline = time.monotonic() + 10
        while not any(e["type"] == "run.pause_requested" for e in _events(nexus_home, run_id)):
            assert time.monotonic() < deadline, "the running process never took the request"
            time.sleep(0.1)
        pausing = nexus(nexus_home, "status", run_id)
        assert "pausing (by ana: check slow): no new attempt starts, 1 running to finish" in (
            pausing.stdout
        )
        (tmp_path / "go").write_text("")
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 5, stderr  # paused
    result = json.loads(stdout)
    assert result["status"] == "paused"
    assert result["pause"]["kind"] == "user"
    assert result["tasks"]["after"]["status"] == "pending"
    assert not (tmp_path / "after.log").exists()

    status = nexus(nexus_home, "status", run_id)
    assert "paused by ana: check slow (since " in status.stdout
    assert f"`nexus resume {run_id}` continues it" in status.stdout
    doc = nexus(nexus_home, "status", run_id, "--json").json()
    assert {k: doc["pause"][k] for k in ("kind", "by", "reason")} == {
        "kind": "user",
        "by": "ana",
        "reason": "check slow",
    }
    lines = nexus(nexus_home, "events", run_id).stdout
    assert "run.pause_requested  by ana: check slow" in lines
    assert "run.paused           user: by ana: check slow" in lines

    resumed = nexus(nexus_home, "resume", run_id, "--json")
    assert resumed.code == 0, resumed.text
    assert resumed.json()["status"] == "succeeded"
    assert (tmp_path / "after.log").read_text() == "after\n"
    assert (tmp_path / "slow.log").read_text() == "run\n"
    replay = nexus(nexus_home, "replay", run_id, "--json")
    assert replay.code == 0, replay.text
    assert replay.json()["identical"] is True
    assert nexus(nexus_home, "audit", "verify", "--json").json()["ok"] is True


@pytest.mark.slow
def test_pause_a_run_nobody_drives_and_tell_it_from_a_budget_pause(
    nexus_home: Path, tmp_path: Path
) -> None:
    proc, run_id = _run_with(nexus_home, tmp_path, GATED, "approval.requested")
    proc.kill()
    proc.communicate()
    paused = nexus(nexus_home, "pause", run_id, "--reason", "change freeze")
    assert paused.code == 0, paused.text
    assert f"run {run_id}: paused" in paused.stdout
    assert f"continue it with: nexus resume {run_id}" in paused.stdout
    again = nexus(nexus_home, "pause", run_id)
    assert "is paused already" in again.stdout
    inspect = nexus(nexus_home, "inspect", run_id)
    assert "change freeze" in inspect.stdout
    assert "paused by " in inspect.stdout

    (tmp_path / "budget").mkdir()
    budget = tmp_path / "budget" / "budget.yaml"
    budget.write_text(BUDGET)
    spent = nexus(nexus_home, "run", str(budget), "--force", "--json")
    assert spent.code == 5, spent.text
    assert spent.json()["pause"] == {"kind": "budget"}
    other = spent.json()["run_id"]
    text = nexus(nexus_home, "status", other)
    assert f"paused for budget: see `nexus cost {other}`" in text.stdout
    assert "paused by" not in text.stdout


def test_pause_of_a_finished_run_changes_nothing(nexus_home: Path, tmp_path: Path) -> None:
    wf = tmp_path / "ok.yaml"
    wf.write_text("version: 1\nname: ok\ntasks:\n  a: {tool: noop}\n")
    done = nexus(nexus_home, "run", str(wf), "--json")
    assert done.code == 0, done.text
    run_id = done.json()["run_id"]
    before = _events(nexus_home, run_id)
    out = nexus(nexus_home, "pause", "latest")
    assert out.code == 0, out.text
    assert f"run {run_id}: had already finished; nothing to pause" in out.stdout
    assert _events(nexus_home, run_id) == before
    missing = nexus(nexus_home, "pause", "01UNKNOWN")
    assert missing.code == 4, missing.text
