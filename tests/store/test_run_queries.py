"""The run queries the CLI asks for: an id prefix (an index range) and filtered listings.

Contract tests (each adapter of ``conftest.BACKENDS``), plus the SQLite plan of
the prefix read: a search of the run-id key, never a scan of every run.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event

from nexus.domain.canonical import GENESIS_HASH
from nexus.domain.events import Draft, EventType, seal
from nexus.store.base import RunFilter, RunRecord, Store
from nexus.store.sqlite import SQLiteStore

T = TypeVar("T")
StoreFactory = Callable[[], Store]

IDS = [
    "01JA000000000000000000000A",
    "01JA000000000000000000000B",
    "01JB000000000000000000000C",
    "01JB100000000000000000000D",
    "01JC000000000000000000000E",
]


def using(factory: StoreFactory, fn: Callable[[Store], Awaitable[T]]) -> T:
    async def main() -> T:
        store = factory()
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(main())


def record(run_id: str, name: str, status: str, created_at: str) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        name=name,
        plan_hash="f" * 64,
        status=status,
        created_at=created_at,
        updated_at=created_at,
        source="wf.yaml",
        workspace="/work",
        events=1,
    )


async def fill(store: Store) -> None:
    names = ["release-notes", "Release-Notes", "triage", "triage", "release-notes"]
    statuses = ["succeeded", "failed", "failed", "running", "succeeded"]
    for day, (run_id, name, status) in enumerate(zip(IDS, names, statuses, strict=True), 1):
        at = f"2026-01-0{day}T10:00:00.000000Z"
        first = seal(run_id, 1, Draft(EventType.RUN_STARTED, at, {"n": 1}), GENESIS_HASH)
        await store.create_run(record(run_id, name, status, at), first)


def test_runs_with_prefix(store_factory: StoreFactory) -> None:
    async def go(store: Store) -> None:
        await fill(store)
        assert await store.runs_with_prefix("01JA") == IDS[:2]
        assert await store.runs_with_prefix("01JB") == IDS[2:4]
        assert await store.runs_with_prefix("01JB1") == [IDS[3]]
        assert await store.runs_with_prefix(IDS[4]) == [IDS[4]]
        assert await store.runs_with_prefix("01JZ") == []
        assert await store.runs_with_prefix("01j") == []  # the key is compared as stored
        assert await store.runs_with_prefix("01J", limit=3) == IDS[:3]
        assert await store.runs_with_prefix("") == IDS

    using(store_factory, go)


def test_search_runs_filters_newest_first(store_factory: StoreFactory) -> None:
    async def go(store: Store) -> None:
        await fill(store)

        async def ids(**where: Any) -> list[str]:
            return [r.run_id for r in await store.search_runs(RunFilter(**where))]

        assert await ids() == IDS[::-1]
        assert await ids(limit=2) == [IDS[4], IDS[3]]
        assert await ids(status="failed") == [IDS[2], IDS[1]]
        assert await ids(status="failed", limit=1) == [IDS[2]]
        assert await ids(name="release") == [IDS[4], IDS[1], IDS[0]]  # any case
        assert await ids(name="NOTES", status="succeeded") == [IDS[4], IDS[0]]
        assert await ids(since="2026-01-03T10:00:00.000000Z") == [IDS[4], IDS[3], IDS[2]]
        assert await ids(since="2026-01-03T10:00:00.000001Z", status="failed") == []
        assert await ids(name="%") == []  # text, not a pattern

    using(store_factory, go)


def test_the_prefix_read_searches_the_key_index(tmp_path: Path) -> None:
    """The prefix lookup is a range of the primary key: SQLite searches, it does not scan."""
    store = SQLiteStore.open(tmp_path / "plan.db")
    statements: list[tuple[str, Any]] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def seen(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        if "FROM runs" in sql:
            statements.append((sql, params))

    async def go() -> None:
        try:
            await fill(store)
            statements.clear()
            assert await store.runs_with_prefix("01JB") == IDS[2:4]
        finally:
            await store.close()

    asyncio.run(go())
    ((sql, params),) = statements
    with sqlite3.connect(tmp_path / "plan.db") as conn:
        plan = " ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "SEARCH runs USING" in plan, plan
    assert "run_id>? AND run_id<?" in plan, plan
    assert "SCAN" not in plan, plan
