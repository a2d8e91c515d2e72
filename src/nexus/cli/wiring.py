"""How the CLI builds an :class:`~nexus.engine.runtime.Engine` from ``nexus.toml``.

One place turns the project's configuration into running parts:

* tools: the built-ins, the ``[wasm_tools]`` declared, and the MCP servers of
  ``[mcp_servers]`` plus the plan's own (the plan wins on a name clash);
* models: ``scripted``, ``replay:<cassette>`` (resolved against the workflow
  file's folder), and the SDK providers configured by ``[providers]``, held to
  ``[residency]``; with ``[cache] enabled`` each SDK provider answers from the
  response cache first; with ``--record FILE`` every model exchange is saved
  to a cassette as it happens;
* money: the pricing table with ``[pricing]`` over it, the tenant and its
  ``[budgets.tenant]``, the default ``[budgets.run]``;
* redaction: ``[redaction] pii`` redacts personal data from what runs record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from nexus.config import NexusConfig, Settings, load_config
from nexus.domain.budget import Limits
from nexus.domain.errors import UserError
from nexus.domain.plan import AgentSpec, Plan
from nexus.engine.runtime import Engine
from nexus.engine.toolset import run_tools
from nexus.gateway.base import ModelProvider, ProviderRegistry
from nexus.gateway.scripted import scripted_factory
from nexus.gateway.settings import SDK_PREFIXES, SDKProviders
from nexus.store.base import Store
from nexus.tools.base import ToolRegistry
from nexus.tools.builtins import builtin_tools


def project_config() -> NexusConfig:
    """``nexus.toml`` as found from here (``--config``/``NEXUS_CONFIG``/``./nexus.toml``)."""
    return load_config()


def project_tools(config: NexusConfig, home: Path | None = None) -> ToolRegistry:
    """The built-in tools plus the WASM tools ``nexus.toml`` declares.

    A declared module runs only while its launch pin is approved
    (``nexus tools approve wasm:NAME --pin …``): see :mod:`nexus.tools.pins`.
    """
    registry = builtin_tools()
    if not config.wasm_tools:
        return registry
    from nexus.tools.pins import PinStore
    from nexus.tools.wasm_config import guard_launch

    pins = PinStore.at_home(home)
    for name, declared in config.wasm_tools.items():
        if name in registry:
            raise UserError(
                f"{config.path}: [wasm_tools.{name}]: the name '{name}' is taken by a "
                "built-in tool; choose another"
            )
        registry.add(guard_launch(declared.build(), pins))
    return registry


def _wrapped(factory: Callable[[AgentSpec], Any], wrap: Callable[[Any], Any]) -> Any:
    def make(agent: AgentSpec) -> ModelProvider:
        provider: ModelProvider = wrap(factory(agent))
        return provider

    return make


@asynccontextmanager
async def project_engine(
    store: Store,
    plan: Plan,
    *,
    config: NexusConfig | None = None,
    base_dir: Path | None = None,
    record: Path | None = None,
) -> AsyncIterator[Engine]:
    """An engine configured from ``nexus.toml``, its connections open while inside.

    Args:
        plan: the run's plan (its MCP servers are connected).
        base_dir: where ``replay:`` cassette paths are resolved (the workflow's folder).
        record: save every model exchange to this cassette file.
    """
    from nexus.gateway.cassette import Cassette, RecordingProvider, replay_factory
    from nexus.gateway.routing import Residency

    config = config or project_config()
    residency = Residency.from_dict(config.residency) if config.residency else None
    async with AsyncExitStack() as stack:
        sdk = SDKProviders(config.providers, residency=residency)
        stack.push_async_callback(sdk.aclose)
        sdk_factory: Callable[[AgentSpec], Any] = sdk
        if config.cache.enabled:
            from nexus.gateway.cache import CachingProvider, SQLiteResponseCache

            cache = SQLiteResponseCache(config.cache.path)
            stack.callback(cache.close)
            ttl = config.cache.ttl
            sdk_factory = _wrapped(sdk, lambda p: CachingProvider(p, cache, ttl=ttl))
        registry = ProviderRegistry(
            {"scripted": scripted_factory, "replay": replay_factory(base_dir or Path.cwd())}
        )
        for prefix in SDK_PREFIXES:
            registry.add(prefix, sdk_factory)
        if record is not None:
            cassette = Cassette(path=record)
            recorded = ProviderRegistry()
            for prefix in registry.prefixes():
                factory = registry.factory(prefix)
                if prefix != "replay":
                    factory = _wrapped(
                        factory, lambda p: RecordingProvider(p, cassette, autosave=True)
                    )
                recorded.add(prefix, factory)
            registry = recorded
        servers = dict(config.mcp_servers)
        servers.update(plan.mcp_servers)
        connected = replace(plan, mcp_servers=servers) if servers else plan
        tools = await stack.enter_async_context(
            run_tools(connected, project_tools(config, Settings().home), Settings().home)
        )
        yield Engine(
            store,
            tools=tools,
            providers=registry,
            pricing=config.pricing(),
            tenant=config.tenant,
            tenant_budget=_limits(config.tenant_budget, "nexus.toml budgets.tenant"),
            run_budget=_limits(config.run_budget, "nexus.toml budgets.run"),
            residency=residency,
            pii=config.redaction_pii,
        )


def _limits(data: Any, where: str) -> Limits | None:
    return None if not data else Limits.from_dict(data, where)
