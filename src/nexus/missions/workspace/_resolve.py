"""Reading ``git merge-tree`` output, and the conflicts resolved without a human.

A conflict is **trivial**, and resolved automatically, when both sides are
regular files with the same mode and, comparing lines with runs of whitespace
inside a line collapsed and trailing whitespace dropped (like git's
``ignore-space-change``, but indentation must be equal: it is meaning in
Python or YAML):

* the two sides are equal -- both made the same change up to whitespace:
  the mission branch's text is kept;
* one side differs from the base only in whitespace -- the other side's text
  is taken (it holds the only real change).

Everything git's own merge takes (both sides made the identical change, hunks
that do not overlap, one side's rename) is no conflict in the first place.
Anything else -- overlapping edits, modify/delete, binary files, a mode
conflict -- is left to the integrator, with each side's text (at most
:data:`SIDE_LIMIT` bytes, the rest cut off and flagged).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: the most bytes of one side of a conflict kept for the integrator
SIDE_LIMIT = 64 * 1024

_REGULAR = ("100644", "100755")


@dataclass(frozen=True, slots=True)
class Stage:
    """One side of a conflicted path: 1 base, 2 ours (mission branch), 3 theirs (item)."""

    mode: str
    oid: str


@dataclass(slots=True)
class ParsedMerge:
    """What ``git merge-tree --write-tree -z`` said."""

    tree: str
    stages: dict[str, dict[int, Stage]] = field(default_factory=dict)
    messages: dict[str, list[str]] = field(default_factory=dict)


def parse_merge_tree(out: bytes) -> ParsedMerge:
    """Parse the ``-z`` output: the tree, conflicted stages, then the messages.

    Raises:
        ValueError: the output is not in that form.
    """
    head, sep, info = out.partition(b"\0\0")
    fields = head.split(b"\0")
    if not fields or len(fields[0]) not in (40, 64):
        raise ValueError("merge-tree printed no tree")
    parsed = ParsedMerge(tree=fields[0].decode("ascii"))
    for record in fields[1:]:
        if not record:
            continue
        meta, _, path_bytes = record.partition(b"\t")
        mode, oid, stage = meta.decode("ascii").split(" ")
        path = path_bytes.decode("utf-8", "surrogateescape")
        parsed.stages.setdefault(path, {})[int(stage)] = Stage(mode, oid)
    if not sep:
        return parsed
    items = info.split(b"\0")
    index = 0
    while index < len(items) and items[index]:
        count = int(items[index])
        paths = [p.decode("utf-8", "surrogateescape") for p in items[index + 1 : index + 1 + count]]
        kind = items[index + 1 + count].decode("utf-8", "replace")
        message = items[index + 2 + count].decode("utf-8", "replace").strip()
        index += count + 3
        if kind.startswith("CONFLICT"):
            for path in paths:
                parsed.messages.setdefault(path, []).append(message)
    return parsed


def conflict_kind(stages: dict[int, Stage]) -> str:
    """``content``, ``add/add``, ``modify/delete``, ``delete/modify``, ``mode`` or ``other``."""
    have = set(stages)
    if have == {1, 2, 3}:
        return "content" if stages[2].mode == stages[3].mode else "mode"
    if have == {2, 3}:
        return "add/add"
    if have == {1, 2}:
        return "modify/delete"
    if have == {1, 3}:
        return "delete/modify"
    return "other"


def is_text(data: bytes) -> bool:
    """Git's rule of thumb: no NUL byte in the first 8000 bytes."""
    return b"\0" not in data[:8000]


def trivial_resolution(
    stages: dict[int, Stage], blobs: dict[int, bytes]
) -> tuple[Stage, bytes] | None:
    """The side to take for a trivial conflict (module docstring), or ``None``.

    Args:
        stages: the conflicted path's stages.
        blobs: the contents of those stages, by stage number.
    """
    if 2 not in stages or 3 not in stages or set(stages) - {1, 2, 3}:
        return None
    ours, theirs = stages[2], stages[3]
    if ours.mode != theirs.mode or ours.mode not in _REGULAR:
        return None
    if 1 in stages and stages[1].mode not in _REGULAR:
        return None
    if not all(is_text(b) for b in blobs.values()):
        return None
    mine, other = _loose(blobs[2]), _loose(blobs[3])
    if mine == other:
        return ours, blobs[2]
    if 1 not in stages:
        return None
    base = _loose(blobs[1])
    if other == base:
        return ours, blobs[2]
    if mine == base:
        return theirs, blobs[3]
    return None


def _loose(data: bytes) -> list[bytes]:
    """Lines with inner whitespace runs collapsed and trailing whitespace dropped.

    Indentation is kept exactly: in Python or YAML it is meaning, not layout.
    """
    out = []
    for line in data.splitlines():
        body = line.lstrip()
        out.append(line[: len(line) - len(body)] + b" ".join(body.split()))
    return out
