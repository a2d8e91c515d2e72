"""SQLite adapter of the Store port: SQLAlchemy Core, WAL, one writer thread.

SQLite calls block, so every call runs on one dedicated thread (never on the
event loop); one thread also means one connection, which is what SQLite
prefers for writes. Batches are appended in one transaction: the engine
group-commits the events a controller step produced.

Durability: WAL with ``synchronous=NORMAL`` survives a killed process (the
guarantee crash-resume needs); ``durability="full"`` also survives power loss
at the cost of an fsync per commit.

Tenant budgets: a hold is taken in one ``BEGIN IMMEDIATE`` transaction on the
writer connection -- it takes SQLite's write lock before reading, so the check
of spend and live holds and the insert of the hold are one step for every
process on the file (others wait on ``busy_timeout``). The arithmetic is done
in Python on :class:`~decimal.Decimal` (money is stored as exact text; SQL
would sum it as floats).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError

from nexus.domain.budget import Limits, Spend, money_text
from nexus.domain.errors import ConflictError, InfrastructureError
from nexus.domain.events import Event, EventType
from nexus.store import migrate
from nexus.store.base import (
    ChainRow,
    Command,
    Hold,
    Lease,
    RunRecord,
    SpendRow,
    TenantFigures,
    over_limit,
    spend_of,
)
from nexus.store.schema import commands, events, runs

T = TypeVar("T")

_UPDATE_RUN = (
    "UPDATE runs SET updated_at = :at, events = :n, status = COALESCE(:status, status) "
    "WHERE run_id = :run_id"
)
_INSERT_EVENT = (
    "INSERT INTO events (run_id, seq, type, at, task, prev_hash, hash, body) "
    "VALUES (:run_id, :seq, :type, :at, :task, :prev_hash, :hash, :body)"
)

# JSON1 reads only the few fields needed; money stays text (exact)
_TENANT_SPEND = (
    "SELECT json_extract(body, '$.data.kind'), json_extract(body, '$.data.spend.usd'),"
    " json_extract(body, '$.data.spend.tokens'), json_extract(body, '$.data.error.kind')"
    " FROM events WHERE type = 'effect.recorded' AND run_id IN ("
    "  SELECT run_id FROM events WHERE seq = 1"
    "  AND coalesce(json_extract(body, '$.data.tenant'), 'default') = :tenant)"
)
_ACCOUNT = "SELECT usd, tokens, tool_calls FROM tenant_accounts WHERE tenant = :tenant"
_NEW_ACCOUNT = (
    "INSERT INTO tenant_accounts (tenant, usd, tokens, tool_calls) "
    "VALUES (:tenant, :usd, :tokens, :tool_calls)"
)
_SET_ACCOUNT = (
    "UPDATE tenant_accounts SET usd = :usd, tokens = :tokens, tool_calls = :tool_calls "
    "WHERE tenant = :tenant"
)
_SWEEP = "DELETE FROM tenant_holds WHERE tenant = :tenant AND expires_at <= :now"
_LIVE_HOLDS = (
    "SELECT usd, tokens, tool_calls FROM tenant_holds WHERE tenant = :tenant AND expires_at > :now"
)
_NEW_HOLD = (
    "INSERT INTO tenant_holds (hold_id, tenant, run_id, usd, tokens, tool_calls, expires_at) "
    "VALUES (:hold_id, :tenant, :run_id, :usd, :tokens, :tool_calls, :expires_at)"
)
_DROP_HOLD = "DELETE FROM tenant_holds WHERE hold_id = :hold_id AND tenant = :tenant"
_DROP_RUN_HOLDS = "DELETE FROM tenant_holds WHERE tenant = :tenant AND run_id = :run_id"


def _spend_rows(cursor: sqlite3.Cursor, tenant: str) -> list[SpendRow]:
    return [
        SpendRow(kind=str(k), usd=u, tokens=None if t is None else int(t), error=e)
        for k, u, t, e in cursor.execute(_TENANT_SPEND, {"tenant": tenant}).fetchall()
    ]


def _figures(spend: Spend) -> dict[str, Any]:
    return {"usd": money_text(spend.usd), "tokens": spend.tokens, "tool_calls": spend.tool_calls}


def _spent(cursor: sqlite3.Cursor, tenant: str, *, create: bool) -> Spend:
    """The tenant's account; when it has none yet, what its recorded calls spent
    (and, with ``create``, that becomes its account)."""
    row = cursor.execute(_ACCOUNT, {"tenant": tenant}).fetchone()
    if row is not None:
        return Spend(Decimal(row[0]), row[1], row[2])
    spent = spend_of(_spend_rows(cursor, tenant))
    if create:
        cursor.execute(_NEW_ACCOUNT, {"tenant": tenant, **_figures(spent)})
    return spent


def _held(cursor: sqlite3.Cursor, tenant: str, now: float) -> Spend:
    total = Spend()
    for usd, tokens, tool_calls in cursor.execute(_LIVE_HOLDS, {"tenant": tenant, "now": now}):
        total = total + Spend(Decimal(usd), tokens, tool_calls)
    return total


def _task_of(event: Event) -> str | None:
    task = event.data.get("task")
    return task if isinstance(task, str) else None


def _row(event: Event) -> dict[str, Any]:
    return {
        "run_id": event.run_id,
        "seq": event.seq,
        "type": str(event.type),
        "at": event.at,
        "task": _task_of(event),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        "body": event.body,
    }


def event_from_row(run_id: str, seq: int, prev_hash: str, hash_: str, body: str) -> Event:
    """Rebuild an event from its stored body (the body is the source of truth)."""
    doc = json.loads(body)
    return Event(
        run_id=run_id,
        seq=seq,
        type=EventType(doc["type"]),
        at=doc["at"],
        data=doc["data"],
        prev_hash=prev_hash,
        hash=hash_,
        body=body,
    )


def _record(row: Any) -> RunRecord:
    return RunRecord(
        run_id=row.run_id,
        name=row.name,
        plan_hash=row.plan_hash,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        source=row.source,
        workspace=row.workspace,
        events=row.events,
    )


@contextmanager
def _migration_lock(db: Path) -> Iterator[None]:
    """Hold an exclusive lock (a file beside the database) while migrating it."""
    with open(db.with_name(db.name + ".lock"), "a", encoding="ascii") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class SQLiteStore:
    """The embedded store: one SQLite file in WAL mode.

    Example:
        >>> store = SQLiteStore.open(Path(".nexus/nexus.db"))  # doctest: +SKIP
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nexus-sqlite")
        self._writer: Connection | None = None  # lives on the pool's one thread
        self._closed = False

    def _conn(self) -> Connection:
        """The writer thread's persistent connection (opened on first use)."""
        if self._writer is None:
            self._writer = self._engine.connect()
        return self._writer

    @classmethod
    def open(
        cls, path: Path | str, *, durability: Literal["normal", "full"] = "normal"
    ) -> SQLiteStore:
        """Open (and create or migrate) the database at ``path``.

        Raises:
            InfrastructureError: the file cannot be opened or migrated.
        """
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InfrastructureError(f"cannot create {target.parent}: {exc}") from exc
        engine = create_engine(f"sqlite:///{target}", connect_args={"timeout": 30})
        sync = "FULL" if durability == "full" else "NORMAL"

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sync}")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        try:
            if migrate.current_revision(engine) != migrate.head_revision():
                with _migration_lock(target):  # two processes may open a new home at once
                    if migrate.current_revision(engine) != migrate.head_revision():
                        migrate.upgrade(engine)
        except OperationalError as exc:
            raise InfrastructureError(f"cannot open the database {target}: {exc.orig}") from exc
        return cls(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Cursor]:
        """A transaction on the writer connection, through the driver's own cursor.

        ``begin`` is ``BEGIN IMMEDIATE`` (take the write lock first: read,
        check and write as one step for every process) or ``BEGIN`` (one
        snapshot for several reads). The tenant statements skip SQLAlchemy's
        execution layer, which costs four times the SQLite work here; the
        writer is idle between calls (``append`` always commits or rolls back).
        """
        raw = self._conn().connection.driver_connection
        if not isinstance(raw, sqlite3.Connection):  # pragma: no cover - pysqlite only
            raise InfrastructureError(f"not a sqlite3 connection: {type(raw).__name__}")
        cursor = raw.cursor()
        try:
            cursor.execute(begin)
            yield cursor
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        finally:
            cursor.close()

    async def _call(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn)
        except OperationalError as exc:
            raise InfrastructureError(f"database error: {exc.orig}") from exc
        except sqlite3.OperationalError as exc:  # the tenant statements use the driver
            raise InfrastructureError(f"database error: {exc}") from exc

    # -- runs and events --------------------------------------------------
    async def create_run(self, record: RunRecord, first: Event) -> None:
        def work() -> None:
            try:
                with self._engine.begin() as conn:
                    conn.execute(
                        insert(runs).values(
                            run_id=record.run_id,
                            name=record.name,
                            plan_hash=record.plan_hash,
                            status=record.status,
                            created_at=record.created_at,
                            updated_at=record.updated_at,
                            source=record.source,
                            workspace=record.workspace,
                            events=1,
                        )
                    )
                    conn.execute(insert(events), [_row(first)])
            except SAIntegrityError as exc:
                raise ConflictError(f"run {record.run_id} exists already") from exc

        await self._call(work)

    async def append(self, run_id: str, batch: Sequence[Event], status: str | None) -> None:
        if not batch:
            return
        rows = [_row(e) for e in batch]
        progress = {"run_id": run_id, "at": batch[-1].at, "n": batch[-1].seq, "status": status}

        def work() -> None:
            # The hot path: one executemany of prepared SQL and one commit per batch.
            conn = self._conn()
            try:
                conn.exec_driver_sql(_INSERT_EVENT, rows)
                conn.exec_driver_sql(_UPDATE_RUN, progress)
                conn.commit()
            except SAIntegrityError as exc:
                conn.rollback()
                raise ConflictError(
                    f"run {run_id}: seq {batch[0].seq} is taken: another process writes this run"
                ) from exc
            except BaseException:
                conn.rollback()
                raise

        await self._call(work)

    async def load(self, run_id: str) -> list[Event]:
        def work() -> list[Event]:
            query = (
                select(events.c.seq, events.c.prev_hash, events.c.hash, events.c.body)
                .where(events.c.run_id == run_id)
                .order_by(events.c.seq)
            )
            with self._engine.connect() as conn:
                return [
                    event_from_row(run_id, seq, prev, hash_, body)
                    for seq, prev, hash_, body in conn.execute(query)
                ]

        return await self._call(work)

    async def get_run(self, run_id: str) -> RunRecord | None:
        def work() -> RunRecord | None:
            with self._engine.connect() as conn:
                row = conn.execute(select(runs).where(runs.c.run_id == run_id)).first()
            return None if row is None else _record(row)

        return await self._call(work)

    async def list_runs(self, limit: int = 50) -> list[RunRecord]:
        def work() -> list[RunRecord]:
            query = select(runs).order_by(runs.c.run_id.desc()).limit(limit)
            with self._engine.connect() as conn:
                return [_record(row) for row in conn.execute(query)]

        return await self._call(work)

    async def tenant_spend(self, tenant: str) -> list[SpendRow]:
        def work() -> list[SpendRow]:
            with self._transaction("BEGIN") as cursor:
                return _spend_rows(cursor, tenant)

        return await self._call(work)

    # -- tenant budgets ---------------------------------------------------
    async def tenant_reserve(self, hold: Hold, limits: Limits) -> TenantFigures | None:
        tenant = hold.tenant
        row = {
            "hold_id": hold.id,
            "tenant": tenant,
            "run_id": hold.run_id,
            "expires_at": hold.expires_at,
            **_figures(hold.amount),
        }

        def work() -> TenantFigures | None:
            now = time.time()
            with self._transaction("BEGIN IMMEDIATE") as cursor:
                cursor.execute(_SWEEP, {"tenant": tenant, "now": now})
                spent = _spent(cursor, tenant, create=True)
                held = _held(cursor, tenant, now)
                if over_limit(limits, spent, held, hold.amount) is not None:
                    return TenantFigures(spent, held)
                cursor.execute(_NEW_HOLD, row)
                return None

        return await self._call(work)

    async def tenant_settle(self, hold: Hold, actual: Spend) -> Spend:
        tenant = hold.tenant

        def work() -> Spend:
            with self._transaction("BEGIN IMMEDIATE") as cursor:
                cursor.execute(_DROP_HOLD, {"hold_id": hold.id, "tenant": tenant})
                spent = _spent(cursor, tenant, create=True) + actual
                cursor.execute(_SET_ACCOUNT, {"tenant": tenant, **_figures(spent)})
                return spent

        return await self._call(work)

    async def tenant_release(self, hold: Hold) -> None:
        def work() -> None:
            with self._transaction("BEGIN IMMEDIATE") as cursor:
                cursor.execute(_DROP_HOLD, {"hold_id": hold.id, "tenant": hold.tenant})

        await self._call(work)

    async def tenant_release_run(self, tenant: str, run_id: str) -> int:
        def work() -> int:
            with self._transaction("BEGIN IMMEDIATE") as cursor:
                cursor.execute(_DROP_RUN_HOLDS, {"tenant": tenant, "run_id": run_id})
                return int(cursor.rowcount)

        return await self._call(work)

    async def tenant_figures(self, tenant: str) -> TenantFigures:
        def work() -> TenantFigures:
            with self._transaction("BEGIN") as cursor:
                return TenantFigures(
                    _spent(cursor, tenant, create=False), _held(cursor, tenant, time.time())
                )

        return await self._call(work)

    # -- leases -----------------------------------------------------------
    async def get_lease(self, run_id: str) -> Lease | None:
        def work() -> Lease | None:
            query = select(
                runs.c.lease_owner, runs.c.lease_host, runs.c.lease_pid, runs.c.lease_heartbeat
            ).where(runs.c.run_id == run_id)
            with self._engine.connect() as conn:
                row = conn.execute(query).first()
            if row is None or row.lease_owner is None:
                return None
            return Lease(row.lease_owner, row.lease_host, row.lease_pid, row.lease_heartbeat)

        return await self._call(work)

    async def swap_lease(self, run_id: str, new: Lease | None, expect_owner: str | None) -> bool:
        values: dict[str, Any] = {
            "lease_owner": None if new is None else new.owner,
            "lease_host": None if new is None else new.host,
            "lease_pid": None if new is None else new.pid,
            "lease_heartbeat": None if new is None else new.heartbeat,
        }
        guard = (
            runs.c.lease_owner.is_(None)
            if expect_owner is None
            else runs.c.lease_owner == expect_owner
        )

        def work() -> bool:
            with self._engine.begin() as conn:
                result = conn.execute(
                    update(runs).where(runs.c.run_id == run_id, guard).values(**values)
                )
                return result.rowcount == 1

        return await self._call(work)

    # -- commands ---------------------------------------------------------
    async def push_command(self, run_id: str, kind: str, payload: dict[str, Any]) -> None:
        def work() -> None:
            with self._engine.begin() as conn:
                conn.execute(
                    insert(commands).values(run_id=run_id, kind=kind, payload=json.dumps(payload))
                )

        await self._call(work)

    async def take_commands(self, run_id: str) -> list[Command]:
        def work() -> list[Command]:
            with self._engine.begin() as conn:
                rows = conn.execute(
                    select(commands).where(commands.c.run_id == run_id).order_by(commands.c.id)
                ).all()
                if rows:
                    ids = [r.id for r in rows]
                    conn.execute(delete(commands).where(commands.c.id.in_(ids)))
            return [Command(r.id, r.run_id, r.kind, json.loads(r.payload)) for r in rows]

        return await self._call(work)

    # -- audit ------------------------------------------------------------
    def chain(self, run_id: str | None = None) -> Iterator[ChainRow]:
        query = select(
            events.c.run_id, events.c.seq, events.c.prev_hash, events.c.hash, events.c.body
        ).order_by(events.c.run_id, events.c.seq)
        if run_id is not None:
            query = query.where(events.c.run_id == run_id)
        with self._engine.connect() as conn:
            result = conn.execution_options(yield_per=5000).execute(query)
            for run, seq, prev, hash_, body in result:
                yield ChainRow(run, seq, prev, hash_, body)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            writer = self._writer
            await asyncio.get_running_loop().run_in_executor(self._pool, writer.close)
        self._pool.shutdown(wait=True)
        self._engine.dispose()
