"""``nexus run --goal ... --cache plans``: the second run of a goal takes the first's
plan (``plan.cached``), ``nexus cost`` shows what that saved, a bad ``--cache`` is
refused by name, and a workflow file's ``cache: plans`` does the same."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import nexus

PLAN = {
    "summary": "two steps",
    "tasks": [
        {"id": "notes", "tool": "shell", "with": {"cmd": "echo notes"}},
        {"id": "draft", "needs": ["notes"], "capability": "write", "prompt": "Draft it."},
    ],
}
AGENTS = {
    "agents": {
        "lead": {"role": "planner", "model": "scripted:lead", "scripted": [json.dumps(PLAN)]},
        "writer": {"model": "scripted:writer", "capabilities": ["write"], "scripted": ["ok"]},
    },
    "tools": ["shell"],
}


def _types(home: Path, run_id: str) -> list[str]:
    return [e["type"] for e in nexus(home, "events", run_id, "--json").json()]


def test_the_second_goal_run_takes_the_plan_and_cost_shows_the_saving(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "agents.yaml").write_text(json.dumps(AGENTS), encoding="utf-8")
    goal = ("run", "--goal", "Write the notes", "--agents", "agents.yaml", "--json")
    first = nexus(home, *goal, "--cache", "plans")
    assert first.code == 0, first.text
    assert "plan.cached" not in _types(home, first.json()["run_id"])
    second = nexus(home, *goal, "--cache", "plans")
    assert second.code == 0, second.text
    run_id = second.json()["run_id"]
    assert "plan.cached" in _types(home, run_id)
    cost = nexus(home, "cost", run_id)
    assert cost.code == 0, cost.text
    source = first.json()["run_id"]
    assert f"plan cache: task plan took the plan of run {source}, saved $0 (1 model calls" in (
        cost.stdout
    )
    report = nexus(home, "cost", run_id, "--json").json()
    assert report["plan_cache"]["saved"]["calls"] == 1
    listed = nexus(home, "events", run_id, "--type", "plan.cached").stdout
    assert f"plan attempt 1 took the plan of run {source} from the cache" in listed
    # without --cache the planner is asked again
    third = nexus(home, *goal)
    assert "plan.cached" not in _types(home, third.json()["run_id"])
    # the progress lines say where the plan came from: the newest run whose plan worked
    newest = third.json()["run_id"]
    shown = nexus(home, *goal[:-1], "--cache", "plans").stderr
    assert f"  cached     plan  the plan of run {newest}, no planner call" in shown.splitlines()


def test_a_bad_cache_kind_is_refused_by_name(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "agents.yaml").write_text(json.dumps(AGENTS), encoding="utf-8")
    out = nexus(home, "run", "--goal", "g", "--agents", "agents.yaml", "--cache", "answers")
    assert out.code != 0
    assert "--cache 'answers': what a run may re-use is plans" in out.text
    flow = tmp_path / "flow.yaml"
    flow.write_text("version: 1\nname: f\ncache: [answers]\ntasks:\n  a: {tool: noop}\n")
    bad = nexus(home, "validate", str(flow))
    assert bad.code != 0
    assert "field 'cache[0]'" in bad.text
    assert "'plans'" in bad.text


def test_a_workflow_files_cache_plans_reuses_its_planner(tmp_path: Path) -> None:
    home = tmp_path / "home"
    answer = json.dumps({"tasks": {"hi": {"tool": "shell", "with": {"cmd": "echo hi"}}}})
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "version: 1\nname: grows\ncache: plans\n"
        "agents:\n  p: {model: 'scripted:p', capabilities: [plan], scripted: ["
        + json.dumps(answer)
        + "]}\ntasks:\n  plan: {capability: plan, prompt: 'Plan.', extend: true}\n",
        encoding="utf-8",
    )
    first = nexus(home, "run", str(flow), "--json")
    assert first.code == 0, first.text
    second = nexus(home, "run", str(flow), "--json")
    assert second.code == 0, second.text
    assert "plan.cached" in _types(home, second.json()["run_id"])
    assert nexus(home, "replay", second.json()["run_id"], "--json").json()["identical"] is True
