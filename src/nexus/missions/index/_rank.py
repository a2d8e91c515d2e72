"""Ranked context within a token budget: which snippets of the repository answer a query.

The steps, each deterministic:

1. **Terms.** The query's words, each also split at underscores and camelCase
   humps, lower-cased, at least two characters, at most :data:`MAX_TERMS`.
2. **BM25.** Chunks matching any term, scored by FTS5's ``bm25`` with the
   column weights :data:`WEIGHTS` (a symbol name counts most, then the path
   and docstrings, then the text); the best :data:`CANDIDATES` are kept.
3. **Boosts.** x :data:`SYMBOL_BOOST` for a chunk defining a symbol the query
   names whole (``parse_config``, ``RepoIndex``; a def inside a def does not
   count); x :data:`SCOPE_BOOST` for a file in ``scope``; x
   :data:`TEST_BOOST` for a test file that imports a file in scope or one of
   the :data:`LINKED_FILES` best files. Such a test file with no matching
   chunk is brought in with its first test, scored at :data:`TEST_SHARE` of
   the file it tests.
4. **Order.** Score descending, then path, then first line.
5. **Budget.** A snippet costs ``ceil(len(text) / 4)`` tokens (the one rule:
   characters / 4, rounded up; the header a caller prints around it is not
   counted). Snippets are taken in order while they fit; the first that does
   not fit is cut to the whole lines that do if at least
   :data:`MIN_CUT_TOKENS` remain, and smaller ones further down still fill the
   rest.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from nexus.missions.index._db import CHUNK_BITS

MAX_TERMS = 32
CANDIDATES = 200
#: bm25 column weights: path, names, docs, body
WEIGHTS = (3.0, 6.0, 2.0, 1.0)
SYMBOL_BOOST = 2.0
SCOPE_BOOST = 1.5
TEST_BOOST = 1.3
TEST_SHARE = 0.5
LINKED_FILES = 3
MIN_CUT_TOKENS = 16

_WORD = re.compile(r"\w+")
_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def estimate_tokens(text: str) -> int:
    """The one token rule of the index: characters / 4, rounded up."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True, slots=True)
class ContextItem:
    """One snippet chosen for a query: where it is, its text, its cost, and why."""

    path: str
    start_line: int
    end_line: int
    text: str
    tokens: int
    score: float
    reasons: tuple[str, ...]
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class ContextPack:
    """The answer to :meth:`RepoIndex.context`: items in rank order within the budget."""

    query: str
    budget_tokens: int
    items: tuple[ContextItem, ...] = ()
    considered: int = 0  # candidates ranked before the budget cut
    terms: tuple[str, ...] = field(default=())

    @property
    def used_tokens(self) -> int:
        return sum(item.tokens for item in self.items)

    def render(self) -> str:
        """The items as Markdown: a header per snippet (path, lines, why), then its text."""
        parts = []
        for item in self.items:
            cut = ", cut to fit" if item.truncated else ""
            parts.append(
                f"### {item.path}:{item.start_line}-{item.end_line}{cut}\n"
                f"why: {'; '.join(item.reasons)}\n```\n{item.text}\n```"
            )
        return "\n\n".join(parts)


def query_terms(query: str) -> tuple[list[str], set[str]]:
    """The FTS terms of a query and its whole words (lower-cased), both in a stable order."""
    terms: list[str] = []
    words: set[str] = set()
    for word in _WORD.findall(query):
        words.add(word.lower())
        for part in [word, *_HUMP.sub(" ", word).replace("_", " ").split()]:
            term = part.lower()
            if len(term) >= 2 and term not in terms:
                terms.append(term)
    return terms[:MAX_TERMS], words


def _in_scope(path: str, scope: Sequence[str]) -> bool:
    return any(path == s or path.startswith(f"{s}/") or not s for s in scope)


def _normal_scope(scope: Iterable[str | Path]) -> list[str]:
    out = []
    for entry in scope:
        text = Path(entry).as_posix().strip()
        text = text.removeprefix("./").rstrip("/")
        out.append("" if text == "." else text)
    return sorted(set(out))


@dataclass(slots=True)
class _Candidate:
    rowid: int
    path: str
    file_id: int
    start_line: int
    end_line: int
    text: str
    score: float
    reasons: list[str]


def rank_context(
    conn: sqlite3.Connection, query: str, budget: int, scope_in: Iterable[str | Path]
) -> ContextPack:
    terms, words = query_terms(query)
    scope = _normal_scope(scope_in)
    if not terms:
        return ContextPack(query, budget, terms=())
    match = " OR ".join(f'"{t}"' for t in terms)
    weights = ", ".join(str(w) for w in WEIGHTS)
    rows = conn.execute(
        f"SELECT rowid, path, file_id, start_line, end_line, body, names, bm25(chunks, {weights})"
        " AS rank FROM chunks WHERE chunks MATCH ? ORDER BY rank, rowid LIMIT ?",
        (match, CANDIDATES),
    ).fetchall()
    candidates: dict[int, _Candidate] = {}
    for rowid, path, file_id, start, end, body, names, rank in rows:
        haystack = f"{path}\n{names}\n{body}".lower()
        matched = [t for t in terms if t in haystack]
        reasons = [f"bm25 {-rank:.2f} on {', '.join(matched) or 'terms'}"]
        candidates[rowid] = _Candidate(
            rowid, path, int(file_id), int(start), int(end), body, -float(rank), reasons
        )
    _boost_symbols(conn, candidates, words)
    for c in candidates.values():
        if scope and _in_scope(c.path, scope):
            c.score *= SCOPE_BOOST
            c.reasons.append("in scope")
    _boost_tests(conn, candidates, scope)
    ranked = sorted(candidates.values(), key=lambda c: (-round(c.score, 9), c.path, c.start_line))
    return ContextPack(query, budget, _fit(ranked, budget), len(ranked), tuple(terms))


def _boost_symbols(conn: sqlite3.Connection, cands: dict[int, _Candidate], words: set[str]) -> None:
    if not cands or not words:
        return
    by_file: dict[int, list[_Candidate]] = {}
    for c in cands.values():
        by_file.setdefault(c.file_id, []).append(c)
    marks = ", ".join("?" for _ in words)
    ordered = sorted(words)
    rows = conn.execute(
        "SELECT file_id, kind, qualname, start_line FROM symbols"
        f" WHERE kind != 'local' AND (lower(name) IN ({marks}) OR lower(qualname) IN ({marks}))"
        " ORDER BY file_id, start_line",
        (*ordered, *ordered),
    )
    for file_id, kind, qualname, start in rows:
        for c in by_file.get(int(file_id), ()):
            defines = c.start_line <= start <= c.end_line or (
                kind == "module" and c.start_line == 1
            )
            if defines and not any(r.startswith("defines") for r in c.reasons):
                c.score *= SYMBOL_BOOST
                c.reasons.append(f"defines {kind} {qualname}")


def _boost_tests(conn: sqlite3.Connection, cands: dict[int, _Candidate], scope: list[str]) -> None:
    """Boost (or bring in) the tests that import the files in scope and the best files."""
    best: dict[int, float] = {}
    for c in sorted(cands.values(), key=lambda c: (-round(c.score, 9), c.path, c.start_line)):
        if len(best) >= LINKED_FILES:
            break
        if c.file_id not in best and not _is_test_file(conn, c.file_id):
            best[c.file_id] = c.score
    targets: dict[str, tuple[str, float]] = {}  # module -> (path, score of the file)
    placeholders = ", ".join("?" for _ in best)
    if best:
        for file_id, path, module in conn.execute(
            f"SELECT id, path, module FROM files WHERE id IN ({placeholders})", tuple(best)
        ):
            if module:
                targets[module] = (path, best[int(file_id)])
    if scope:
        top = max((c.score for c in cands.values()), default=1.0)
        for path, module in conn.execute(
            "SELECT path, module FROM files WHERE module IS NOT NULL AND is_test = 0 ORDER BY path"
        ):
            if _in_scope(path, scope) and module not in targets:
                targets[module] = (path, top)
    if not targets:
        return
    marks = ", ".join("?" for _ in targets)
    rows = conn.execute(
        "SELECT DISTINCT i.file_id, i.module, f.path FROM imports i"
        " JOIN files f ON f.id = i.file_id"
        f" WHERE f.is_test = 1 AND i.module IN ({marks}) ORDER BY f.path, i.module",
        tuple(sorted(targets)),
    )
    linked: dict[int, tuple[str, str, float]] = {}
    for file_id, module, path in rows:
        tested, score = targets[module]
        if int(file_id) not in linked or score > linked[int(file_id)][2]:
            linked[int(file_id)] = (path, tested, score)
    for file_id, (path, tested, score) in sorted(linked.items(), key=lambda kv: kv[1][0]):
        reason = f"test importing {tested}"
        present = [c for c in cands.values() if c.file_id == file_id]
        if present:
            for c in present:
                c.score *= TEST_BOOST
                c.reasons.append(reason)
            continue
        first = conn.execute(
            "SELECT c.rowid, c.start_line, c.end_line, c.body FROM tests t JOIN chunks c"
            f" ON c.rowid BETWEEN (t.file_id << {CHUNK_BITS})"
            f" AND (t.file_id << {CHUNK_BITS}) + {(1 << CHUNK_BITS) - 1}"
            " AND t.start_line BETWEEN c.start_line AND c.end_line"
            " WHERE t.file_id = ? ORDER BY t.start_line LIMIT 1",
            (file_id,),
        ).fetchone()
        if first is not None:
            rowid, start, end, body = first
            cands[int(rowid)] = _Candidate(
                int(rowid), path, file_id, int(start), int(end), body, score * TEST_SHARE, [reason]
            )


def _is_test_file(conn: sqlite3.Connection, file_id: int) -> bool:
    row = conn.execute("SELECT is_test FROM files WHERE id = ?", (file_id,)).fetchone()
    return bool(row and row[0])


def _fit(ranked: Sequence[_Candidate], budget: int) -> tuple[ContextItem, ...]:
    items: list[ContextItem] = []
    left = budget
    for c in ranked:
        if left <= 0:
            break
        item = ContextItem(
            c.path, c.start_line, c.end_line, c.text, estimate_tokens(c.text),
            round(c.score, 6), tuple(c.reasons),
        )  # fmt: skip
        if item.tokens <= left:
            items.append(item)
            left -= item.tokens
        elif left >= MIN_CUT_TOKENS:
            cut = _cut(item, left)
            if cut is not None:
                items.append(cut)
                left -= cut.tokens
    return tuple(items)


def _cut(item: ContextItem, tokens: int) -> ContextItem | None:
    """The whole leading lines of ``item`` that fit in ``tokens`` (None if not even one)."""
    kept: list[str] = []
    for line in item.text.split("\n"):
        if estimate_tokens("\n".join([*kept, line])) > tokens:
            break
        kept.append(line)
    if not kept:
        return None
    text = "\n".join(kept)
    return replace(
        item,
        text=text,
        tokens=estimate_tokens(text),
        end_line=item.start_line + len(kept) - 1,
        reasons=(*item.reasons, f"cut to {len(kept)} lines to fit the budget"),
        truncated=True,
    )
