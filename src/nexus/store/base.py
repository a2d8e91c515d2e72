"""The Store port: durable event log, run projection, leases, a command inbox, tenant budgets.

The engine depends on this protocol only. The SQLite adapter is the embedded
default; a PostgreSQL adapter implements the same protocol and must pass the
same contract tests (``tests/store/test_contract.py``,
``tests/store/test_tenant_holds.py``).

A tenant's budget is shared through the store, because the runs of one tenant
may run in many processes at once: each model or tool call *holds* what it may
cost (:meth:`Store.tenant_reserve`, admitted only when it fits with what the
tenant spent and every live hold, :func:`over_limit`), then *settles* its real
cost or *releases* the hold. A hold expires, so a crashed process cannot block
its tenant for longer than its calls could have run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from nexus.domain.budget import DIMENSIONS, Dimension, Limits, Spend, exact_add
from nexus.domain.errors import UserError
from nexus.domain.events import Event

if TYPE_CHECKING:
    from nexus.store.heads import SignedHead


class StoreUnusable(UserError):
    """The database is not a store this Nexus can use (damaged, foreign, newer, read-only).

    The message names the file, what is wrong and what to do; the CLI exits 2.
    """


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as listed: the projection kept beside the log."""

    run_id: str
    name: str
    plan_hash: str
    status: str
    created_at: str
    updated_at: str
    source: str | None
    workspace: str
    events: int


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs :meth:`Store.search_runs` returns; every field given must hold.

    Attributes:
        status: the run's status (``failed``, ``running``...).
        name: text the run's name contains, in any case.
        since: the earliest ``created_at`` (ISO 8601 UTC text, as runs record it).
        limit: at most this many runs, newest first.
    """

    status: str | None = None
    name: str | None = None
    since: str | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class Lease:
    """Who drives a run right now."""

    owner: str
    host: str
    pid: int
    heartbeat: float


@dataclass(frozen=True, slots=True)
class Command:
    """A request to a running controller from another process (cancel, ...)."""

    id: int
    run_id: str
    kind: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChainRow:
    """What audit verification reads: one stored link."""

    run_id: str
    seq: int
    prev_hash: str
    hash: str
    body: str


@dataclass(frozen=True, slots=True)
class Projection:
    """What the run projection says of a run's log, for audit: its length and status."""

    events: int
    status: str


@dataclass(frozen=True, slots=True)
class AuditSnapshot:
    """One consistent read for audit: the store's id, projections, signed heads, the chain."""

    store_id: str | None
    projections: dict[str, Projection]
    signed: dict[str, SignedHead]
    rows: Iterator[ChainRow]


@dataclass(frozen=True, slots=True)
class SpendRow:
    """One recorded call of a tenant's: its effect kind, spend and error kind."""

    kind: str
    usd: str | None
    tokens: int | None
    error: str | None


def spend_of(rows: Iterable[SpendRow]) -> Spend:
    """What recorded calls spent in total, as a ledger counts it.

    A tool call counts one tool call unless it was refused budget (it never
    ran); a model call counts its recorded spend (a failed one recorded none).
    """
    usd, tokens, tool_calls = Decimal(0), 0, 0
    for row in rows:
        if row.kind == "tool" and row.error != "budget_exceeded":
            tool_calls += 1
        elif row.kind == "model" and row.usd is not None:
            usd = exact_add(usd, Decimal(row.usd))
            tokens += row.tokens or 0
    return Spend(usd, tokens, tool_calls)


@dataclass(frozen=True, slots=True)
class Hold:
    """What one call in flight holds on its tenant's budget.

    Attributes:
        id: unique per hold (a ULID).
        tenant: whose budget it holds.
        run_id: the run making the call (a resumed run drops its old holds).
        amount: what the call may cost.
        expires_at: when the hold stops counting (seconds since the epoch).
    """

    id: str
    tenant: str
    run_id: str
    amount: Spend
    expires_at: float


@dataclass(frozen=True, slots=True)
class TenantFigures:
    """A tenant's shared budget: what its runs spent, and what live holds keep back."""

    spent: Spend
    held: Spend


def over_limit(limits: Limits, spent: Spend, held: Spend, amount: Spend) -> Dimension | None:
    """The first dimension in which ``spent + held + amount`` exceeds ``limits`` (None: fits).

    Dimensions are checked as usd, tokens, tool calls, like the in-process
    ledger; money is compared exactly. Every adapter admits holds by this rule.
    """
    total = spent + held + amount
    for dimension in DIMENSIONS:
        limit = limits.get(dimension)
        if limit is not None and total.get(dimension) > limit:
            return dimension
    return None


class Store(Protocol):
    """Durable state of every run."""

    async def create_run(self, record: RunRecord, first: Event) -> None:
        """Create a run with its first event (``run.started``), atomically.

        Raises:
            ConflictError: the run id exists already.
        """

    async def append(self, run_id: str, events: Sequence[Event], status: str | None) -> None:
        """Append a batch of sealed events atomically; ``status`` updates the projection.

        Raises:
            ConflictError: a seq is taken (a second writer).
        """

    async def load(self, run_id: str) -> list[Event]:
        """Every event of a run in seq order (empty if the run is unknown)."""

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run's projection, or None."""

    async def list_runs(self, limit: int = 50) -> list[RunRecord]:
        """Newest runs first."""

    async def search_runs(self, where: RunFilter) -> list[RunRecord]:
        """The runs that match ``where``, newest first (at most ``where.limit``)."""

    async def runs_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """The ids of the runs whose id starts with ``prefix``, ascending, at most ``limit``.

        A range read of the run-id key, not a scan of the runs: the CLI calls it
        to expand an id prefix a user typed.
        """

    async def get_lease(self, run_id: str) -> Lease | None:
        """The run's current lease, if any."""

    async def swap_lease(self, run_id: str, new: Lease | None, expect_owner: str | None) -> bool:
        """Compare-and-set the lease: succeeds only if the current owner is ``expect_owner``."""

    async def push_command(self, run_id: str, kind: str, payload: dict[str, Any]) -> None:
        """Queue a command for the run's controller."""

    async def take_commands(self, run_id: str) -> list[Command]:
        """Pop the run's pending commands, oldest first."""

    def chain(self, run_id: str | None = None) -> Iterator[ChainRow]:
        """Stored links in (run, seq) order, for audit verification (blocking)."""

    async def tenant_spend(self, tenant: str) -> list[SpendRow]:
        """What every recorded model and tool call of ``tenant``'s runs spent.

        A run belongs to the tenant its ``run.started`` names (``default`` when
        it names none). ``nexus cost --tenant`` adds them up, and a tenant's
        shared budget starts from them (see :meth:`tenant_reserve`).
        """

    async def tenant_reserve(self, hold: Hold, limits: Limits) -> TenantFigures | None:
        """Take ``hold`` on its tenant's budget if it fits ``limits``, atomically across processes.

        The hold is admitted when :func:`over_limit` finds no dimension over,
        counting what the tenant spent and every hold that has not expired
        (expired holds are dropped). On a tenant's first reservation its spend
        starts from the calls its runs recorded (:meth:`tenant_spend`).

        Returns:
            None when the hold was taken; else the figures it was refused on
            (nothing was taken).
        """

    async def tenant_settle(self, hold: Hold, actual: Spend) -> Spend:
        """Drop ``hold`` and add ``actual`` to its tenant's spend, atomically.

        ``actual`` is added in full even when the hold expired meanwhile (money
        that was spent is never dropped). Settle each hold once.

        Returns:
            What the tenant has spent now, ``actual`` included.
        """

    async def tenant_release(self, hold: Hold) -> None:
        """Drop ``hold`` unspent (the call failed before spending). Idempotent."""

    async def tenant_release_run(self, tenant: str, run_id: str) -> int:
        """Drop every hold of ``run_id`` (a resumed run's, left by a dead process); how many."""

    async def tenant_figures(self, tenant: str) -> TenantFigures:
        """What ``tenant`` spent and what its live holds keep back (read only)."""

    async def close(self) -> None:
        """Release connections and threads. Idempotent."""
