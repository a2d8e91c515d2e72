"""``nexus backup`` while a run is writing: the copy verifies and holds a consistent prefix.

A writer thread appends signed batches to a run of a ~40 MB store, through the
real store, for as long as ``nexus backup`` (another process) runs. The copy
must hold the run's first ``k`` events exactly as the writer made them, with
the head signed at ``k`` and the projection at ``k`` -- a batch boundary, never
half a batch -- and verify with ``--require-signed`` once restored elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from cli_support import nexus

from nexus.domain.canonical import GENESIS_HASH
from nexus.domain.events import Draft, Event, EventType, seal
from nexus.store.base import RunRecord
from nexus.store.heads import HeadSigner
from nexus.store.sqlite import SQLiteStore

AT = "2026-12-06T00:00:00.000000Z"
BATCH = 8


def _draft(i: int, size: int) -> Draft:
    return Draft(EventType.TIMER_FIRED, AT, {"i": i, "pad": os.urandom(size // 2).hex()})


class Writer:
    """Appends batches to one run until stopped; keeps every hash it committed."""

    def __init__(self, home: Path, run_id: str) -> None:
        self.home, self.run_id = home, run_id
        self.hashes: list[str] = []  # committed, in seq order
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    @property
    def committed(self) -> int:
        return len(self.hashes)

    def _main(self) -> None:
        try:
            asyncio.run(self._write())
        except BaseException as exc:  # the test reports it
            self.error = exc

    async def _write(self) -> None:
        store = SQLiteStore.open(self.home / "nexus.db", signer=HeadSigner.for_home(self.home))
        try:
            first = seal(self.run_id, 1, Draft(EventType.RUN_STARTED, AT, {}), GENESIS_HASH)
            record = RunRecord(self.run_id, "w", "0" * 64, "running", AT, AT, None, "", 1)
            await store.create_run(record, first)
            self.hashes.append(first.hash)
            prev: Event = first
            # a big start so the copy takes several steps, then small batches
            size = 64_000
            while not self.stop.is_set():
                batch = []
                for _ in range(BATCH):
                    prev = seal(self.run_id, prev.seq + 1, _draft(prev.seq, size), prev.hash)
                    batch.append(prev)
                await store.append(self.run_id, batch, None)
                self.hashes.extend(e.hash for e in batch)
                if self.committed > 640:
                    size = 2_000
                    await asyncio.sleep(0.002)
        finally:
            await store.close()


@pytest.mark.slow
def test_backup_while_a_run_writes_is_a_consistent_verified_prefix(tmp_path: Path) -> None:
    home = tmp_path / "home" / ".nexus"
    home.mkdir(parents=True)
    writer = Writer(home, "01JRUNWRITING0000000000000")
    writer.thread.start()
    deadline = time.monotonic() + 60
    while writer.committed < 1_000 and writer.error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.error is None, writer.error
    before = writer.committed
    dest = tmp_path / "backup"
    try:
        made = nexus(home, "backup", dest, "--json")
    finally:
        after = writer.committed
        writer.stop.set()
        writer.thread.join(30)
    assert writer.error is None, writer.error
    assert made.code == 0, made.text
    assert made.json()["audit"]["ok"]
    assert after > before, "the writer did not write while the backup ran"

    with sqlite3.connect(dest / "nexus.db") as conn:
        rows = conn.execute(
            "SELECT seq, hash FROM events WHERE run_id = ? ORDER BY seq", (writer.run_id,)
        ).fetchall()
        head = conn.execute(
            "SELECT seq, hash FROM audit_heads WHERE run_id = ?", (writer.run_id,)
        ).fetchone()
        events = conn.execute(
            "SELECT events FROM runs WHERE run_id = ?", (writer.run_id,)
        ).fetchone()[0]
    k = len(rows)
    assert before <= k <= after
    assert [s for s, _ in rows] == list(range(1, k + 1))
    assert [h for _, h in rows] == writer.hashes[:k]  # exactly the writer's prefix
    assert (k - 1) % BATCH == 0  # whole batches only
    assert head == (k, writer.hashes[k - 1])  # signed in the same transaction
    assert events == k

    fresh = tmp_path / "fresh" / ".nexus"
    fresh.parent.mkdir()
    restored = nexus(fresh, "restore", dest, "--json")
    assert restored.code == 0, restored.text
    verified = nexus(fresh, "audit", "verify", "--require-signed", "--json")
    assert verified.code == 0, verified.text
    assert verified.json()["events"] == k
