"""Real stores and engines for tests: SQLite in a folder, no mock database.

The engines are built where the CLI and :meth:`Workflow.run` build theirs,
by :class:`~nexus.app.Project`: a test gets the tools, providers, prices,
budgets, residency, redaction and trusted paths a ``nexus run`` with the same
``nexus.toml`` gets. No file is discovered: without ``config`` every section
takes its defaults, so a test does not change with the folder it runs in.

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

import os
import tempfile
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

from nexus.app import Project
from nexus.config import NexusConfig, Settings

if TYPE_CHECKING:
    from nexus.agents.base import FunctionAgent
    from nexus.domain.budget import Limits
    from nexus.engine import Clock, Engine
    from nexus.gateway.base import ProviderRegistry
    from nexus.gateway.pricing import PricingTable
    from nexus.gateway.routing import Residency
    from nexus.security import TrustedPaths
    from nexus.store.sqlite import SQLiteStore
    from nexus.tools.base import ToolRegistry

__all__ = ["EngineOptions", "sqlite_engine", "temp_engine", "temp_store"]


class EngineOptions(TypedDict, total=False):
    """The keyword arguments of :class:`~nexus.engine.Engine` besides its store.

    Each one is typed, so a misspelt or mistyped option fails type checking
    (and, at run time, the engine's constructor). Each one given replaces what
    the project would use; what is left out is the project's, as ``nexus run``
    builds it (:class:`~nexus.app.Project`): the built-in tools under
    ``[tools.<name>]`` plus the ``[wasm_tools]``, the offline and SDK
    providers of ``[providers]`` held to ``[residency]``, the shipped prices
    with ``[pricing]`` over them, the tenant and budgets of ``nexus.toml``,
    ``[redaction] pii``, the home and the configuration file as trusted paths,
    the system clock.
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


def project_at(home: Path, config: str | os.PathLike[str] | NexusConfig | None = None) -> Project:
    """The :class:`~nexus.app.Project` of a test: state in ``home``, ``config`` as given.

    Args:
        home: the state directory.
        config: a ``nexus.toml`` to read (it must exist), a configuration
            already read, or None for all defaults (nothing is discovered).

    Raises:
        NotFoundError: ``config`` names no file.
        UserError: the file is invalid (the message names it and the key).
    """
    if config is None or isinstance(config, NexusConfig):
        return Project(config, Settings(home=home))
    return Project.load(Path(config), home=home)


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
        async with project_at(Path(folder)).open_store(sign=signed) as store:
            yield store


@asynccontextmanager
async def temp_engine(
    *,
    signed: bool = False,
    config: str | os.PathLike[str] | NexusConfig | None = None,
    **options: Unpack[EngineOptions],
) -> AsyncIterator[Engine]:
    """An engine over a :func:`temp_store`, built as ``nexus run`` builds one.

    The engine is :meth:`Project.engine <nexus.app.Project.engine>`'s for a
    project whose home is the temporary folder; the store is closed, the
    providers' connections too, and the folder removed on exit. It is given
    no plan, so no MCP server is connected.

    Args:
        signed: as for :func:`temp_store`.
        config: the project's ``nexus.toml`` (a path; it must exist) or a
            :class:`~nexus.config.NexusConfig`; None: all defaults.
        **options: the engine's options (:class:`EngineOptions`), over the project's.

    Raises:
        NotFoundError: ``config`` names no file.
        UserError: ``config`` is invalid.
        TypeError: an option the engine does not take.
    """
    _check_options("temp_engine", options)
    tools = options.pop("tools", None)
    agents = options.pop("function_agents", ())
    with tempfile.TemporaryDirectory(prefix="nexus-test-") as folder:
        project = project_at(Path(folder), config)
        async with (
            project.open_store(sign=signed) as store,
            project.engine(store, tools=tools, function_agents=agents) as engine,
        ):
            yield replace(engine, **options) if options else engine


def sqlite_engine(
    home: Path,
    *,
    config: str | os.PathLike[str] | NexusConfig | None = None,
    **options: Unpack[EngineOptions],
) -> Engine:
    """An engine over the SQLite store in ``home``, as the CLI opens and builds it.

    Its runs are signed with the home's audit key (created on first use), as
    CLI runs are, so ``nexus audit verify --require-signed`` accepts them. The
    engine is :meth:`Project.build_engine <nexus.app.Project.build_engine>`'s:
    the project's tools, providers and settings, without the response cache
    and MCP servers (they need closing; :func:`temp_engine` has them). The
    caller closes the store: ``await engine.store.close()``.

    Args:
        home: the Nexus home (the store is ``home/nexus.db``).
        config: the project's ``nexus.toml`` (a path; it must exist) or a
            :class:`~nexus.config.NexusConfig`; None: all defaults.
        **options: the engine's options (:class:`EngineOptions`), over the project's.

    Raises:
        NotFoundError: ``config`` names no file.
        UserError: ``config`` is invalid, or the home's audit key cannot be
            created or read.
        TypeError: an option the engine does not take.
    """
    _check_options("sqlite_engine", options)
    project = project_at(home, config)
    tools = options.pop("tools", None)
    agents = options.pop("function_agents", ())
    engine = project.build_engine(project.store(), tools=tools, function_agents=agents)
    return replace(engine, **options) if options else engine


def _check_options(helper: str, options: EngineOptions) -> None:
    """Refuse a keyword the engine does not take, before anything is opened."""
    for name in options:
        if name not in EngineOptions.__annotations__:
            raise TypeError(f"{helper}() got an unexpected keyword argument {name!r}")
