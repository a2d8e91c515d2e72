"""Keeping a session to one server alive: start, serve, restart with backoff, stop.

One task runs :meth:`Supervisor.run` for the life of the connection. Each
attempt checks a stdio server's launch pin (the executable may have changed
since the last start), opens the transport, completes the handshake and the
first ``tools/list`` within ``connect_timeout``, then serves the session: it
pings the server after a call timed out (and restarts it if it does not
answer), re-lists on ``notifications/tools/list_changed``, and reconnects when
the transport breaks. Between attempts it waits the backoff every retry in Nexus
uses (:func:`nexus.domain.resilience.backoff_delay`: 0.25 s doubling to 30 s,
equal jitter), reset by every attempt that got a session.

The SDK's context managers are entered and exited by this one task; stopping is
cooperative (an anyio cancel scope), never ``Task.cancel()``: the SDK's stdio
transport stops its server process in a shielded scope that a native
cancellation would cut short, leaking the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from contextlib import AsyncExitStack
from typing import Any

import anyio
from mcp import ClientSession, types
from mcp.shared.exceptions import MCPError

from nexus.domain.errors import InfrastructureError, PolicyDenied
from nexus.domain.resilience import backoff_delay
from nexus.tools.mcp._catalog import ToolCatalog
from nexus.tools.mcp._command import approve_launch, launch_record
from nexus.tools.mcp._link import Link
from nexus.tools.mcp._spec import McpServerSpec
from nexus.tools.mcp._transport import Transport, WatchedReadStream, describe_failure
from nexus.tools.pins import Approval, PinStore, launch_pin

__all__ = ["Supervisor"]

logger = logging.getLogger("nexus.tools.mcp")

_CLIENT_INFO = types.Implementation(name="nexus", version="0.1.0")
_BACKOFF_INITIAL = 0.25
_BACKOFF_MAX = 30.0
_PROBE_TIMEOUT = 5.0
_SHUTDOWN_GRACE = 10.0


class Supervisor:
    """The task that owns one server's session stack.

    Args:
        spec: the server.
        pins: the approved pins (a stdio server's launch pin is checked before each start).
        transport: opens the server's transport.
        link: where the live session is published and signals arrive.
        catalog: the server's tools, listed at each connect and on change.
    """

    def __init__(
        self,
        spec: McpServerSpec,
        pins: PinStore,
        transport: Transport,
        link: Link,
        catalog: ToolCatalog,
    ) -> None:
        self.spec = spec
        self._pins = pins
        self._transport = transport
        self._link = link
        self._catalog = catalog
        self.connects = 0
        self._closing = False
        self._noted = False
        self._scope: anyio.CancelScope | None = None
        self._task: asyncio.Task[None] | None = None
        self._group: asyncio.TaskGroup | None = None
        #: the command's launch pin as last computed (stdio servers)
        self.command_pin: str | None = None
        #: why the command was last refused a start (its launch pin not approved)
        self.refused: PolicyDenied | None = None

    @property
    def closing(self) -> bool:
        """Whether :meth:`shutdown` was called."""
        return self._closing

    # -- the task --------------------------------------------------------------------------

    async def start(self) -> None:
        """Run :meth:`run` in a task of its own, without waiting for its first attempt."""
        group = asyncio.TaskGroup()
        await group.__aenter__()
        self._group = group
        self._task = group.create_task(self.run(), name=f"mcp:{self.spec.name}")

    async def first_attempt(self) -> None:
        """Wait for the first connection attempt to end, whatever its outcome (a server that
        is down now is retried in the background, and calls say why it is down)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.spec.connect_timeout + 1.0):
                await self._link.attempted.wait()

    async def stop(self) -> None:
        """:meth:`shutdown`, then leave the task group :meth:`start` entered."""
        await self.shutdown()
        group, self._group = self._group, None
        if group is not None:
            # The run task has ended; an error of the body is the caller's to
            # see as it is, not wrapped in the group's ExceptionGroup.
            await group.__aexit__(None, None, None)

    async def run(self) -> None:
        """Keep a session to the server until :meth:`shutdown`; reconnect with backoff."""
        if self._task is None:
            self._task = asyncio.current_task()
        failures = 0  # attempts since the last one that got a session
        while not self._stopping():
            before = self.connects
            self._noted = False
            try:
                await self._serve_once()
            except Exception as exc:
                if not self._noted:
                    self._note_failure(exc)
            finally:
                self._link.lost()
                self._link.attempted.set()
                self._transport.close_stderr()
            if self._stopping():
                break
            failures = 1 if self.connects > before else failures + 1
            await self._sleep(
                backoff_delay(
                    failures,
                    initial=_BACKOFF_INITIAL,
                    multiplier=2.0,
                    cap=_BACKOFF_MAX,
                    rng=random,
                    jitter="equal",  # [ceiling / 2, ceiling)
                )
            )

    def _stopping(self) -> bool:  # a call, so that type checkers do not narrow it
        return self._closing

    async def shutdown(self) -> None:
        """Close the session and stop the server process; idempotent.

        The session's task is stopped cooperatively (an anyio cancel scope
        around the handshake and the serving loop), never by cancelling the
        task: the SDK's stdio transport stops its server process in a shielded
        scope that a native ``Task.cancel()`` would cut short, leaking the process.
        """
        self._closing = True
        self._link.wake()
        if self._scope is not None:
            self._scope.cancel()
        task = self._task
        if task is None or task.done() or task is asyncio.current_task():
            return
        await asyncio.wait({task}, timeout=_SHUTDOWN_GRACE)
        if not task.done():  # only if the SDK's own bounded shutdown overran
            task.cancel()
            await asyncio.wait({task})

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not self._closing:
                    await self._link.woken()

    # -- launch pins -----------------------------------------------------------------------

    def _check_launch(self) -> None:
        """Refuse to start a command whose launch pin is not approved (see ``pins``)."""
        record = launch_record(self.spec)
        self.command_pin = launch_pin(record)
        self._pins.check_launch("mcp", self.spec.name, record)

    def approve_launch(self) -> Approval:
        """Approve the server's command as it is now (``nexus tools approve mcp:NAME``)."""
        approval = approve_launch(self.spec, self._pins)
        self.command_pin = approval.pin
        return approval

    # -- one session -----------------------------------------------------------------------

    def _note_failure(self, exc: BaseException) -> None:
        message = describe_failure(exc, self._transport.stderr_tail())
        self._noted = True
        self._link.failed(message)
        logger.warning("MCP server %r: %s", self.spec.name, message)

    async def _serve_once(self) -> None:
        name = self.spec.name
        link = self._link
        generation = link.begin()

        async def on_message(message: Any) -> None:
            if isinstance(message, types.ToolListChangedNotification):
                link.signal(generation, "relist")
            elif isinstance(message, Exception):
                logger.debug("MCP server %r: transport fault: %r", name, message)

        if self._transport.spawns:
            # checked before every start: the executable may have changed since
            try:
                await asyncio.to_thread(self._check_launch)
            except PolicyDenied as exc:
                self.refused = exc
                raise
            self.refused = None
        async with AsyncExitStack() as stack:
            read, write = await stack.enter_async_context(self._transport.open())
            watched = WatchedReadStream(read, lambda: link.signal(generation, "broken"))
            session = await stack.enter_async_context(
                ClientSession(watched, write, message_handler=on_message, client_info=_CLIENT_INFO)
            )
            # Scopes inside the SDK's context managers are anyio scopes, so that
            # they nest (LIFO) with the SDK's own; shutdown() cancels this one.
            with anyio.CancelScope() as scope:
                self._scope = scope
                if self._closing:
                    scope.cancel()
                try:
                    with anyio.fail_after(self.spec.connect_timeout):
                        await session.initialize()
                        await self._catalog.refresh(session)
                except TimeoutError:
                    error = InfrastructureError(
                        f"no MCP handshake within connect_timeout={self.spec.connect_timeout}s"
                    )
                    self._note_failure(error)
                    raise error from None
                except Exception as exc:
                    self._note_failure(exc)
                    raise
                link.up(generation, session)
                self.connects += 1
                logger.info("MCP server %r: connected (%d tools)", name, len(self._catalog))
                try:
                    await self._serve(session)
                finally:
                    # Calls from now on wait for the next session instead of
                    # reaching this one while it is torn down.
                    link.lost()
            self._scope = None

    async def _serve(self, session: ClientSession) -> None:
        """React to signals until the session breaks or the connection closes."""
        name = self.spec.name
        link = self._link
        while True:
            await link.woken()
            if self._closing or link.has("broken"):
                if link.has("broken") and not self._closing:
                    link.last_error = "the server closed the connection"
                    logger.warning("MCP server %r: connection lost; reconnecting", name)
                return
            if link.take("probe"):
                try:
                    with anyio.fail_after(min(_PROBE_TIMEOUT, self.spec.connect_timeout)):
                        await session.send_ping()
                except (TimeoutError, MCPError) as exc:
                    link.last_error = f"server did not answer a ping after a timeout ({exc!r})"
                    logger.warning("MCP server %r: unresponsive; restarting it", name)
                    return
            if link.take("relist"):
                try:
                    with anyio.fail_after(self.spec.connect_timeout):
                        await self._catalog.refresh(session)
                except (TimeoutError, MCPError, InfrastructureError) as exc:
                    link.last_error = f"tools/list failed: {exc!r}"
                    logger.warning("MCP server %r: %s; reconnecting", name, link.last_error)
                    return
