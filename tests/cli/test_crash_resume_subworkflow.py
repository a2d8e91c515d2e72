"""Kill ``nexus run`` with SIGKILL inside a sub-workflow, then ``nexus resume`` it.

The sub-workflow's tasks are tasks of the run (``build/<id>``): the one killed
mid-command runs again, those that succeeded do not, the task that ends the
sub-workflow gets its outputs, and the run replays with no tool call.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import nexus
from test_crash_resume import kill_group, marker_lines, query, running, wait_for

pytestmark = pytest.mark.slow

PARENT = """\
version: 1
name: crash-sub
tasks:
  first: {tool: shell, with: {cmd: "echo first >> marker.txt"}}
  build:
    needs: first
    workflow: steps/build.yaml
    with: {label: "{{ tasks.first.output.exit_code }}"}
  last:
    needs: build
    tool: shell
    with: {cmd: "echo last >> marker.txt"}
"""
SUB = """\
version: 1
name: build
inputs: {label: none}
outputs: {label: "{{ inputs.label }}", slow: "{{ tasks.slow.output.exit_code }}"}
tasks:
  quick: {tool: shell, with: {cmd: "echo quick >> marker.txt"}}
  slow:
    needs: quick
    tool: shell
    with: {cmd: "echo slow >> marker.txt; sleep 1.5"}
"""


def test_kill_inside_a_sub_workflow_then_resume(nexus_home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "wf"
    (folder / "steps").mkdir(parents=True)
    (folder / "steps" / "build.yaml").write_text(SUB, encoding="utf-8")
    file = folder / "workflow.yaml"
    file.write_text(PARENT, encoding="utf-8")
    marker = folder / "marker.txt"

    def slow_is_running() -> bool:
        started = query(
            nexus_home,
            "SELECT 1 FROM events WHERE type = 'attempt.started' AND task = 'build/slow'",
        )
        return bool(started) and marker_lines(marker)["slow"] == 1

    with running(nexus_home, file) as proc:
        wait_for("the sub-workflow's slow task to start", slow_is_running, proc)
        kill_group(proc)

    (record,) = nexus(nexus_home, "runs", "--json").json()
    rid = record["run_id"]
    doc = nexus(nexus_home, "status", rid, "--json").json()
    assert doc["tasks"]["build/quick"]["status"] == "succeeded"
    assert doc["tasks"]["build/slow"] == {"status": "running", "attempts": 1}
    assert doc["tasks"]["build"]["status"] == "pending"

    resumed = nexus(nexus_home, "resume", rid, "--json")
    assert resumed.code == 0, resumed.text
    result = resumed.json()
    assert result["status"] == "succeeded"
    assert result["tasks"]["build/slow"] == {"status": "succeeded", "attempts": 2}
    assert marker_lines(marker) == {"first": 1, "quick": 1, "slow": 2, "last": 1}
    build = nexus(nexus_home, "inspect", rid, "--task", "build", "--json").json()
    assert build["output"] == {"label": 0, "slow": 0}

    audit = nexus(nexus_home, "audit", "verify", "--json")
    assert audit.code == 0, audit.text
    replay = nexus(nexus_home, "replay", rid, "--json")
    assert replay.code == 0, replay.text
    assert replay.json()["identical"] is True
    assert replay.json()["tools_executed"] == 0
