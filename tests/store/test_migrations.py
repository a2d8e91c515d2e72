"""Schema migrations: up to head, down to base, and up again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text

from nexus.domain.canonical import GENESIS_HASH
from nexus.domain.events import Draft, EventType, seal
from nexus.store import migrate
from nexus.store.base import RunRecord
from nexus.store.schema import metadata
from nexus.store.sqlite import SQLiteStore

T = TypeVar("T")
TABLES = {
    "runs",
    "events",
    "commands",
    "tenant_accounts",
    "tenant_holds",
    "audit_store",
    "audit_heads",
}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'migrate.db'}")
    yield eng
    eng.dispose()


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def indexes(engine: Engine, table: str) -> set[str]:
    return {ix["name"] for ix in inspect(engine).get_indexes(table) if ix["name"]}


def test_upgrade_downgrade_upgrade(engine: Engine) -> None:
    head = migrate.head_revision()
    assert head
    assert migrate.current_revision(engine) is None
    assert tables(engine) == set()

    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == head
    assert tables(engine) == TABLES
    assert "ix_events_run_task" in indexes(engine, "events")
    assert "ix_commands_run_id" in indexes(engine, "commands")
    columns = {c["name"] for c in inspect(engine).get_columns("events")}
    assert columns == {"run_id", "seq", "type", "at", "task", "prev_hash", "hash", "body"}

    migrate.downgrade(engine)
    assert migrate.current_revision(engine) is None
    assert tables(engine) == set()

    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == head
    assert tables(engine) == TABLES


def test_upgrade_at_head_is_a_no_op(engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO commands (run_id, kind, payload) VALUES ('r', 'k', '{}')"))
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM commands")).scalar_one() == 1


def test_migrated_schema_matches_the_table_definitions(engine: Engine) -> None:
    """The migrations and ``schema.py`` describe the same database."""
    migrate.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_primary_key_of_events_is_run_and_seq(engine: Engine) -> None:
    migrate.upgrade(engine)
    pk = inspect(engine).get_pk_constraint("events")
    assert pk["constrained_columns"] == ["run_id", "seq"]


def test_store_opens_a_downgraded_database_and_migrates_it(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    first = seal("R", 1, Draft(EventType.RUN_STARTED, "t", {"x": 1}), GENESIS_HASH)
    record = RunRecord("R", "n", "h", "running", "t", "t", None, "/w", 1)

    async def write(store: SQLiteStore) -> None:
        await store.create_run(record, first)

    async def read(store: SQLiteStore) -> int:
        return len(await store.load("R"))

    def using(fn: Callable[[SQLiteStore], Awaitable[T]]) -> T:
        async def main() -> T:
            store = SQLiteStore.open(path)
            try:
                return await fn(store)
            finally:
                await store.close()

        return asyncio.run(main())

    using(write)  # a fresh file is created at head
    assert using(read) == 1

    eng = create_engine(f"sqlite:///{path}")
    try:
        assert migrate.current_revision(eng) == migrate.head_revision()
        migrate.downgrade(eng)
        assert tables(eng) == set()
    finally:
        eng.dispose()

    # opening migrates the empty database back up; the data went with the downgrade
    assert using(read) == 0
    using(write)
    assert using(read) == 1
