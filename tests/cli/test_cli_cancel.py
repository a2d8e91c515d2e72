"""``nexus cancel RUN --reason --by``: who cancelled a run and why, in ``run.cancel_requested``.

A run no process drives (here: one paused for budget) is cancelled by the
command itself; a live one is asked through its process, which records the
same two fields. Without ``--by`` the user the command runs as is named.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cli_support import NEXUS, cli_env, nexus

from nexus.engine.control import os_user

BUDGET = """\
version: 1
name: budget
budget: {tool_calls: 1}
tasks:
  a: {tool: shell, with: {cmd: "echo a"}}
  b: {needs: [a], tool: shell, with: {cmd: "echo b"}}
"""

GATED = """\
version: 1
name: gated
tasks:
  deploy: {tool: shell, with: {cmd: "echo deployed"}, approval: required}
"""


def cancel_events(home: Path, run_id: str) -> list[dict[str, Any]]:
    found = nexus(home, "events", run_id, "--type", "run.cancel_requested", "--json").json()
    return [e["data"] for e in found]


def paused_run(home: Path, tmp_path: Path) -> str:
    wf = tmp_path / "budget.yaml"
    wf.write_text(BUDGET)
    spent = nexus(home, "run", str(wf), "--force", "--json")
    assert spent.code == 5, spent.text  # paused for budget: no process drives it now
    return str(spent.json()["run_id"])


def test_cancel_records_who_and_why(nexus_home: Path, tmp_path: Path) -> None:
    run_id = paused_run(nexus_home, tmp_path)
    out = nexus(
        nexus_home, "cancel", run_id[:12], "--reason", "wrong inputs", "--by", "ana", "--json"
    )
    assert out.code == 0, out.text
    assert out.json() == {
        "run_id": run_id,
        "outcome": "cancelled",
        "by": "ana",
        "reason": "wrong inputs",
    }
    assert cancel_events(nexus_home, run_id) == [{"reason": "wrong inputs", "by": "ana"}]
    assert nexus(nexus_home, "status", run_id, "--json").json()["status"] == "cancelled"
    again = nexus(nexus_home, "cancel", run_id, "--reason", "twice")
    assert f"run {run_id}: had already finished" in again.stdout
    assert len(cancel_events(nexus_home, run_id)) == 1


def test_cancel_names_the_user_by_default(nexus_home: Path, tmp_path: Path) -> None:
    run_id = paused_run(nexus_home, tmp_path)
    out = nexus(nexus_home, "cancel", run_id)
    assert out.code == 0, out.text
    assert f"run {run_id}: cancelled" in out.stdout
    assert cancel_events(nexus_home, run_id) == [{"reason": "cancelled by user", "by": os_user()}]


@pytest.mark.slow
def test_a_live_run_records_who_cancelled_it(nexus_home: Path, tmp_path: Path) -> None:
    wf = tmp_path / "gated.yaml"
    wf.write_text(GATED)
    proc = subprocess.Popen(
        [str(NEXUS), "run", str(wf), "--json"],
        env=cli_env(nexus_home),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        run_id = ""
        while not run_id and time.monotonic() < deadline:
            time.sleep(0.1)
            if not (nexus_home / "nexus.db").exists():
                continue
            runs = nexus(nexus_home, "runs", "--json").json()
            types = [e["type"] for e in nexus(nexus_home, "events", "latest", "--json").json()]
            if runs and "approval.requested" in types:
                run_id = runs[0]["run_id"]
        assert run_id, "the run never asked for approval"
        asked = nexus(nexus_home, "cancel", run_id, "--reason", "not today", "--by", "ops")
        assert asked.code == 0, asked.text
        assert "cancel requested" in asked.stdout
        proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    assert cancel_events(nexus_home, run_id) == [{"reason": "not today", "by": "ops"}]
