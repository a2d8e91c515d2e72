"""The tools of one run: the engine's registry plus the plan's MCP servers.

MCP servers declared in a plan (``mcp_servers:``) are connected for as long as
the run is driven in this process, and their tools are registered as
``<server>.<tool>``. They stay denied until their descriptor pin is approved
(``nexus tools approve``): a call to an unapproved or changed tool fails its
task with ``policy_denied``, naming the pin to review.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from nexus.domain.plan import Plan
from nexus.tools.base import ToolRegistry


@asynccontextmanager
async def run_tools(plan: Plan, base: ToolRegistry, home: Path) -> AsyncIterator[ToolRegistry]:
    """``base`` plus the tools of ``plan``'s MCP servers, connected while inside."""
    if not plan.mcp_servers:
        yield base
        return
    from nexus.tools.mcp import McpServers, parse_mcp_servers  # the SDK loads on demand
    from nexus.tools.pins import PinStore

    specs = parse_mcp_servers(plan.mcp_servers)
    async with McpServers(specs, PinStore.at_home(home), builtin_tools=base.names()) as servers:
        registry = ToolRegistry((base.get(name) for name in base.names()), refusal=servers.refusal)
        servers.register(registry)
        yield registry
