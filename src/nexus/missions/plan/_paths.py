"""Owned paths: how a work item names the files it may change, and when two names meet.

A work item owns repository-relative paths and globs. A path is written with
``/`` between its components and checked by :func:`normalise_path`: relative,
inside the repository (no ``..``), not in ``.git`` (at any depth) or
``.nexus`` (at the top), no control or format characters (a right-to-left
override would let a path read as another in a review). ``./`` and doubled
slashes are removed; anything else that is not already in that form is
refused, with the form meant where there is one.

**Globs** have two wildcards: ``*`` (any characters within one component,
``/`` excepted) and ``?`` (one such character); ``**`` as a whole component
is any number of components, none included (``src/**`` owns ``src/a.py`` and
``src/x/b.py``). ``[``, ``]``, ``{`` and ``}`` are ordinary characters, so a
file named ``pages/[id].tsx`` can be owned as it is. Matching is
case-sensitive, as git is on Linux.

**When two globs meet** (:func:`glob_overlap`): the question is whether one
path, existing or not, could match both. It is answered exactly -- the
patterns are regular, and a search over pairs of positions decides whether
their languages intersect -- and the answer comes with a path both match, so
a rejection can show one. That is sound for ownership: no new file can be
matched by two items' globs in an accepted plan.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterable
from functools import cache, lru_cache

__all__ = [
    "MAX_PATH_CHARS",
    "PathIndex",
    "PathRefused",
    "glob_overlap",
    "glob_regex",
    "is_glob",
    "literal_prefix",
    "literal_suffix",
    "matches",
    "normalise_path",
]

#: The longest owned path or glob.
MAX_PATH_CHARS = 300
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
_WILD = frozenset("*?")


class PathRefused(ValueError):
    """A path a work item names is not one it may own; the message says why."""


def normalise_path(raw: str) -> str:
    """``raw`` as an owned path in its one written form.

    Raises:
        PathRefused: the path is empty, too long, absolute, escapes the
            repository, lies in ``.git`` or ``.nexus``, holds a control or
            format character, a backslash, names a directory (a trailing
            ``/``), or has ``**`` inside a component.
    """
    if not raw:
        raise PathRefused("is empty")
    if len(raw) > MAX_PATH_CHARS:
        raise PathRefused(f"is {len(raw)} characters long; the limit is {MAX_PATH_CHARS}")
    for char in raw:
        if unicodedata.category(char) in _BAD_CATEGORIES:
            raise PathRefused(
                f"holds the character U+{ord(char):04X}: no control or format characters"
            )
    if "\\" in raw:
        raise PathRefused(
            f"uses a backslash: separate components with '/' "
            f"(did you mean {raw.replace(chr(92), '/')!r}?)"
        )
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        raise PathRefused("is absolute: name files relative to the repository's root")
    if raw.endswith("/"):
        raise PathRefused(
            f"names a directory: own what is in it with a glob (did you mean {raw + '**'!r}?)"
        )
    parts: list[str] = []
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise PathRefused("leaves its directory with '..': name the file inside the repository")
        if "**" in part and part != "**":
            raise PathRefused(
                f"has '**' inside the component {part!r}: '**' stands alone between slashes"
            )
        if part == "**" and parts and parts[-1] == "**":
            continue
        parts.append(part)
    if not parts:
        raise PathRefused("names the repository's root, not a file")
    if any(part.casefold() == ".git" for part in parts):
        raise PathRefused("lies in '.git': git's own files belong to no work item")
    if parts[0].casefold() == ".nexus":
        raise PathRefused("lies in '.nexus': Nexus's own files belong to no work item")
    return "/".join(parts)


def is_glob(path: str) -> bool:
    """True when ``path`` has a wildcard (``*`` or ``?``)."""
    return any(char in _WILD for char in path)


def _segment_regex(segment: str) -> str:
    out = []
    for char in segment:
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(char))
    return "".join(out)


def glob_regex(pattern: str) -> str:
    """The regular expression (for ``re.fullmatch``) of a normalised glob or path."""
    segments = pattern.split("/")
    regex = ""
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment != "**":
            regex += _segment_regex(segment) + ("" if last else "/")
        elif not last:
            regex += "(?:[^/]+/)*"
        elif i == 0:
            regex += "[^/]+(?:/[^/]+)*"
        else:
            regex = regex[:-1] + "(?:/[^/]+)*"
    return regex


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(glob_regex(pattern), re.DOTALL)


def matches(pattern: str, path: str) -> bool:
    """True when the normalised glob (or literal path) ``pattern`` matches ``path``."""
    if not is_glob(pattern):
        return pattern == path
    return _compiled(pattern).fullmatch(path) is not None


def _segment_witness(a: str, b: str) -> str | None:
    """A non-empty component both segment patterns match, or None when there is none."""

    @cache
    def walk(i: int, j: int) -> str | None:
        if i == len(a) and j == len(b):
            return ""
        if i < len(a) and a[i] == "*":
            found = walk(i + 1, j)
            if found is not None:
                return found
            if j < len(b):  # the star takes b's next character, or b's star takes nothing
                rest = walk(i, j + 1)
                if rest is not None:
                    return {"*": "", "?": "x"}.get(b[j], b[j]) + rest
            return None
        if j < len(b) and b[j] == "*":
            found = walk(i, j + 1)
            if found is not None:
                return found
            if i < len(a):  # a[i] is not a star here
                rest = walk(i + 1, j)
                if rest is not None:
                    return ("x" if a[i] == "?" else a[i]) + rest
            return None
        if i == len(a) or j == len(b):
            return None
        if a[i] == b[j] or "?" in (a[i], b[j]):
            rest = walk(i + 1, j + 1)
            if rest is not None:
                return (b[j] if a[i] == "?" else a[i]) + rest
        return None

    found = walk(0, 0)
    # an empty witness means both are all stars, and then any name matches both
    return None if found is None else (found or "x")


def _alone(segment: str) -> str:
    """A component the segment pattern matches."""
    return segment.replace("*", "").replace("?", "x") or "x"


@lru_cache(maxsize=8192)
def literal_prefix(pattern: str) -> str:
    """What every path the normalised glob matches starts with (up to its first wildcard)."""
    cut = min((pattern.find(c) for c in _WILD if c in pattern), default=len(pattern))
    prefix = pattern[:cut]
    if pattern.endswith("/**") and cut == len(pattern) - 2:
        prefix = prefix[:-1]  # 'a/**' matches 'a' itself
    return prefix


@lru_cache(maxsize=8192)
def literal_suffix(pattern: str) -> str:
    """What every path the normalised glob matches ends with (after its last wildcard)."""
    cut = max(pattern.rfind(c) for c in _WILD) + 1
    suffix = pattern[cut:]
    if pattern.startswith("**/") and cut == 2:
        suffix = suffix[1:]  # '**/b' matches 'b' itself
    return suffix


@lru_cache(maxsize=65536)
def glob_overlap(a: str, b: str) -> str | None:
    """A path both normalised globs (or literals) match, or None when no path does.

    Exact: None means no file, existing or new, can be matched by both.
    """
    pa, pb = literal_prefix(a), literal_prefix(b)
    sa, sb = literal_suffix(a), literal_suffix(b)
    if not (pa.startswith(pb) or pb.startswith(pa)) or not (sa.endswith(sb) or sb.endswith(sa)):
        return None
    left, right = a.split("/"), b.split("/")

    @cache
    def walk(i: int, j: int) -> tuple[str, ...] | None:
        if i == len(left) and j == len(right):
            return ()
        if i < len(left) and left[i] == "**":
            found = walk(i + 1, j)
            if found is not None:
                return found
            if j < len(right):  # '**' takes right's next component, or right's '**' takes none
                rest = walk(i, j + 1)
                if rest is not None:
                    return rest if right[j] == "**" else (_alone(right[j]), *rest)
            return None
        if j < len(right) and right[j] == "**":
            found = walk(i, j + 1)
            if found is not None:
                return found
            if i < len(left):
                rest = walk(i + 1, j)
                if rest is not None:
                    return (_alone(left[i]), *rest)
            return None
        if i == len(left) or j == len(right):
            return None
        segment = _segment_witness(left[i], right[j])
        if segment is None:
            return None
        rest = walk(i + 1, j + 1)
        return None if rest is None else (segment, *rest)

    found = walk(0, 0)
    if found is None:
        return None
    return "/".join(found) or "x"


class PathIndex:
    """A set of paths that answers "which of you does this glob match?" without trying them all.

    Every path a glob matches starts with its :func:`literal_prefix` and ends
    with its :func:`literal_suffix`; the paths are kept sorted forwards and
    reversed, so each narrows to a range by bisection, and only the smaller
    range is matched against the glob.
    """

    def __init__(self, paths: Iterable[str]) -> None:
        self._forward = sorted(set(paths))
        self._backward = sorted(path[::-1] for path in self._forward)

    @staticmethod
    def _range(keys: list[str], start: str) -> tuple[int, int]:
        """The slice of sorted ``keys`` that start with ``start`` (they sit together)."""
        low = bisect.bisect_left(keys, start)
        high = bisect.bisect_left(keys, True, lo=low, key=lambda key: not key.startswith(start))
        return low, high

    def matching(self, pattern: str) -> list[str]:
        """The paths the normalised glob (or literal) ``pattern`` matches, sorted."""
        if not is_glob(pattern):
            i = bisect.bisect_left(self._forward, pattern)
            found = i < len(self._forward) and self._forward[i] == pattern
            return [pattern] if found else []
        low, high = self._range(self._forward, literal_prefix(pattern))
        back_low, back_high = self._range(self._backward, literal_suffix(pattern)[::-1])
        if high - low <= back_high - back_low:
            candidates = self._forward[low:high]
        else:
            candidates = sorted(path[::-1] for path in self._backward[back_low:back_high])
        regex = _compiled(pattern)
        return [path for path in candidates if regex.fullmatch(path)]
