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

Signed heads: with a :class:`~nexus.store.heads.HeadSigner`, every batch's last
(seq, hash) is signed (~30 us) and stored in ``audit_heads`` in the batch's own
transaction, and at each run state change the store manifest outside the
database is updated (see :mod:`nexus.store.heads`).

A file that is not a usable Nexus store (garbage, truncated, another
program's database, a newer schema, read-only) is refused at :meth:`SQLiteStore.open`
with a :class:`~nexus.store.base.StoreUnusable` naming the file and what to do.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from nexus.domain.budget import Limits, Spend, money_text
from nexus.domain.errors import ConflictError, InfrastructureError
from nexus.domain.events import Event, EventType
from nexus.domain.payloads import task_of
from nexus.sqlite_wal import enable_wal
from nexus.store import migrate
from nexus.store.base import (
    AuditSnapshot,
    ChainRow,
    Command,
    Hold,
    Lease,
    Projection,
    RunFilter,
    RunRecord,
    SpendRow,
    StoreUnusable,
    TenantFigures,
    over_limit,
    spend_of,
)
from nexus.store.heads import HeadSigner, SignedHead
from nexus.store.schema import commands, events, runs

T = TypeVar("T")

_UPSERT_HEAD = (
    "INSERT INTO audit_heads (run_id, seq, hash, key_id, signature) "
    "VALUES (:run_id, :seq, :hash, :key_id, :signature) "
    "ON CONFLICT (run_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
    "key_id = excluded.key_id, signature = excluded.signature"
)
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


def _row(event: Event) -> dict[str, Any]:
    return {
        "run_id": event.run_id,
        "seq": event.seq,
        "type": str(event.type),
        "at": event.at,
        "task": task_of(event),
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


_SQLITE_MAGIC = b"SQLite format 3\x00"
_OURS = frozenset(
    {"runs", "events", "commands", "tenant_accounts", "tenant_holds", "audit_store",
     "audit_heads", "alembic_version"}
)  # fmt: skip
_RESTORE = "restore a backup (`nexus restore PATH`) or move the file aside to start a new store"


def _check_file(target: Path) -> None:
    """Refuse a file that cannot be a whole SQLite database, before SQLite reads it.

    A 0-byte file passes (SQLite treats it as new); ``nexus audit verify``
    reports an emptied store against the manifest.
    """
    try:
        info = target.stat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreUnusable(f"cannot read the database {target}: {exc.strerror}") from None
    if not target.is_file():
        raise StoreUnusable(f"the database {target} is not a regular file")
    if info.st_size == 0:
        return
    try:
        with open(target, "rb") as fh:
            header = fh.read(100)
    except OSError as exc:
        raise StoreUnusable(f"cannot read the database {target}: {exc.strerror}") from None
    if not header.startswith(_SQLITE_MAGIC):
        raise StoreUnusable(
            f"the database {target} is not a SQLite database (it does not start with the "
            f"SQLite header: damaged, or another kind of file); {_RESTORE}"
        )
    if len(header) < 100:
        raise StoreUnusable(f"the database {target} is truncated (a partial header); {_RESTORE}")
    page = int.from_bytes(header[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(header[28:32], "big")
    header_valid = header[24:28] == header[92:96]
    if header_valid and pages and info.st_size < page * pages:
        raise StoreUnusable(
            f"the database {target} is truncated: {info.st_size} bytes, but its header "
            f"records {pages} pages of {page} bytes; {_RESTORE}"
        )


def _unusable(target: Path, exc: DatabaseError | sqlite3.DatabaseError) -> StoreUnusable:
    """What a SQLite error at open time means for the user."""
    text = str(getattr(exc, "orig", None) or exc)
    low = text.lower()
    if "readonly" in low or "read-only" in low or "unable to open" in low:
        return StoreUnusable(
            f"the database {target} cannot be written ({text}): Nexus needs write access "
            f"to the file and to its folder {target.parent} (for the -wal and -shm files "
            "beside it); fix the permissions or mount, or point NEXUS_HOME elsewhere"
        )
    return StoreUnusable(f"the database {target} is damaged ({text}); {_RESTORE}")


def _check_schema(engine: Engine, target: Path) -> str | None:
    """The database's revision, refusing another program's database or a newer schema."""
    current = migrate.current_revision(engine)
    if current is None:
        with engine.connect() as conn:
            names = {
                str(n)
                for (n,) in conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite_%'"
                )
            }
        if names - _OURS:  # only our own tables (a downgraded store) are migrated again
            foreign = ", ".join(sorted(names - _OURS)[:5])
            raise StoreUnusable(
                f"the database {target} is not a Nexus store: it holds tables Nexus did not "
                f"create ({foreign}) and no schema revision; point NEXUS_HOME at a Nexus "
                "home, or move the file aside"
            )
    elif current not in migrate.known_revisions():
        raise StoreUnusable(
            f"the database {target} is at schema revision {current}, which this version of "
            f"Nexus does not know (it knows up to {migrate.head_revision()}): it was written by "
            "a newer Nexus; upgrade Nexus, or restore a backup made by this version"
        )
    return current


class SQLiteStore:
    """The embedded store: one SQLite file in WAL mode.

    Example:
        >>> store = SQLiteStore.open(Path(".nexus/nexus.db"))  # doctest: +SKIP
    """

    def __init__(self, engine: Engine, signer: HeadSigner | None = None) -> None:
        self._engine = engine
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nexus-sqlite")
        self._writer: Connection | None = None  # lives on the pool's one thread
        self._closed = False
        self._signer = signer
        self._store_id: str | None = None
        self._status: dict[str, str] = {}  # the last status seen per run (manifest updates)

    def _conn(self) -> Connection:
        """The writer thread's persistent connection (opened on first use)."""
        if self._writer is None:
            self._writer = self._engine.connect()
        return self._writer

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        durability: Literal["normal", "full"] = "normal",
        signer: HeadSigner | None = None,
    ) -> SQLiteStore:
        """Open (and create or migrate) the database at ``path``.

        Args:
            signer: sign every run's head with this key, and keep its store manifest.

        Raises:
            StoreUnusable: the file is damaged, truncated, another program's, of a
                newer schema, or cannot be written.
            InfrastructureError: the folder cannot be created, or the database is busy.
        """
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InfrastructureError(f"cannot create {target.parent}: {exc}") from exc
        _check_file(target)
        engine = create_engine(f"sqlite:///{target}", connect_args={"timeout": 30})
        sync = "FULL" if durability == "full" else "NORMAL"

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=30000")
            enable_wal(cur, 30.0)
            cur.execute(f"PRAGMA synchronous={sync}")
            cur.close()

        try:
            if _check_schema(engine, target) != migrate.head_revision():
                with _migration_lock(target):  # two processes may open a new home at once
                    if migrate.current_revision(engine) != migrate.head_revision():
                        migrate.upgrade(engine)
        except OperationalError as exc:
            engine.dispose()
            if "locked" in str(exc.orig) or "busy" in str(exc.orig):
                raise InfrastructureError(f"the database {target} is busy: {exc.orig}") from exc
            raise _unusable(target, exc) from exc
        except (DatabaseError, sqlite3.DatabaseError) as exc:
            engine.dispose()
            raise _unusable(target, exc) from exc
        except OSError as exc:  # the migration lock beside a read-only database
            engine.dispose()
            raise StoreUnusable(
                f"the database {target} cannot be migrated: {exc.strerror} "
                f"({target.parent} must be writable)"
            ) from exc
        except StoreUnusable:
            engine.dispose()
            raise
        return cls(engine, signer)

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
            raise self._translate(exc.orig) from exc
        except sqlite3.OperationalError as exc:  # the tenant statements use the driver
            raise self._translate(exc) from exc
        except (DatabaseError, sqlite3.DatabaseError) as exc:
            raise _unusable(self._path, exc) from exc

    @property
    def _path(self) -> Path:
        return Path(self._engine.url.database or "")

    def _translate(self, exc: BaseException | None) -> Exception:
        if "readonly" in str(exc):
            return _unusable(self._path, sqlite3.OperationalError(str(exc)))
        return InfrastructureError(f"database error: {exc}")

    # -- signed heads -----------------------------------------------------
    def _read_store_id(self, conn: Connection) -> str:
        if self._store_id is None:
            row = conn.exec_driver_sql("SELECT store_id FROM audit_store WHERE id = 1").first()
            if row is None:
                raise StoreUnusable(f"the database {self._path} has no store id (audit_store)")
            self._store_id = str(row[0])
        return self._store_id

    def _sign(self, conn: Connection, last: Event) -> SignedHead | None:
        """Sign ``last`` as its run's head and stage it in the open transaction."""
        if self._signer is None:
            return None
        head = self._signer.sign(self._read_store_id(conn), last.run_id, last.seq, last.hash)
        conn.exec_driver_sql(_UPSERT_HEAD, head.to_dict())
        return head

    def _anchor(self, head: SignedHead | None, status: str | None) -> None:
        """After a commit: record the head in the manifest when the run's state changed."""
        if head is None or self._signer is None or self._store_id is None:
            return
        if status is not None and self._status.get(head.run_id) == status:
            return
        if status is not None:
            self._status[head.run_id] = status
        # the events are committed and signed; verify reports a manifest left stale
        with suppress(OSError):
            self._signer.record(self._store_id, [head])

    # -- runs and events --------------------------------------------------
    async def create_run(self, record: RunRecord, first: Event) -> None:
        def work() -> None:
            try:
                with self._engine.begin() as conn:
                    head = None
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
                    head = self._sign(conn, first)
            except SAIntegrityError as exc:
                raise ConflictError(f"run {record.run_id} exists already") from exc
            self._anchor(head, record.status)

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
                head = self._sign(conn, batch[-1])
                conn.commit()
            except SAIntegrityError as exc:
                conn.rollback()
                raise ConflictError(
                    f"run {run_id}: seq {batch[0].seq} is taken: another process writes this run"
                ) from exc
            except BaseException:
                conn.rollback()
                raise
            self._anchor(head, status)

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

    async def search_runs(self, where: RunFilter) -> list[RunRecord]:
        def work() -> list[RunRecord]:
            query = select(runs).order_by(runs.c.run_id.desc()).limit(where.limit)
            if where.status is not None:
                query = query.where(runs.c.status == where.status)
            if where.name is not None:
                query = query.where(func.instr(func.lower(runs.c.name), where.name.lower()) > 0)
            if where.since is not None:
                query = query.where(runs.c.created_at >= where.since)
            with self._engine.connect() as conn:
                return [_record(row) for row in conn.execute(query)]

        return await self._call(work)

    async def runs_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        def work() -> list[str]:
            # [prefix, prefix with its last character bumped): a range of the key's index
            query = select(runs.c.run_id).where(runs.c.run_id >= prefix)
            if prefix and ord(prefix[-1]) < sys.maxunicode:
                query = query.where(runs.c.run_id < prefix[:-1] + chr(ord(prefix[-1]) + 1))
            query = query.order_by(runs.c.run_id).limit(limit)
            with self._engine.connect() as conn:
                found = [str(run_id) for (run_id,) in conn.execute(query)]
            return [run_id for run_id in found if run_id.startswith(prefix)]

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

    @contextmanager
    def audit_snapshot(self, run_id: str | None = None) -> Iterator[AuditSnapshot]:
        """One consistent read of what audit compares (blocking; a run may be writing).

        The projection, the signed heads and the chain are read in one read
        transaction, so a batch committed meanwhile is either wholly in or out.
        """
        raw = self._engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("BEGIN")
            where, args = ("", ()) if run_id is None else (" WHERE run_id = ?", (run_id,))
            store_id = cur.execute("SELECT store_id FROM audit_store WHERE id = 1").fetchone()
            projections = {
                r: Projection(int(n), str(st))
                for r, n, st in cur.execute(f"SELECT run_id, events, status FROM runs{where}", args)
            }
            signed = {
                r[0]: SignedHead(r[0], int(r[1]), r[2], r[3], r[4])
                for r in cur.execute(
                    f"SELECT run_id, seq, hash, key_id, signature FROM audit_heads{where}", args
                )
            }
            chain = cur.execute(
                f"SELECT run_id, seq, prev_hash, hash, body FROM events{where}"
                " ORDER BY run_id, seq",
                args,
            )
            rows = (ChainRow(*row) for row in chain)
            yield AuditSnapshot(
                None if store_id is None else str(store_id[0]), projections, signed, rows
            )
            raw.rollback()
        except sqlite3.DatabaseError as exc:
            raise _unusable(self._path, exc) from exc
        finally:
            raw.close()

    def sign_heads(
        self, signer: HeadSigner, run_ids: Sequence[str], *, reset: bool = False
    ) -> list[SignedHead]:
        """Sign the current head of each of ``run_ids`` and put every head in the manifest.

        For ``nexus audit sign`` and ``nexus restore``: the caller verifies the
        chains first. ``reset`` rewrites the manifest from this database alone.
        """
        with self._engine.begin() as conn:
            store_id = self._read_store_id(conn)
            heads = []
            for run_id in run_ids:
                row = conn.exec_driver_sql(
                    "SELECT seq, hash FROM events WHERE run_id = ? ORDER BY seq DESC LIMIT 1",
                    (run_id,),
                ).first()
                if row is not None:
                    head = signer.sign(store_id, run_id, int(row[0]), str(row[1]))
                    conn.exec_driver_sql(_UPSERT_HEAD, head.to_dict())
                    heads.append(head)
            every = [
                SignedHead(r[0], int(r[1]), r[2], r[3], r[4])
                for r in conn.exec_driver_sql(
                    "SELECT run_id, seq, hash, key_id, signature FROM audit_heads"
                )
            ]
        if not signer.record(store_id, every, reset=reset):
            raise StoreUnusable(
                f"the store manifest {signer.manifest} records another store or was edited; "
                "see `nexus audit verify`"
            )
        return heads

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            writer = self._writer
            await asyncio.get_running_loop().run_in_executor(self._pool, writer.close)
        self._pool.shutdown(wait=True)
        self._engine.dispose()
