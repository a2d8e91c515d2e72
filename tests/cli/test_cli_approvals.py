"""`nexus approve` / `nexus reject` against a run waiting in another process."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from cli_support import NEXUS, cli_env, nexus

from nexus.domain.errors import WorkflowError
from nexus.planning.workflow import compile_workflow

pytestmark = pytest.mark.slow

WORKFLOW = """\
version: 1
name: gated
tasks:
  build: {tool: shell, with: {cmd: "echo built"}}
  deploy:
    needs: [build]
    tool: shell
    with: {cmd: "echo deployed > deployed.txt"}
    approval: required
"""


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, str]:
    home = tmp_path / "home"
    wf = tmp_path / "gated.yaml"
    wf.write_text(WORKFLOW)
    proc = subprocess.Popen(
        [str(NEXUS), "run", str(wf), "--json"],
        env=cli_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        runs = nexus(home, "runs", "--json").json() if (home / "nexus.db").exists() else []
        if runs:
            run_id = runs[0]["run_id"]
            types = [e["type"] for e in nexus(home, "events", run_id, "--json").json()]
            if "approval.requested" in types:
                return proc, home, run_id
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the run never asked for approval")


def test_approve_from_another_process(tmp_path: Path) -> None:
    proc, home, run_id = _start(tmp_path)
    status = nexus(home, "status", run_id, "--json")
    assert status.json()["tasks"]["deploy"]["status"] == "awaiting_approval"
    answer = nexus(home, "approve", run_id, "deploy", "--by", "ana", "--json")
    assert answer.code == 0
    assert answer.json()["outcome"] == "requested"
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert json.loads(stdout)["status"] == "succeeded"
    assert (tmp_path / "deployed.txt").read_text() == "deployed\n"


def test_reject_fails_the_run_and_answering_twice_is_a_conflict(tmp_path: Path) -> None:
    proc, home, run_id = _start(tmp_path)
    answer = nexus(home, "reject", run_id, "deploy", "--reason", "freeze week")
    assert answer.code == 0, answer.text
    proc.communicate(timeout=30)
    assert proc.returncode == 1
    task = nexus(home, "inspect", run_id, "--task", "deploy", "--json").json()
    assert task["status"] == "failed"
    assert task["error"]["kind"] == "policy_denied"
    assert "freeze week" in task["error"]["message"]
    again = nexus(home, "approve", run_id, "deploy")
    assert again.code == 3
    assert "not awaiting approval" in again.stderr


def test_approval_settings_are_validated() -> None:
    doc = {
        "version": 1,
        "name": "x",
        "tasks": {"a": {"tool": "noop", "approval": {"timeout": 5, "on_timeout": "maybe"}}},
    }
    with pytest.raises(WorkflowError, match="on_timeout"):
        compile_workflow(doc, file="x.yaml")
    doc["tasks"]["a"]["approval"] = {"timeout": 5, "on_timeout": "escalate"}  # type: ignore[index]
    plan = compile_workflow(doc, file="x.yaml")
    policy = plan.tasks["a"].approval
    assert policy is not None
    assert (policy.timeout, policy.on_timeout) == (5.0, "escalate")
