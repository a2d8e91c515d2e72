"""End-to-end tests of the ``nexus`` commands, run as a real subprocess.

Every command runs the installed console script with ``NEXUS_HOME`` in a
temporary directory; every invocation is checked never to print a traceback.
Tool tasks run in their workflow file's directory, so workflows that write
files are copied into ``tmp_path`` first.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from cli_support import WORKFLOWS, Out, nexus

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "release-notes" / "workflow.yaml"


def nexus_many(home: Path, *commands: Sequence[str | Path]) -> list[Out]:
    """Run independent commands at the same time (each CLI start costs ~0.5 s of imports)."""
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        return list(pool.map(lambda args: nexus(home, *args), commands))


def copy_workflow(name: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(WORKFLOWS / name, into / name))


def run_json(home: Path, file: Path, *args: str) -> tuple[Out, dict[str, Any]]:
    """``nexus run --json``: stdout is exactly one JSON object."""
    out = nexus(home, "run", file, "--json", *args)
    doc = out.json()
    assert isinstance(doc, dict), out.text
    return out, doc


# --------------------------------------------------------------------------- the example


@dataclass(frozen=True)
class ExampleRun:
    home: Path
    out: Out
    doc: dict[str, Any]

    @property
    def run_id(self) -> str:
        return str(self.doc["run_id"])


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> ExampleRun:
    """One run of the bundled example, shared by the read-only tests below."""
    home = tmp_path_factory.mktemp("example") / "home"
    out, doc = run_json(home, EXAMPLE)
    return ExampleRun(home, out, doc)


def test_validate_the_example(tmp_path: Path) -> None:
    text, doc = nexus_many(
        tmp_path / "home", ["validate", EXAMPLE], ["validate", EXAMPLE, "--json"]
    )
    assert text.code == 0, text.text
    assert "valid" in text.stdout
    assert "release-notes" in text.stdout
    assert doc.code == 0
    assert doc.json() == {"valid": True, "name": "release-notes", "tasks": 3}


def test_run_json_reports_every_task(example: ExampleRun) -> None:
    assert example.out.code == 0, example.out.text
    doc = example.doc
    assert set(doc) == {"run_id", "status", "tasks"}
    assert doc["status"] == "succeeded"
    assert len(doc["run_id"]) == 26
    tasks = doc["tasks"]
    assert {"changelog", "draft", "per_platform", "per_platform[0]", "per_platform[1]"} <= set(
        tasks
    )
    for tid, task in tasks.items():
        assert task["status"] == "succeeded", tid
        assert isinstance(task["attempts"], int)
    assert tasks["changelog"]["attempts"] == 1
    assert tasks["draft"]["attempts"] == 1
    assert tasks["per_platform[0]"]["attempts"] == 1


def test_plan_json_is_stable_and_matches_the_run(example: ExampleRun) -> None:
    first, second, text, listed = nexus_many(
        example.home,
        ["plan", EXAMPLE, "--json"],
        ["plan", EXAMPLE, "--json"],
        ["plan", EXAMPLE],
        ["runs", "--json"],
    )
    assert first.code == second.code == 0, first.text
    a, b = first.json(), second.json()
    assert a["plan_hash"] == b["plan_hash"]
    assert len(a["plan_hash"]) == 64
    assert a["name"] == "release-notes"
    assert a["order"] == ["changelog", "draft", "per_platform"]
    assert a["critical_path"] == ["changelog", "draft", "per_platform"]
    assert ["changelog", "draft"] in a["edges"]

    assert listed.code == 0
    (record,) = listed.json()
    assert record["run_id"] == example.run_id
    assert record["plan_hash"] == a["plan_hash"]
    assert record["name"] == "release-notes"
    assert record["status"] == "succeeded"
    assert record["events"] > 10
    assert text.code == 0
    assert a["plan_hash"] in text.stdout
    assert "critical path (3): changelog -> draft -> per_platform" in text.stdout


def test_runs_table_shows_full_run_ids(example: ExampleRun) -> None:
    # the table is what people copy ids from, even when piped (80 columns)
    table = nexus(example.home, "runs")
    assert table.code == 0
    assert example.run_id in table.stdout
    assert "succeeded" in table.stdout


def test_status(example: ExampleRun) -> None:
    doc = nexus(example.home, "status", example.run_id, "--json")
    assert doc.code == 0, doc.text
    status = doc.json()
    assert status["run_id"] == example.run_id
    assert status["status"] == "succeeded"
    assert status["driven_by"] is None
    assert status["counts"] == {"succeeded": 5}
    assert status["ended_at"] is not None


def test_inspect_run_and_task(example: ExampleRun) -> None:
    rid = example.run_id
    run, task, text, one = nexus_many(
        example.home,
        ["inspect", rid, "--json"],
        ["inspect", rid, "--task", "draft", "--json"],
        ["inspect", rid],
        ["inspect", rid, "-t", "draft"],
    )
    assert run.code == 0, run.text
    doc = run.json()
    assert doc["status"] == "succeeded"
    assert doc["tasks"]["draft"]["agent"] == "writer"
    assert doc["tasks"]["draft"]["output"] is not None

    assert task.code == 0, task.text
    draft = task.json()
    assert draft["id"] == "draft"
    assert draft["status"] == "succeeded"
    assert draft["attempts"] == 1
    assert "Release 1.0" in json.dumps(draft["output"])
    types = [e["type"] for e in draft["events"]]
    assert types[0] == "attempt.started"
    assert types[-1] == "task.succeeded"
    assert all(e["data"]["task"] == "draft" for e in draft["events"])

    assert text.code == 0
    assert "per_platform[1]" in text.stdout
    assert "writer" in text.stdout
    assert one.code == 0
    assert "task draft: succeeded after 1 attempt(s)" in one.stdout
    assert "Release 1.0" in one.stdout


def test_events_log_and_filters(example: ExampleRun) -> None:
    rid = example.run_id
    everything, by_type, by_task = nexus_many(
        example.home,
        ["events", rid, "--json"],
        ["events", rid, "--type", "task.", "--json"],
        ["events", rid, "--task", "changelog", "--json"],
    )
    assert everything.code == 0, everything.text
    events = everything.json()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "run.started"
    assert events[-1]["type"] == "run.succeeded"
    for prev, event in pairwise(events):
        assert event["prev_hash"] == prev["hash"]
        assert event["run_id"] == example.run_id

    succeeded = by_type.json()
    assert {e["type"] for e in succeeded} == {"task.succeeded", "task.expanded"}
    assert {e["data"]["task"] for e in succeeded if e["type"] == "task.succeeded"} == set(
        example.doc["tasks"]
    )

    one = by_task.json()
    assert one
    assert {e["data"]["task"] for e in one} == {"changelog"}


def test_replay_of_the_example_is_identical(example: ExampleRun) -> None:
    out = nexus(example.home, "replay", example.run_id, "--json")
    assert out.code == 0, out.text
    report = out.json()
    assert report["identical"] is True
    assert report["tools_executed"] == 0
    assert report["original_events"] == report["replayed_events"]
    assert report["first_divergence"] is None


def test_export_bundle_to_a_file(example: ExampleRun, tmp_path: Path) -> None:
    target = tmp_path / "bundle.json"
    out = nexus(example.home, "export", example.run_id, "-o", target)
    assert out.code == 0, out.text
    assert str(target) in out.stderr
    bundle = json.loads(target.read_text(encoding="utf-8"))
    assert bundle["format"] == "nexus-run-export/1"
    assert bundle["run"]["run_id"] == example.run_id
    assert bundle["run"]["status"] == "succeeded"
    assert bundle["audit"]["ok"] is True
    assert bundle["source"] == str(EXAMPLE.resolve())
    assert len(bundle["events"]) == bundle["run"]["events"]
    assert bundle["events"][0]["type"] == "run.started"
    assert bundle["plan"]["name"] == "release-notes"


def test_audit_verify_ok(example: ExampleRun) -> None:
    out = nexus(example.home, "audit", "verify", "--json")
    assert out.code == 0, out.text
    report = out.json()
    assert report["ok"] is True
    assert report["runs"] == 1
    assert report["first_bad"] is None


# --------------------------------------------------------------------------- small workflows


def test_failed_run_exits_1_and_reports_the_failure(nexus_home: Path, tmp_path: Path) -> None:
    file = copy_workflow("failing.yaml", tmp_path / "wf")
    out, doc = run_json(nexus_home, file)
    assert out.code == 1, out.text
    assert doc["status"] == "failed"
    assert doc["tasks"]["loud"] == {"status": "succeeded", "attempts": 1}
    assert doc["tasks"]["boom"] == {"status": "failed", "attempts": 1}
    assert doc["tasks"]["never"] == {"status": "skipped", "attempts": 0}
    assert not (file.parent / "never.txt").exists()
    rid = doc["run_id"]

    status, boom_out, table, loud, again = nexus_many(
        nexus_home,
        ["status", rid, "--json"],
        ["inspect", rid, "--task", "boom", "--json"],
        ["inspect", rid],
        ["inspect", rid, "--task", "loud"],
        ["run", file],  # the human form
    )
    assert status.code == 1  # the check "this run succeeded" does not hold
    assert status.json()["status"] == "failed"

    boom = boom_out.json()
    assert boom["status"] == "failed"
    assert "exited with 7" in boom["error"]["message"]

    # the table has skipped tasks; output that looks like markup is shown verbatim
    assert table.code == 0, table.text
    assert "skipped" in table.stdout
    assert "exited with 7" in table.stdout
    assert loud.code == 0, loud.text
    assert "[/x] [bold]not bold[/bold]" in loud.stdout

    # the human form says so too, and points at inspect
    assert again.code == 1
    assert "failed" in again.stdout
    assert "nexus inspect" in again.stdout
    assert "boom" in again.stderr  # the progress lines


def test_inputs_override_with_json_values(nexus_home: Path, tmp_path: Path) -> None:
    file = copy_workflow("inputs.yaml", tmp_path / "wf")
    out, doc = run_json(
        nexus_home,
        file,
        "-i",
        "count=3",
        "-i",
        "label=hello world",
        "--input",
        'platforms=["linux", "macos", "windows"]',
    )
    assert out.code == 0, out.text
    assert doc["status"] == "succeeded"
    assert {t for t in doc["tasks"] if t.startswith("each[")} == {"each[0]", "each[1]", "each[2]"}
    show = nexus(nexus_home, "inspect", doc["run_id"], "--task", "show", "--json").json()
    assert show["output"] == {
        "count": 3,
        "label": "hello world",
        "platforms": ["linux", "macos", "windows"],
    }

    undeclared, malformed = nexus_many(
        nexus_home, ["run", file, "-i", "bogus=1"], ["run", file, "-i", "novalue"]
    )
    assert undeclared.code == 2
    assert "unknown input 'bogus'" in undeclared.stderr
    assert "count" in undeclared.stderr  # names the declared inputs
    assert malformed.code == 2
    assert "key=value" in malformed.stderr
    listed = nexus(nexus_home, "runs", "--json").json()
    assert [r["run_id"] for r in listed] == [doc["run_id"]]  # the bad commands started no run


def test_replay_does_not_execute_tools_again(nexus_home: Path, tmp_path: Path) -> None:
    file = copy_workflow("replay.yaml", tmp_path / "wf")
    side_effect = file.parent / "side_effect.txt"
    out, doc = run_json(nexus_home, file)
    assert out.code == 0, out.text
    assert doc["tasks"]["flaky"] == {"status": "succeeded", "attempts": 2}
    before = side_effect.read_bytes()
    assert before == b"ran\nsecond\n"
    stamp = side_effect.stat().st_mtime_ns

    replayed = nexus(nexus_home, "replay", doc["run_id"], "--json")
    assert replayed.code == 0, replayed.text
    report = replayed.json()
    assert report["identical"] is True
    assert report["complete"] is True
    assert report["tools_executed"] == 0
    assert report["effects_served"] == 4  # append, flaky twice, after
    assert side_effect.read_bytes() == before
    assert side_effect.stat().st_mtime_ns == stamp


def test_audit_names_the_first_tampered_event(nexus_home: Path, tmp_path: Path) -> None:
    file = copy_workflow("chain.yaml", tmp_path / "wf")
    # two runs at once on a fresh home: both processes create the database
    first, second = nexus_many(nexus_home, ["run", file, "--json"], ["run", file, "--json"])
    untouched, victim = first.json(), second.json()
    assert untouched["status"] == victim["status"] == "succeeded"
    rid = victim["run_id"]
    assert nexus(nexus_home, "audit", "verify").code == 0

    with closing(sqlite3.connect(nexus_home / "nexus.db")) as db:
        seq, body = db.execute(
            "SELECT seq, body FROM events WHERE run_id = ? AND type = 'effect.recorded' "
            "ORDER BY seq LIMIT 1",
            (rid,),
        ).fetchone()
        forged = body.replace("tamper-me", "tampered!")
        assert forged != body
        with db:
            db.execute(
                "UPDATE events SET body = ? WHERE run_id = ? AND seq = ?", (forged, rid, seq)
            )

    text, doc, clean = nexus_many(
        nexus_home,
        ["audit", "verify"],
        ["audit", "verify", "--json"],
        ["audit", "verify", untouched["run_id"], "--json"],
    )
    assert text.code == 1
    assert rid in text.text
    assert f"seq {seq}" in text.text

    assert doc.code == 1
    report = doc.json()
    assert report["ok"] is False
    assert report["first_bad"]["run_id"] == rid
    assert report["first_bad"]["seq"] == seq

    assert clean.code == 0
    assert clean.json()["ok"] is True
