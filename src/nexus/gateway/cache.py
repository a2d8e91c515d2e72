"""The response cache: an identical request within its TTL costs 0 tokens.

A request's cache key is the SHA-256 of its canonical JSON (:func:`request_key`).
:class:`CachingProvider` wraps any provider by composition::

    cache = SQLiteResponseCache(home / "cache" / "responses.db")
    provider = CachingProvider(ResilientProvider(adapter), cache, ttl=3600)

* **What is cached.** A request is cacheable unless it sets ``temperature``
  above 0: an explicit positive temperature asks for varied answers, which a
  cache would defeat, while an unset or zero temperature says the caller
  accepts the same answer again. Only answers that finished normally are
  stored: a call that raised, or stopped on ``length`` or ``content_filter``
  (a truncated or withheld answer), is never replayed from the cache.
* **A hit** returns the stored response with ``usage`` zeroed (no tokens were
  spent) and a marker ``cache = {"hit": true, "key": ..., "saved": <the
  original usage>}``, so accounting charges nothing and :func:`savings`
  reports what was saved. A streamed hit yields the whole text as one
  :class:`~nexus.gateway.base.TextDelta`, then the
  :class:`~nexus.gateway.base.StreamEnd`.
* **A miss** calls the inner provider, stores its answer (without its
  ``route``: how one call travelled through retries and fallbacks says nothing
  about the answer) and returns it unchanged. A streamed miss passes the
  deltas through and stores the final response before yielding it.

Storage sits behind the small :class:`ResponseCache` protocol:
:class:`SQLiteResponseCache` (stdlib ``sqlite3`` in WAL mode, shared safely by
threads and processes) and :class:`MemoryResponseCache` (tests, embedded use).
The protocol is synchronous; :class:`CachingProvider` calls it from a worker
thread, so a busy database never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import decimal
import json
import sqlite3
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from nexus.domain.canonical import canonical_json, digest
from nexus.domain.errors import InfrastructureError, NotFoundError, UserError
from nexus.gateway.base import (
    ModelProvider,
    ModelRequest,
    ModelResponse,
    StreamEnd,
    StreamEvent,
    StreamingProvider,
    TextDelta,
    Usage,
    close_if_closable,
)
from nexus.gateway.pricing import PricingTable, cost_of
from nexus.sqlite_wal import enable_wal

__all__ = [
    "CacheSavings",
    "CacheStats",
    "CachedEntry",
    "CachingProvider",
    "MemoryResponseCache",
    "ResponseCache",
    "SQLiteResponseCache",
    "WallClock",
    "is_cacheable",
    "request_key",
    "savings",
]

#: Finish reasons whose answers are never stored: truncated or withheld.
UNCACHED_FINISH = frozenset({"length", "content_filter"})


def request_key(request: ModelRequest) -> str:
    """The cache key of ``request``: SHA-256 of its canonical JSON without ``turn``.

    ``turn`` counts an agent's earlier calls in a run. Only the ``scripted``
    provider reads it (to pick its n-th line), and scripted answers are never
    cached; for a real model the same messages at turn 1 or turn 5 are the same
    question. The task's template context is not part of the key either: SDK
    providers never read it.
    """
    data = request.to_dict()
    data.pop("turn", None)
    return digest(data)


def is_cacheable(request: ModelRequest) -> bool:
    """True unless the request sets ``temperature`` above 0 (it asked for variety)."""
    return request.temperature is None or request.temperature <= 0


def _storable(response: ModelResponse) -> bool:
    return response.finish_reason not in UNCACHED_FINISH


# -- storage ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CachedEntry:
    """One stored answer. Times are seconds since the epoch."""

    key: str
    model: str
    response: dict[str, Any]
    created: float
    expires: float


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Entries stored (expired ones too, until purged) and this instance's counters."""

    entries: int
    hits: int = 0
    misses: int = 0
    writes: int = 0


class ResponseCache(Protocol):
    """Where cached responses live. ``now`` and ``ttl`` are seconds (epoch, duration)."""

    def get(self, key: str, now: float) -> CachedEntry | None:
        """The live entry for ``key``, or None (absent or expired)."""
        ...

    def put(self, key: str, response: Mapping[str, Any], now: float, ttl: float) -> None:
        """Store ``response`` (a :meth:`ModelResponse.to_dict`) for ``ttl`` seconds."""
        ...

    def purge(self, now: float) -> int:
        """Delete expired entries; the number deleted."""
        ...

    def stats(self) -> CacheStats: ...


def _check_ttl(ttl: float) -> None:
    if not ttl > 0:
        raise ValueError(f"a cache ttl must be positive, not {ttl}")


class MemoryResponseCache:
    """A response cache in a dict, for tests and embedded use (thread-safe).

    Responses are kept as JSON text, so a caller mutating what it got back
    cannot change the stored answer.
    """

    def __init__(self) -> None:
        self._rows: dict[str, tuple[str, str, float, float]] = {}
        self._lock = threading.Lock()
        self._hits = self._misses = self._writes = 0

    def get(self, key: str, now: float) -> CachedEntry | None:
        with self._lock:
            row = self._rows.get(key)
            if row is None or row[3] <= now:
                self._misses += 1
                return None
            self._hits += 1
        model, text, created, expires = row
        return CachedEntry(key, model, json.loads(text), created, expires)

    def put(self, key: str, response: Mapping[str, Any], now: float, ttl: float) -> None:
        _check_ttl(ttl)
        text = canonical_json(dict(response))
        with self._lock:
            self._rows[key] = (str(response.get("model", "")), text, now, now + ttl)
            self._writes += 1

    def purge(self, now: float) -> int:
        with self._lock:
            gone = [key for key, row in self._rows.items() if row[3] <= now]
            for key in gone:
                del self._rows[key]
        return len(gone)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(len(self._rows), self._hits, self._misses, self._writes)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key      TEXT PRIMARY KEY,
    model    TEXT NOT NULL,
    response TEXT NOT NULL,
    created  REAL NOT NULL,
    expires  REAL NOT NULL
)
"""


class SQLiteResponseCache:
    """A response cache in one SQLite file (WAL), shared by threads and processes.

    One connection per instance, guarded by a lock, in autocommit mode: every
    read and write is a single statement, so each is atomic on its own. WAL
    lets readers run beside a writer; ``busy_timeout`` makes writers from
    other instances or processes wait their turn instead of failing.

    Args:
        path: the database file; its parent directories are created.
        busy_timeout: seconds a statement waits for another writer's lock.

    Raises:
        UserError: ``path`` exists and is not a SQLite database.
        InfrastructureError: the file cannot be opened or written.

    Example:
        >>> import tempfile
        >>> cache = SQLiteResponseCache(Path(tempfile.mkdtemp()) / "c" / "responses.db")
        >>> cache.put("k", {"text": "hi", "model": "openai:gpt-4.1-mini"}, now=0, ttl=60)
        >>> cache.get("k", now=30).response["text"], cache.get("k", now=60)
        ('hi', None)
        >>> cache.close()
    """

    def __init__(self, path: Path, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._hits = self._misses = self._writes = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise InfrastructureError(f"response cache {self.path}: cannot open: {exc}") from None
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            enable_wal(self._db, busy_timeout)
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute(_SCHEMA)
            self._db.execute("CREATE INDEX IF NOT EXISTS responses_expires ON responses (expires)")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise UserError(
                    f"response cache {self.path} is not a SQLite database ({exc}); "
                    "move it away or point the cache elsewhere"
                ) from None
            raise InfrastructureError(f"response cache {self.path}: {exc}") from None

    def __repr__(self) -> str:
        return f"SQLiteResponseCache({str(self.path)!r})"

    def __enter__(self) -> SQLiteResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._db.close()

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise InfrastructureError(f"response cache {self.path}: {exc}") from None

    def get(self, key: str, now: float) -> CachedEntry | None:
        with self._lock:
            row = self._run(
                "SELECT model, response, created, expires FROM responses "
                "WHERE key = ? AND expires > ?",
                (key, now),
            ).fetchone()
            if row is None:
                self._misses += 1
                return None
            try:
                response = json.loads(row[1])
            except ValueError:
                # a damaged row is no answer at all: drop it and call the model
                self._run("DELETE FROM responses WHERE key = ?", (key,))
                self._misses += 1
                return None
            self._hits += 1
        return CachedEntry(key, str(row[0]), response, float(row[2]), float(row[3]))

    def put(self, key: str, response: Mapping[str, Any], now: float, ttl: float) -> None:
        _check_ttl(ttl)
        text = canonical_json(dict(response))
        with self._lock:
            self._run(
                "INSERT OR REPLACE INTO responses (key, model, response, created, expires) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, str(response.get("model", "")), text, now, now + ttl),
            )
            self._writes += 1

    def purge(self, now: float) -> int:
        with self._lock:
            return self._run("DELETE FROM responses WHERE expires <= ?", (now,)).rowcount

    def stats(self) -> CacheStats:
        with self._lock:
            (entries,) = self._run("SELECT COUNT(*) FROM responses").fetchone()
            return CacheStats(int(entries), self._hits, self._misses, self._writes)


# -- the provider wrapper -----------------------------------------------------------------


class WallClock(Protocol):
    """Wall-clock time, as the engine's ``Clock`` gives it (``nexus.testing.ManualClock`` fits).

    Declared here rather than imported so the gateway does not depend on the engine.
    """

    def now(self) -> datetime: ...


class _SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class CachingProvider:
    """Serves repeated requests from a :class:`ResponseCache`; see the module docstring.

    Args:
        inner: the provider that answers misses.
        cache: where answers are stored.
        ttl: seconds a stored answer stays valid.
        clock: wall-clock source for ``created`` and expiry (default: the system clock).

    Example:
        >>> from nexus.gateway.scripted import ScriptedProvider
        >>> CachingProvider(ScriptedProvider("a", ("hi",)), MemoryResponseCache(), ttl=600)
        CachingProvider(ScriptedProvider(agent='a', lines=('hi',)), ttl=600s)
    """

    def __init__(
        self,
        inner: ModelProvider,
        cache: ResponseCache,
        *,
        ttl: float,
        clock: WallClock | None = None,
    ) -> None:
        _check_ttl(ttl)
        self.inner = inner
        self.cache = cache
        self.ttl = ttl
        self._clock: WallClock = clock or _SystemClock()

    def __repr__(self) -> str:
        return f"CachingProvider({self.inner!r}, ttl={self.ttl:g}s)"

    async def aclose(self) -> None:
        """Close the inner provider, if it holds connections."""
        await close_if_closable(self.inner)

    def _now(self) -> float:
        return self._clock.now().timestamp()

    async def _lookup(self, key: str) -> ModelResponse | None:
        entry = await asyncio.to_thread(self.cache.get, key, self._now())
        if entry is None:
            return None
        stored = ModelResponse.from_dict(entry.response)
        marker = {"hit": True, "key": key, "saved": stored.usage.to_dict()}
        return replace(stored, usage=Usage(), cache=marker)

    async def _store(self, key: str, response: ModelResponse) -> None:
        if _storable(response):
            record = replace(response, route=(), cache=None).to_dict()
            await asyncio.to_thread(self.cache.put, key, record, self._now(), self.ttl)

    async def complete(self, request: ModelRequest, context: Mapping[str, Any]) -> ModelResponse:
        """The cached answer to ``request`` if there is a live one, else the inner provider's."""
        if not is_cacheable(request):
            return await self.inner.complete(request, context)
        key = request_key(request)
        hit = await self._lookup(key)
        if hit is not None:
            return hit
        response = await self.inner.complete(request, context)
        await self._store(key, response)
        return response

    async def stream(
        self, request: ModelRequest, context: Mapping[str, Any]
    ) -> AsyncIterator[StreamEvent]:
        """Stream the answer: a hit as one text delta, a miss passed through and stored."""
        key = request_key(request) if is_cacheable(request) else None
        if key is not None:
            hit = await self._lookup(key)
            if hit is not None:
                if hit.text:
                    yield TextDelta(hit.text)
                yield StreamEnd(hit)
                return
        events = _inner_stream(self.inner, request, context)
        try:
            async for event in events:
                if key is not None and isinstance(event, StreamEnd):
                    # store first: a consumer may stop iterating once it has the end
                    await self._store(key, event.response)
                yield event
        finally:
            await events.aclose()  # at once, not when the generator is collected


async def _inner_stream(
    provider: ModelProvider, request: ModelRequest, context: Mapping[str, Any]
) -> AsyncGenerator[StreamEvent, None]:
    """``provider``'s stream (closed when we are), or its one answer as a bare StreamEnd."""
    if not isinstance(provider, StreamingProvider):
        yield StreamEnd(await provider.complete(request, context))
        return
    events = provider.stream(request, context)
    try:
        async for event in events:
            yield event
    finally:
        await close_if_closable(events)


# -- savings ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CacheSavings:
    """What cache hits saved: calls, tokens and money (exact).

    ``unpriced`` counts hits on models the pricing table has no price for;
    their tokens are counted, their money is not.
    """

    hits: int = 0
    tokens_saved: int = 0
    usd_saved: Decimal = Decimal(0)
    unpriced: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "hits": self.hits,
            "tokens_saved": self.tokens_saved,
            "usd_saved": str(self.usd_saved),
            "unpriced": self.unpriced,
        }


def savings(
    responses: Iterable[ModelResponse | Mapping[str, Any]], pricing: PricingTable | None = None
) -> CacheSavings:
    """Sum what the cache hits among ``responses`` saved.

    Args:
        responses: responses or their dicts (as recorded in effects); only those
            carrying a ``cache`` hit marker count.
        pricing: the table to price the saved usage with (default: the shipped one).

    Example:
        >>> saved = {"prompt_tokens": 1000, "completion_tokens": 100}
        >>> marker = {"hit": True, "key": "k", "saved": saved}
        >>> savings([ModelResponse("hi", "openai:gpt-4.1-mini", cache=marker)])
        CacheSavings(hits=1, tokens_saved=1100, usd_saved=Decimal('0.00056000'), unpriced=0)
    """
    hits = tokens = unpriced = 0
    money = Decimal(0)
    exact = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.Rounded])
    for item in responses:
        response = item if isinstance(item, ModelResponse) else ModelResponse.from_dict(item)
        marker = response.cache
        if not marker or not marker.get("hit"):
            continue
        saved = Usage.from_dict(marker.get("saved") or {})
        hits += 1
        tokens += saved.total_tokens
        try:
            cost = cost_of(saved, response.model, pricing)
        except NotFoundError:
            unpriced += 1
            continue
        money = exact.add(money, cost)
    return CacheSavings(hits=hits, tokens_saved=tokens, usd_saved=money, unpriced=unpriced)
