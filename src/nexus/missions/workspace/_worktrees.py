"""One git worktree per work item, under a directory Nexus owns, that survives a crash."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

from nexus.missions.workspace._git import (
    GitError,
    Target,
    check_branch,
    check_item,
    run_git,
)
from nexus.missions.workspace._repo import Repo

#: written in a worktree's record once its checkout is complete (a crash before that
#: leaves a worktree that is removed and made again, never reattached half-made)
READY_MARK = "nexus-ready"


class Worktrees:
    """The work items' worktrees of one repository, each at ``root/<item>``.

    :meth:`open` adds a worktree, or reattaches the one a crashed process left;
    :meth:`remove` and :meth:`remove_all` delete them (their branches stay).
    """

    def __init__(self, repo: Repo, root: Path) -> None:
        """Use ``root`` (made if missing) for the worktrees.

        Raises:
            GitError: ``root`` is inside the repository's work tree or git directory
                (the user's checkout is never touched), or is not a directory.
        """
        self.repo = repo
        self.root = own_root(repo, root)

    def path_for(self, item: str) -> Path:
        """Where the worktree of ``item`` lives (whether or not it exists)."""
        return self.root / check_item(item)

    def open(self, item: str, *, branch: str, start: str) -> Path:
        """The worktree of ``item`` on ``branch``, made from ``start`` if need be.

        Idempotent: a worktree already there on ``branch`` is reattached as it is
        (with the work in it); a half-made one (a crash during ``git worktree add``)
        is removed and made again. ``branch`` is created at ``start`` only if missing.

        Raises:
            GitError: a bad name; ``root/<item>`` is a symbolic link or a worktree of
                another branch; the branch is checked out elsewhere; git fails.
        """
        check_item(item)
        check_branch(branch)
        path = self.root / item
        _refuse_link(path)
        if not os.path.lexists(path) and self._add(path, branch, start, first_try=True):
            return path  # the usual case: nothing there, nothing recorded
        registered = self._registered()
        if path in registered:
            if registered[path] != f"refs/heads/{branch}":
                raise GitError(
                    f"the worktree {path} is on {registered[path] or 'a detached HEAD'}, "
                    f"not on {branch}",
                    repo=self.repo.path,
                )
            target = worktree_target(path)
            if (target.git_dir / READY_MARK).is_file():
                return path
            if self._drop(path, registered):
                self._prune()
        elif os.path.lexists(path):
            _delete_dir(path)  # left by a crash before git recorded it
        self._add(path, branch, start, first_try=False)
        return path

    def _add(self, path: Path, branch: str, start: str, *, first_try: bool) -> bool:
        """``git worktree add`` on ``branch`` (made at ``start`` if missing), marked ready.

        A first try, before anything was listed, answers ``False`` if git refuses (a
        stale record of the path, say), so that the caller looks closer and tries again.
        """
        if not self.repo.create_branch(branch, start):
            self.repo.ensure_branch(branch, start)  # it exists (or an error says why not)
        done = run_git(
            self.repo.target, ["worktree", "add", "--quiet", str(path), branch],
            ok=(0, 128) if first_try else (0,),
        )  # fmt: skip
        if done.returncode != 0:
            return False
        target = worktree_target(path)
        _write_mark(target.git_dir / READY_MARK)
        return True

    def remove(self, item: str) -> None:
        """Delete the worktree of ``item`` (its branch stays); nothing if there is none."""
        path = self.path_for(item)
        if self._drop(path, self._registered()):
            self._prune()

    def remove_all(self) -> None:
        """Delete every worktree under ``root`` (the branches stay)."""
        registered = self._registered()
        dropped = [self._drop(p, registered) for p in sorted(registered) if p.parent == self.root]
        if any(dropped):
            self._prune()

    def list(self) -> dict[str, Path]:
        """``item -> path`` of the worktrees under ``root``, by item."""
        found: dict[str, Path] = {}
        for path in self._registered():
            if path.parent != self.root:
                continue
            try:
                found[check_item(path.name)] = path
            except GitError:
                continue  # not a work item's (the merge queue's own, say)
        return dict(sorted(found.items()))

    def _drop(self, path: Path, registered: Mapping[Path, str]) -> bool:
        """Delete the worktree at ``path``; whether git kept a record of it (to prune).

        ``registered`` is the listing this operation took (removing other worktrees
        since changes nothing it says about ``path``).
        """
        stale = False
        if path in registered:
            done = run_git(
                self.repo.target, ["worktree", "remove", "--force", "--force", str(path)],
                ok=(0, 128),
            )  # fmt: skip
            stale = done.returncode != 0
        if os.path.lexists(path):
            _delete_dir(path)
        return stale

    def _registered(self) -> dict[Path, str]:
        """The worktrees of the repository (:func:`_listing`), stale records pruned.

        Git's listing marks a record whose directory is gone ``prunable``; it is pruned
        (and the list taken again) only then, not before every listing.
        """
        registered, prunable = _listing(self.repo)
        if prunable:
            self._prune()
            registered, _ = _listing(self.repo)
        return registered

    def _prune(self) -> None:
        run_git(self.repo.target, ["worktree", "prune"])


def worktree_target(worktree: Path) -> Target:
    """The git directory of a linked worktree, checked, for commands run in it.

    The ``.git`` file of a worktree is writable by whoever writes the worktree, so it
    is not simply believed: it must be a regular file naming a record
    ``<common>/worktrees/<id>`` outside the worktree whose ``gitdir`` names this
    ``.git`` back. A main checkout (a ``.git`` directory, not a link) is accepted too.
    In a worktree Nexus made (its record holds :data:`READY_MARK`), repositories
    nested below the top are deleted first (:func:`remove_nested_repositories`).

    Raises:
        GitError: the path is not a directory, or its ``.git`` does not hold.
    """
    given = Path(worktree)
    if not given.is_dir():
        raise GitError(f"{given} is not a directory", repo=given)
    top = Path(os.path.realpath(given))
    dotgit = top / ".git"
    try:
        info = os.lstat(dotgit)
    except OSError:
        raise GitError(f"{top} is not a git worktree (no .git)", repo=top) from None
    if stat.S_ISDIR(info.st_mode):
        return Target(dotgit, _common_of(dotgit, top), top, top)
    if not stat.S_ISREG(info.st_mode) or info.st_size > 4096:
        raise GitError(f"{top}: .git is neither a directory nor a gitdir file", repo=top)
    text = dotgit.read_text("utf-8", "replace").strip()
    if not text.startswith("gitdir: "):
        raise GitError(f"{top}: .git does not name a git directory", repo=top)
    record = Path(os.path.realpath(text[len("gitdir: ") :]))
    back = record / "gitdir"
    try:
        named = back.read_text("utf-8", "replace").strip()
    except OSError:
        named = ""
    if (
        _inside(record, top)
        or record.parent.name != "worktrees"
        or os.path.realpath(named) != str(dotgit)
    ):
        raise GitError(
            f"{top}: .git points to {record}, which is not this worktree's record "
            "in a repository (was .git rewritten?)",
            repo=top,
        )
    if (record / READY_MARK).is_file():  # made by Nexus: a person's worktree is theirs
        remove_nested_repositories(top)
    return Target(record, _common_of(record, top), top, top)


def remove_nested_repositories(top: Path) -> None:
    """Delete every ``.git`` below the top of a worktree Nexus owns.

    A repository nested in a worktree -- left there by a check's commands, which
    may write the whole worktree -- is the attacker's: when git asks it whether
    it changed (``git add -A`` does, whatever ``--ignore-submodules`` says), git
    runs its ``core.fsmonitor`` and its filters, from its own config, on the host.
    So no nested ``.git`` (a directory, a ``gitdir:`` file or a link) survives to
    a git command: the files around it stay, as ordinary files of the change.
    Links are never followed.

    Raises:
        GitError: one cannot be deleted (a directory made unwritable, say): no git
            command may run in the worktree then.
    """
    stack = [str(top)]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.casefold() == ".git" and folder != str(top):
                try:
                    _delete_dir(Path(entry.path))
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise GitError(
                        f"{top}: cannot delete the repository nested at {entry.path} "
                        f"({exc.strerror}); git will not run in this worktree",
                        repo=top,
                    ) from None
            elif entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)


def _common_of(git_dir: Path, top: Path) -> Path:
    marker = git_dir / "commondir"
    if not marker.is_file():
        return git_dir
    common = Path(os.path.realpath(git_dir / marker.read_text("utf-8", "replace").strip()))
    if _inside(common, top):
        raise GitError(f"{top}: its git directory lies inside the worktree", repo=top)
    return common


def _listing(repo: Repo) -> tuple[dict[Path, str], bool]:
    """``path -> branch ref`` ("" when detached) of every worktree of the repository, and
    whether git calls any of them prunable."""
    done = run_git(repo.target, ["worktree", "list", "--porcelain", "-z"])
    found: dict[Path, str] = {}
    prunable = False
    path: Path | None = None
    for field in done.stdout.split(b"\0"):
        text = os.fsdecode(field)
        if text.startswith("worktree "):
            path = Path(text[len("worktree ") :])
            found[path] = ""
        elif text.startswith("branch ") and path is not None:
            found[path] = text[len("branch ") :]
        elif text.startswith("prunable"):
            prunable = True
    return found, prunable


def own_root(repo: Repo, root: Path) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    real = Path(os.path.realpath(root))
    if not real.is_dir():
        raise GitError(f"{root} is not a directory", repo=repo.path)
    inner = overlapped(repo, real)
    if inner is not None:
        raise GitError(
            f"the worktree directory {real} overlaps {inner}: put it outside the "
            "repository (the user's checkout is never touched)",
            repo=repo.path,
        )
    return real


def overlapped(repo: Repo, path: Path) -> Path | None:
    """The part of ``repo`` (work tree, git directory) that ``path`` lies in or holds, or
    None; ``path`` need not exist (its real path is taken as far as it does)."""
    real = Path(os.path.realpath(path))
    for inner in (repo.path, repo.common_dir, repo.git_dir):
        if _inside(real, inner) or _inside(inner, real):
            return inner
    return None


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _refuse_link(path: Path) -> None:
    if os.path.islink(path):
        raise GitError(
            f"{path} is a symbolic link: a worktree path must be a directory Nexus made",
            repo=path.parent,
        )


def _delete_dir(path: Path) -> None:
    """Delete what is at ``path``: a link itself (never what it points to), or a tree."""
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    shutil.rmtree(path)  # rmtree does not follow links inside the tree


def _write_mark(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, b"1\n")
        os.fsync(fd)
    finally:
        os.close(fd)
