"""Real stores and engines for tests: SQLite in a folder, no mock database.

Example:
    >>> import asyncio
    >>> from nexus import Workflow
    >>> from nexus.testing import TestModel, temp_engine
    >>> wf = Workflow("hello")
    >>> writer = wf.agent("writer", model="test:writer")
    >>> _ = wf.task("greet", agent=writer, prompt="Say hello.")
    >>> async def main() -> str:
    ...     async with temp_engine(providers=TestModel("hello").registry()) as engine:
    ...         return (await engine.start(wf.compile())).status
    >>> asyncio.run(main())
    'succeeded'
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

from nexus.engine import Engine
from nexus.store.heads import HeadSigner
from nexus.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from nexus.agents.base import FunctionAgent
    from nexus.domain.budget import Limits
    from nexus.engine import Clock
    from nexus.gateway.base import ProviderRegistry
    from nexus.gateway.pricing import PricingTable
    from nexus.gateway.routing import Residency
    from nexus.security import TrustedPaths
    from nexus.tools.base import ToolRegistry

__all__ = ["EngineOptions", "sqlite_engine", "temp_engine", "temp_store"]

#: The database file in a home, as the CLI names it.
DB_FILE = "nexus.db"


class EngineOptions(TypedDict, total=False):
    """The keyword arguments of :class:`~nexus.engine.Engine` besides its store.

    Each one is typed, so a misspelt or mistyped option fails type checking
    (and, at run time, the engine's constructor). What is left out takes the
    engine's default: the built-in tools, the offline and SDK providers, the
    shipped prices, the system clock.
    """

    tools: ToolRegistry
    providers: ProviderRegistry
    function_agents: Iterable[FunctionAgent]
    clock: Clock
    pricing: PricingTable | None
    tenant: str
    tenant_budget: Limits | None
    run_budget: Limits | None
    residency: Residency | None
    pii: bool
    trusted: TrustedPaths | None


def _open(home: Path, *, signed: bool) -> SQLiteStore:
    signer = HeadSigner.for_home(home) if signed else None
    return SQLiteStore.open(home / DB_FILE, signer=signer)


@asynccontextmanager
async def temp_store(*, signed: bool = False) -> AsyncIterator[SQLiteStore]:
    """A SQLite store in a new temporary folder, closed and removed on exit.

    Args:
        signed: sign each run's head with a key made for the folder, as CLI runs
            are signed with the home's key.

    Example:
        >>> import asyncio
        >>> async def main() -> list[str]:
        ...     async with temp_store() as store:
        ...         return [run.run_id for run in await store.list_runs()]
        >>> asyncio.run(main())
        []
    """
    with tempfile.TemporaryDirectory(prefix="nexus-test-") as folder:
        store = _open(Path(folder), signed=signed)
        try:
            yield store
        finally:
            await store.close()


@asynccontextmanager
async def temp_engine(
    *, signed: bool = False, **options: Unpack[EngineOptions]
) -> AsyncIterator[Engine]:
    """An engine over a :func:`temp_store`; the store is closed and removed on exit.

    Args:
        signed: as for :func:`temp_store`.
        **options: the engine's options (:class:`EngineOptions`).
    """
    async with temp_store(signed=signed) as store:
        yield Engine(store, **options)


def sqlite_engine(home: Path, **options: Unpack[EngineOptions]) -> Engine:
    """An engine over the SQLite store in ``home``, as the CLI opens it.

    Its runs are signed with the home's audit key (created on first use), as
    CLI runs are, so ``nexus audit verify --require-signed`` accepts them. The
    caller closes the store: ``await engine.store.close()``.

    Args:
        home: the Nexus home (the store is ``home/nexus.db``).
        **options: the engine's options (:class:`EngineOptions`).
    """
    return Engine(_open(home, signed=True), **options)
