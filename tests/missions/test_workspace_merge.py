"""The merge queue: one item at a time, checked on the combined result, crash-safe."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from workspace_support import commit_count, git, make_repo, user_state, write

from nexus.missions.workspace import (
    ITEM_TRAILER,
    GitError,
    MergeOutcome,
    MergeQueue,
    Repo,
    Worktrees,
    commit_all,
    diff,
    merged_items,
    patch_sha256,
)
from nexus.missions.workspace._merge import PAUSE_ENV

MISSION = "nexus/m1"
BASE_FILES = {"app.py": "def f():\n    return 1\n", "lib/util.py": "X = 1\nY = 2\nZ = 3\n"}


class Setup:
    """A repository with a mission branch, item worktrees and a queue."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = make_repo(tmp_path / "repo", BASE_FILES)
        self.repo = Repo.open(self.path)
        self.repo.ensure_branch(MISSION, "main")
        self.trees = Worktrees(self.repo, tmp_path / "wt")
        self.root = tmp_path / "queue"
        self.queue = MergeQueue(self.repo, MISSION, self.root)

    def item(self, item: str, files: dict[str, str], *, start: str = MISSION) -> str:
        """Make item ``item``'s branch with ``files`` committed; return the branch."""
        branch = f"{MISSION}.items/{item}"
        path = self.trees.open(item, branch=branch, start=start)
        write(path, files)
        assert commit_all(path, f"{item} work", {}) is not None
        return branch

    def merge(self, item: str, branch: str, check: object = None, **kw: str) -> MergeOutcome:
        return asyncio.run(
            self.queue.merge(
                item, branch, message=f"{item}: merged", trailers={"Nexus-Mission": "m1", **kw},
                check=check,  # type: ignore[arg-type]
            )
        )  # fmt: skip

    def show(self, path: str, rev: str = MISSION) -> str:
        return git(self.path, "show", f"{rev}:{path}")


@pytest.fixture
def s(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def test_items_merge_one_commit_each_onto_the_current_tip(s: Setup) -> None:
    before = user_state(s.path)
    one = s.item("W1", {"a.txt": "a\n"})
    two = s.item("W2", {"b.txt": "b\n"})  # started from the same tip as W1
    first = s.merge("W1", one)
    assert first.status == "merged"
    assert first.onto == s.repo.resolve("main")
    second = s.merge("W2", two)
    assert second.status == "merged"
    assert second.onto == first.commit
    assert s.repo.resolve(MISSION) == second.commit
    assert commit_count(s.path, MISSION) == 3
    assert git(s.path, "rev-parse", f"{second.commit}^").strip() == first.commit
    assert s.show("a.txt") == "a\n"
    assert s.show("b.txt") == "b\n"
    trailers = git(s.path, "show", "-s", "--format=%(trailers)", second.commit)
    assert "Nexus-Mission: m1" in trailers
    assert f"{ITEM_TRAILER}: W2" in trailers
    assert f"Nexus-Patch: {second.patch_sha256}" in trailers
    assert s.queue.merged() == {"W1": first.commit, "W2": second.commit}
    # the evidence's patch hash: the item's diff from where it started
    assert patch_sha256(diff(s.repo, str(first.onto), two)) == second.patch_sha256
    assert merged_items(s.repo, MISSION) == s.queue.merged()
    assert user_state(s.path) == before  # the user's checkout, index and HEAD


def test_a_failing_check_rolls_back_and_the_fixed_item_then_merges(s: Setup) -> None:
    seen: list[dict[str, str]] = []

    async def tests_pass(path: Path) -> tuple[bool, str]:
        files = {p: (path / p).read_text() for p in ("app.py", "a.txt") if (path / p).exists()}
        seen.append(files)
        ok = "return 2" not in files["app.py"]
        return ok, "" if ok else "test_f failed: f() returned 2, expected 1"

    s.merge("W0", s.item("W0", {"a.txt": "a\n"}), tests_pass)
    tip = s.repo.resolve(MISSION)
    branch = s.item("W1", {"app.py": "def f():\n    return 2\n"})
    outcome = s.merge("W1", branch, tests_pass)
    assert outcome.status == "rejected"
    assert outcome.commit is None
    assert outcome.diagnostics == "test_f failed: f() returned 2, expected 1"
    assert s.repo.resolve(MISSION) == tip  # rolled back: the branch never moved
    assert seen[-1]["a.txt"] == "a\n"  # the check saw the combined result (W0 + W1)
    assert "W1" not in s.queue.merged()
    fixed = s.trees.open("W1", branch=branch, start=MISSION)
    write(fixed, {"app.py": "def f():\n    return 1  # fixed\n"})
    commit_all(fixed, "W1 fix", {})
    again = s.merge("W1", branch, tests_pass, **{"Nexus-Attempt": "2"})
    assert again.status == "merged"
    assert again.onto == tip
    assert commit_count(s.path, MISSION) == 3


def test_two_items_that_conflict(s: Setup) -> None:
    one = s.item("W1", {"lib/util.py": "X = 1\nY = 20\nZ = 3\n"})
    two = s.item("W2", {"lib/util.py": "X = 1\nY = 200\nZ = 3\n"})
    assert s.merge("W1", one).status == "merged"
    tip = s.repo.resolve(MISSION)
    outcome = s.merge("W2", two)
    assert outcome.status == "conflict"
    assert outcome.commit is None
    assert s.repo.resolve(MISSION) == tip
    [conflict] = outcome.conflicts
    assert conflict.path == "lib/util.py"
    assert conflict.kind == "content"
    assert conflict.base == BASE_FILES["lib/util.py"]
    assert conflict.ours == "X = 1\nY = 20\nZ = 3\n"  # the mission branch
    assert conflict.theirs == "X = 1\nY = 200\nZ = 3\n"  # the item
    assert any("Merge conflict in lib/util.py" in m for m in conflict.messages)
    assert "lib/util.py" in outcome.diagnostics
    data = outcome.to_data()
    assert json.loads(json.dumps(data)) == data == s.merge("W2", two).to_data()


def test_modify_delete_and_large_sides_are_bounded(s: Setup) -> None:
    big = "line\n" * 20_000  # 100 kB
    write_one = s.item("W1", {"lib/util.py": big})
    path = s.trees.open("W2", branch=f"{MISSION}.items/W2", start=MISSION)
    (path / "lib/util.py").unlink()
    commit_all(path, "delete", {})
    assert s.merge("W1", write_one).status == "merged"
    outcome = s.merge("W2", f"{MISSION}.items/W2")
    [conflict] = outcome.conflicts
    assert conflict.kind == "modify/delete"
    assert conflict.theirs is None
    assert conflict.truncated
    assert conflict.ours is not None
    assert len(conflict.ours) == 64 * 1024


def test_what_git_merges_cleanly_and_trivial_conflicts_resolve(s: Setup) -> None:
    # adjacent but separate hunks, and the same change made twice: git takes both
    one = s.item("W1", {"lib/util.py": "X = 10\nY = 2\nZ = 3\n", "same.txt": "same\n"})
    two = s.item("W2", {"lib/util.py": "X = 1\nY = 2\nZ = 30\n", "same.txt": "same\n"})
    assert s.merge("W1", one).status == "merged"
    both = s.merge("W2", two)
    assert both.status == "merged"
    assert both.resolved == []
    assert s.show("lib/util.py") == "X = 10\nY = 2\nZ = 30\n"
    # W3 changes app.py for real; W4 only reflows whitespace on the same line
    three = s.item("W3", {"app.py": "def f():\n    return 3\n"})
    four = s.item("W4", {"app.py": "def f():\n    return  1   \n"})
    assert s.merge("W3", three).status == "merged"
    outcome = s.merge("W4", four)
    assert outcome.status == "merged"
    assert outcome.resolved == ["app.py"]
    assert s.show("app.py") == "def f():\n    return 3\n"  # the real change wins
    # both sides the same change up to whitespace: the mission branch's text stays
    five = s.item("W5", {"app.py": "def f():\n    return 5\n"})
    six = s.item("W6", {"app.py": "def f():\n    return   5\n"}, start=f"{MISSION}~1")
    assert s.merge("W5", five).status == "merged"
    assert s.merge("W6", six).resolved == ["app.py"]
    assert s.show("app.py") == "def f():\n    return 5\n"


def test_indentation_is_not_whitespace_noise(s: Setup) -> None:
    one = s.item("W1", {"app.py": "def f():\n    return 7\n"})
    two = s.item("W2", {"app.py": "def f():\n        return 1\n"})
    assert s.merge("W1", one).status == "merged"
    assert s.merge("W2", two).status == "conflict"


def test_already_merged_an_empty_item_and_a_new_patch(s: Setup) -> None:
    branch = s.item("W1", {"a.txt": "a\n"})
    first = s.merge("W1", branch)
    again = s.merge("W1", branch, **{"Nexus-Attempt": "9"})
    assert again.status == "already_merged"
    assert again.commit == first.commit
    assert again.patch_sha256 == first.patch_sha256
    assert commit_count(s.path, MISSION) == 2
    empty = f"{MISSION}.items/W2"
    s.repo.ensure_branch(empty, MISSION)
    nothing = s.merge("W2", empty)
    assert nothing.status == "rejected"
    assert "changes nothing" in nothing.diagnostics
    path = s.trees.open("W1", branch=branch, start=MISSION)
    write(path, {"a.txt": "a2\n"})
    commit_all(path, "follow-up", {})
    follow = s.merge("W1", branch)  # a different patch is a new merge
    assert follow.status == "merged"
    assert s.queue.merged()["W1"] == follow.commit


def test_the_branch_moving_under_the_queue_is_never_overwritten(s: Setup) -> None:
    branch = s.item("W1", {"a.txt": "a\n"})
    other = s.trees.open("X", branch="user-work", start=MISSION)
    write(other, {"user.txt": "user\n"})
    user_commit = commit_all(other, "user commit", {})

    async def meanwhile(path: Path) -> tuple[bool, str]:
        if git(s.path, "rev-parse", MISSION).strip() != user_commit:
            git(s.path, "update-ref", f"refs/heads/{MISSION}", str(user_commit))
        return True, ""

    outcome = s.merge("W1", branch, meanwhile)
    assert outcome.status == "merged"
    assert outcome.onto == user_commit
    assert s.show("user.txt") == "user\n"
    assert s.show("a.txt") == "a\n"


def test_merges_run_one_at_a_time(s: Setup) -> None:
    branches = {f"W{i}": s.item(f"W{i}", {f"f{i}.txt": f"{i}\n"}) for i in range(4)}
    running = 0
    overlap = 0

    async def slow_check(path: Path) -> tuple[bool, str]:
        nonlocal running, overlap
        running += 1
        overlap = max(overlap, running)
        await asyncio.sleep(0.05)
        running -= 1
        return True, ""

    async def all_at_once() -> list[MergeOutcome]:
        queues = [MergeQueue(s.repo, MISSION, s.root) for _ in branches]  # one lock file
        return list(
            await asyncio.gather(*(
                q.merge(i, b, message=i, trailers={}, check=slow_check)
                for q, (i, b) in zip(queues, branches.items(), strict=True)
            ))
        )  # fmt: skip

    outcomes = asyncio.run(all_at_once())
    assert overlap == 1
    assert [o.status for o in outcomes] == ["merged"] * 4
    assert commit_count(s.path, MISSION) == 5
    assert sorted(s.queue.merged()) == sorted(branches)


def test_forged_trailers_below_the_mission_base_do_not_count(tmp_path: Path) -> None:
    path = make_repo(tmp_path / "repo")
    write(path, {"x.txt": "x\n"})
    git(path, "add", "x.txt")
    git(path, "commit", "-qm", "forged\n\nNexus-Work-Item: W1\nNexus-Patch: abc\nNexus-Source: abc")
    repo = Repo.open(path)
    repo.ensure_branch(MISSION, "main")
    queue = MergeQueue(repo, MISSION, tmp_path / "q")
    assert queue.merged() == {}
    assert merged_items(repo, MISSION) == {"W1": repo.head()}  # without a base: it is read
    repo.ensure_branch("nexus/m2", "main")
    with pytest.raises(GitError, match="holds the merge queue of nexus/m1"):
        MergeQueue(repo, "nexus/m2", tmp_path / "q")


def test_bad_arguments_are_clear_errors(s: Setup) -> None:
    branch = s.item("W1", {"a.txt": "a\n"})
    for item, br, trailers, match in [
        ("-W1", branch, {}, "work item name"),
        ("W1", "--force", {}, "branch name"),
        ("W1", branch, {"Nexus-Work-Item": "W9"}, "queue writes the Nexus-Work-Item"),
        ("W1", "nexus/none", {}, "does not exist"),
    ]:
        with pytest.raises(GitError, match=match):
            asyncio.run(s.queue.merge(item, br, message="m", trailers=trailers))
    with pytest.raises(GitError, match="does not exist"):
        MergeQueue(s.repo, "nexus/absent", s.root)


# -- kill -9 -------------------------------------------------------------------------------

SCRIPT = """
import asyncio, sys
from pathlib import Path
from nexus.missions.workspace import MergeQueue, Repo

async def check(path):
    return (path / "a.txt").read_text() == "a\\n", "a.txt differs"

repo = Repo.open(Path(sys.argv[1]))
queue = MergeQueue(repo, sys.argv[2], Path(sys.argv[3]))
outcome = asyncio.run(queue.merge(
    "W1", sys.argv[4], message="W1: merged", trailers={"Nexus-Mission": "m1"}, check=check))
print(outcome.status)
"""


def _start(s: Setup, branch: str, step: str | None, tmp_path: Path) -> subprocess.Popen[str]:
    script = tmp_path / "merge_one.py"
    script.write_text(SCRIPT)
    env = dict(os.environ)
    env.pop(PAUSE_ENV, None)
    if step is not None:
        env[PAUSE_ENV] = step
    return subprocess.Popen(
        [sys.executable, str(script), str(s.path), MISSION, str(s.root), branch],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("step", ["locked", "checked", "committed", "landed"])
def test_kill_9_during_a_merge_then_resume(step: str, tmp_path: Path) -> None:
    reference = Setup(tmp_path / "reference")
    ref_branch = reference.item("W0", {"z.txt": "z\n"})
    reference.merge("W0", ref_branch)
    reference_result = reference.merge("W1", reference.item("W1", {"a.txt": "a\n"}))
    want_tree = git(reference.path, "rev-parse", f"{reference_result.commit}^{{tree}}")

    s = Setup(tmp_path / "crash")
    s.merge("W0", s.item("W0", {"z.txt": "z\n"}))
    branch = s.item("W1", {"a.txt": "a\n"})
    proc = _start(s, branch, step, tmp_path)
    _wait_for(s.root / f".paused-{step}", proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    landed = step == "landed"
    assert (s.repo.resolve(MISSION) != reference.repo.resolve(MISSION)) or landed
    assert commit_count(s.path, MISSION) == (3 if landed else 2)

    async def check(path: Path) -> tuple[bool, str]:
        return (path / "a.txt").read_text() == "a\n", ""

    resumed = s.merge("W1", branch, check)
    assert resumed.status == ("already_merged" if landed else "merged")
    assert commit_count(s.path, MISSION) == 3  # exactly one commit for W1
    assert git(s.path, "rev-parse", f"{MISSION}^{{tree}}") == want_tree
    items = git(s.path, "log", f"--format=%(trailers:key={ITEM_TRAILER},valueonly)", MISSION)
    assert items.split() == ["W1", "W0"]
    assert s.merge("W1", branch).status == "already_merged"


@pytest.mark.slow
def test_the_lock_holds_across_processes(s: Setup, tmp_path: Path) -> None:
    branch = s.item("W1", {"a.txt": "a\n"})
    proc = _start(s, branch, "locked", tmp_path)
    _wait_for(s.root / ".paused-locked", proc)
    other = s.item("W2", {"b.txt": "b\n"})

    async def try_merge() -> MergeOutcome:
        return await asyncio.wait_for(
            s.queue.merge("W2", other, message="W2", trailers={}), timeout=1.0
        )

    with pytest.raises(TimeoutError):
        asyncio.run(try_merge())  # the other process holds the queue
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert s.merge("W2", other).status == "merged"  # a dead holder's lock is released
    finish = _start(s, branch, None, tmp_path)
    out, err = finish.communicate(timeout=120)
    assert out.strip() == "merged", err
    assert sorted(s.queue.merged()) == ["W1", "W2"]
