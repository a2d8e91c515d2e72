"""Hostile repositories: nothing a repository, its config or a work item names ever runs.

Every attack plants programs that would leave a mark in ``marks/`` if git ran them,
then drives the whole layer (open, worktree, changes, commit, diff, merge with a
conflict, checked merge); the test fails on any mark. Run as root and, in CI, as an
unprivileged user too (``.ci/run``).
"""

from __future__ import annotations

import asyncio
import os
import stat
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
    discard_changes,
)

HOOKS = (
    "pre-commit", "prepare-commit-msg", "commit-msg", "post-commit", "post-checkout",
    "post-merge", "pre-rebase", "post-rewrite", "reference-transaction", "pre-auto-gc",
    "post-index-change", "pre-merge-commit", "fsmonitor-watchman",
)  # fmt: skip


class Attack:
    """A repository, a directory for marks and an evil program that leaves one."""

    def __init__(self, tmp_path: Path) -> None:
        self.marks = tmp_path / "marks"
        self.marks.mkdir()
        os.chmod(self.marks, 0o777)
        self.evil = tmp_path / "evil.sh"
        self.evil.write_text(f'#!/bin/sh\ntouch "{self.marks}/$(basename "$0")-$$"\ncat\n')
        self.evil.chmod(0o755)
        self.path = make_repo(
            tmp_path / "repo", {"app.py": "A = 1\n", "data.txt": "one\ntwo\nthree\n"}
        )
        self.tmp = tmp_path

    def config(self, *pairs: tuple[str, str]) -> None:
        for key, value in pairs:
            git(self.path, "config", key, value)

    def attributes(self, text: str) -> None:
        """Commit ``.gitattributes`` (the drivers are not configured yet, so git runs none)."""
        write(self.path, {".gitattributes": text})
        git(self.path, "add", ".gitattributes")
        git(self.path, "commit", "-q", "-m", "attributes")

    def plant_hooks(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name in HOOKS:
            target = directory / name
            target.write_text(self.evil.read_text())
            target.chmod(0o755)

    def drive(self, *, allow_other_owner: bool = False) -> None:
        """Everything the layer does, including a conflict and a checked merge."""
        repo = Repo.open(self.path, allow_other_owner=allow_other_owner)
        repo.ensure_branch("nexus/m", "main")
        trees = Worktrees(repo, self.tmp / "wt")
        one = trees.open("W1", branch="nexus/m.items/W1", start="nexus/m")
        two = trees.open("W2", branch="nexus/m.items/W2", start="nexus/m")
        write(one, {"data.txt": "one\nTWO\nthree\n", "new.txt": "n\n"})
        write(two, {"data.txt": "one\n2\nthree\n"})
        assert changed_files(one, "nexus/m") == ["data.txt", "new.txt"]
        change = commit_change(one, "nexus/m", "W1", {"Nexus-Attempt": "1"})
        assert change.commit is not None
        assert change.changed == ["data.txt", "new.txt"]
        assert commit_all(two, "W2", {}) is not None
        assert "+TWO" in diff(one, "nexus/m") == change.patch
        queue = MergeQueue(repo, "nexus/m", self.tmp / "q")

        async def check(path: Path) -> tuple[bool, str]:
            return (path / "new.txt").read_text() == "n\n", ""

        async def run() -> tuple[str, str]:
            first = await queue.merge("W1", "nexus/m.items/W1", message="W1", trailers={},
                                      check=check)  # fmt: skip
            second = await queue.merge("W2", "nexus/m.items/W2", message="W2", trailers={})
            return first.status, second.status

        assert asyncio.run(run()) == ("merged", "conflict")
        trees.remove_all()
        queue.cleanup()

    def assert_nothing_ran(self) -> None:
        assert sorted(os.listdir(self.marks)) == []


@pytest.fixture
def attack(tmp_path: Path) -> Attack:
    return Attack(tmp_path)


def test_planted_hooks_never_run(attack: Attack) -> None:
    attack.plant_hooks(attack.path / ".git" / "hooks")
    attack.plant_hooks(attack.tmp / "elsewhere")
    attack.config(("core.hooksPath", str(attack.tmp / "elsewhere")))
    attack.drive()
    attack.assert_nothing_ran()


def test_filter_merge_and_diff_drivers_in_config_and_attributes_never_run(
    attack: Attack,
) -> None:
    attack.attributes("* filter=evil diff=evil merge=evil\n")
    # info/attributes applies to every command, wherever git thinks the work tree is
    (attack.path / ".git" / "info").mkdir(exist_ok=True)
    (attack.path / ".git" / "info" / "attributes").write_text("* merge=evil diff=evil\n")
    evil = str(attack.evil)
    attack.config(
        ("filter.evil.clean", evil), ("filter.evil.smudge", evil),
        ("filter.evil.process", evil), ("filter.evil.required", "true"),
        ("diff.evil.textconv", evil), ("diff.evil.command", evil),
        ("merge.evil.driver", evil), ("diff.external", evil),
    )  # fmt: skip
    attack.drive()
    attack.assert_nothing_ran()


def test_drivers_hidden_behind_includes_never_run(attack: Attack) -> None:
    attack.attributes("*.txt filter=hidden\n")
    (attack.path / ".git" / "info").mkdir(exist_ok=True)
    (attack.path / ".git" / "info" / "attributes").write_text("*.txt merge=onbranch\n")
    evil = str(attack.evil)
    included = attack.tmp / "included.cfg"
    included.write_text(f'[filter "hidden"]\n\tclean = {evil}\n\tsmudge = {evil}\n')
    nested = attack.tmp / "nested.cfg"
    nested.write_text(f'[merge "onbranch"]\n\tdriver = {evil}\n[include]\n\tpath = deeper.cfg\n')
    (attack.tmp / "deeper.cfg").write_text(f'[filter "hidden"]\n\tprocess = {evil}\n')
    attack.config(
        ("include.path", str(included)),
        ("includeIf.onbranch:nexus/**.path", str(nested)),
        ("includeIf.gitdir:**.path", "../../nested.cfg"),
    )
    attack.drive()
    attack.assert_nothing_ran()


def test_drivers_named_after_git_first_ran_never_run(attack: Attack) -> None:
    # what was read of the config is remembered: a change, even in an included file
    # only, is read again
    Repo.open(attack.path).resolve("main")
    included = attack.tmp / "late.cfg"
    included.write_text("")
    attack.config(("include.path", str(included)))
    Repo.open(attack.path).resolve("main")
    attack.attributes("* filter=late diff=late merge=late\n")
    evil = str(attack.evil)
    included.write_text(
        f'[filter "late"]\n\tclean = {evil}\n\tsmudge = {evil}\n\trequired = true\n'
        f'[diff "late"]\n\ttextconv = {evil}\n[merge "late"]\n\tdriver = {evil}\n'
    )
    attack.drive()
    attack.assert_nothing_ran()


def test_fsmonitor_pager_editor_signing_and_helpers_never_run(attack: Attack) -> None:
    evil = str(attack.evil)
    attack.config(
        ("core.fsmonitor", evil), ("core.pager", evil), ("core.editor", evil),
        ("sequence.editor", evil), ("commit.gpgSign", "true"), ("gpg.program", evil),
        ("credential.helper", evil), ("core.askPass", evil), ("core.sshCommand", evil),
        ("log.showSignature", "true"), ("submodule.recurse", "true"), ("gc.auto", "1"),
        ("trailer.separators", "#"), ("core.commentChar", "N"),
    )  # fmt: skip
    attack.drive()
    attack.assert_nothing_ran()


def test_the_callers_git_environment_does_not_leak_in(
    attack: Attack, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoy = make_repo(attack.tmp / "decoy")
    attack.plant_hooks(attack.tmp / "envhooks")
    monkeypatch.setenv("GIT_DIR", str(decoy / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(decoy))
    monkeypatch.setenv("GIT_INDEX_FILE", str(attack.tmp / "index"))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'core.hooksPath'='{attack.tmp / 'envhooks'}'")
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", str(attack.evil))
    monkeypatch.setenv("GIT_SSH_COMMAND", str(attack.evil))
    attack.drive()
    attack.assert_nothing_ran()
    assert git(decoy, "branch", "--list", "nexus/*") == ""


@pytest.mark.parametrize(
    "name",
    ["-rf", "--output=x", "../up", "a/../b", "a..b", "x\ny", "x y", "@{-1}", "a@{1}", "HEAD",
     "refs/heads/x", ".hidden", "end.", "x.lock", "a//b", "/abs", "", "a\x7f", "ä"],
)  # fmt: skip
def test_malicious_branch_and_item_names_are_refused(attack: Attack, name: str) -> None:
    repo = Repo.open(attack.path)
    trees = Worktrees(repo, attack.tmp / "wt")
    with pytest.raises(GitError, match="not allowed"):
        repo.ensure_branch(name, "main")
    if name != "HEAD":  # a fine directory name and trailer value, so a fine item
        with pytest.raises(GitError, match="not allowed"):
            trees.open(name, branch="nexus/ok", start="main")
    with pytest.raises(GitError, match="not allowed"):
        trees.open("W1", branch=name, start="main")
    with pytest.raises(GitError, match="not allowed"):
        MergeQueue(repo, name, attack.tmp / "q")
    assert sorted(os.listdir(attack.tmp / "wt")) == []
    assert git(attack.path, "for-each-ref", "--format=%(refname)") == "refs/heads/main\n"


def test_a_symlinked_worktree_path_is_never_followed(attack: Attack) -> None:
    precious = attack.tmp / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep me\n")
    repo = Repo.open(attack.path)
    trees = Worktrees(repo, attack.tmp / "wt")
    os.symlink(precious, attack.tmp / "wt" / "W1")
    with pytest.raises(GitError, match="symbolic link"):
        trees.open("W1", branch="nexus/m.items/W1", start="main")
    trees.remove("W1")
    trees.remove_all()
    assert (precious / "keep.txt").read_text() == "keep me\n"
    assert not os.path.lexists(attack.tmp / "wt" / "W1")  # the link itself went
    queue_root = attack.tmp / "q"
    queue_root.mkdir()
    os.symlink(precious, queue_root / ".integration")
    repo.ensure_branch("nexus/m", "main")
    branch = "nexus/m.items/W2"
    path = trees.open("W2", branch=branch, start="nexus/m")
    write(path, {"x.txt": "x\n"})
    commit_all(path, "x", {})

    async def check(p: Path) -> tuple[bool, str]:
        return True, ""

    with pytest.raises(GitError, match="symbolic link"):
        asyncio.run(MergeQueue(repo, "nexus/m", queue_root).merge(
            "W2", branch, message="m", trailers={}, check=check))  # fmt: skip
    assert sorted(os.listdir(precious)) == ["keep.txt"]


def test_a_rewritten_dot_git_in_a_worktree_is_refused(attack: Attack) -> None:
    repo = Repo.open(attack.path)
    path = Worktrees(repo, attack.tmp / "wt").open("W1", branch="b/W1", start="main")
    fake = make_repo(attack.tmp / "fake")
    attack.plant_hooks(fake / ".git" / "hooks")
    (fake / ".git" / "gitdir").write_text(str(path / ".git") + "\n")
    for pointing in (fake / ".git", path / "inner"):
        (path / ".git").write_text(f"gitdir: {pointing}\n")
        with pytest.raises(GitError, match="not this worktree's record"):
            commit_all(path, "m", {})
    (path / ".git").unlink()
    os.symlink(fake / ".git", path / ".git")
    with pytest.raises(GitError, match="neither a directory nor a gitdir file"):
        changed_files(path, "main")
    attack.assert_nothing_ran()


def _nested_evil_repository(attack: Attack, worktree: Path) -> Path:
    nested = make_repo(worktree / "sub", {"f.txt": "data\n", ".gitattributes": "* filter=evil\n"})
    attack.plant_hooks(nested / ".git" / "hooks")
    evil = str(attack.evil)
    for key, value in (("core.fsmonitor", evil), ("filter.evil.clean", evil),
                       ("filter.evil.smudge", evil), ("filter.evil.process", evil),
                       ("diff.evil.textconv", evil), ("diff.external", evil),
                       ("core.pager", evil)):  # fmt: skip
        git(nested, "config", key, value)
    return nested


def test_a_repository_nested_in_a_worktree_runs_nothing_of_its_own(attack: Attack) -> None:
    # a sandboxed check can write the whole worktree, a nested repository included: its
    # config, attributes and hooks are the attacker's, and git runs its fsmonitor and
    # filters when it asks that repository whether it changed (git add -A does)
    repo = Repo.open(attack.path)
    repo.ensure_branch("nexus/m", "main")
    trees = Worktrees(repo, attack.tmp / "wt")
    # the plant is live: git as a person would run it, in another worktree, runs it
    control = trees.open("W2", branch="nexus/m.items/W2", start="nexus/m")
    _nested_evil_repository(attack, control)
    git(control, "add", "-A")
    (control / "sub" / "f.txt").write_text("DATA\n")
    git(control, "add", "-A")
    assert os.listdir(attack.marks)
    for mark in os.listdir(attack.marks):
        os.unlink(attack.marks / mark)
    path = trees.open("W1", branch="nexus/m.items/W1", start="nexus/m")
    nested = _nested_evil_repository(attack, path)
    (nested / ".git" / "index").unlink()  # dirty from the start: every file changed
    first = commit_change(path, "nexus/m", "W1", {})
    # the nested .git is gone before git looks: its files are ordinary files of the change
    assert first.changed == ["sub/.gitattributes", "sub/f.txt"]
    assert not (nested / ".git").exists()
    # a gitdir file or a link named .git, at any depth, goes the same way
    (path / "sub" / "deeper").mkdir()
    (path / "sub" / "deeper" / ".git").write_text(f"gitdir: {control / 'sub' / '.git'}\n")
    os.symlink(control / "sub" / ".git", path / "sub" / ".GIT")
    assert changed_files(path, "nexus/m") == ["sub/.gitattributes", "sub/f.txt"]
    assert not os.path.lexists(path / "sub" / "deeper" / ".git")
    assert not os.path.lexists(path / "sub" / ".GIT")
    assert "+data" in diff(path, "nexus/m")
    discard_changes(path)
    attack.assert_nothing_ran()
    assert (control / "sub" / ".git").is_dir()  # what a link pointed to is never touched
    # a worktree a person made is theirs: its nested repositories are left alone
    theirs = attack.tmp / "theirs"
    git(attack.path, "worktree", "add", "-q", "--detach", str(theirs), "main")
    make_repo(theirs / "vendored")
    assert changed_files(theirs, "main") == ["vendored/"]
    assert (theirs / "vendored" / ".git").is_dir()


def test_a_nested_repository_that_cannot_be_deleted_stops_git(attack: Attack) -> None:
    # a check may make the nested .git undeletable for an ordinary user (a directory
    # without write permission); root deletes it anyway; either way git never obeys it
    repo = Repo.open(attack.path)
    repo.ensure_branch("nexus/m", "main")
    path = Worktrees(repo, attack.tmp / "wt").open("W1", branch="nexus/m.items/W1",
                                                   start="nexus/m")  # fmt: skip
    nested = _nested_evil_repository(attack, path)
    locked = nested / ".git" / "objects"
    locked.chmod(0o500)
    try:
        if os.geteuid() == 0:
            change = commit_change(path, "nexus/m", "W1", {})
            assert "sub/f.txt" in change.changed
            assert not (nested / ".git").exists()
        else:
            with pytest.raises(GitError, match="cannot delete the repository nested at"):
                commit_change(path, "nexus/m", "W1", {})
    finally:
        if locked.exists():
            locked.chmod(0o700)
    attack.assert_nothing_ran()


def test_links_to_outside_are_paths_never_read(attack: Attack) -> None:
    secret = attack.tmp / "secret.txt"
    secret.write_text("TOP SECRET\n")
    outside = attack.tmp / "outside"
    outside.mkdir()
    repo = Repo.open(attack.path)
    path = Worktrees(repo, attack.tmp / "wt").open("W1", branch="b/W1", start="main")
    os.symlink(secret, path / "leak.txt")
    os.symlink(outside, path / "linkdir")
    (outside / "planted.py").write_text("through the link\n")
    assert changed_files(path, "main") == ["leak.txt", "linkdir"]
    commit_all(path, "links", {})
    patch = diff(path, "main")
    assert "TOP SECRET" not in patch
    assert "through the link" not in patch
    assert f"+{secret}" in patch  # a link's content is where it points, as text
    assert git(path, "ls-tree", "HEAD", "leak.txt").startswith("120000")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a repository away")
def test_a_repository_owned_by_another_user(attack: Attack) -> None:
    for dirpath, dirnames, filenames in os.walk(attack.path):
        for name in [*dirnames, *filenames, "."]:
            os.lchown(os.path.join(dirpath, name), 65534, 65534)
    with pytest.raises(GitError, match="belongs to uid 65534") as caught:
        Repo.open(attack.path)
    assert "allow_other_owner" in caught.value.message
    attack.plant_hooks(attack.path / ".git" / "hooks")
    os.chmod(attack.tmp, os.stat(attack.tmp).st_mode | stat.S_IXOTH)
    repo = Repo.open(attack.path, allow_other_owner=True)
    assert repo.resolve("main") is not None
    attack.drive(allow_other_owner=True)
    attack.assert_nothing_ran()
