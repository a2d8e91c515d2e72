"""Fewer git processes, the same answers: batched revisions, one diff, the merge's fast path.

Each helper that answers several questions with one git process is held to what
the one-question-per-process commands (``rev-parse --verify``, ``merge-base``,
``diff --name-only`` and ``diff``) answer, on histories chosen to differ; the
process counts are asserted too, so a step that starts asking git again shows.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from workspace_support import git, make_repo, write

from nexus.missions.workspace import (
    GitError,
    MergeQueue,
    Repo,
    Worktrees,
    changed_files,
    commit_all,
    commit_change,
    diff,
    merge_into,
    scope_violations,
    worktree_target,
)
from nexus.missions.workspace._changes import DIFF_OPTIONS, _patch, _paths_and_patch
from nexus.missions.workspace._git import run_git
from nexus.missions.workspace._revs import _verify, fork_point

MISSION = "nexus/m"


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    path = make_repo(tmp_path / "repo", {"src/app.py": "print('hi')\n", "README.md": "# r\n"})
    return Repo.open(path)


@pytest.fixture
def gits(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """The git subcommands the code under test starts, counted (the tests' own git too,
    so count around the call that matters only)."""
    seen: collections.Counter[str] = collections.Counter()
    real = subprocess.run

    def counting(args: list[str], *rest: object, **kw: object) -> object:
        if str(args[0]).endswith("/git"):
            words = [a for a in args[1:] if not a.startswith("-")]
            seen[words[0] if words else "?"] += 1
        return real(args, *rest, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "run", counting)
    return seen


def _sha(path: Path, rev: str) -> str:
    return git(path, "rev-parse", rev).strip()


# -- resolving revisions ------------------------------------------------------------------


def test_resolve_many_answers_what_rev_parse_verify_answers_in_one_process(
    repo: Repo, gits: collections.Counter[str]
) -> None:
    path = repo.path
    git(path, "tag", "-a", "-m", "annotated", "v1")
    git(path, "tag", "tree-tag", "HEAD^{tree}")
    head = repo.head()
    revs = ["main", "HEAD", "v1", "tree-tag", "HEAD:README.md", "nope", head[:12], "main~0",
            "main..HEAD", "HEAD^", head, "refs/heads/main"]  # fmt: skip
    gits.clear()
    found = repo.resolve_many(*revs)
    assert sum(gits.values()) == 1
    assert found == [_verify(repo.target, rev) for rev in revs]
    assert found[:3] == [head, head, head]
    assert found[3:6] == [None, None, None]  # a tree, a blob, nothing
    assert repo.resolve_many() == []
    with pytest.raises(GitError, match="is not a revision"):
        repo.resolve_many("main", "--output=/tmp/x")


def _criss_cross(path: Path) -> tuple[str, str]:
    """Two branches whose histories meet at two merge bases."""
    git(path, "checkout", "-q", "-b", "x")
    write(path, {"x.txt": "x\n"})
    git(path, "add", "-A")
    git(path, "commit", "-qm", "x1")
    git(path, "checkout", "-q", "-b", "y", "main")
    write(path, {"y.txt": "y\n"})
    git(path, "add", "-A")
    git(path, "commit", "-qm", "y1")
    y1 = _sha(path, "HEAD")
    git(path, "merge", "-q", "--no-edit", "x~0")
    git(path, "checkout", "-q", "x")
    git(path, "merge", "-q", "--no-edit", y1)
    git(path, "checkout", "-q", "main")
    return "x", "y"


def test_fork_point_agrees_with_merge_base(repo: Repo, gits: collections.Counter[str]) -> None:
    path = repo.path
    left, right = _criss_cross(path)
    assert len(git(path, "merge-base", "--all", left, right).split()) == 2
    git(path, "checkout", "-q", "--orphan", "alone")
    git(path, "commit", "-q", "-m", "unrelated")
    git(path, "checkout", "-q", "main")
    for a, b in [(left, right), (right, left), ("main", left), (left, "main"), ("main", "main")]:
        gits.clear()
        fork = fork_point(repo.target, a, b)
        assert sum(gits.values()) == 1
        assert (fork.left, fork.right) == (_sha(path, a), _sha(path, b))
        assert fork.base == git(path, "merge-base", a, b).strip()
    assert fork_point(repo.target, "main", "alone").base is None
    assert fork_point(repo.target, "alone", "main").left == _sha(path, "alone")
    assert fork_point(repo.target, "main", "nope") == fork_point(repo.target, "main", "nope")
    missing = fork_point(repo.target, "nope", "main")
    assert (missing.left, missing.right, missing.base) == (None, _sha(path, "main"), None)
    # a range in a revision is not split where git would split it: asked one at a time
    ranged = fork_point(repo.target, "main..x", "x")
    assert (ranged.left, ranged.base) == (None, None)


# -- one diff for the paths and the patch -----------------------------------------------


def test_one_diff_gives_what_name_only_and_the_patch_give(
    repo: Repo, tmp_path: Path, gits: collections.Counter[str]
) -> None:
    path = Worktrees(repo, tmp_path / "wt").open("W1", branch="b/W1", start="main")
    base = repo.head()
    target = worktree_target(path)
    assert _paths_and_patch(target, base, base) == ([], "")
    write(path, {"src/app.py": "print('bye')\n", "new\nline.txt": "n\n", "empty.txt": ""})
    (path / "blob.bin").write_bytes(b"\0\1\2binary")
    (path / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"latin-1 name\n")
    os.symlink("../outside", path / "link")
    (path / "README.md").unlink()
    head = commit_all(path, "tricky", {})
    assert head is not None
    write(path, {"src/app.py": "print('bye')\nprint('again')\n"})
    (path / "empty.txt").chmod(0o755)
    later = commit_all(path, "modes", {})
    assert later is not None
    for a, b in [(base, head), (head, later), (base, later), (later, base)]:
        gits.clear()
        paths, patch = _paths_and_patch(target, a, b)
        assert sum(gits.values()) == 1  # git's answer had the expected form
        names = run_git(target, ["diff", "--name-only", "-z", *DIFF_OPTIONS, a, b, "--"])
        assert paths == sorted({os.fsdecode(n) for n in names.stdout.split(b"\0") if n})
        assert patch == _patch(target, a, b)
    assert os.fsdecode(b"caf\xe9.txt") in _paths_and_patch(target, base, head)[0]


def test_commit_change_answers_what_commit_all_changed_files_and_diff_answer(
    repo: Repo, tmp_path: Path, gits: collections.Counter[str]
) -> None:
    repo.ensure_branch(MISSION, "main")
    trees = Worktrees(repo, tmp_path / "wt")
    mine = trees.open("W1", branch=f"{MISSION}.items/W1", start=MISSION)
    write(mine, {"src/app.py": "print('W1')\n", "untracked/new.txt": "3\n"})
    write(mine, {".gitignore": "*.log\n", "debug.log": "ignored\n"})
    (mine / "README.md").unlink()
    gits.clear()
    change = commit_change(mine, MISSION, "W1 (attempt 1)", {"Nexus-Attempt": "1"})
    assert sum(gits.values()) == 4  # add, commit, rev-parse, diff
    assert change.commit == change.head == _sha(mine, "HEAD")
    assert change.base == repo.resolve(MISSION)
    assert change.changed == changed_files(mine, MISSION)
    assert change.changed == [".gitignore", "README.md", "src/app.py", "untracked/new.txt"]
    assert change.patch == diff(mine, MISSION)
    same = commit_change(mine, MISSION, "W1 (attempt 2)", {})
    assert same.commit is None
    assert (same.head, same.changed, same.patch) == (change.head, change.changed, change.patch)
    # the mission branch moves on under the item: paths from where it left, patch from base
    other = trees.open("W2", branch=f"{MISSION}.items/W2", start=MISSION)
    write(other, {"other.txt": "2\n"})
    git(repo.path, "update-ref", f"refs/heads/{MISSION}", str(commit_all(other, "o", {})))
    write(mine, {"more.txt": "more\n"})
    moved = commit_change(mine, MISSION, "W1 (attempt 3)", {})
    assert moved.changed == changed_files(mine, MISSION)
    assert "other.txt" not in moved.changed
    assert "more.txt" in moved.changed
    assert moved.patch == diff(mine, MISSION)
    assert "other.txt" in moved.patch  # the patch is from base itself, as diff() says
    with pytest.raises(GitError, match="'nope' is not a commit"):
        commit_change(mine, "nope", "m", {})


def test_a_merge_that_changes_nothing_is_not_committed(repo: Repo, tmp_path: Path) -> None:
    repo.ensure_branch(MISSION, "main")
    trees = Worktrees(repo, tmp_path / "wt")
    mine = trees.open("W1", branch=f"{MISSION}.items/W1", start=MISSION)
    other = trees.open("W2", branch=f"{MISSION}.items/W2", start=MISSION)
    for path in (mine, other):  # the same change on both sides, two commits
        write(path, {"src/app.py": "print('same')\n"})
        assert commit_all(path, f"same in {path.name}", {}) is not None
    tip = _sha(other, "HEAD")
    before = _sha(mine, "HEAD")
    assert merge_into(mine, tip) == []
    assert (worktree_target(mine).git_dir / "MERGE_HEAD").exists()
    nothing = commit_change(mine, tip, "sync", {})
    assert nothing.commit is None  # as commit_all always did: no merge commit of nothing
    assert _sha(mine, "HEAD") == before
    assert commit_all(mine, "sync", {}) is None
    write(mine, {"resolved.txt": "r\n"})
    merged = commit_change(mine, tip, "sync", {})  # a merge with a change is recorded
    assert merged.commit is not None
    assert git(mine, "rev-list", "--parents", "-n", "1", merged.commit).split()[1:] == [
        before, tip,
    ]  # fmt: skip


def test_the_scope_check_sees_every_path_of_every_attempt(repo: Repo, tmp_path: Path) -> None:
    path = Worktrees(repo, tmp_path / "wt").open("W1", branch="b/W1", start="main")
    owns = ["src/**"]
    write(path, {"src/app.py": "print('in scope')\n"})
    first = commit_change(path, "main", "attempt 1", {})
    assert scope_violations(first.changed, owns) == []
    write(path, {"secrets/key.txt": "out of scope\n"})
    second = commit_change(path, "main", "attempt 2", {})
    assert scope_violations(second.changed, owns) == ["secrets/key.txt"]
    (path / "secrets/key.txt").unlink()  # taken back: the attempt after sees it gone
    third = commit_change(path, "main", "attempt 3", {})
    assert scope_violations(third.changed, owns) == []
    os.symlink("/etc/passwd", path / "src" / "leak")  # a link is a path like any other
    write(path, {".nexus/evil.toml": "x = 1\n"})
    fourth = commit_change(path, "main", "attempt 4", {})
    assert scope_violations(fourth.changed, owns) == [".nexus/evil.toml"]


# -- the merge queue ----------------------------------------------------------------------


def _item(repo: Repo, trees: Worktrees, item: str, files: dict[str, str]) -> str:
    branch = f"{MISSION}.items/{item}"
    path = trees.open(item, branch=branch, start=MISSION)
    write(path, files)
    assert commit_all(path, f"{item} work", {}) is not None
    return branch


def _merge(queue: MergeQueue, item: str, branch: str) -> str:
    outcome = asyncio.run(queue.merge(item, branch, message=item, trailers={}))
    assert outcome.status == "merged", outcome.diagnostics
    assert outcome.commit is not None
    return outcome.commit


def test_an_item_started_at_the_tip_lands_as_its_tree_without_merge_tree(
    repo: Repo, tmp_path: Path, gits: collections.Counter[str]
) -> None:
    repo.ensure_branch(MISSION, "main")
    trees = Worktrees(repo, tmp_path / "wt")
    queue = MergeQueue(repo, MISSION, tmp_path / "q")
    first = _item(repo, trees, "W1", {"a.txt": "a\n", "src/app.py": "print('W1')\n"})
    second = _item(repo, trees, "W2", {"b.txt": "b\n"})  # also from the base: behind, later
    tip = repo.resolve(MISSION)
    head = repo.resolve(first)
    what_git_merges = git(repo.path, "merge-tree", "--write-tree", str(tip), str(head)).split()[0]
    gits.clear()
    landed = _merge(queue, "W1", first)
    assert gits["merge-tree"] == 0
    assert _sha(repo.path, f"{landed}^{{tree}}") == what_git_merges
    assert _sha(repo.path, f"{landed}^{{tree}}") == _sha(repo.path, f"{first}^{{tree}}")
    gits.clear()
    both = _merge(queue, "W2", second)  # the tip moved past where W2 started
    assert gits["merge-tree"] == 1
    files = git(repo.path, "ls-tree", "-r", "--name-only", both).split()
    assert {"a.txt", "b.txt"} <= set(files)
    assert git(repo.path, "show", f"{both}:src/app.py") == "print('W1')\n"


def test_create_branch_creates_a_missing_branch_only(repo: Repo) -> None:
    head = repo.head()
    git(repo.path, "tag", "-a", "-m", "annotated", "v1")
    git(repo.path, "tag", "tree-tag", "HEAD^{tree}")
    assert repo.create_branch("b/new", "v1")
    assert repo.resolve("b/new") == head  # the commit the tag names, not the tag
    write(repo.path, {"later.txt": "x\n"})
    git(repo.path, "add", "later.txt")
    git(repo.path, "commit", "-qm", "later")
    assert not repo.create_branch("b/new", "HEAD")  # exists: never moved
    assert repo.resolve("b/new") == head
    assert not repo.create_branch("b/tree", "tree-tag")
    assert not repo.create_branch("b/new/sub", "HEAD")
    assert repo.resolve("b/tree") is None
    assert repo.resolve("b/new/sub") is None
    with pytest.raises(GitError, match="not allowed"):
        repo.create_branch("-b", "HEAD")
    with pytest.raises(GitError, match="is not a revision"):
        repo.create_branch("b/x", "--orphan")


def test_the_integration_worktree_is_clean_for_each_check(
    repo: Repo, tmp_path: Path, gits: collections.Counter[str]
) -> None:
    repo.ensure_branch(MISSION, "main")
    trees = Worktrees(repo, tmp_path / "wt")
    queue = MergeQueue(repo, MISSION, tmp_path / "q")
    seen: list[list[str]] = []

    def look_and_litter(path: Path) -> None:
        seen.append(sorted(p.name for p in path.iterdir() if p.name != ".git"))
        write(path, {"junk.txt": "left\n", "build/out.o": "x", "cache.log": "ignored\n"})

    async def check(path: Path) -> tuple[bool, str]:
        await asyncio.to_thread(look_and_litter, path)
        return True, ""

    for item, files in [("W1", {".gitignore": "*.log\n"}), ("W2", {"b.txt": "b\n"})]:
        branch = _item(repo, trees, item, files)
        gits.clear()
        outcome = asyncio.run(queue.merge(item, branch, message=item, trailers={}, check=check))
        assert outcome.status == "merged"
        made_now = item == "W1"  # added at the commit: no checkout, no clean
        assert (gits["checkout"], gits["clean"]) == ((0, 0) if made_now else (1, 1))
    assert seen == [[".gitignore", "README.md", "src"], [".gitignore", "README.md", "b.txt", "src"]]
    shutil.rmtree(queue.integration_path)  # lost: git's record of it is stale
    branch = _item(repo, trees, "W3", {"c.txt": "c\n"})
    outcome = asyncio.run(queue.merge("W3", branch, message="W3", trailers={}, check=check))
    assert outcome.status == "merged"
    assert seen[-1] == [".gitignore", "README.md", "b.txt", "c.txt", "src"]


def test_tracked_files_lists_a_commit_and_refuses_anything_else(repo: Repo) -> None:
    git(repo.path, "tag", "tree-tag", "HEAD^{tree}")
    assert repo.tracked_files("main") == ["README.md", "src/app.py"]
    for bad in ("tree-tag", "HEAD:README.md", "nope"):
        with pytest.raises(GitError, match="is not a commit"):
            repo.tracked_files(bad)
    with pytest.raises(GitError, match="is not a revision"):
        repo.tracked_files("--output=x")


def test_the_recorded_base_is_checked_however_it_is_read(repo: Repo, tmp_path: Path) -> None:
    repo.ensure_branch(MISSION, "main")
    root = tmp_path / "q"
    first = MergeQueue(repo, MISSION, root)
    assert first.base == repo.resolve(MISSION)
    assert MergeQueue(repo, MISSION, root).base == first.base  # read back, one git process
    record = root / ".mission-base.json"
    for base in ("0" * 40, "main", repo.head()[:12], 7, None):
        record.write_text(json.dumps({"branch": MISSION, "base": base}))
        with pytest.raises(GitError, match=r"recorded base .* is not a commit"):
            MergeQueue(repo, MISSION, root)
    record.write_text("not json")
    with pytest.raises(GitError, match="is not a merge queue's record"):
        MergeQueue(repo, MISSION, root)
    with pytest.raises(GitError, match="does not exist"):
        MergeQueue(repo, "nexus/absent", root)  # the branch is checked first, as before


# -- worktrees ----------------------------------------------------------------------------


def test_worktrees_are_listed_once_per_operation_and_pruned_when_stale(
    repo: Repo, tmp_path: Path, gits: collections.Counter[str]
) -> None:
    trees = Worktrees(repo, tmp_path / "wt")
    gits.clear()
    one = trees.open("A", branch="b/A", start="main")
    assert dict(gits) == {"update-ref": 1, "worktree": 1}  # nothing there: the branch, add
    trees.open("B", branch="b/B", start="main")
    shutil.rmtree(one)  # lost: git's record of it is stale
    assert "prunable" in git(repo.path, "worktree", "list", "--porcelain")
    gits.clear()
    assert sorted(trees.list()) == ["B"]
    assert gits["worktree"] == 3  # list, prune, list
    assert "prunable" not in git(repo.path, "worktree", "list", "--porcelain")
    assert trees.open("A", branch="b/A", start="main") == one
    shutil.rmtree(one)
    gits.clear()
    again = trees.open("A", branch="b/A", start="main")  # refused first: its record is stale
    assert gits["worktree"] == 5  # add (refused), list, prune, list, add
    assert (again / "README.md").exists()
    gits.clear()
    trees.remove("A")
    trees.remove_all()
    assert gits["worktree"] == 4  # list, remove A; list, remove B: nothing left to prune
    assert git(repo.path, "worktree", "list", "--porcelain").count("worktree ") == 1
