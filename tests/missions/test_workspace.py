"""Repositories, worktrees, changes and scope: the git layer of a code mission."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from workspace_support import git, make_repo, user_state, write

from nexus.domain.errors import UserError
from nexus.missions.evidence import patch_hash
from nexus.missions.plan import PathRefused, normalise_path
from nexus.missions.plan import matches as plan_matches
from nexus.missions.workspace import (
    GitError,
    Repo,
    Worktrees,
    changed_files,
    commit_all,
    diff,
    patch_sha256,
    scope_violations,
)
from nexus.missions.workspace._worktrees import READY_MARK, worktree_target


@pytest.fixture
def repo_path(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", {"src/app.py": "print('hi')\n", "README.md": "# r\n"})


@pytest.fixture
def repo(repo_path: Path) -> Repo:
    return Repo.open(repo_path)


# -- Repo ------------------------------------------------------------------------------


def test_open_finds_the_top_level_from_a_subdirectory(repo_path: Path) -> None:
    opened = Repo.open(repo_path / "src")
    assert opened.path == repo_path.resolve()
    assert opened.head() == git(repo_path, "rev-parse", "HEAD").strip()
    assert opened.tracked_files("HEAD") == ["README.md", "src/app.py"]


def test_open_refuses_what_is_not_a_usable_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GitError, match="is not in a git repository"):
        Repo.open(plain)
    with pytest.raises(GitError, match="is not a directory"):
        Repo.open(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    with pytest.raises(GitError, match="has no commit yet"):
        Repo.open(empty)
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    with pytest.raises(GitError, match="bare repository"):
        Repo.open(bare)
    assert issubclass(GitError, UserError)


def test_resolve_answers_none_for_unknown_refs_and_refuses_options(repo: Repo) -> None:
    assert repo.resolve("no-such-branch") is None
    assert repo.resolve("main") == repo.head()
    for hostile in ("--output=/tmp/x", "-h", "a b", "x\ny", ""):
        with pytest.raises(GitError, match="is not a revision"):
            repo.resolve(hostile)


def test_ensure_branch_creates_once_and_never_moves_or_touches_the_checkout(
    repo: Repo, repo_path: Path
) -> None:
    before = user_state(repo_path)
    first = repo.ensure_branch("nexus/m1", "HEAD")
    write(repo_path, {"later.txt": "x\n"})
    git(repo_path, "add", "later.txt")
    git(repo_path, "commit", "-qm", "later")
    assert repo.ensure_branch("nexus/m1", "HEAD") == first  # not moved to the new HEAD
    assert repo.resolve("nexus/m1") == first
    git(repo_path, "reset", "-q", "--hard", "HEAD~1")
    assert user_state(repo_path) == before
    with pytest.raises(GitError, match="cannot create branch nexus/m1/sub"):
        repo.ensure_branch("nexus/m1/sub", "HEAD")  # a ref cannot be a file and a folder
    with pytest.raises(GitError, match="is not a commit"):
        repo.ensure_branch("nexus/m2", "nowhere")


# -- Worktrees -------------------------------------------------------------------------


def test_a_worktree_is_made_reattached_listed_and_removed(
    repo: Repo, repo_path: Path, tmp_path: Path
) -> None:
    before = user_state(repo_path)
    trees = Worktrees(repo, tmp_path / "wt")
    path = trees.open("W1", branch="nexus/m.items/W1", start="main")
    assert (path / "src/app.py").read_text() == "print('hi')\n"
    write(path, {"src/work.py": "x = 1\n"})
    again = trees.open("W1", branch="nexus/m.items/W1", start="main")
    assert again == path
    assert (path / "src/work.py").exists()
    assert trees.list() == {"W1": path}
    with pytest.raises(GitError, match="not on nexus/other"):
        trees.open("W1", branch="nexus/other", start="main")
    trees.remove("W1")
    assert not path.exists()
    assert trees.list() == {}
    assert repo.resolve("nexus/m.items/W1") is not None  # the branch stays
    assert user_state(repo_path) == before


def test_a_worktree_lost_in_a_crash_is_pruned_and_made_again(repo: Repo, tmp_path: Path) -> None:
    trees = Worktrees(repo, tmp_path / "wt")
    path = trees.open("W1", branch="nexus/m.items/W1", start="main")
    write(path, {"kept.txt": "committed\n"})
    commit_all(path, "work", {})
    shutil.rmtree(path)  # the directory is gone, git's record of it is stale
    again = trees.open("W1", branch="nexus/m.items/W1", start="main")
    assert (again / "kept.txt").read_text() == "committed\n"  # the branch kept the work


def test_a_half_made_worktree_is_made_again_not_reattached(repo: Repo, tmp_path: Path) -> None:
    trees = Worktrees(repo, tmp_path / "wt")
    path = trees.open("W1", branch="nexus/m.items/W1", start="main")
    (worktree_target(path).git_dir / READY_MARK).unlink()  # as if killed during the add
    (path / "src/app.py").unlink()  # a checkout cut short
    again = trees.open("W1", branch="nexus/m.items/W1", start="main")
    assert (again / "src/app.py").exists()
    assert changed_files(again, "main") == []


def test_leftover_directory_without_a_record_is_replaced(repo: Repo, tmp_path: Path) -> None:
    trees = Worktrees(repo, tmp_path / "wt")
    (tmp_path / "wt" / "W1").mkdir(parents=True)
    (tmp_path / "wt" / "W1" / "junk").write_text("left by a crash")
    path = trees.open("W1", branch="nexus/m.items/W1", start="main")
    assert not (path / "junk").exists()
    assert (path / "README.md").exists()


def test_remove_all_and_a_root_inside_the_repository(repo: Repo, tmp_path: Path) -> None:
    trees = Worktrees(repo, tmp_path / "wt")
    for item in ("A", "B"):
        trees.open(item, branch=f"nexus/m.items/{item}", start="main")
    assert sorted(trees.list()) == ["A", "B"]
    trees.remove_all()
    assert trees.list() == {}
    assert git(repo.path, "worktree", "list", "--porcelain").count("worktree ") == 1
    with pytest.raises(GitError, match="overlaps"):
        Worktrees(repo, repo.path / "worktrees")
    with pytest.raises(GitError, match="overlaps"):
        Worktrees(repo, repo.common_dir / "nexus")


# -- changes, commits, diffs -------------------------------------------------------------


def test_changed_files_sees_committed_staged_unstaged_untracked_and_deleted(
    repo: Repo, tmp_path: Path
) -> None:
    path = Worktrees(repo, tmp_path / "wt").open("W1", branch="b/W1", start="main")
    write(path, {"committed.txt": "1\n"})
    commit_all(path, "first", {})
    write(path, {"staged.txt": "2\n", "src/app.py": "print('changed')\n"})
    git(path, "add", "staged.txt")
    write(path, {"untracked/new.txt": "3\n", ".gitignore": "*.log\n", "debug.log": "x\n"})
    (path / "README.md").unlink()
    assert changed_files(path, "main") == [
        ".gitignore",
        "README.md",
        "committed.txt",
        "src/app.py",
        "staged.txt",
        "untracked/new.txt",
    ]


def test_changes_are_counted_from_where_the_worktree_left_base(repo: Repo, tmp_path: Path) -> None:
    repo.ensure_branch("nexus/m", "main")
    trees = Worktrees(repo, tmp_path / "wt")
    mine = trees.open("W1", branch="nexus/m.items/W1", start="nexus/m")
    write(mine, {"mine.txt": "1\n"})
    commit_all(mine, "mine", {})
    other = trees.open("W2", branch="nexus/m.items/W2", start="nexus/m")
    write(other, {"other.txt": "2\n"})
    moved = commit_all(other, "other", {})
    git(repo.path, "update-ref", "refs/heads/nexus/m", str(moved))  # merged meanwhile
    write(mine, {"more.txt": "3\n"})
    assert changed_files(mine, "nexus/m") == ["mine.txt", "more.txt"]  # not other.txt


def test_a_rename_is_both_paths(repo: Repo, tmp_path: Path) -> None:
    path = Worktrees(repo, tmp_path / "wt").open("W1", branch="b/W1", start="main")
    (path / "lib").mkdir()
    git(path, "mv", "src/app.py", "lib/app.py")
    changed = changed_files(path, "main")
    assert changed == ["lib/app.py", "src/app.py"]
    assert scope_violations(changed, ["lib/**"]) == ["src/app.py"]


def test_commit_all_commits_everything_with_trailers_or_nothing(repo: Repo, tmp_path: Path) -> None:
    path = Worktrees(repo, tmp_path / "wt").open("W1", branch="b/W1", start="main")
    assert commit_all(path, "nothing", {}) is None
    write(path, {"a.txt": "a\n", "sub/b.txt": "b\n"})
    (path / "README.md").unlink()
    sha = commit_all(path, "W1: add a and b\n\n---\nbody", {"Nexus-Attempt": "2"})
    assert sha == git(path, "rev-parse", "HEAD").strip()
    assert git(path, "show", "-s", "--format=%an <%ae>", sha).strip() == "Nexus <nexus@localhost>"
    trailer = git(path, "show", "-s", "--format=%(trailers:key=Nexus-Attempt,valueonly)", sha)
    assert trailer.strip() == "2"
    assert changed_files(path, "HEAD") == []
    assert git(path, "show", "--name-only", "--format=", sha).split() == [
        "README.md", "a.txt", "sub/b.txt",
    ]  # fmt: skip
    for bad in ({"Bad Key": "x"}, {"Nexus-X": "two\nlines"}, {"Nexus-X": " "}):
        with pytest.raises(GitError, match="trailer"):
            commit_all(path, "m", bad)
    with pytest.raises(GitError, match="commit message"):
        commit_all(path, "  ", {})


def test_diff_is_deterministic_and_its_hash_is_the_evidence_hash(
    repo: Repo, tmp_path: Path
) -> None:
    path = Worktrees(repo, tmp_path / "wt").open("W1", branch="b/W1", start="main")
    write(path, {"src/app.py": "print('bye')\n"})
    (path / "blob.bin").write_bytes(b"\0\1\2binary")
    commit_all(path, "change", {})
    patch = diff(path, "main")
    assert patch == diff(repo, "main", "b/W1")
    assert "-print('hi')\n+print('bye')\n" in patch
    assert "GIT binary patch" in patch
    git(repo.path, "config", "diff.noprefix", "true")  # the repository's taste changes nothing
    git(repo.path, "config", "diff.context", "0")
    assert diff(path, "main") == patch
    assert patch_sha256(patch) == patch_hash(patch)
    with pytest.raises(GitError, match="is not a commit"):
        diff(path, "nope")


# -- scope -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "owned", "not_owned"),
    [
        ("src/auth.py", ["src/auth.py"], ["src/auth.py/x", "src/auth.pyc", "auth.py"]),
        ("src/auth/**", ["src/auth/token.py", "src/auth/deep/x.py"], ["src/authx.py"]),
        ("src/*.py", ["src/a.py", "src/.py"], ["src/a.txt", "lib/a.py", "src/x/a.py"]),
        ("src/**/test_*.py", ["src/test_a.py", "src/x/y/test_b.py"], ["src/x/a.py"]),
        ("**", ["anything/at/all", "x"], []),
        ("**/*.md", ["a.md", "x/y/b.md"], ["a.mdx"]),
        ("./README.md", ["README.md"], ["README.mdx", "readme.md"]),
        ("a//b", ["a/b"], ["a//b"]),
        ("file?.txt", ["file1.txt"], ["file12.txt", "file/.txt"]),
        ("pages/[id].tsx", ["pages/[id].tsx"], ["pages/i.tsx"]),
        ("{a,b}.py", ["{a,b}.py"], ["a.py"]),
    ],
)
def test_scope_rules(pattern: str, owned: list[str], not_owned: list[str]) -> None:
    assert scope_violations(owned, [pattern]) == []
    assert scope_violations(not_owned, [pattern]) == sorted(not_owned)


@pytest.mark.parametrize(
    "bad",
    ["", "/", "/abs", "../x", "a/../b", "a\\b", "./", "src/", "a**b/x", ".git/config",
     "x/.GIT/y", ".nexus/state", "x\x00y", "evil\u202etxt.py", "a" * 301],
)  # fmt: skip
def test_scope_patterns_that_escape_or_say_nothing_are_refused(bad: str) -> None:
    with pytest.raises(GitError, match="scope pattern"):
        scope_violations(["a"], [bad])


parts = st.sampled_from(
    ["a", "b", "ab", "*", "?", "**", "a*", "*.py", "x.py", "[a]", ".", "..", ""]
)


@given(pattern=st.lists(parts, min_size=1, max_size=5).map("/".join),
       path=st.lists(st.sampled_from(["a", "b", "ab", "x.py", "ax.py", "[a]", "b.py"]),
                     min_size=1, max_size=5).map("/".join))  # fmt: skip
def test_scope_agrees_with_the_plan(pattern: str, path: str) -> None:
    """Whatever a plan's item owns, the scope check lets it change; nothing more."""
    try:
        normal = normalise_path(pattern)
    except PathRefused:
        with pytest.raises(GitError, match="scope pattern"):
            scope_violations([path], [pattern])
        return
    assert (scope_violations([path], [pattern]) == []) == plan_matches(normal, path)


repo_paths = st.lists(  # what git reports: parts joined by single slashes
    st.lists(st.text(alphabet="ab._-", min_size=1, max_size=4), min_size=1, max_size=4).map(
        "/".join
    ),
    max_size=8,
)
patterns = st.lists(st.text(alphabet="ab/._-*", min_size=1, max_size=12), max_size=8)


@given(changed=repo_paths, owns=patterns)
def test_scope_violations_properties(changed: list[str], owns: list[str]) -> None:
    try:
        found = scope_violations(changed, owns)
    except GitError:
        return  # a pattern the plan refuses too: refused, never guessed
    assert found == sorted(set(found))
    assert set(found) <= set(changed)
    assert scope_violations(changed, [*owns, "**"]) == []  # '**' owns everything
    # more patterns never add a violation
    assert set(scope_violations(changed, [*owns, "a", "b/*"])) <= set(found)


def test_scope_check_end_to_end(repo: Repo, tmp_path: Path) -> None:
    path = Worktrees(repo, tmp_path / "wt").open("W1", branch="b/W1", start="main")
    write(path, {"src/auth/token.py": "t\n", "src/app.py": "changed\n", "notes.md": "n\n"})
    assert scope_violations(changed_files(path, "main"), ["src/auth/**", "src/app.py"]) == [
        "notes.md"
    ]


def test_worktree_functions_refuse_what_is_not_a_worktree(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GitError, match="not a git worktree"):
        changed_files(plain, "HEAD")
    assert os.path.exists(plain)
