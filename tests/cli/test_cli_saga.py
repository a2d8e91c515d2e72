"""A saga across ``kill -9``: a real ``nexus run`` is killed in the middle of
compensating, ``nexus resume`` finishes the saga -- each compensation once, in the
reverse order of the steps -- and the log verifies and replays with no tool call."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import nexus
from test_crash_resume import copy_workflow, kill_group, marker_lines, query, running, wait_for

pytestmark = pytest.mark.slow


def test_a_saga_killed_while_compensating_resumes_each_compensation_once(
    nexus_home: Path, tmp_path: Path
) -> None:
    file = copy_workflow("saga.yaml", tmp_path / "wf")
    marker = file.parent / "marker.txt"

    def second_compensation_waits() -> bool:
        done = query(
            nexus_home,
            "SELECT 1 FROM events WHERE type = 'task.succeeded' AND task = 'charge.compensate'",
        )
        return bool(done) and marker_lines(marker)["waiting"] == 1

    with running(nexus_home, file) as proc:
        wait_for("the second compensation to start", second_compensation_waits, proc)
        kill_group(proc)

    (record,) = nexus(nexus_home, "runs", "--json").json()
    rid = record["run_id"]
    assert record["status"] == "running"
    (file.parent / "go").touch()  # the compensation cut off by the kill may go on now

    resumed = nexus(nexus_home, "resume", rid, "--json")
    assert resumed.code == 1, resumed.text  # the run failed: `ship` did
    result = resumed.json()
    assert result["status"] == "failed"
    assert result["tasks"]["deliver"]["status"] == "skipped"
    assert result["tasks"]["charge.compensate"] == {"status": "succeeded", "attempts": 1}
    assert result["tasks"]["reserve.compensate"] == {"status": "succeeded", "attempts": 2}
    lines = marker.read_text(encoding="utf-8").split()
    assert lines == ["reserve", "charge", "ship", "undo-charge", "waiting", "undo-reserve"], (
        "each step and each compensation once, compensated in reverse"
    )

    events = nexus(nexus_home, "events", rid, "--json").json()
    kinds = [(e["type"], e["data"].get("task")) for e in events]
    assert kinds.count(("saga.started", "ship")) == 1
    assert [t for k, t in kinds if k == "compensation.started"] == ["charge", "reserve"]
    (finished,) = [e["data"] for e in events if e["type"] == "saga.finished"]
    assert finished == {
        "task": "ship",
        "compensated": ["charge", "reserve"],
        "failed": [],
        "not_run": [],
    }
    interrupted = [e["data"] for e in events if e["type"] == "attempt.interrupted"]
    assert [(d["task"], d["attempt"]) for d in interrupted] == [("reserve.compensate", 1)]

    text = nexus(nexus_home, "events", rid, "--type", "saga.").stdout
    assert "ship failed: compensating charge, reserve, in this order" in text
    inspect = nexus(nexus_home, "inspect", rid)
    assert "saga (finished): ship failed; compensations in order: charge succeeded, " in (
        inspect.stdout
    )

    audit = nexus(nexus_home, "audit", "verify", "--json")
    assert audit.code == 0, audit.text
    replay = nexus(nexus_home, "replay", rid, "--json")
    assert replay.code == 0, replay.text
    assert replay.json()["identical"] is True
    assert replay.json()["tools_executed"] == 0
    assert marker.read_text(encoding="utf-8").split() == lines, "a replay runs nothing"
