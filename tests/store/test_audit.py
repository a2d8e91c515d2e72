"""Audit verification of the hash chain against tampering done with plain SQL."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus.domain.plan import Plan, TaskSpec
from nexus.engine.facade import Engine
from nexus.store.audit import AuditReport, verify_chain
from nexus.store.base import ChainRow
from nexus.store.sqlite import SQLiteStore


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, str, str]:
    """A database holding two finished runs: (db, untouched run, victim run)."""
    db = tmp_path / "nexus.db"
    ws = tmp_path / "ws"
    ws.mkdir()
    plan = Plan(
        name="audited",
        tasks={
            "a": TaskSpec(id="a", tool="noop", args={"note": "tamper-me"}),
            "b": TaskSpec(id="b", tool="shell", args={"cmd": "echo b"}, needs=("a",)),
            "c": TaskSpec(id="c", tool="noop", needs=("b",), args={"v": "{{ tasks.a.output }}"}),
        },
        workspace=str(ws),
    )

    async def go() -> tuple[str, str]:
        store = SQLiteStore.open(db)
        try:
            engine = Engine(store)
            first = await engine.start(plan)
            second = await engine.start(plan)
            assert first.status == second.status == "succeeded"
            return first.run_id, second.run_id
        finally:
            await store.close()

    untouched, victim = asyncio.run(go())
    return db, untouched, victim


@contextlib.contextmanager
def sql(db: Path) -> Iterator[sqlite3.Connection]:
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        yield conn


def counts(db: Path) -> dict[str, int]:
    with sql(db) as conn:
        return dict(conn.execute("SELECT run_id, events FROM runs").fetchall())


def audit(db: Path, run_id: str | None = None, *, with_counts: bool = True) -> AuditReport:
    store = SQLiteStore.open(db)
    try:
        expected = counts(db) if with_counts else None
        if expected is not None and run_id is not None:
            expected = {run_id: expected[run_id]}
        return verify_chain(store.chain(run_id), expected)
    finally:
        asyncio.run(store.close())


def n_events(db: Path, run_id: str) -> int:
    with sql(db) as conn:
        return int(
            conn.execute("SELECT COUNT(*) FROM events WHERE run_id = ?", (run_id,)).fetchone()[0]
        )


def first_bad(report: AuditReport) -> tuple[str, int, str]:
    assert not report.ok
    assert report.first_bad is not None
    bad = report.first_bad
    return bad["run_id"], bad["seq"], bad["reason"]


def test_untampered_chain_verifies(runs: tuple[Path, str, str]) -> None:
    db, untouched, victim = runs
    report = audit(db)
    assert report.ok
    assert report.first_bad is None
    assert report.problems == []
    assert report.runs == 2
    assert report.events == n_events(db, untouched) + n_events(db, victim)
    assert audit(db, victim).ok
    assert audit(db, victim).runs == 1
    assert report.to_dict()["ok"] is True


def test_altered_body_is_named(runs: tuple[Path, str, str]) -> None:
    db, untouched, victim = runs
    with sql(db) as conn:
        seq, body = conn.execute(
            "SELECT seq, body FROM events WHERE run_id = ? AND type = 'effect.recorded' "
            "ORDER BY seq LIMIT 1",
            (victim,),
        ).fetchone()
        forged = body.replace("tamper-me", "tampered!")
        assert forged != body
        conn.execute(
            "UPDATE events SET body = ? WHERE run_id = ? AND seq = ?", (forged, victim, seq)
        )
    run, bad_seq, reason = first_bad(audit(db))
    assert (run, bad_seq) == (victim, seq)
    assert "altered" in reason
    assert audit(db, untouched).ok
    # one problem per run: the later links of the victim are not reported again
    assert len(audit(db).problems) == 1


def test_altered_hash_is_named(runs: tuple[Path, str, str]) -> None:
    db, _, victim = runs
    seq = 3
    with sql(db) as conn:
        conn.execute(
            "UPDATE events SET hash = ? WHERE run_id = ? AND seq = ?",
            (hashlib.sha256(b"forged").hexdigest(), victim, seq),
        )
    assert first_bad(audit(db))[:2] == (victim, seq)


def test_altered_prev_hash_is_named(runs: tuple[Path, str, str]) -> None:
    db, _, victim = runs
    seq = 4
    with sql(db) as conn:
        conn.execute(
            "UPDATE events SET prev_hash = ? WHERE run_id = ? AND seq = ?", ("0" * 64, victim, seq)
        )
    run, bad_seq, reason = first_bad(audit(db))
    assert (run, bad_seq) == (victim, seq)
    assert "prev_hash" in reason


def test_rehashed_event_breaks_the_next_link(runs: tuple[Path, str, str]) -> None:
    """A forger who fixes the altered event's own hash is caught at the next event."""
    db, _, victim = runs
    seq = 2
    with sql(db) as conn:
        prev, body = conn.execute(
            "SELECT prev_hash, body FROM events WHERE run_id = ? AND seq = ?", (victim, seq)
        ).fetchone()
        forged = body.replace('"attempt":1', '"attempt":9', 1)
        assert forged != body
        new_hash = hashlib.sha256((prev + forged).encode()).hexdigest()
        conn.execute(
            "UPDATE events SET body = ?, hash = ? WHERE run_id = ? AND seq = ?",
            (forged, new_hash, victim, seq),
        )
    run, bad_seq, reason = first_bad(audit(db))
    assert (run, bad_seq) == (victim, seq + 1)
    assert "prev_hash" in reason


def test_deleted_middle_event_is_named(runs: tuple[Path, str, str]) -> None:
    db, _, victim = runs
    seq = 5
    with sql(db) as conn:
        conn.execute("DELETE FROM events WHERE run_id = ? AND seq = ?", (victim, seq))
    run, bad_seq, reason = first_bad(audit(db))
    assert (run, bad_seq) == (victim, seq)
    assert "missing" in reason
    # also without the projection's counts
    assert first_bad(audit(db, with_counts=False))[:2] == (victim, seq)


def test_deleted_tail_is_caught_by_the_run_count(runs: tuple[Path, str, str]) -> None:
    db, _, victim = runs
    total = n_events(db, victim)
    assert counts(db)[victim] == total
    with sql(db) as conn:
        conn.execute("DELETE FROM events WHERE run_id = ? AND seq >= ?", (victim, total - 1))
    # the chain alone still links up: only the recorded count shows the cut
    assert audit(db, with_counts=False).ok
    run, bad_seq, reason = first_bad(audit(db))
    assert (run, bad_seq) == (victim, total - 1)
    assert f"ends at seq {total - 2}" in reason
    assert first_bad(audit(db, victim))[:2] == (victim, total - 1)


def test_deleted_whole_run_is_caught_by_the_run_count(runs: tuple[Path, str, str]) -> None:
    db, untouched, victim = runs
    with sql(db) as conn:
        conn.execute("DELETE FROM events WHERE run_id = ?", (victim,))
    assert first_bad(audit(db))[:2] == (victim, 1)
    assert audit(db, untouched).ok


@pytest.mark.parametrize(("a", "b"), [(3, 4), (2, 6)])
def test_swapped_events_are_named(runs: tuple[Path, str, str], a: int, b: int) -> None:
    db, _, victim = runs
    with sql(db) as conn:
        conn.execute("UPDATE events SET seq = -1 WHERE run_id = ? AND seq = ?", (victim, a))
        conn.execute("UPDATE events SET seq = ? WHERE run_id = ? AND seq = ?", (a, victim, b))
        conn.execute("UPDATE events SET seq = ? WHERE run_id = ? AND seq = -1", (b, victim))
    assert first_bad(audit(db))[:2] == (victim, a)


def test_event_copied_from_another_run_is_named(runs: tuple[Path, str, str]) -> None:
    db, untouched, victim = runs
    with sql(db) as conn:
        prev, hash_, body = conn.execute(
            "SELECT prev_hash, hash, body FROM events WHERE run_id = ? AND seq = 1", (untouched,)
        ).fetchone()
        conn.execute(
            "UPDATE events SET prev_hash = ?, hash = ?, body = ? WHERE run_id = ? AND seq = 1",
            (prev, hash_, body, victim),
        )
    run, bad_seq, reason = first_bad(audit(db))
    assert (run, bad_seq) == (victim, 1)
    assert "another run" in reason


def test_first_bad_is_the_first_in_run_order(runs: tuple[Path, str, str]) -> None:
    db, untouched, victim = runs
    earlier, later = sorted([untouched, victim])
    with sql(db) as conn:
        conn.execute("DELETE FROM events WHERE run_id = ? AND seq = 6", (later,))
        conn.execute("UPDATE events SET hash = ? WHERE run_id = ? AND seq = 7", ("f" * 64, earlier))
    report = audit(db)
    assert first_bad(report)[:2] == (earlier, 7)
    assert [(p["run_id"], p["seq"]) for p in report.problems] == [(earlier, 7), (later, 6)]


def test_verify_chain_on_rows() -> None:
    assert verify_chain([]).ok
    row = ChainRow("R", 1, "0" * 64, "bad", '{"at":"t","data":{},"run_id":"R","seq":1,"type":"x"}')
    report = verify_chain([row])
    assert first_bad(report) == (
        "R",
        1,
        "hash does not match the event's content (the event was altered)",
    )
    # a run that is recorded but has no events at all
    assert first_bad(verify_chain([], {"R": 3}))[:2] == ("R", 1)
