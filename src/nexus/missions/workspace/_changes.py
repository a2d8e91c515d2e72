"""What a work item changed, whether it stayed in scope, and committing it.

Scope rules (``owns``) are those of a mission plan's work items
(``docs/missions.md``, "Globs"), so the scope check agrees with the plan:

* a path without wildcards owns exactly that file;
* ``*`` matches any characters within one path part (never ``/``), ``?`` one;
* ``**`` as a whole part matches any number of parts, none included
  (``src/**`` owns ``src/a.py`` and ``src/x/b.py``; ``src/**/test_*.py``);
* ``[``, ``]``, ``{`` and ``}`` are ordinary characters (``pages/[id].tsx``);
* matching is case-sensitive; ``./`` and doubled slashes are dropped; a
  pattern that is empty, absolute, ends with ``/``, has a ``..`` part, a
  backslash, ``**`` inside a part, a control character, or lies in ``.git``
  (or ``.nexus`` at the top) is refused.

A changed path no pattern owns is a violation. A rename is two changes (the old
path and the new), so the item must own both.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nexus.missions.workspace._git import (
    _MESSAGE_CHARS,
    GitError,
    Target,
    check_trailers,
    commit_message,
    run_git,
)
from nexus.missions.workspace._repo import Repo
from nexus.missions.workspace._revs import fork_point, resolve_commits
from nexus.missions.workspace._worktrees import worktree_target

#: the options of every patch this package makes, so that the same change is the
#: same text whatever the repository's configuration says
DIFF_OPTIONS: tuple[str, ...] = (
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--binary",
    "--full-index",
    "--no-renames",
    "--src-prefix=a/",
    "--dst-prefix=b/",
    "--unified=3",
    "--inter-hunk-context=0",
    "--diff-algorithm=myers",
    "--indent-heuristic",
    "--ignore-submodules=dirty",
    "--no-relative",
    "-O/dev/null",
)


def changed_files(worktree: Path, base: str) -> list[str]:
    """Every path a worktree changed since it left ``base``, sorted.

    The comparison starts at the merge base of ``base`` and the worktree's ``HEAD``, so
    ``base`` may be the mission branch even after other items moved it on.

    Committed, staged, unstaged and untracked changes alike (files ``.gitignore``
    excludes are not listed: they are not committed either); additions, edits,
    deletions, both sides of a rename. A symbolic link is one path: what it points
    to is never read.

    Raises:
        GitError: ``worktree`` is not a usable worktree or ``base`` is not a commit.
    """
    target = worktree_target(worktree)
    # from where the worktree left base: what others merged onto base since is not this
    # worktree's change
    start = _start(target, base, "HEAD")[0]
    tracked = run_git(target, ["diff", "--name-only", "-z", *DIFF_OPTIONS, start, "--"]).stdout
    untracked = run_git(target, ["ls-files", "-z", "--others", "--exclude-standard"]).stdout
    names = {os.fsdecode(p) for p in (tracked + b"\0" + untracked).split(b"\0") if p}
    return sorted(names)


def scope_violations(changed: Sequence[str], owns: Sequence[str]) -> list[str]:
    """The changed paths no pattern of ``owns`` covers, sorted (rules: module docstring).

    Raises:
        GitError: a pattern is empty, has a ``..`` part or a backslash.
    """
    matchers = [_pattern(p) for p in owns]
    return sorted({path for path in changed if not any(m.fullmatch(path) for m in matchers)})


@functools.lru_cache(maxsize=512)
def _pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression of one ``owns`` entry (module docstring), or a refusal."""
    parts = _pattern_parts(pattern)
    regex = ""
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part != "**":
            regex += "".join(_GLOB.get(ch, re.escape(ch)) for ch in part) + ("" if last else "/")
        elif not last:
            regex += "(?:[^/]+/)*"
        elif index == 0:
            regex += "[^/]+(?:/[^/]+)*"
        else:
            regex = regex[:-1] + "(?:/[^/]+)*"  # 'src/**' is src and all below it
    return re.compile(regex, re.DOTALL)


_GLOB = {"*": "[^/]*", "?": "[^/]"}
_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def _pattern_parts(pattern: str) -> list[str]:
    def refuse(why: str) -> GitError:
        return GitError(f"scope pattern {pattern!r} is not allowed: {why}", repo="")

    if not isinstance(pattern, str) or not pattern or len(pattern) > 300:
        raise refuse("give 1-300 characters")
    if any(unicodedata.category(ch) in _UNPRINTABLE for ch in pattern):
        raise refuse("it holds a control or format character")
    if "\\" in pattern or pattern.startswith("/") or pattern.endswith("/"):
        raise refuse("use '/' between parts, relative to the repository, naming files")
    parts: list[str] = []
    for part in pattern.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise refuse("it leaves its directory with '..'")
        if "**" in part and part != "**":
            raise refuse("'**' stands alone between slashes")
        if not (part == "**" and parts and parts[-1] == "**"):
            parts.append(part)
    if not parts:
        raise refuse("it names the repository's root, not a file")
    if any(p.casefold() == ".git" for p in parts):
        raise refuse("git's own files belong to no work item")
    if parts[0].casefold() == ".nexus":
        raise refuse("Nexus's own files belong to no work item")
    return parts


def commit_all(worktree: Path, message: str, trailers: Mapping[str, str]) -> str | None:
    """Commit everything changed in a worktree; the new commit, or ``None`` if nothing.

    Runs ``git add -A`` (ignored files stay out) and a commit with the package's
    identity, no hook, no signature; the trailers are the message's last paragraph.

    Raises:
        GitError: bad message or trailers; git refuses (e.g. a path behind a link).
    """
    target = worktree_target(worktree)
    if not _commit_everything(target, commit_message(message, check_trailers(trailers))):
        return None
    return _commit(target, "HEAD")


@dataclass(frozen=True, slots=True)
class Change:
    """A worktree's work, committed, as :func:`commit_change` found it.

    Attributes:
        commit: the commit just made, or ``None`` if there was nothing to commit.
        head: the worktree's ``HEAD`` (``commit`` when one was made).
        base: the commit ``base`` named.
        changed: what :func:`changed_files` answers now (every change is committed).
        patch: what :func:`diff` answers from ``base`` to ``head``.
    """

    commit: str | None
    head: str
    base: str
    changed: list[str]
    patch: str


def commit_change(worktree: Path, base: str, message: str, trailers: Mapping[str, str]) -> Change:
    """:func:`commit_all`, then :func:`changed_files` and :func:`diff` from ``base``.

    The same answers with fewer git processes: once everything is committed the
    changed paths are those of ``HEAD`` since it left ``base``, and when it left
    ``base`` itself (the usual case) one ``git diff`` gives both the paths and the patch.

    Raises:
        GitError: bad message or trailers; ``base`` is not a commit; git refuses.
    """
    target = worktree_target(worktree)
    committed = _commit_everything(target, commit_message(message, check_trailers(trailers)))
    start, base_sha, head = _start(target, base, "HEAD")
    if start == base_sha:
        changed, patch = _paths_and_patch(target, base_sha, head)
    else:
        names = run_git(target, ["diff", "--name-only", "-z", *DIFF_OPTIONS, start, head, "--"])
        changed = sorted({os.fsdecode(p) for p in names.stdout.split(b"\0") if p})
        patch = _patch(target, base_sha, head)
    return Change(head if committed else None, head, base_sha, changed, patch)


def _commit_everything(target: Target, text: str) -> bool:
    """``git add -A`` and commit it with ``text``; whether there was anything to commit.

    ``git commit`` says itself when there is nothing to commit (exit 1), except
    during a merge, where it would record the merge: then the index is compared
    with ``HEAD`` first, and nothing is committed if they are the same.
    """
    run_git(target, ["add", "-A"])
    merging = os.path.lexists(target.git_dir / "MERGE_HEAD")
    if merging and _index_is_head(target):
        return False
    done = run_git(
        target,
        ["commit", "--quiet", "--no-verify", "--no-gpg-sign", "--cleanup=verbatim",
         "--no-edit", "--file=-"],
        stdin=text.encode("utf-8"),
        ok=(0, 1),
    )  # fmt: skip
    if done.returncode == 0:
        return True
    if not merging and _index_is_head(target):
        return False
    said = done.stderr.decode("utf-8", "replace").strip()[-_MESSAGE_CHARS:]
    raise GitError(
        f"git commit failed in {target.label} (exit 1): {said or 'no message'}",
        repo=target.label,
        command=("commit",),
        git_message=said,
    )


def _index_is_head(target: Target) -> bool:
    staged = run_git(target, ["diff", "--cached", "--quiet", "--no-ext-diff"], ok=(0, 1))
    return staged.returncode == 0


def discard_changes(worktree: Path) -> None:
    """Put a worktree back to its ``HEAD``: changes and untracked files gone (ignored ones stay).

    What a check's commands left behind (a test's output file, say) must not
    become part of the item's next commit.

    Raises:
        GitError: git refuses.
    """
    target = worktree_target(worktree)
    run_git(target, ["reset", "--quiet", "--hard", "HEAD"])
    run_git(target, ["clean", "-f", "-d", "-q"])


def merge_into(worktree: Path, commit: str) -> list[str]:
    """Merge ``commit`` into a worktree's branch, uncommitted; the paths left in conflict.

    For a work item whose mission branch moved under it (the queue answered
    ``conflict``): the merge is left open, conflicted files hold git's markers,
    and the next :func:`commit_all` records the resolution as the merge commit.
    A merge already open is aborted first (a crash left it).

    Raises:
        GitError: ``commit`` is not a commit; git fails otherwise.
    """
    target = worktree_target(worktree)
    sha = _commit(target, commit)
    run_git(target, ["merge", "--abort"], ok=(0, 128))
    run_git(target, ["reset", "--quiet", "--hard", "HEAD"])
    run_git(
        target,
        ["merge", "--no-ff", "--no-commit", "--no-edit", "--no-verify", "--no-gpg-sign",
         "--no-stat", sha],
        ok=(0, 1),
    )  # fmt: skip
    listed = run_git(target, ["diff", "--name-only", "--diff-filter=U", "-z"])
    return sorted(p for p in listed.stdout.decode("utf-8", "replace").split("\0") if p)


def diff(worktree_or_repo: Path | Repo, base: str, head: str = "HEAD") -> str:
    """The patch from commit ``base`` to commit ``head`` (:data:`DIFF_OPTIONS`).

    ``worktree_or_repo`` is a worktree (``HEAD`` is then its own) or a :class:`Repo`.
    Binary changes are in git's binary patch format; text that is not UTF-8 is read
    with replacement characters, so the result is deterministic text.

    Raises:
        GitError: either revision is not a commit.
    """
    target = worktree_or_repo.target if isinstance(worktree_or_repo, Repo) else (
        worktree_target(worktree_or_repo)
    )  # fmt: skip
    base_sha, head_sha = _commits(target, base, head)
    return _patch(target, base_sha, head_sha)


def patch_sha256(diff: str) -> str:
    """The SHA-256 (hex) of a patch's UTF-8 bytes (``evidence.patch_hash`` agrees)."""
    return hashlib.sha256(diff.encode("utf-8")).hexdigest()


def _patch(target: Target, base_sha: str, head_sha: str) -> str:
    done = run_git(target, ["diff", *DIFF_OPTIONS, base_sha, head_sha, "--"])
    return done.stdout.decode("utf-8", "replace")


def _paths_and_patch(target: Target, base_sha: str, head_sha: str) -> tuple[list[str], str]:
    """The changed paths and the patch of ``base_sha..head_sha``, from one ``git diff``.

    ``--raw -z`` puts ``:<modes> <oids> <status>\\0<path>\\0`` records (one path
    each: renames are off) and a NUL before the patch, which is byte for byte what
    :func:`_patch` prints. An answer in another form is asked again, in two processes.
    """
    out = run_git(target, ["diff", "--raw", "-p", "-z", *DIFF_OPTIONS, base_sha, head_sha, "--"])
    data = out.stdout
    paths: set[str] = set()
    at = 0
    while data.startswith(b":", at):
        meta_end = data.find(b"\0", at)
        path_end = data.find(b"\0", meta_end + 1) if meta_end >= 0 else -1
        if path_end <= meta_end + 1:
            break
        paths.add(os.fsdecode(data[meta_end + 1 : path_end]))
        at = path_end + 1
    rest = data[at:]
    if not paths and not rest:
        return [], ""
    if paths and rest.startswith(b"\0diff --git "):
        return sorted(paths), rest[1:].decode("utf-8", "replace")
    names = run_git(target, ["diff", "--name-only", "-z", *DIFF_OPTIONS, base_sha, head_sha, "--"])
    changed = sorted({os.fsdecode(p) for p in names.stdout.split(b"\0") if p})
    return changed, _patch(target, base_sha, head_sha)


def _start(target: Target, base: str, head: str) -> tuple[str, str, str]:
    """Where ``head`` left ``base`` (their merge base, else ``base``), ``base``, ``head``.

    Raises:
        GitError: either is not a commit.
    """
    fork = fork_point(target, base, head)
    if fork.left is None or fork.right is None:
        rev = base if fork.left is None else head
        raise GitError(f"{target.label}: {rev!r} is not a commit", repo=target.label)
    return fork.base or fork.left, fork.left, fork.right


def _commits(target: Target, *revs: str) -> list[str]:
    """The commit each of ``revs`` names, asked in one process.

    Raises:
        GitError: one is not a commit.
    """
    found = resolve_commits(target, revs)
    for rev, sha in zip(revs, found, strict=True):
        if sha is None:
            raise GitError(f"{target.label}: {rev!r} is not a commit", repo=target.label)
    return [sha for sha in found if sha is not None]


def _commit(target: Target, rev: str) -> str:
    return _commits(target, rev)[0]
