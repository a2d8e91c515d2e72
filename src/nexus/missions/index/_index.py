"""The repository index: build it, keep it current, say what it holds.

:class:`RepoIndex` ties the parts together: :mod:`._files` lists and reads,
:mod:`._python` (or :mod:`._treesitter` for other languages) outlines,
:mod:`._db` stores, :mod:`._rank` answers :meth:`RepoIndex.context`.

Updating is incremental: a file whose size and modification time are the
ones recorded is not read; a file that is read but whose SHA-256 is the
recorded one is not parsed; only the others are parsed again, and files gone
from the listing are removed. :class:`UpdateReport` counts each case, so a
caller (and a test) can see how much work an update did.

The API is synchronous: indexing is blocking file and CPU work, so an
asynchronous caller runs it in a thread (``asyncio.to_thread(index.update)``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from nexus.domain.errors import NotFoundError
from nexus.missions.index import _treesitter
from nexus.missions.index._chunks import split_lines
from nexus.missions.index._db import CHUNK_BITS, connect
from nexus.missions.index._files import (
    DEFAULT_MAX_BYTES,
    Listed,
    decode,
    language_of,
    list_files,
    read_file,
)
from nexus.missions.index._python import Outline, is_test_path, module_name, outline
from nexus.missions.index._rank import ContextPack, rank_context

#: the file name of the index under a mission's state directory
INDEX_FILE = "index.sqlite"


def index_path(state_dir: Path) -> Path:
    """Where a mission keeps its repository index."""
    return state_dir / INDEX_FILE


@dataclass(frozen=True, slots=True)
class UpdateReport:
    """What one :meth:`RepoIndex.update` did."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (path, reason) newly or again skipped
    unchanged: int = 0
    read: int = 0  # files whose bytes were read (size or mtime differed, or new)
    parsed: int = 0  # files outlined again (content differed, or new)


@dataclass(frozen=True, slots=True)
class IndexStats:
    """What the index holds, and what it could not do."""

    files: int
    skipped: dict[str, str]  # path -> reason
    notes: dict[str, str]  # path -> note (syntax error, not UTF-8...)
    languages: dict[str, int]
    symbols: int
    imports: int
    tests: int
    chunks: int
    extraction: dict[str, str] = field(default_factory=dict)  # language -> how symbols are read


class RepoIndex:
    """A repository's files, symbols, imports and tests in SQLite, ranked for context.

    Example::

        with RepoIndex(Path("."), index_path(state_dir)) as index:
            index.update()
            pack = index.context("parse the config file", budget_tokens=2000)
            print(pack.render())

    Args:
        root: the repository (any directory; a git work tree is listed by git).
        db_path: the SQLite file (created, or rebuilt if its schema is older).
        max_bytes: files larger than this are skipped, not read.

    Raises:
        NotFoundError: ``root`` is not a directory.
        UserError: SQLite has no FTS5, or ``db_path`` is not an index.
    """

    def __init__(self, root: Path, db_path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if not root.is_dir():
            raise NotFoundError(f"{root}: no such directory to index")
        self.root = root
        self.db_path = db_path
        self.max_bytes = max_bytes
        self._conn = connect(db_path)

    def __enter__(self) -> RepoIndex:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    # -- updating ----------------------------------------------------------------------------

    def update(self) -> UpdateReport:
        """Bring the index in line with the files on disk; the first call builds it."""
        listed = list_files(self.root, self.max_bytes)
        known = {
            row[1]: row
            for row in self._conn.execute(
                "SELECT id, path, size, mtime_ns, sha256, status, note FROM files"
            )
        }
        added: list[str] = []
        changed: list[str] = []
        skipped: list[tuple[str, str]] = []
        unchanged = read = parsed = 0
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for item in listed:
                row = known.pop(item.path, None)
                if item.skip is not None:
                    if row is not None and row[5] == "skipped" and row[6] == item.skip:
                        unchanged += 1
                    else:
                        self._store_skip(row, item, item.skip)
                        skipped.append((item.path, item.skip))
                    continue
                same = row is not None and (row[2], row[3]) == (item.size, item.mtime_ns)
                if same and (row[5] == "indexed" or str(row[6]).startswith("binary")):
                    unchanged += 1  # as recorded: indexed, or found binary when read
                    continue
                content = read_file(self.root, item.path, self.max_bytes)
                read += 1
                if content.data is None:
                    reason = content.skip or "unreadable"
                    self._store_skip(row, item, reason)
                    skipped.append((item.path, reason))
                    continue
                digest = hashlib.sha256(content.data).hexdigest()
                if row is not None and row[5] == "indexed" and row[4] == digest:
                    conn.execute(
                        "UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?",
                        (len(content.data), item.mtime_ns, row[0]),
                    )
                    unchanged += 1
                    continue
                self._store_file(row, item, content.data, digest)
                parsed += 1
                (added if row is None else changed).append(item.path)
            for row in known.values():
                self._drop(int(row[0]))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return UpdateReport(
            added=tuple(added),
            changed=tuple(changed),
            removed=tuple(sorted(known)),
            skipped=tuple(skipped),
            unchanged=unchanged,
            read=read,
            parsed=parsed,
        )

    def _drop(self, file_id: int) -> None:
        self._clear(file_id)
        self._conn.execute("DELETE FROM files WHERE id = ?", (file_id,))

    def _clear(self, file_id: int) -> None:
        conn = self._conn
        for table in ("symbols", "imports", "tests"):
            conn.execute(f"DELETE FROM {table} WHERE file_id = ?", (file_id,))
        low = file_id << CHUNK_BITS
        conn.execute(
            "DELETE FROM chunks WHERE rowid BETWEEN ? AND ?", (low, low + (1 << CHUNK_BITS) - 1)
        )

    def _upsert(
        self, row: tuple[object, ...] | None, item: Listed, values: dict[str, object]
    ) -> int:
        columns = {"path": item.path, "language": language_of(item.path), **values}
        if row is None:
            names = ", ".join(columns)
            marks = ", ".join("?" for _ in columns)
            cursor = self._conn.execute(
                f"INSERT INTO files ({names}) VALUES ({marks})", tuple(columns.values())
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid
        file_id = int(str(row[0]))
        self._clear(file_id)
        sets = ", ".join(f"{name} = ?" for name in columns)
        self._conn.execute(f"UPDATE files SET {sets} WHERE id = ?", (*columns.values(), file_id))
        return file_id

    def _store_skip(self, row: tuple[object, ...] | None, item: Listed, reason: str) -> None:
        values: dict[str, object] = {
            "size": item.size, "mtime_ns": item.mtime_ns, "sha256": None,
            "status": "skipped", "note": reason, "module": None, "is_test": 0,
        }  # fmt: skip
        self._upsert(row, item, values)

    def _store_file(
        self, row: tuple[object, ...] | None, item: Listed, data: bytes, digest: str
    ) -> None:
        text, note = decode(data)
        language = language_of(item.path)
        found = self._outline(language, item.path, text)
        python = language == "python"
        notes = "; ".join(n for n in (note, found.note) if n) or None
        values: dict[str, object] = {
            "size": len(data), "mtime_ns": item.mtime_ns, "sha256": digest,
            "status": "indexed", "note": notes,
            "module": module_name(item.path) if python else None,
            "is_test": int(python and is_test_path(item.path)),
        }  # fmt: skip
        file_id = self._upsert(row, item, values)
        conn = self._conn
        conn.executemany(
            "INSERT INTO symbols VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (file_id, s.kind, s.name, s.qualname, s.signature, s.doc, s.start_line, s.end_line)
                for s in found.symbols
            ],
        )
        conn.executemany(
            "INSERT INTO imports VALUES (?, ?)", [(file_id, module) for module in found.imports]
        )
        conn.executemany(
            "INSERT INTO tests VALUES (?, ?, ?, ?)",
            [(file_id, t.qualname, t.start_line, t.end_line) for t in found.tests],
        )
        base = file_id << CHUNK_BITS
        conn.executemany(
            "INSERT INTO chunks (rowid, path, names, docs, body, file_id, start_line, end_line)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (base + n, item.path, c.names, c.docs, c.text, file_id, c.start_line, c.end_line)
                for n, c in enumerate(found.chunks[: (1 << CHUNK_BITS)])
            ],
        )

    @staticmethod
    def _outline(language: str, path: str, text: str) -> Outline:
        if language == "python":
            return outline(path, text)
        found = _treesitter.outline(language, text)
        if found is not None:
            return found
        return Outline(chunks=split_lines(text.splitlines(), (), ()))

    # -- reading -----------------------------------------------------------------------------

    def context(
        self, query: str, budget_tokens: int, scope: Sequence[str | Path] | None = None
    ) -> ContextPack:
        """The snippets that best answer ``query``, within ``budget_tokens``.

        Ranked by BM25 over paths, symbol names, docstrings and text, boosted
        for chunks that define a symbol the query names, files in ``scope`` and
        the tests that import the best files; cut to fit the budget (a
        snippet's tokens are its characters / 4, rounded up). Each item says
        why it was chosen. Ties are ordered by path, then line.

        Raises:
            ValueError: ``budget_tokens`` is negative.
        """
        if budget_tokens < 0:
            raise ValueError(f"budget_tokens must be >= 0, got {budget_tokens}")
        return rank_context(self._conn, query, budget_tokens, scope or ())

    def stats(self) -> IndexStats:
        """Counts of what the index holds, skipped files with their reasons, notes."""
        conn = self._conn

        def count(sql: str) -> int:
            return int(conn.execute(sql).fetchone()[0])

        languages: dict[str, int] = {}
        skipped: dict[str, str] = {}
        notes: dict[str, str] = {}
        rows = conn.execute("SELECT path, language, status, note FROM files ORDER BY path")
        for path, language, status, note in rows:
            if status == "skipped":
                skipped[path] = note
                continue
            languages[language] = languages.get(language, 0) + 1
            if note:
                notes[path] = note
        extraction = {lang: _treesitter.extraction(lang) for lang in sorted(languages)}
        return IndexStats(
            files=sum(languages.values()),
            skipped=skipped,
            notes=notes,
            languages=dict(sorted(languages.items())),
            symbols=count("SELECT count(*) FROM symbols"),
            imports=count("SELECT count(*) FROM imports"),
            tests=count("SELECT count(*) FROM tests"),
            chunks=count("SELECT count(*) FROM chunks"),
            extraction=extraction,
        )

    def symbols(self, name: str) -> list[tuple[str, str, str, int, int]]:
        """Definitions named (or qualified) ``name``: path, kind, signature, first and last line."""
        rows = self._conn.execute(
            "SELECT f.path, s.kind, s.signature, s.start_line, s.end_line FROM symbols s"
            " JOIN files f ON f.id = s.file_id"
            " WHERE lower(s.name) = lower(?) OR s.qualname = ? ORDER BY f.path, s.start_line",
            (name, name),
        )
        return [(str(a), str(b), str(c), int(d), int(e)) for a, b, c, d, e in rows]
