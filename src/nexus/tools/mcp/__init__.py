"""MCP servers as tools, through the official ``mcp`` SDK.

A server is declared under ``mcp_servers:`` in a workflow or ``[mcp_servers]``
in ``nexus.toml`` and parsed into a :class:`McpServerSpec`. An
:class:`McpConnection` keeps one session to it alive in a background task;
each tool it lists becomes an :class:`McpTool` named ``<server>.<tool>`` that
implements the :class:`~nexus.tools.base.Tool` port. :class:`McpServers`
runs the connections of all configured servers together.

What a connection guarantees:

- **Deny by default, pinned.** A tool is callable only in state ``approved``:
  its descriptor hashes to the pin a user approved (:mod:`nexus.tools.pins`)
  and the descriptor linter (:mod:`nexus.tools.lint`) found no error. Pins are
  checked on every ``tools/list`` -- at connect, on reconnect and on each
  ``notifications/tools/list_changed`` -- and a changed descriptor disables
  the tool at once (``PolicyDenied`` naming the old and new pins).
- **A hung server never stalls a run.** Each call has a deadline
  (``call_timeout``, :class:`~nexus.domain.errors.EffectTimeout`); after a
  timeout the connection pings the server and, if it does not answer,
  restarts it. A transport failure (the process died, the stream closed)
  reconnects with capped, jittered exponential backoff. A per-server
  circuit breaker opens after ``breaker_threshold`` consecutive failures and
  fails calls fast (transient, with ``retry_after``) until ``breaker_cooldown``
  has passed; then one trial call decides (half-open).
- **Output is untrusted.** Every result carries
  ``provenance: {"source": "mcp:<server>", "trusted": false}``.

The parts, each readable on its own (each imports only parts above it)::

    _spec        McpServerSpec, parse_mcp_servers: configuration (no SDK)
    _command     a stdio server's command: where it is, its launch record, how it starts
    _transport   the process or HTTP endpoint; stderr capture; the watched read stream
    _status      McpToolStatus, ServerStatus: what nexus tools shows
    _catalog     the listed tools: descriptors, lint findings, pins, states, refusals
    _link        the live session and the signals between its task and the callers
    _convert     SDK errors -> the Nexus error tree; results -> plain, untrusted JSON
    _call        calling a tool: admission, deadline, the circuit breaker, errors, results
    _supervisor  the task keeping a session up: start, serve, restart, stop
    _tool        McpTool: one tool as the Tool port
    _connection  McpConnection: the parts above wired together for one server
    _servers     McpServers: every server of a run
    _review      what a user reviews before approving: a descriptor in readable parts,
                 the tools a name, a glob or --all selects (a typo suggests the closest)
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from nexus.domain._lazy import on_first_use as _on_first_use

if _TYPE_CHECKING:
    from nexus.domain.resilience import BreakerState as BreakerState
    from nexus.domain.resilience import CircuitBreaker as CircuitBreaker
    from nexus.tools.mcp._command import approve_launch as approve_launch
    from nexus.tools.mcp._command import launch_record as launch_record
    from nexus.tools.mcp._command import resolve_command as resolve_command
    from nexus.tools.mcp._connection import McpConnection as McpConnection
    from nexus.tools.mcp._convert import map_mcp_error as map_mcp_error
    from nexus.tools.mcp._review import Argument as Argument
    from nexus.tools.mcp._review import arguments as arguments
    from nexus.tools.mcp._review import review_data as review_data
    from nexus.tools.mcp._review import select_tools as select_tools
    from nexus.tools.mcp._review import visible as visible
    from nexus.tools.mcp._servers import McpServers as McpServers
    from nexus.tools.mcp._spec import McpServerSpec as McpServerSpec
    from nexus.tools.mcp._spec import parse_mcp_servers as parse_mcp_servers
    from nexus.tools.mcp._status import McpToolStatus as McpToolStatus
    from nexus.tools.mcp._status import ServerStatus as ServerStatus
    from nexus.tools.mcp._tool import McpTool as McpTool

#: Where each public name lives. Names load on first use (PEP 562), so reading a
#: configuration (``parse_mcp_servers``, ``McpServerSpec``) does not load the MCP
#: SDK: only a run that starts a server, or ``nexus tools``, pays for it.
_EXPORTS: dict[str, str] = {
    "Argument": "nexus.tools.mcp._review",
    "BreakerState": "nexus.domain.resilience",
    "CircuitBreaker": "nexus.domain.resilience",
    "McpConnection": "nexus.tools.mcp._connection",
    "McpServerSpec": "nexus.tools.mcp._spec",
    "McpServers": "nexus.tools.mcp._servers",
    "McpTool": "nexus.tools.mcp._tool",
    "McpToolStatus": "nexus.tools.mcp._status",
    "ServerStatus": "nexus.tools.mcp._status",
    "approve_launch": "nexus.tools.mcp._command",
    "arguments": "nexus.tools.mcp._review",
    "launch_record": "nexus.tools.mcp._command",
    "map_mcp_error": "nexus.tools.mcp._convert",
    "parse_mcp_servers": "nexus.tools.mcp._spec",
    "resolve_command": "nexus.tools.mcp._command",
    "review_data": "nexus.tools.mcp._review",
    "select_tools": "nexus.tools.mcp._review",
    "visible": "nexus.tools.mcp._review",
}


__getattr__, __dir__ = _on_first_use(__name__, _EXPORTS, globals())


__all__ = [
    "Argument",
    "BreakerState",
    "CircuitBreaker",
    "McpConnection",
    "McpServerSpec",
    "McpServers",
    "McpTool",
    "McpToolStatus",
    "ServerStatus",
    "approve_launch",
    "arguments",
    "launch_record",
    "map_mcp_error",
    "parse_mcp_servers",
    "resolve_command",
    "review_data",
    "select_tools",
    "visible",
]
