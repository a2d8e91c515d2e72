"""Switching a SQLite database to WAL when several openers race for a new file.

Every SQLite file Nexus keeps (the event store, the response cache, the
repository index) runs in write-ahead-log mode, set by ``PRAGMA journal_mode
= WAL`` on each new connection. That statement is the one place SQLite's busy
handler does not cover: while another connection holds the file's lock to
create it, or runs WAL recovery, the switch fails at once with ``database is
locked`` whatever ``busy_timeout`` says. Two threads or two processes opening
a new home at once hit it (seen in CI about once in a hundred openings).

:func:`enable_wal` retries the switch on that error, with a short growing
pause, until ``timeout`` seconds have passed; any other error, or a mode the
file refuses (an in-memory database stays ``memory``), is left to the caller.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

__all__ = ["enable_wal"]

#: First and longest pause between attempts, seconds.
_FIRST_PAUSE = 0.005
_LONGEST_PAUSE = 0.1


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def enable_wal(conn: Any, timeout: float = 10.0) -> str:
    """Run ``PRAGMA journal_mode = WAL`` on ``conn``; the journal mode it reports.

    Args:
        conn: a DB-API connection or cursor to a SQLite database (stdlib ``sqlite3``).
        timeout: seconds to keep retrying while the file is locked by another opener.

    Raises:
        sqlite3.OperationalError: still locked after ``timeout``, or any other failure.

    Example:
        >>> enable_wal(sqlite3.connect(":memory:"))
        'memory'
    """
    deadline = time.monotonic() + timeout
    pause = _FIRST_PAUSE
    while True:
        try:
            row = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)
            continue
        return str(row[0]).lower()
