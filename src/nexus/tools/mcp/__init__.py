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

from nexus.domain.resilience import BreakerState, CircuitBreaker
from nexus.tools.mcp._command import approve_launch, launch_record, resolve_command
from nexus.tools.mcp._connection import McpConnection
from nexus.tools.mcp._convert import map_mcp_error
from nexus.tools.mcp._review import Argument, arguments, review_data, select_tools, visible
from nexus.tools.mcp._servers import McpServers
from nexus.tools.mcp._spec import McpServerSpec, parse_mcp_servers
from nexus.tools.mcp._status import McpToolStatus, ServerStatus
from nexus.tools.mcp._tool import McpTool

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
