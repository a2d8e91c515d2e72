"""The index's SQLite file: its schema, opening it, and the FTS5 check.

One file (``index.sqlite`` under a mission's state directory, or any path)
holds five tables::

    files    path, language, size, sha256, mtime_ns, status (indexed|skipped), note
    symbols  file, kind, name, qualname, signature, doc, start_line, end_line
    imports  file, module                 (module -> the modules it imports)
    tests    file, qualname, start_line, end_line
    chunks   FTS5: path, names, docs, body (+ file, start_line, end_line unindexed)

The schema carries a version in ``PRAGMA user_version``; a file written by
another version is rebuilt from scratch (an index is a cache of the repository).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from nexus.domain.errors import UserError
from nexus.sqlite_wal import enable_wal

SCHEMA_VERSION = 1
#: rowids of a file's chunks are ``file_id << CHUNK_BITS`` + n, so a file's chunks are one range
CHUNK_BITS = 20

_SCHEMA = """
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    language TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT,
    mtime_ns INTEGER NOT NULL,
    status TEXT NOT NULL,
    note TEXT,
    module TEXT,
    is_test INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE symbols (
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    qualname TEXT NOT NULL,
    signature TEXT NOT NULL,
    doc TEXT NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL
);
CREATE INDEX symbols_name ON symbols(lower(name));
CREATE INDEX symbols_file ON symbols(file_id);
CREATE TABLE imports (
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    module TEXT NOT NULL
);
CREATE INDEX imports_module ON imports(module);
CREATE INDEX imports_file ON imports(file_id);
CREATE TABLE tests (
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    qualname TEXT NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL
);
CREATE INDEX tests_file ON tests(file_id);
CREATE INDEX files_module ON files(module);
CREATE VIRTUAL TABLE chunks USING fts5(
    path, names, docs, body,
    file_id UNINDEXED, start_line UNINDEXED, end_line UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def has_fts5() -> bool:
    """Whether this Python's SQLite was built with FTS5."""
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("CREATE VIRTUAL TABLE probe USING fts5(x)")
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()
    return True


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating or rebuilding) the index at ``path``.

    Raises:
        UserError: SQLite lacks FTS5, or ``path`` cannot be opened as a database.
    """
    if not has_fts5():
        raise UserError(
            f"cannot build the repository index: this Python's SQLite "
            f"({sqlite3.sqlite_version}) was built without FTS5; use a Python whose sqlite3 "
            "module has FTS5 (the python.org and distribution builds do)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 10000")
        enable_wal(conn)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{path}: not a repository index Nexus can use ({exc})") from exc
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    if version != SCHEMA_VERSION:
        _rebuild(conn)
    return conn


def _rebuild(conn: sqlite3.Connection) -> None:
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND name NOT LIKE 'chunks_%'"
        )
    ]
    drops = "".join(f'DROP TABLE IF EXISTS "{table}";\n' for table in tables)
    # executescript commits first, so the whole rebuild is one script in one transaction
    conn.executescript(f"BEGIN;\n{drops}{_SCHEMA}PRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;")
