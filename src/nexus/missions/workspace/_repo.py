"""A repository opened for a mission: refs and trees only, never the user's checkout."""

from __future__ import annotations

import os
from pathlib import Path

from nexus.missions.workspace._git import (
    GitError,
    Target,
    check_branch,
    check_revision,
    run_git,
)
from nexus.missions.workspace._revs import resolve_commits


class Repo:
    """A git repository with at least one commit, opened by :meth:`open`.

    Nothing here writes the user's work tree, index or ``HEAD``: branches are made
    with ``git update-ref``, trees are read from objects.

    Attributes:
        path: the top level of the work tree that was opened.
        git_dir: its git directory (a linked work tree's own one, if it is one).
        common_dir: the directory shared by all its work trees (objects, refs, config).
    """

    __slots__ = ("_target", "common_dir", "git_dir", "path")

    def __init__(self, path: Path, git_dir: Path, common_dir: Path, safe: tuple[str, ...]):
        self.path = path
        self.git_dir = git_dir
        self.common_dir = common_dir
        self._target = Target(git_dir, common_dir, None, path, safe)

    def __repr__(self) -> str:
        return f"Repo({str(self.path)!r})"

    @property
    def target(self) -> Target:
        """Where repository-level commands run (no work tree: they never need one)."""
        return self._target

    @classmethod
    def open(cls, path: Path, *, allow_other_owner: bool = False) -> Repo:
        """Open the repository whose work tree holds ``path``.

        Args:
            path: the work tree's top level or any directory inside it.
            allow_other_owner: open a repository another user owns. Git refuses such
                a repository unless it is listed in ``safe.directory``, because its
                config could run programs; this package runs none of them, so it may
                pass ``safe.directory`` for exactly this repository -- but what it
                writes (objects, refs, worktree records) then belongs to the user
                Nexus runs as, so it is refused unless asked for.

        Raises:
            GitError: ``path`` is not a directory, not in a git work tree, a bare
                repository, owned by another user (unless allowed), or has no commit.
        """
        given = Path(path)
        if not given.is_dir():
            raise GitError(f"{given} is not a directory", repo=given)
        start = Path(os.path.realpath(given))
        found = run_git(
            None,
            ["rev-parse", "--path-format=absolute", "--is-bare-repository", "--git-dir",
             "--git-common-dir", "--show-toplevel"],
            cwd=start,
            ok=(0, 128),
            # discovery only: rev-parse reads config and runs nothing, so any owner will do
            # here; the owner is checked below
            extra_config=[("safe.directory", "*"), ("safe.bareRepository", "all")],
        )  # fmt: skip
        if found.returncode != 0:
            said = found.stderr.decode("utf-8", "replace").strip()
            if "not a git repository" in said:
                raise GitError(f"{given} is not in a git repository", repo=given, git_message=said)
            if found.stdout.startswith(b"true\n") or "must be run in a work tree" in said:
                raise GitError(
                    f"{given} is a bare repository: a mission needs a work tree "
                    "(clone it, or give the checkout)",
                    repo=given,
                )
            raise GitError(f"{given}: git cannot open it: {said}", repo=given, git_message=said)
        lines = found.stdout.decode("utf-8", "surrogateescape").splitlines()
        if lines[:1] == ["true"] or len(lines) < 4:
            raise GitError(
                f"{given} is a bare repository: a mission needs a work tree "
                "(clone it, or give the checkout)",
                repo=given,
            )
        git_dir, common_dir, top = (Path(os.path.realpath(x)) for x in lines[1:4])
        safe: tuple[str, ...] = ()
        me = os.geteuid()
        owners = {p: _owner(p) for p in (top, git_dir, common_dir)}
        foreign = {p: uid for p, uid in owners.items() if uid is not None and uid != me}
        if foreign:
            if not allow_other_owner:
                where, uid = next(iter(foreign.items()))
                raise GitError(
                    f"{top}: {where} belongs to uid {uid}, and Nexus runs as uid {me}: "
                    "what it writes in the repository (objects, the mission branch, "
                    "worktree records) would belong to uid "
                    f"{me}. Run Nexus as the repository's owner, or open it with "
                    "allow_other_owner=True",
                    repo=top,
                )
            safe = tuple(sorted({str(top), str(git_dir), str(common_dir)}))
        repo = cls(top, git_dir, common_dir, safe)
        if repo.resolve("HEAD") is None:
            raise GitError(f"{top} has no commit yet: commit something first", repo=top)
        return repo

    def head(self) -> str:
        """The commit ``HEAD`` of the opened work tree points at.

        Raises:
            GitError: ``HEAD`` does not name a commit.
        """
        sha = self.resolve("HEAD")
        if sha is None:
            raise GitError(f"{self.path}: HEAD is not a commit", repo=self.path)
        return sha

    def resolve(self, ref: str) -> str | None:
        """The commit ``ref`` names (a branch, tag, sha...), or ``None`` if none.

        Raises:
            GitError: ``ref`` is not something Nexus passes to git (e.g. starts with '-').
        """
        return resolve_commits(self._target, [ref])[0]

    def resolve_many(self, *refs: str) -> list[str | None]:
        """What :meth:`resolve` answers for each of ``refs``, in order, asking git once.

        Raises:
            GitError: a ref is not something Nexus passes to git.
        """
        return resolve_commits(self._target, refs)

    def ensure_branch(self, name: str, start: str) -> str:
        """Create branch ``name`` at ``start`` unless it exists; return its commit.

        An existing branch is never moved. Only the ref is written (``git update-ref``
        with an empty old value, so a concurrent creator cannot be overwritten).

        Raises:
            GitError: the name is not allowed, ``start`` is not a commit, or git
                refuses the ref (e.g. ``nexus/a`` exists and ``nexus/a/b`` is asked).
        """
        check_branch(name)
        existing, sha = self.resolve_many(f"refs/heads/{name}", start)
        if existing is not None:
            return existing
        if sha is None:
            raise GitError(f"{self.path}: {start!r} is not a commit", repo=self.path)
        done = run_git(
            self._target,
            ["update-ref", "-m", "nexus: create branch", f"refs/heads/{name}", sha, ""],
            ok=(0, 1, 128),
        )
        if done.returncode != 0:
            existing = self.resolve(f"refs/heads/{name}")
            if existing is not None:
                return existing  # another process created it first
            said = done.stderr.decode("utf-8", "replace").strip()
            raise GitError(
                f"{self.path}: cannot create branch {name}: {said}",
                repo=self.path,
                command=("update-ref",),
                git_message=said,
            )
        return sha

    def create_branch(self, name: str, start: str) -> bool:
        """Create branch ``name`` at the commit ``start`` names; whether it was created.

        One git process for a branch that is usually new (a work item's): ``False``
        when it exists already, ``start`` is no commit or git refuses the ref --
        :meth:`ensure_branch` then says which. An existing branch is never moved.

        Raises:
            GitError: the name or ``start`` is not something Nexus passes to git.
        """
        check_branch(name)
        check_revision(start, repo=self.path)
        done = run_git(
            self._target,
            ["update-ref", "-m", "nexus: create branch", f"refs/heads/{name}",
             f"{start}^{{commit}}", ""],
            ok=(0, 1, 128),
        )  # fmt: skip
        return done.returncode == 0

    def tracked_files(self, ref: str) -> list[str]:
        """The paths of the files in the tree of commit ``ref``, sorted.

        Raises:
            GitError: ``ref`` is not a commit.
        """
        check_revision(ref, repo=self.path)
        done = run_git(
            self._target,
            ["ls-tree", "-r", "-z", "--name-only", "--full-tree", "--end-of-options",
             f"{ref}^{{commit}}"],
            ok=(0, 128),
        )  # fmt: skip
        if done.returncode != 0:
            if self.resolve(ref) is None:
                raise GitError(f"{self.path}: {ref!r} is not a commit", repo=self.path)
            said = done.stderr.decode("utf-8", "replace").strip()
            raise GitError(f"{self.path}: cannot list the files of {ref!r}: {said}",
                           repo=self.path, command=("ls-tree",), git_message=said)  # fmt: skip
        return sorted(os.fsdecode(p) for p in done.stdout.split(b"\0") if p)


def _owner(path: Path) -> int | None:
    try:
        return os.stat(path).st_uid
    except OSError:
        return None
