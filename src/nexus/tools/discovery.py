"""Discovery: every tool a run could use, where it comes from, and whether it may be called.

:func:`discover` is what ``nexus tools`` shows. It gathers:

* the tools of a base registry (the built-ins);
* the declared WASM tools (``[wasm_tools]`` in ``nexus.toml``), built as a run
  would build them, so a bad declaration shows up here first;
* the tools of the MCP servers configured (``[mcp_servers]`` in ``nexus.toml``
  and a workflow's ``mcp_servers:``, the workflow's winning on a name clash,
  as in a run). Each server is started and asked for its tools, and each
  tool's descriptor is checked against the approved pins: its ``pin_status``
  is ``approved``, ``changed`` (approved once, descriptor since changed:
  disabled), ``new`` (never approved), ``blocked-by-lint`` or ``removed``.
  Servers are connected concurrently and each is bounded by its
  ``connect_timeout``; one that does not answer is listed with its error,
  and the others still are.

Nothing is called and nothing is approved: listing a tool never runs it.

:func:`server_status` is what ``nexus tools show`` and ``nexus tools approve``
read: one server started, its tools listed with their pins and lint findings,
and stopped again; a server name that is not configured is refused with the
closest one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nexus.tools.base import ToolRegistry
from nexus.tools.catalog import describe

if TYPE_CHECKING:
    from nexus.tools.mcp import McpTool, ServerStatus
    from nexus.tools.pins import PinStore
    from nexus.tools.wasm import WasmToolConfig

__all__ = ["PIN_STATUS", "Discovery", "discover", "server_status", "unknown_server"]

#: An MCP tool's state as ``nexus tools`` words it.
PIN_STATUS = {
    "pending-approval": "new",
    "approved": "approved",
    "changed": "changed",
    "blocked-by-lint": "blocked-by-lint",
    "removed": "removed",
}


@dataclass(frozen=True, slots=True)
class Discovery:
    """What :func:`discover` found.

    Attributes:
        tools: one description per tool (see :func:`~nexus.tools.catalog.describe`),
            by name; MCP tools add ``server``, ``pin_status``, ``pin``,
            ``approved_pin``, ``changed`` and ``findings``; WASM tools add
            ``module`` and ``digest``.
        servers: each MCP server's ``name``, ``transport``, ``connected``,
            ``last_error`` and number of ``tools``.
    """

    tools: list[dict[str, Any]] = field(default_factory=list)
    servers: list[dict[str, Any]] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        """Plain JSON: ``{"tools": [...], "mcp_servers": [...]}``."""
        return {"tools": self.tools, "mcp_servers": self.servers}


async def discover(
    base: ToolRegistry,
    *,
    home: Path,
    wasm_tools: Mapping[str, WasmToolConfig] | None = None,
    mcp_servers: Mapping[str, Any] | None = None,
) -> Discovery:
    """List ``base``'s tools, the declared WASM tools and the configured MCP servers' tools.

    Args:
        base: the tools every run has (the built-ins).
        home: ``NEXUS_HOME``, where the approved pins are kept.
        wasm_tools: declarations, as :func:`nexus.config.load_config` reads them.
        mcp_servers: ``{name: table}``, as in ``nexus.toml`` or a workflow.

    Raises:
        UserError: a declaration or server table is invalid, or a WASM tool's
            name is taken.
    """
    from nexus.tools.pins import PinStore

    pins = PinStore.at_home(home)
    registry = ToolRegistry(base.get(name) for name in base.names())
    if wasm_tools:
        from nexus.tools.wasm import register_wasm_tools  # wasmtime loads on demand

        register_wasm_tools(registry, wasm_tools)
    modules = {name: str(c.module) for name, c in (wasm_tools or {}).items()}
    entries = [_entry(registry.get(name), modules, pins) for name in registry.names()]
    servers: list[dict[str, Any]] = []
    if mcp_servers:
        from nexus.tools.mcp import McpServers, parse_mcp_servers  # the SDK loads on demand

        specs = parse_mcp_servers(dict(mcp_servers))
        async with McpServers(specs, pins, builtin_tools=registry.names()) as connected:
            for status in connected.status():
                servers.append(
                    {
                        "name": status.name,
                        "transport": status.transport,
                        "connected": status.connected,
                        "last_error": status.last_error,
                        "tools": len(status.tools),
                        "command_pin": status.command_pin,
                        "command_status": (
                            PIN_STATUS.get(status.command_state, status.command_state)
                            if status.command_state is not None
                            else None
                        ),
                    }
                )
            entries += [_mcp_entry(t) for t in connected.tools()]
    entries.sort(key=lambda e: str(e["name"]))
    return Discovery(tools=entries, servers=servers)


def _entry(tool: Any, modules: Mapping[str, str], pins: PinStore) -> dict[str, Any]:
    entry = describe(tool)
    if entry["source"] == "wasm":
        from nexus.tools.pins import launch_pin
        from nexus.tools.wasm import wasm_record

        entry["module"] = modules.get(tool.name)
        entry["digest"] = getattr(tool, "digest", None)
        if tool.name in modules:  # declared by configuration: launch-pinned
            pin = launch_pin(wasm_record(tool))
            state, approval = pins.launch_state("wasm", tool.name, pin)
            entry.update(
                pin_status=PIN_STATUS.get(str(state), str(state)),
                pin=pin,
                approve=f"wasm:{tool.name}",
                approved_pin=approval.pin if approval is not None else None,
            )
    return entry


def _mcp_entry(tool: McpTool) -> dict[str, Any]:
    status = tool.status
    entry = describe(tool)
    entry.update(
        server=tool.connection.name,
        pin_status=PIN_STATUS.get(str(status.state), str(status.state)),
        pin=status.pin,
        approved_pin=status.approved_pin,
        changed=list(status.changed),
        findings=[f.to_data() for f in status.findings],
    )
    return entry


def unknown_server(name: str, configured: Iterable[str]) -> str:
    """Why ``name`` names no configured MCP server, with the closest name if one is close."""
    known = sorted(configured)
    if not known:
        return (
            f"no MCP server '{name}' is configured: declare it under [mcp_servers] in "
            "nexus.toml, or name the workflow that declares it with --workflow FILE"
        )
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return (
        f"no MCP server '{name}'{hint} (configured: {', '.join(known)}; "
        "a workflow's own servers need --workflow FILE)"
    )


async def server_status(
    name: str,
    mcp_servers: Mapping[str, Any],
    *,
    home: Path,
    other_tools: Iterable[str] = (),
) -> ServerStatus:
    """Start one configured MCP server, list its tools and stop it: what it offers now.

    Only this server is started; the linter's check for names of other tools
    (tool shadowing) sees ``other_tools`` (the built-ins, the WASM tools).

    Args:
        name: the server.
        mcp_servers: ``{name: table}``, as in ``nexus.toml`` or a workflow.
        home: ``NEXUS_HOME``, where the approved pins are kept.
        other_tools: the names of the tools that are not this server's.

    Raises:
        NotFoundError: no server ``name`` is configured.
        PolicyDenied: the server's command is not approved to run (the message
            says how to approve it).
        InfrastructureError: the server did not connect within its ``connect_timeout``.
        UserError: the server's table is invalid.
    """
    if name not in mcp_servers:
        from nexus.domain.errors import NotFoundError

        raise NotFoundError(unknown_server(name, mcp_servers))
    from nexus.domain.errors import InfrastructureError
    from nexus.tools.mcp import McpServers, parse_mcp_servers  # the SDK loads on demand
    from nexus.tools.pins import PinStore

    specs = parse_mcp_servers({name: dict(mcp_servers[name])})
    async with McpServers(specs, PinStore.at_home(home), builtin_tools=other_tools) as servers:
        connection = servers.connection(name)
        if connection.refused is not None:
            raise connection.refused
        status = connection.status()
    if not status.connected:
        raise InfrastructureError(f"MCP server '{name}' is not connected: {status.last_error}")
    return status
