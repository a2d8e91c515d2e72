"""The WAL switch survives another opener holding a new file's lock."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from nexus.gateway.cache import SQLiteResponseCache
from nexus.sqlite_wal import enable_wal


def _locked(path: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_the_switch_waits_for_a_lock_sqlite_would_not_wait_for(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    holder = _locked(path)
    # no busy handler at all: the bare statement fails at once, as the WAL switch does
    # while another connection creates the file or recovers its log
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        conn.execute("PRAGMA journal_mode = WAL")
    released = threading.Timer(0.2, lambda: holder.execute("COMMIT"))
    released.start()
    try:
        assert enable_wal(conn, timeout=30) == "wal"
    finally:
        released.join()
        holder.close()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_lock_held_past_the_timeout_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    holder = _locked(path)
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        enable_wal(conn, timeout=0.3)
    assert time.monotonic() - started < 10
    holder.close()
    conn.close()


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database, it is text" * 100)
    conn = sqlite3.connect(path, isolation_level=None)
    started = time.monotonic()
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        enable_wal(conn, timeout=30)
    assert time.monotonic() - started < 10
    conn.close()


@pytest.mark.parametrize("round_", range(30))
def test_two_caches_opening_one_new_file_at_once_both_open(tmp_path: Path, round_: int) -> None:
    path = tmp_path / f"responses-{round_}.db"
    errors: list[BaseException] = []
    go = threading.Barrier(4, timeout=60)

    def opener() -> None:
        try:
            go.wait()
            with SQLiteResponseCache(path) as cache:
                cache.put("k", {"text": "t", "model": "m"}, now=0, ttl=60)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
