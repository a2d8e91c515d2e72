"""The merge queue: accepted work items land on the mission branch one at a time.

:meth:`MergeQueue.merge` squashes an item onto the *current* mission-branch tip:

1. take the queue's lock (``flock`` on ``root/.merge.lock``: one merge at a time,
   across processes);
2. if the mission branch already holds a commit with this item's
   ``Nexus-Work-Item`` and ``Nexus-Patch`` trailers, answer ``already_merged``;
3. three-way merge the item branch into the tip (``git merge-tree``; the base is
   where the item started, or, for a follow-up of an item merged before, the item
   commit that merge took) -- the same result as rebasing the item's new commits
   and squashing them; trivial conflicts are resolved (``_resolve``), others
   answer ``conflict``;
4. make the one commit (parent: the tip; trailers: the caller's, then
   ``Nexus-Work-Item``, ``Nexus-Patch`` -- the SHA-256 of the item's patch from
   where it started -- and ``Nexus-Source``, the item commit merged);
5. check it out in the queue's own worktree ``root/.integration`` and run
   ``check(path)``: a failure answers ``rejected`` with the diagnosis and the
   branch has not moved -- that is the rollback;
6. move the branch with ``git update-ref <ref> <new> <tip>`` (compare-and-swap:
   if anything moved it meanwhile, start again from step 2 on the new tip).

Nothing is written to the branch before step 6, and step 2 finds what step 6
wrote, so a ``kill -9`` anywhere followed by another ``merge()`` of the same item
ends with exactly one commit for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nexus.missions.workspace._changes import DIFF_OPTIONS, patch_sha256
from nexus.missions.workspace._git import (
    GitError,
    Target,
    check_branch,
    check_item,
    check_trailers,
    commit_message,
    run_git,
)
from nexus.missions.workspace._repo import Repo
from nexus.missions.workspace._resolve import (
    SIDE_LIMIT,
    ParsedMerge,
    Stage,
    conflict_kind,
    is_text,
    parse_merge_tree,
    trivial_resolution,
)
from nexus.missions.workspace._revs import fork_point
from nexus.missions.workspace._worktrees import READY_MARK, own_root, worktree_target

#: the trailers the queue adds to every commit it makes
ITEM_TRAILER = "Nexus-Work-Item"
PATCH_TRAILER = "Nexus-Patch"
SOURCE_TRAILER = "Nexus-Source"
_OWN_TRAILERS = (ITEM_TRAILER, PATCH_TRAILER, SOURCE_TRAILER)

#: a test hook: ``NEXUS_MERGE_PAUSE_AT=<step>`` makes :meth:`MergeQueue.merge` write
#: ``root/.paused-<step>`` and sleep at that step (locked, checked, committed, landed),
#: so a test can ``kill -9`` it there
PAUSE_ENV = "NEXUS_MERGE_PAUSE_AT"

INTEGRATION_DIR = ".integration"
_LOCK_FILE = ".merge.lock"
_BASE_FILE = ".mission-base.json"
_INDEX_FILE = ".merge-index"
_CAS_TRIES = 5
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

Status = Literal["merged", "already_merged", "conflict", "rejected"]


@dataclass(frozen=True, slots=True)
class Conflict:
    """A path the queue could not merge, with each side for the integrator.

    ``base``/``ours``/``theirs`` are the texts (ours: the mission branch, theirs: the
    item), ``None`` where that side has no file or is binary; each is cut at
    :data:`SIDE_LIMIT` bytes, and ``truncated`` says so.
    """

    path: str
    kind: str
    base: str | None
    ours: str | None
    theirs: str | None
    truncated: bool = False
    messages: tuple[str, ...] = ()

    def to_data(self) -> dict[str, object]:
        """The conflict as JSON-safe data."""
        return {
            "path": self.path,
            "kind": self.kind,
            "base": self.base,
            "ours": self.ours,
            "theirs": self.theirs,
            "truncated": self.truncated,
            "messages": list(self.messages),
        }


@dataclass(frozen=True, slots=True)
class MergeOutcome:
    """What :meth:`MergeQueue.merge` did.

    Attributes:
        status: ``merged`` (the branch moved to ``commit``), ``already_merged``
            (``commit`` holds the item already), ``conflict`` (``conflicts`` lists
            what needs the integrator), ``rejected`` (the check failed, or the item
            changes nothing: ``diagnostics`` says why; the branch did not move).
        commit: the item's commit on the mission branch, or ``None``.
        conflicts: the paths left to the integrator.
        resolved: the paths whose conflicts were trivial and resolved.
        diagnostics: the check's output, or why the item was not merged.
        item: the work item.
        patch_sha256: the hash of the item's patch (from where it started to its head).
        onto: the mission-branch commit the item was merged onto, or ``None``.
    """

    status: Status
    commit: str | None
    conflicts: list[Conflict] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    diagnostics: str = ""
    item: str = ""
    patch_sha256: str | None = None
    onto: str | None = None

    def to_data(self) -> dict[str, object]:
        """The outcome as JSON-safe data, the same for the same outcome."""
        return {
            "status": self.status,
            "item": self.item,
            "commit": self.commit,
            "onto": self.onto,
            "patch_sha256": self.patch_sha256,
            "conflicts": [c.to_data() for c in sorted(self.conflicts, key=lambda c: c.path)],
            "resolved": sorted(self.resolved),
            "diagnostics": self.diagnostics,
        }


@dataclass(frozen=True, slots=True)
class _Prepared:
    tip: str
    commit: str
    patch: str
    resolved: list[str]


Check = Callable[[Path], Awaitable[tuple[bool, str]]]


class MergeQueue:
    """Merges work items onto ``mission_branch`` one at a time (module docstring).

    Example::

        queue = MergeQueue(repo, "nexus/m1", state_dir / "merge")
        outcome = await queue.merge("W1", "nexus/m1.items/W1", message="W1: login",
                                    trailers={"Nexus-Mission": "m1"}, check=run_tests)
    """

    def __init__(self, repo: Repo, mission_branch: str, root: Path) -> None:
        """Queue onto ``mission_branch``, keeping the queue's files under ``root``.

        The first queue made for ``root`` records the branch's commit then as the
        mission's base: only commits above it count as merged items.

        Raises:
            GitError: the branch name is bad or the branch does not exist, ``root``
                overlaps the repository, or ``root`` belongs to another branch's queue.
        """
        self.repo = repo
        self.branch = check_branch(mission_branch)
        self.ref = f"refs/heads/{mission_branch}"
        # one git process for the tip and the base a queue recorded (read again below)
        recorded = _peek_base(Path(root) / _BASE_FILE)
        if recorded is None:
            tip, known = repo.resolve(self.ref), None
        else:
            tip, known = repo.resolve_many(self.ref, recorded)
        if tip is None:
            raise GitError(
                f"{repo.path}: the mission branch {mission_branch} does not exist "
                "(Repo.ensure_branch makes it)",
                repo=repo.path,
            )
        self.root = own_root(repo, root)
        self.base = self._record_base(tip, {recorded: known} if recorded else {})

    @property
    def integration_path(self) -> Path:
        """The queue's own worktree, where the combined result is checked."""
        return self.root / INTEGRATION_DIR

    def cleanup(self) -> None:
        """Delete the queue's integration worktree (made again by the next merge)."""
        path = self.integration_path
        run_git(self.repo.target, ["worktree", "remove", "--force", "--force", str(path)],
                ok=(0, 128))  # fmt: skip
        if os.path.islink(path):
            path.unlink()
        elif os.path.lexists(path):
            shutil.rmtree(path)
        run_git(self.repo.target, ["worktree", "prune"])

    def merged(self) -> dict[str, str]:
        """``item -> commit`` of the items on the mission branch (see :func:`merged_items`)."""
        return merged_items(self.repo, self.branch, since=self.base)

    async def merge(
        self,
        item: str,
        branch: str,
        *,
        message: str,
        trailers: Mapping[str, str],
        check: Check | None = None,
    ) -> MergeOutcome:
        """Merge ``branch`` (the item's) onto the mission branch, checked, as one commit.

        Args:
            item: the work item (its ``Nexus-Work-Item`` trailer).
            branch: the item's branch.
            message: the commit message's text.
            trailers: more trailers (``Nexus-Mission``, ``Nexus-Attempt``...).
            check: runs the checks on the combined tree (the path of the integration
                worktree) and answers ``(passed, diagnostics)``; ``None`` merges unchecked.

        Raises:
            GitError: a bad name, message or trailer; a branch is missing or shares no
                history with the mission branch; git fails.
        """
        check_item(item)
        check_branch(branch)
        extra = check_trailers(trailers)
        if any(k.lower() in (t.lower() for t in _OWN_TRAILERS) for k, _ in extra):
            raise GitError(f"the queue writes the {', '.join(_OWN_TRAILERS)} trailers", repo="")
        commit_message(message, ())
        async with self._locked():
            _pause("locked", self.root)
            for _ in range(_CAS_TRIES):
                prepared = await asyncio.to_thread(self._prepare, item, branch, message, extra)
                if isinstance(prepared, MergeOutcome):
                    return prepared
                if check is not None:
                    path = await asyncio.to_thread(self._check_out, prepared.commit)
                    passed, diagnostics = await check(path)
                    _pause("checked", self.root)
                    if not passed:
                        return MergeOutcome(
                            "rejected", None, [], prepared.resolved, diagnostics, item,
                            prepared.patch, prepared.tip,
                        )  # fmt: skip
                _pause("committed", self.root)
                if await asyncio.to_thread(self._move, prepared.tip, prepared.commit):
                    _pause("landed", self.root)
                    return MergeOutcome(
                        "merged", prepared.commit, [], prepared.resolved, "", item,
                        prepared.patch, prepared.tip,
                    )  # fmt: skip
        raise GitError(
            f"{self.repo.path}: {self.branch} kept moving under the merge queue "
            f"({_CAS_TRIES} tries); something else writes to it",
            repo=self.repo.path,
        )

    # -- the steps (run in a thread: git is blocking) ----------------------------------

    def _prepare(
        self, item: str, branch: str, message: str, extra: list[tuple[str, str]]
    ) -> _Prepared | MergeOutcome:
        target = self.repo.target
        fork = fork_point(target, self.ref, f"refs/heads/{branch}")
        if fork.left is None:
            raise GitError(f"{self.repo.path}: the mission branch {self.branch} is gone",
                           repo=self.repo.path)  # fmt: skip
        if fork.right is None:
            raise GitError(f"{self.repo.path}: the item branch {branch} does not exist",
                           repo=self.repo.path)  # fmt: skip
        if fork.base is None:
            raise GitError(
                f"{self.repo.path}: {branch} shares no history with {self.branch}",
                repo=self.repo.path,
            )
        tip, head, start = fork.left, fork.right, fork.base
        patch = patch_sha256(
            run_git(target, ["diff", *DIFF_OPTIONS, start, head, "--"]).stdout.decode(
                "utf-8", "replace"
            )
        )
        merge_base = start
        for record in _records(self.repo, self.branch, self.base, tip):
            if record.item != item:
                continue
            if record.patch == patch:
                onto = self.repo.resolve(f"{record.commit}^")
                return MergeOutcome(
                    "already_merged", record.commit, item=item, patch_sha256=patch, onto=onto
                )
            if merge_base == start and _is_ancestor(target, record.source, head):
                # a follow-up of an item merged before: only what came after that merge
                merge_base = record.source
        if merge_base == head:
            return MergeOutcome(
                "rejected", None, diagnostics=f"{branch} changes nothing: it has no commit "
                f"that {self.branch} lacks", item=item, patch_sha256=patch, onto=tip,
            )  # fmt: skip
        if merge_base == tip:
            # the item's new work starts at the tip: the three-way merge is the item's tree
            parsed = ParsedMerge(tree=f"{head}^{{tree}}")
        else:
            parsed = parse_merge_tree(_merge_tree(target, merge_base, tip, head))
        tree = parsed.tree
        resolved: list[str] = []
        conflicts: list[Conflict] = []
        choices: dict[str, tuple[Stage, bytes]] = {}
        for path in sorted(parsed.stages):
            stages = parsed.stages[path]
            blobs = {n: _blob(target, s.oid) for n, s in stages.items() if s.mode != "160000"}
            choice = trivial_resolution(stages, blobs) if len(blobs) == len(stages) else None
            if choice is not None:
                choices[path] = choice
                resolved.append(path)
            else:
                conflicts.append(_conflict(path, stages, blobs, parsed.messages.get(path, [])))
        if conflicts:
            return MergeOutcome(
                "conflict", None, conflicts, resolved,
                f"{len(conflicts)} conflicting path(s) need the integrator: "
                + ", ".join(c.path for c in conflicts), item, patch, tip,
            )  # fmt: skip
        if choices:
            tree = self._tree_with(tree, choices)
        trailers = [*extra, (ITEM_TRAILER, item), (PATCH_TRAILER, patch), (SOURCE_TRAILER, head)]
        made = run_git(
            target, ["commit-tree", tree, "-p", tip, "-F", "-"],
            stdin=commit_message(message, trailers).encode("utf-8"),
        )  # fmt: skip
        return _Prepared(tip, made.stdout.decode("ascii").strip(), patch, resolved)

    def _tree_with(self, tree: str, choices: dict[str, tuple[Stage, bytes]]) -> str:
        """``tree`` with each resolved path's chosen content written in."""
        target = self.repo.target
        index = self.root / _INDEX_FILE
        with contextlib.suppress(FileNotFoundError):
            index.unlink()
        env = {"GIT_INDEX_FILE": str(index)}
        try:
            run_git(target, ["read-tree", tree], env=env)
            lines = b""
            for path, (stage, data) in sorted(choices.items()):
                oid = run_git(target, ["hash-object", "-w", "--no-filters", "--stdin"],
                              stdin=data).stdout.decode("ascii").strip()  # fmt: skip
                lines += f"{stage.mode} {oid}\t".encode("ascii") + os.fsencode(path) + b"\0"
            run_git(target, ["update-index", "-z", "--index-info"], stdin=lines, env=env)
            return run_git(target, ["write-tree"], env=env).stdout.decode("ascii").strip()
        finally:
            with contextlib.suppress(FileNotFoundError):
                index.unlink()

    def _check_out(self, commit: str) -> Path:
        """The integration worktree at ``commit``, clean (made or repaired as needed)."""
        path = self.integration_path
        target, made = self._integration(commit)
        if made:
            return path  # a worktree just added at the commit: checked out, nothing else in it
        with contextlib.suppress(FileNotFoundError):
            (target.git_dir / "index.lock").unlink()  # a crash's: we hold the queue lock
        run_git(target, ["checkout", "--quiet", "--force", "--detach", commit])
        run_git(target, ["clean", "-ffdxq"])
        return path

    def _integration(self, commit: str) -> tuple[Target, bool]:
        """The queue's worktree, and whether it was made now (at ``commit``)."""
        path = self.integration_path
        if os.path.islink(path):
            raise GitError(f"{path} is a symbolic link, not the queue's worktree",
                           repo=self.repo.path)  # fmt: skip
        try:
            target = worktree_target(path)
            if (target.git_dir / READY_MARK).is_file() and target.common_dir == (
                self.repo.common_dir
            ):
                return target, False
        except GitError:
            pass
        add = ["worktree", "add", "--quiet", "--detach", str(path), commit]
        # nothing there (the first merge): add it; a refusal (a stale record) or a
        # leftover is cleared first
        if os.path.lexists(path) or run_git(self.repo.target, add, ok=(0, 128)).returncode:
            run_git(self.repo.target, ["worktree", "remove", "--force", "--force", str(path)],
                    ok=(0, 128))  # fmt: skip
            if os.path.lexists(path):
                shutil.rmtree(path)
            run_git(self.repo.target, ["worktree", "prune"])
            run_git(self.repo.target, add)
        target = worktree_target(path)
        (target.git_dir / READY_MARK).write_text("1\n")
        return target, True

    def _move(self, old: str, new: str) -> bool:
        """Compare-and-swap the mission branch from ``old`` to ``new``."""
        done = run_git(
            self.repo.target,
            ["update-ref", "-m", "nexus: merge queue", self.ref, new, old],
            ok=(0, 1, 128),
        )
        if done.returncode == 0:
            return True
        if self._tip() != old:
            return False  # moved meanwhile: the caller starts again on the new tip
        said = done.stderr.decode("utf-8", "replace").strip()
        raise GitError(f"{self.repo.path}: cannot move {self.branch}: {said}",
                       repo=self.repo.path, git_message=said)  # fmt: skip

    def _tip(self) -> str:
        tip = self.repo.resolve(self.ref)
        if tip is None:
            raise GitError(f"{self.repo.path}: the mission branch {self.branch} is gone",
                           repo=self.repo.path)  # fmt: skip
        return tip

    def _record_base(self, tip: str, resolved: Mapping[str, str | None]) -> str:
        """The mission's base recorded in ``root`` (``tip`` if none was); ``resolved``:
        what some commits were found to name already."""
        path = self.root / _BASE_FILE
        data = json.dumps({"branch": self.branch, "base": tip}).encode("utf-8")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            pass
        else:
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            resolved = {**resolved, tip: tip}
        try:
            recorded = json.loads(_read_small(path))
            branch, base = recorded["branch"], recorded["base"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise GitError(f"{path} is not a merge queue's record: {exc}",
                           repo=self.repo.path) from None  # fmt: skip
        if branch != self.branch:
            raise GitError(
                f"{self.root} holds the merge queue of {branch}, not of {self.branch}",
                repo=self.repo.path,
            )
        found = None
        if isinstance(base, str):
            found = resolved[base] if base in resolved else self.repo.resolve(base)
        if found is None or found != base:
            raise GitError(f"{path}: the recorded base {base!r} is not a commit",
                           repo=self.repo.path)  # fmt: skip
        return found

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        path = self.root / _LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                await asyncio.sleep(0.05)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def merged_items(repo: Repo, mission_branch: str, *, since: str | None = None) -> dict[str, str]:
    """``item -> commit`` of the work items merged onto ``mission_branch``.

    Read from the ``Nexus-Work-Item`` trailers of the branch's first-parent history,
    newest first (an item merged twice maps to its newest commit). The walk stops at
    ``since`` (a :class:`MergeQueue` passes the mission's base) or, without it, at the
    first commit that is not the queue's -- so trailers forged in the history the
    mission started from never count.

    Raises:
        GitError: the branch does not exist.
    """
    check_branch(mission_branch)
    found: dict[str, str] = {}
    for record in _records(repo, mission_branch, since):
        found.setdefault(record.item, record.commit)
    return found


@dataclass(frozen=True, slots=True)
class _Record:
    commit: str
    item: str
    patch: str
    source: str


def _records(repo: Repo, branch: str, since: str | None, tip: str | None = None) -> list[_Record]:
    """The queue's commits on ``branch``, newest first (``tip``: its commit, if known)."""
    tip = tip or repo.resolve(f"refs/heads/{branch}")
    if tip is None:
        raise GitError(f"{repo.path}: the branch {branch} does not exist", repo=repo.path)
    fmt = "%H" + "".join(
        f"%x1f%(trailers:key={key},valueonly,separator=%x1e)" for key in _OWN_TRAILERS
    )
    args = ["log", "--first-parent", "-z", "--no-show-signature", f"--format={fmt}", tip]
    if since is not None:
        args.append(f"^{since}")
    done = run_git(repo.target, args)
    out: list[_Record] = []
    for record in done.stdout.split(b"\0"):
        if not record:
            continue
        # not str.strip() on the record: Python counts \x1e and \x1f as whitespace
        commit, *fields = record.decode("utf-8", "replace").split("\x1f")
        values = [[v.strip() for v in f.split("\x1e") if v.strip()] for f in fields]
        if len(values) != 3 or any(len(v) != 1 for v in values):
            if since is None:
                break
            continue
        out.append(_Record(commit, values[0][0], values[1][0], values[2][0]))
    return out


def _merge_tree(target: Target, base: str, ours: str, theirs: str) -> bytes:
    """``git merge-tree --write-tree`` of ``ours`` and ``theirs`` with ``base`` as the base.

    Git 2.39 has no ``--merge-base``: two throwaway commits with the trees of ``ours``
    and ``theirs`` and the single parent ``base`` make ``base`` their only merge base.
    """
    sides = []
    for commit in (ours, theirs):
        made = run_git(
            target, ["commit-tree", f"{commit}^{{tree}}", "-p", base, "-m", "nexus: side"]
        )
        sides.append(made.stdout.decode("ascii").strip())
    return run_git(target, ["merge-tree", "--write-tree", "-z", *sides], ok=(0, 1)).stdout


def _is_ancestor(target: Target, maybe: str, commit: str) -> bool:
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", maybe):
        return False
    done = run_git(target, ["merge-base", "--is-ancestor", maybe, commit], ok=(0, 1, 128))
    return done.returncode == 0


def _blob(target: Target, oid: str) -> bytes:
    return run_git(target, ["cat-file", "blob", oid]).stdout


def _conflict(
    path: str, stages: dict[int, Stage], blobs: dict[int, bytes], messages: list[str]
) -> Conflict:
    texts: dict[int, str | None] = {}
    truncated = False
    for number in (1, 2, 3):
        data = blobs.get(number)
        if data is None or not is_text(data):
            texts[number] = None
            continue
        truncated = truncated or len(data) > SIDE_LIMIT
        texts[number] = data[:SIDE_LIMIT].decode("utf-8", "replace")
    binary = any(not is_text(b) for b in blobs.values())
    return Conflict(
        path,
        "binary" if binary else conflict_kind(stages),
        texts[1],
        texts[2],
        texts[3],
        truncated,
        tuple(messages),
    )


def _peek_base(path: Path) -> str | None:
    """The base a queue's record names, if it reads as one (:meth:`MergeQueue._record_base`
    reads it again, and checks everything)."""
    try:
        base = json.loads(_read_small(path)).get("base")
    except (OSError, ValueError, AttributeError):
        return None
    return base if isinstance(base, str) and _SHA.fullmatch(base) else None


def _read_small(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def _pause(step: str, root: Path) -> None:
    """The kill test's hook (:data:`PAUSE_ENV`); nothing unless the variable names ``step``."""
    if os.environ.get(PAUSE_ENV) != step:
        return
    (root / f".paused-{step}").write_text(str(os.getpid()))
    time.sleep(3600)
