"""The tools of one run: the engine's registry plus the MCP servers its plan uses.

An MCP server (a plan's ``mcp_servers:``, or ``[mcp_servers]`` in ``nexus.toml``)
is started only when the plan uses it: when a task's ``tool`` or an agent's
``tools`` names one of its tools (``<server>.<tool>``). That is decided from the
plan before the run, so the tools an agent is offered are the same for the whole
run (and recorded with its model calls); a declared server no task or agent
names is never started, and costs the run nothing.

A server that is used is connected for as long as the run is driven in this
process, and its tools are registered as ``<server>.<tool>``. They stay denied
until their descriptor pin is approved (``nexus tools approve``): a call to an
unapproved or changed tool fails its task with ``policy_denied``, naming the
pin to review. A replay connects none (it executes no tool).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from nexus.domain.plan import Plan
from nexus.tools.base import ToolRegistry

__all__ = ["run_tools", "used_servers"]


def used_servers(plan: Plan) -> list[str]:
    """The MCP servers of ``plan`` whose tools a task's ``tool`` (or an fsm state's), or an
    agent's ``tools``, names.

    In the order ``plan.mcp_servers`` declares them. A server name holds no
    ``.``, so the part of a tool name before its first ``.`` names the server.
    """
    named = {task.tool for task in plan.tasks.values() if task.tool is not None}
    named.update(
        state.tool
        for task in plan.tasks.values()
        if task.fsm is not None
        for state in task.fsm.states.values()
        if state.tool is not None
    )
    named.update(tool for agent in plan.agents.values() for tool in agent.tools)
    prefixes = {name.partition(".")[0] for name in named if "." in name}
    return [server for server in plan.mcp_servers if server in prefixes]


@asynccontextmanager
async def run_tools(plan: Plan, base: ToolRegistry, home: Path) -> AsyncIterator[ToolRegistry]:
    """``base`` plus the tools of the MCP servers ``plan`` uses, connected while inside."""
    used = used_servers(plan)
    if not used:
        yield base
        return
    from nexus.tools.mcp import McpServers, parse_mcp_servers  # the SDK loads on demand
    from nexus.tools.pins import PinStore

    specs = parse_mcp_servers({name: plan.mcp_servers[name] for name in used})
    async with McpServers(specs, PinStore.at_home(home), builtin_tools=base.names()) as servers:
        registry = ToolRegistry((base.get(name) for name in base.names()), refusal=servers.refusal)
        servers.register(registry)
        yield registry
