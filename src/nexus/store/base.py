"""The Store port: durable event log, run projection, leases and a command inbox.

The engine depends on this protocol only. The SQLite adapter is the embedded
default; a PostgreSQL adapter implements the same protocol and must pass the
same contract tests (``tests/store/test_contract.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from nexus.domain.events import Event


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
class SpendRow:
    """One recorded call of a tenant's: its effect kind, spend and error kind."""

    kind: str
    usd: str | None
    tokens: int | None
    error: str | None


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
        it names none). Used to seed a tenant's budget ledger, so a tenant's
        limit holds across processes and restarts.
        """

    async def close(self) -> None:
        """Release connections and threads. Idempotent."""
