"""One MCP server as a connection: the parts put together behind one small interface.

:class:`McpConnection` owns, for one server:

* a :class:`~nexus.tools.mcp._transport.Transport` (the process or the HTTP endpoint),
* a :class:`~nexus.tools.mcp._supervisor.Supervisor` (the task that keeps a
  session up: start, serve, restart with backoff, stop),
* a :class:`~nexus.tools.mcp._link.Link` (the live session and the signals
  between that task and the callers),
* a :class:`~nexus.tools.mcp._catalog.ToolCatalog` (the listed tools, their pins
  and states),
* a circuit breaker (:class:`nexus.domain.resilience.CircuitBreaker`) and a
  :class:`~nexus.tools.mcp._call.ToolCaller` (calling a tool: admission,
  deadline, errors, results).

Each part is readable on its own; this class only wires them and answers for them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self

from nexus.domain.errors import InfrastructureError, PolicyDenied
from nexus.domain.resilience import CircuitBreaker
from nexus.tools.lint import LintConfig
from nexus.tools.mcp._call import CallGate, ToolCaller
from nexus.tools.mcp._catalog import ToolCatalog
from nexus.tools.mcp._link import Link
from nexus.tools.mcp._spec import McpServerSpec
from nexus.tools.mcp._status import McpToolStatus, ServerStatus
from nexus.tools.mcp._supervisor import Supervisor
from nexus.tools.mcp._tool import McpTool
from nexus.tools.mcp._transport import Transport
from nexus.tools.pins import Approval, PinStore, ToolState

__all__ = ["McpConnection"]


class McpConnection:
    """One MCP server: its session, its tools and their states.

    Use as ``async with McpConnection(spec, pins) as conn:`` (the session is
    run by a task the connection owns), or run :meth:`run` in your own task
    group and call :meth:`shutdown`.

    Args:
        spec: the server.
        pins: the approved pins (shared by all servers).
        other_tools: names of every tool *not* from this server (built-ins,
            other servers' ``<server>.<tool>``), for the linter's
            cross-reference check; a callable is asked on each listing.
        lint_config: linter limits; ``spec.lint_ignore`` is added to its ignores.
        clock: monotonic clock for the circuit breaker.

    Raises:
        UserError: the command is not found.

    Example:
        >>> async def main(pins: PinStore) -> None:  # doctest: +SKIP
        ...     spec = McpServerSpec(name="time", command="mcp-server-time")
        ...     async with McpConnection(spec, pins) as conn:
        ...         conn.approve("get_current_time")
        ...         print(await conn.call("get_current_time", {"timezone": "UTC"}))
    """

    def __init__(
        self,
        spec: McpServerSpec,
        pins: PinStore,
        *,
        other_tools: Callable[[], Iterable[str]] | Iterable[str] = (),
        lint_config: LintConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self._pins = pins
        base = lint_config or LintConfig()
        lint = dataclasses.replace(base, ignore=base.ignore | spec.lint_ignore)
        self._breaker = CircuitBreaker(
            failures=spec.breaker_threshold,
            window=None,  # consecutive failures; a success resets the count
            cooldown=spec.breaker_cooldown,
            clock=clock,
        )
        self._transport = Transport(spec)
        self._link = Link()
        self._catalog = ToolCatalog(spec.name, pins, lint, other_tools)
        self._supervisor = Supervisor(spec, pins, self._transport, self._link, self._catalog)
        self._caller = ToolCaller(
            spec.name,
            spec.call_timeout,
            self._catalog,
            self._link,
            CallGate(spec.name, self._breaker),
        )

    @property
    def name(self) -> str:
        """The server's name."""
        return self.spec.name

    @property
    def connected(self) -> bool:
        """Whether a session is up."""
        return self._link.session is not None

    @property
    def connects(self) -> int:
        """How many sessions were established so far (1 after the first connect)."""
        return self._supervisor.connects

    @property
    def closing(self) -> bool:
        """Whether :meth:`shutdown` was called."""
        return self._supervisor.closing

    @property
    def breaker(self) -> CircuitBreaker:
        """The server's circuit breaker."""
        return self._breaker

    @property
    def last_error(self) -> str | None:
        """Why the server is not usable now (``None`` while a session is up)."""
        return self._link.last_error

    @property
    def command_pin(self) -> str | None:
        """The command's launch pin as last computed (stdio servers)."""
        return self._supervisor.command_pin

    @property
    def refused(self) -> PolicyDenied | None:
        """Why the command was last refused a start (its launch pin not approved)."""
        return self._supervisor.refused

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._start()
        await self._first_attempt()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self._supervisor.stop()

    # ``async with`` is _start() then _first_attempt(); McpServers starts every
    # server first, then waits for all their first attempts together.

    async def _start(self) -> None:
        """Start the session's task without waiting for its first attempt (``__aexit__``
        stops it)."""
        await self._supervisor.start()

    async def _first_attempt(self) -> None:
        """Wait up to ``connect_timeout`` (+1 s) for the first connection attempt to end,
        whatever its outcome."""
        await self._supervisor.first_attempt()

    async def run(self) -> None:
        """Keep a session to the server until :meth:`shutdown`; reconnect with backoff."""
        await self._supervisor.run()

    async def shutdown(self) -> None:
        """Close the session and stop the server process; idempotent."""
        await self._supervisor.shutdown()

    async def wait_ready(self) -> None:
        """Wait until a session is up (for longer or shorter, wrap it in ``asyncio.timeout``).

        Raises:
            InfrastructureError: not connected within ``connect_timeout``.
        """
        try:
            async with asyncio.timeout(self.spec.connect_timeout):
                await self._link.ready()
        except TimeoutError:
            raise InfrastructureError(
                f"MCP server '{self.name}' is not connected (last error: {self.last_error})"
            ) from None

    def stderr_tail(self) -> str:
        """The end of the current server process's stderr (stdio servers)."""
        return self._transport.stderr_tail()

    def approve_launch(self) -> Approval:
        """Approve the server's command as it is now (``nexus tools approve mcp:NAME``)."""
        return self._supervisor.approve_launch()

    # -- tools -----------------------------------------------------------------------------

    def tool_status(self, tool: str) -> McpToolStatus:
        """``tool``'s current state, its pin re-checked against the store.

        Raises:
            NotFoundError: the server never listed ``tool``.
        """
        return self._catalog.status(tool)

    def relint(self) -> None:
        """Re-run the linter and the pin check on the known descriptors (after other
        servers' tools became known)."""
        self._catalog.relint()

    def approve(self, tool: str, pin: str | None = None) -> Approval:
        """Approve ``tool``'s descriptor (the current one, or the one with ``pin``).

        Returns:
            The recorded approval; the tool is ``approved`` if ``pin`` is its
            current pin and the linter holds nothing against it.
        """
        return self._catalog.approve(tool, pin)

    def tools(self) -> list[McpTool]:
        """A :class:`McpTool` per known tool, whatever its state (calls say why not)."""
        return [McpTool(self, name) for name in self._catalog.names()]

    def offered(self) -> list[McpTool]:
        """The tools an agent may be shown: approved and lint-clean."""
        return [
            McpTool(self, n)
            for n in self._catalog.names()
            if self._catalog.status(n).state is ToolState.APPROVED
        ]

    def status(self) -> ServerStatus:
        """The connection, breaker and every known tool's state (pins re-checked)."""
        tools = tuple(self._catalog.status(name) for name in self._catalog.names())
        state = None
        if self.command_pin is not None:
            state = str(self._pins.launch_state("mcp", self.name, self.command_pin)[0])
        return ServerStatus(
            name=self.name,
            transport=self.spec.transport,
            connected=self.connected,
            connects=self.connects,
            breaker=self._breaker.state,
            last_error=self.last_error,
            tools=tools,
            command_pin=self.command_pin,
            command_state=state,
        )

    async def call(self, tool: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Call ``tool`` with ``args``: ``{content, structured, is_error, provenance}``.

        Raises:
            PolicyDenied: the tool is not ``approved`` (pending, changed, blocked by lint).
            NotFoundError: the server does not list the tool.
            EffectTimeout: no answer within ``call_timeout``.
            InfrastructureError: not connected, the connection broke, or the circuit is open.
            ToolFailed / UserError: the server rejected the call (see
                :func:`~nexus.tools.mcp.map_mcp_error`).
        """
        return await self._caller.call(tool, args)
