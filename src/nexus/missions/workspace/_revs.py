"""Resolving several revisions with one git process.

Starting git costs a few milliseconds -- more than most of what a mission asks of
it -- and a code mission resolves revisions at every step. These helpers answer
several questions with one process and fall back to one question per process
whenever git's answer is not exactly the expected form, so they never say more
than ``git rev-parse --verify`` and ``git merge-base`` would:

* :func:`resolve_commits`: the commit each revision names, or ``None``
  (``git cat-file --batch-check``, whose answer is per line);
* :func:`fork_point`: two commits and their merge base
  (``git rev-parse A...B`` prints both ends, then the merge bases).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from nexus.missions.workspace._git import Target, check_revision, run_git

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def resolve_commits(target: Target, revs: Sequence[str]) -> list[str | None]:
    """The commit each of ``revs`` names (a branch, tag, sha...), or ``None``, in order.

    One process for any number (``cat-file --batch-check``); one ``rev-parse`` for one.

    Raises:
        GitError: a revision is not something Nexus passes to git (e.g. starts with '-').
    """
    for rev in revs:
        check_revision(rev, repo=target.label)
    if len(revs) == 1:
        return [_verify(target, revs[0])]
    if not revs:
        return []
    done = run_git(
        target,
        ["cat-file", "--batch-check=%(objectname) %(objecttype)"],
        stdin="".join(f"{rev}^{{commit}}\n" for rev in revs).encode("utf-8"),
        ok=(0, 128),
    )
    lines = done.stdout.decode("utf-8", "replace").split("\n")
    if done.returncode != 0 or len(lines) != len(revs) + 1 or lines[-1]:
        return [_verify(target, rev) for rev in revs]
    found: list[str | None] = []
    for line in lines[:-1]:
        # "<sha> commit", or "<rev>^{commit} missing" (a revision holds no whitespace)
        sha, _, kind = line.partition(" ")
        found.append(sha if kind == "commit" and _SHA.fullmatch(sha) else None)
    return found


@dataclass(frozen=True, slots=True)
class Fork:
    """Two revisions resolved, and where their histories meet.

    Attributes:
        left: the commit the first revision names, or ``None``.
        right: the commit the second names, or ``None``.
        base: their merge base (the one ``git merge-base`` prints when there are
            several), or ``None`` if either is missing or they share no history.
    """

    left: str | None
    right: str | None
    base: str | None


def fork_point(target: Target, left: str, right: str) -> Fork:
    """Resolve ``left`` and ``right`` and find their merge base, in one process.

    Raises:
        GitError: a revision is not something Nexus passes to git.
    """
    check_revision(left, repo=target.label)
    check_revision(right, repo=target.label)
    if ".." not in left + right:  # else git could split the range elsewhere
        fork = _one_process_fork(target, left, right)
        if fork is not None:
            return fork
    # a missing or odd revision: one question at a time, as git answers each
    left_sha, right_sha = resolve_commits(target, [left, right])
    if left_sha is None or right_sha is None:
        return Fork(left_sha, right_sha, None)
    found = run_git(target, ["merge-base", left_sha, right_sha], ok=(0, 1)).stdout.split()
    return Fork(left_sha, right_sha, found[0].decode("ascii") if found else None)


def _one_process_fork(target: Target, left: str, right: str) -> Fork | None:
    """``git rev-parse left...right``, or ``None`` if git's answer is not the usual one."""
    done = run_git(
        target,
        ["rev-parse", "--end-of-options", f"{left}^{{commit}}...{right}^{{commit}}", "--"],
        ok=(0, 128),
    )
    # rev-parse echoes the two markers, then prints the right end, the left end and
    # each merge base negated
    words = [w for w in done.stdout.decode("ascii", "replace").split() if w not in _MARKERS]
    if done.returncode == 0 and len(words) >= 2 and all(_SHA.fullmatch(w) for w in words[:2]):
        bases = [w[1:] for w in words[2:] if w.startswith("^") and _SHA.fullmatch(w[1:])]
        if len(bases) == len(words) - 2:
            return Fork(words[1], words[0], bases[0] if bases else None)
    return None


_MARKERS = frozenset({"--end-of-options", "--"})


def _verify(target: Target, rev: str) -> str | None:
    done = run_git(
        target,
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
        ok=(0, 1, 128),
    )
    if done.returncode != 0:
        return None
    return done.stdout.decode("ascii").strip() or None
