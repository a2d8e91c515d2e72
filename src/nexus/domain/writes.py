"""What a task declares it writes (``writes:``), and when two such declarations overlap.

A task may name the resources it writes: paths relative to the run's
workspace, or named keys (``key:<name>``) for anything else (a database
table, a remote branch). Two tasks whose resources overlap never run at the
same time: the workflow's ``conflicts`` setting says whether the engine
serialises them or ``nexus validate`` refuses the file (see
``docs/workflows.md``, Writes).

A resource is held in one canonical form, so two spellings of one place
compare equal and no spelling escapes the workspace:

* a path is normalised on its text (``a/./b``, ``a//b`` and ``a/c/../b`` are
  ``a/b``; ``.`` is the whole workspace); one that is absolute or that
  ``..`` takes out of the workspace is refused. A directory covers everything
  below it: ``src`` overlaps ``src/app.py``. Globs are refused rather than
  guessed at: name the directory that holds the files;
* a key is ``key:`` and a name of letters, digits and ``_.:/@-``; keys
  overlap only when equal, and never a path.

Everything here is pure: the compiler judges literal entries with it, the
decider a templated entry once it has rendered it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from typing import Final

#: The most resources one task may declare.
MAX_WRITES: Final = 64
#: The longest resource, in characters (a path or a key).
MAX_RESOURCE_CHARS: Final = 1024
#: What starts a named resource.
KEY_PREFIX: Final = "key:"
#: The whole workspace, as a path resource.
WORKSPACE: Final = "."

_KEY_NAME = re.compile(r"[A-Za-z0-9_.:/@-]+")
_GLOB = frozenset("*?[")


class WritesError(ValueError):
    """A ``writes`` entry that names no resource the engine can judge (the message says why)."""


def resource(entry: object) -> str:
    """The canonical form of one ``writes`` entry.

    Raises:
        WritesError: the entry is not a string, is empty or too long, names a
            path outside the workspace or a glob, or a key with a bad name.

    Example:
        >>> [resource(e) for e in ("out/./a.txt", "out//b/../c", "./", "key:db.users")]
        ['out/a.txt', 'out/c', '.', 'key:db.users']
    """
    if not isinstance(entry, str):
        raise WritesError(f"must be a string (a path or key:<name>), not {type(entry).__name__}")
    if not entry.strip():
        raise WritesError("must name a path or a key:<name>, not be empty")
    if len(entry) > MAX_RESOURCE_CHARS:
        raise WritesError(f"is longer than {MAX_RESOURCE_CHARS} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in entry):
        raise WritesError(f"{entry[:60]!r} holds a control character")
    if entry.startswith(KEY_PREFIX):
        name = entry[len(KEY_PREFIX) :]
        if _KEY_NAME.fullmatch(name) is None:
            raise WritesError(
                f"{entry!r}: a key's name is letters, digits and _.:/@- (key:db.users, say)"
            )
        return entry
    if entry.startswith(("/", "~")):
        raise WritesError(
            f"{entry!r} is not relative to the workspace: write the path from the "
            "workspace's root (a path outside the workspace cannot be declared)"
        )
    if _GLOB.intersection(entry):
        raise WritesError(
            f"{entry!r} is a glob, which writes does not take: name the directory that "
            "holds the files (a directory covers everything below it)"
        )
    path = posixpath.normpath(entry)
    if path == ".." or path.startswith("../"):
        shown = "" if path == entry else f" (it resolves to {path!r})"
        raise WritesError(f"{entry!r} leaves the workspace{shown}")
    if path.startswith(KEY_PREFIX):
        raise WritesError(f"{entry!r} would read as a key once normalised; rename the path")
    return path


def overlap(a: str, b: str) -> bool:
    """Whether two canonical resources overlap: equal, or one path is a directory of the other.

    Example:
        >>> overlap("src", "src/app.py"), overlap("src", "srcs"), overlap(".", "key:x")
        (True, False, False)
    """
    if a == b:
        return True
    if a.startswith(KEY_PREFIX) or b.startswith(KEY_PREFIX):
        return False
    if a == WORKSPACE or b == WORKSPACE:
        return True
    return b.startswith(a + "/") or a.startswith(b + "/")


def directories(path: str) -> list[str]:
    """The directories that hold a canonical path resource, outermost first (none for a key).

    Example:
        >>> directories("a/b/c.txt"), directories("."), directories("key:x")
        (['.', 'a', 'a/b'], [], [])
    """
    if path == WORKSPACE or path.startswith(KEY_PREFIX):
        return []
    parts = path.split("/")
    return [WORKSPACE, *("/".join(parts[:i]) for i in range(1, len(parts)))]


def first_overlap(ours: Iterable[str], theirs: Iterable[str]) -> tuple[str, str] | None:
    """The first pair (ours, theirs) that overlaps, or None."""
    held = tuple(theirs)
    for mine in ours:
        for other in held:
            if overlap(mine, other):
                return mine, other
    return None
