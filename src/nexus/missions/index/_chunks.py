"""A file's text cut into chunks: the units the full-text index ranks and context returns.

In a Python file each top-level definition (decorators included) is a chunk
and so is each stretch of code between them; any chunk longer than
:data:`MAX_LINES` is cut into windows of that many lines. A file without an
outline (other languages, a Python file that does not parse) is cut into
windows of :data:`MAX_LINES` lines. Blank stretches make no chunk.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

#: the longest chunk, in lines
MAX_LINES = 60

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


class Named(Protocol):
    """What a chunk needs of a symbol defined in it."""

    @property
    def qualname(self) -> str: ...
    @property
    def doc(self) -> str: ...
    @property
    def start_line(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Chunk:
    """Lines ``start_line``..``end_line`` (1-based, inclusive) of a file, with what they define."""

    start_line: int
    end_line: int
    text: str
    names: str  # qualified names defined here, camelCase also split into words
    docs: str  # first docstring lines of those definitions


def words(name: str) -> str:
    """A name and its camelCase parts (``parseConfig`` -> ``parseConfig parse Config``)."""
    split = _CAMEL.sub(" ", name)
    return name if split == name else f"{name} {split}"


def split_lines(
    lines: Sequence[str], tops: Sequence[tuple[int, int]], symbols: Sequence[Named]
) -> list[Chunk]:
    """Cut ``lines`` at the top-level spans ``tops`` (1-based, inclusive), then by size."""
    spans: list[tuple[int, int]] = []
    cursor = 1
    for start, end in sorted(tops):
        if start > cursor:
            spans.append((cursor, start - 1))
        spans.append((max(start, cursor), end))
        cursor = max(cursor, end + 1)
    if cursor <= len(lines):
        spans.append((cursor, len(lines)))
    chunks: list[Chunk] = []
    for start, end in spans:
        for low in range(start, end + 1, MAX_LINES):
            high = min(end, low + MAX_LINES - 1)
            text = "\n".join(lines[low - 1 : high])
            if not text.strip():
                continue
            inside = [s for s in symbols if low <= s.start_line <= high]
            names = " ".join(words(s.qualname) for s in inside)
            docs = " ".join(s.doc for s in inside if s.doc)
            chunks.append(Chunk(low, high, text, names, docs))
    return chunks
