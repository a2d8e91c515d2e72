"""The mission's tools at their boundary: which item, which files, which role."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from mission_support import git, make_repo

from nexus.domain.errors import NexusError, PolicyDenied
from nexus.missions.mission import MissionConfig, mission_state, mission_tools
from nexus.missions.plan import MissionPlan, WorkItem
from nexus.missions.spec import parse_spec
from nexus.missions.workspace import changed_files, commit_all
from nexus.tools.base import Tool, ToolContext

SPEC = "# s\n\n## Requirements\n\n- R1: `a.f()` MUST return 1.\n"


@pytest.fixture
def tools(tmp_path: Path) -> dict[str, Any]:
    repo = make_repo(tmp_path / "repo", {"a.py": "x = 1\n", "secret.txt": "s\n"})
    head = git(repo, "rev-parse", "HEAD").strip()
    config = MissionConfig(
        id="m1", repo=str(repo), branch="nexus/m1", base=head, workdir=str(tmp_path / "work")
    )
    state = mission_state(config, parse_spec(SPEC, source="s.md"))
    item = WorkItem(
        id="a", title="a", summary="", owns=("a.py", "pkg/**"), tests=("tests/test_a.py",),
        needs=(), requirements=("R1",), checks=(),
    )  # fmt: skip
    state.keep_plan(MissionPlan(items=(item,), unmet=()))
    found = {t.name: t for t in mission_tools(state)}
    return {"tools": found, "workdir": tmp_path / "work", "config": config}


def call(tool: Tool, args: dict[str, Any], task: str, workspace: Path) -> Any:
    return asyncio.run(tool(args, ToolContext("r", task, 1, workspace)))


def test_only_a_work_items_task_may_call_them(tools: dict[str, Any]) -> None:
    with pytest.raises(PolicyDenied, match="only a work item's task"):
        call(tools["tools"]["mission.read"], {"path": "a.py"}, "architect", tools["workdir"])
    with pytest.raises(PolicyDenied, match="no work item 'zz'"):
        call(tools["tools"]["mission.open"], {"item": "a"}, "item-zz", tools["workdir"])


def test_the_item_comes_from_the_task_and_paths_stay_in_its_worktree(
    tools: dict[str, Any],
) -> None:
    t, ws = tools["tools"], tools["workdir"]
    opened = call(t["mission.open"], {"item": "other"}, "item-a", ws)  # the argument is ignored
    assert opened["item"] == "a"
    worktree = tools["config"].worktree("a")
    assert (worktree / "a.py").read_text() == "x = 1\n"
    assert call(t["mission.read"], {"path": "a.py"}, "item-a", ws)["text"] == "x = 1\n"
    for path in (".git/config", "./.git/HEAD"):
        with pytest.raises(PolicyDenied, match=r"inside \.git"):
            call(t["mission.read"], {"path": path}, "item-a", ws)
    # 'pkg/**' is the item's, but not a repository planted in it (git would obey its config)
    for path in ("pkg/.git/config", "pkg/sub/.GIT/HEAD"):
        with pytest.raises(PolicyDenied, match=r"inside \.git"):
            call(t["mission.write"], {"path": path, "text": "[core]\n"}, "item-a", ws)
    assert call(t["mission.write"], {"path": "pkg/ok.py", "text": "y = 2\n"}, "item-a", ws)
    for path in ("../../../etc/passwd", "/etc/passwd", "x/../../a.py"):
        with pytest.raises(PolicyDenied, match="outside the work item's worktree"):
            call(t["mission.read"], {"path": path}, "item-a", ws)
    assert call(t["mission.read"], {"path": "x/../a.py"}, "item-a", ws)["text"] == "x = 1\n"
    os.symlink("/etc/passwd", worktree / "link")
    with pytest.raises(NexusError, match="symbolic link"):
        call(t["mission.read"], {"path": "link"}, "item-a", ws)


def test_each_role_writes_only_its_own_files(tools: dict[str, Any]) -> None:
    t, ws = tools["tools"], tools["workdir"]
    call(t["mission.open"], {"item": "a"}, "item-a", ws)
    worktree = tools["config"].worktree("a")
    call(t["mission.write"], {"path": "a.py", "text": "x = 2\n"}, "item-a", ws)
    assert (worktree / "a.py").read_text() == "x = 2\n"
    with pytest.raises(PolicyDenied, match=r"does not own 'secret\.txt'"):
        call(t["mission.write"], {"path": "secret.txt", "text": "x"}, "item-a", ws)
    with pytest.raises(PolicyDenied, match="tests are the tester's"):
        call(t["mission.write"], {"path": "tests/test_a.py", "text": "x"}, "item-a", ws)
    call(t["mission.tests.write"], {"path": "tests/test_a.py", "text": "t\n"}, "item-a", ws)
    with pytest.raises(PolicyDenied, match="writes only its tests"):
        call(t["mission.tests.write"], {"path": "a.py", "text": "x"}, "item-a", ws)
    with pytest.raises(PolicyDenied, match="implementation"):
        call(t["mission.tests.read"], {"path": "a.py"}, "item-a", ws)
    assert call(t["mission.tests.read"], {"path": "secret.txt"}, "item-a", ws)["text"] == "s\n"
    assert (worktree / "secret.txt").read_text() == "s\n"


def test_a_branch_moved_under_the_item_is_synced_for_the_integrator(
    tools: dict[str, Any], tmp_path: Path
) -> None:
    t, ws, config = tools["tools"], tools["workdir"], tools["config"]
    call(t["mission.open"], {"item": "a"}, "item-a", ws)
    worktree = config.worktree("a")
    call(t["mission.write"], {"path": "a.py", "text": "x = 2\n"}, "item-a", ws)
    commit_all(worktree, "a: two", {"Nexus-Mission": "m1"})
    # meanwhile a person commits to the mission branch a change of the same line
    other = tmp_path / "other"
    git(Path(config.repo), "worktree", "add", "-q", str(other), config.branch)
    (other / "a.py").write_text("x = 3\n")
    git(other, "commit", "-q", "-am", "a person's fix")
    tip = git(other, "rev-parse", "HEAD").strip()
    merged = call(t["mission.merge"], {"item": "a"}, "item-a", ws)
    assert merged["status"] == "conflict"
    assert merged["merged"] is False
    assert git(Path(config.repo), "rev-parse", config.branch).strip() == tip  # not moved
    synced = call(t["mission.sync"], {"item": "a"}, "item-a", ws)
    assert synced["conflicts"] == ["a.py"]
    assert synced["base"] == tip
    assert "<<<<<<<" in (worktree / "a.py").read_text()
    assert "a.py" in synced["integrator_prompt"]
    call(t["mission.write"], {"path": "a.py", "text": "x = 23\n"}, "item-a", ws)
    commit_all(worktree, "a: resolved", {"Nexus-Mission": "m1"})
    assert changed_files(worktree, synced["base"]) == ["a.py"]
    again = call(t["mission.merge"], {"item": "a"}, "item-a", ws)
    assert again["status"] == "merged", again["diagnostics"]
    assert git(Path(config.repo), "show", f"{config.branch}:a.py") == "x = 23\n"
