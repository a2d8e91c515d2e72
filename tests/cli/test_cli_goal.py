"""Missions from a goal: ``nexus run --goal`` plans with the agents file's planner, checks
the plan like a workflow file, runs it, and survives ``kill -9`` in the middle of it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from cli_support import NEXUS, cli_env, nexus

from nexus import Workflow
from nexus.domain.errors import UserError, WorkflowError
from nexus.planning.goal import PLAN_TASK, goal_workflow, plan_schema

#: The planner's answer: ten tasks, fetch -> three parallel drafts -> ... -> publish.
TEN = {
    "summary": "ten steps",
    "tasks": [
        {"id": "fetch", "tool": "shell", "with": {"cmd": "echo fetch >> m; echo notes"}},
        *[
            {
                "id": f"part{i}",
                "needs": ["fetch"],
                "tool": "shell",
                "with": {"cmd": f"echo part{i} >> m; sleep 0.4; echo {i}"},
            }
            for i in range(1, 7)
        ],
        {
            "id": "edit",
            "needs": [f"part{i}" for i in range(1, 7)],
            "capability": "write",
            "prompt": "Join {% raw %}{{ tasks.part1.output.stdout }}{% endraw %} and the rest.",
        },
        {"id": "check", "needs": ["edit"], "tool": "shell", "with": {"cmd": "echo check >> m"}},
        {
            "id": "publish",
            "needs": ["check"],
            "tool": "shell",
            "with": {"cmd": "echo publish >> m"},
        },
    ],
}


def _agents(folder: Path, answer: Any = TEN, **extra: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "agents": {
            "lead": {
                "role": "planner",
                "model": "scripted:lead",
                "scripted": [json.dumps(answer)],
            },
            "writer": {
                "role": "writer",
                "model": "scripted:writer",
                "capabilities": ["write"],
                "scripted": ["joined"],
            },
        },
        "tools": ["shell"],
        **extra,
    }
    path = folder / "agents.yaml"
    path.write_text(json.dumps(doc), encoding="utf-8")  # JSON is YAML
    return path


def _events(home: Path, run_id: str) -> list[tuple[int, str, str | None]]:
    db = home / "nexus.db"
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        rows = conn.execute(
            "SELECT seq, type, task FROM events WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
    return [(int(s), str(t), k) for s, t, k in rows]


def _run_id(home: Path) -> str | None:
    db = home / "nexus.db"
    if not db.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
            row = conn.execute("SELECT run_id FROM runs LIMIT 1").fetchone()
    except sqlite3.OperationalError:
        return None
    return None if row is None else str(row[0])


# --------------------------------------------------------------------------- the document


def test_the_planner_is_the_agent_with_role_planner(tmp_path: Path) -> None:
    doc = goal_workflow(
        "write a note",
        {
            "agents": {
                "a": {"role": "planner", "model": "x:y"},
                "b": {"model": "x:y", "capabilities": ["w"]},
            }
        },
        file="agents.yaml",
    )
    plan = doc["tasks"][PLAN_TASK]
    assert plan["agent"] == "a"
    assert plan["extend"] == {"max_tasks": 50, "review": False, "replan": 1}
    assert doc["inputs"] == {"goal": "write a note"}
    assert "{{ inputs.goal }}" in plan["prompt"], "the goal is an input, never part of a template"
    assert plan["output_schema"] == plan_schema(["w"], [], 50)


@pytest.mark.parametrize(
    ("agents", "expected"),
    [
        ({"a": {"model": "x:y", "capabilities": ["w"]}}, "no agent has role 'planner'"),
        (
            {"a": {"role": "planner", "model": "x:y"}, "b": {"role": "planner", "model": "x:y"}},
            "2 agents have role 'planner' (a, b)",
        ),
        ({"a": {"role": "planner", "model": "x:y"}}, "nothing can carry out a plan"),
    ],
)
def test_who_plans_must_be_clear(agents: dict[str, Any], expected: str) -> None:
    with pytest.raises(WorkflowError) as caught:
        goal_workflow("g", {"agents": agents}, file="agents.yaml")
    assert expected in str(caught.value)
    assert "agents.yaml" in str(caught.value)


def test_a_goal_must_say_something() -> None:
    agents = {"agents": {"a": {"role": "planner", "model": "x:y", "capabilities": ["w"]}}}
    with pytest.raises(UserError, match="empty"):
        goal_workflow("  ", agents, file="f")
    with pytest.raises(UserError, match="at most"):
        goal_workflow("x" * 20_001, agents, file="f")


def test_the_schema_offers_only_what_the_agents_file_offers() -> None:
    schema = plan_schema(["write"], [], 5)
    task = schema["properties"]["tasks"]["items"]
    assert "tool" not in task["properties"], "no tool unless the agents file lists one"
    assert task["additionalProperties"] is False
    assert schema["properties"]["tasks"]["maxItems"] == 5


def test_workflow_from_goal_compiles_and_names_unknown_tools(tmp_path: Path) -> None:
    wf = Workflow.from_goal("write a note", _agents(tmp_path), review=True, max_tasks=12)
    plan = wf.compile()
    spec = plan.tasks[PLAN_TASK]
    assert spec.extend is not None
    assert spec.extend.review
    assert plan.extension_limits.max_tasks == 12
    bad = _agents(tmp_path / "bad", tools=["shell", "teleport"])
    with pytest.raises(WorkflowError, match=r"unknown tool 'teleport'"):
        Workflow.from_goal("write a note", bad)


# --------------------------------------------------------------------------- the CLI


def test_nexus_run_goal_plans_checks_and_runs(tmp_path: Path) -> None:
    home = tmp_path / ".nexus"
    agents = _agents(tmp_path)
    out = nexus(home, "run", "--goal", "publish the notes", "--agents", agents, "--json")
    assert out.code == 0, out.text
    result = out.json()
    assert result["status"] == "succeeded"
    assert len(result["tasks"]) == 11  # the planning task and the ten it planned
    shown = nexus(home, "events", result["run_id"], "--type", "plan.extended")
    assert "plan attempt 1 added 10 tasks (depth 1)" in shown.stdout
    assert nexus(home, "replay", result["run_id"], "--json").json()["identical"] is True


def test_nexus_run_goal_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    home = tmp_path / ".nexus"
    out = nexus(home, "run", "--goal", "x")
    assert out.code != 0
    assert "--agents" in out.stderr
    out = nexus(home, "run", "wf.yaml", "--goal", "x")
    assert "not both" in out.stderr
    cyclic = {
        "tasks": [
            {"id": "a", "needs": ["b"], "tool": "shell", "with": {"cmd": "true"}},
            {"id": "b", "needs": ["a"], "tool": "shell", "with": {"cmd": "true"}},
        ]
    }
    out = nexus(home, "run", "--goal", "x", "--agents", _agents(tmp_path / "c", cyclic), "--json")
    assert out.code != 0
    result = out.json()
    assert result["status"] == "failed"
    run = nexus(home, "inspect", result["run_id"], "--task", "plan").stdout
    assert "dependency cycle" in run


@pytest.mark.slow
def test_kill_in_the_middle_of_a_goal_mission_then_resume(tmp_path: Path) -> None:
    home = tmp_path / ".nexus"
    agents = _agents(tmp_path)
    marks = tmp_path / "m"
    with (
        open(tmp_path / "run.out", "wb") as stdout,
        open(tmp_path / "run.err", "wb") as stderr,
    ):
        proc = subprocess.Popen(
            [str(NEXUS), "run", "--goal", "publish the notes", "--agents", str(agents), "--json"],
            env=cli_env(home),
            cwd=tmp_path,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        run_id = None
        while time.monotonic() < deadline:
            run_id = run_id or _run_id(home)
            if run_id is not None:
                done = [t for _, kind, t in _events(home, run_id) if kind == "task.succeeded"]
                if "fetch" in done and any(t and t.startswith("part") for t in done):
                    break
            assert proc.poll() is None, "the run ended before the kill"
            time.sleep(0.02)
        else:
            pytest.fail("the plan never got under way")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert run_id is not None
    before = _events(home, run_id)
    completed = {t for _, kind, t in before if kind == "task.succeeded"}
    cut = before[-1][0]
    out = nexus(home, "resume", run_id, "--json")
    assert out.code == 0, out.text
    assert out.json()["status"] == "succeeded"
    after = _events(home, run_id)
    assert [kind for _, kind, _ in after].count("plan.extended") == 1, "extended once"
    restarted = {t for seq, kind, t in after if kind == "attempt.started" and seq > cut}
    assert not restarted & completed, f"ran again after it was complete: {restarted & completed}"
    ran = Counter(marks.read_text().split())
    assert ran["fetch"] == 1
    assert ran["publish"] == 1
    assert nexus(home, "replay", run_id, "--json").json()["identical"] is True


def test_nexus_plan_goal_proposes_and_runs_nothing_until_approved(tmp_path: Path) -> None:
    home = tmp_path / ".nexus"
    agents = _agents(tmp_path)
    out = nexus(home, "plan", "--goal", "publish the notes", "--agents", agents, "--json")
    assert out.code == 0, out.text
    proposal = out.json()
    assert proposal["summary"] == "ten steps"
    assert [t["id"] for t in proposal["tasks"]][:2] == ["fetch", "part1"]
    assert proposal["estimate"]["tool_calls"] == 9
    run_id = proposal["run_id"]
    assert not (tmp_path / "m").exists(), "nothing the planner proposed has run"
    (record,) = nexus(home, "runs", "--json").json()
    assert record["status"] == "running"
    shown = nexus(home, "plan", "--goal", "publish the notes", "--agents", agents)
    assert "nothing has run: nexus approve" in shown.stdout
    out = nexus(home, "approve", run_id, "plan", "--json")
    assert out.code == 0, out.text
    assert out.json()["status"] == "succeeded"
    assert Counter((tmp_path / "m").read_text().split())["publish"] == 1, (
        tmp_path / "m"
    ).read_text()
