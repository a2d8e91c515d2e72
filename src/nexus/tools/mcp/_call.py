"""Calling one tool: admission, the deadline, the breaker, and what the answer amounts to.

A call is admitted only for an ``approved`` tool (else the catalogue's refusal
says why) and while the server's circuit breaker lets it through. It then has
``call_timeout`` seconds in all: to wait for a session under (re)connection,
and for the answer. A timeout asks the supervisor to ping the server (and
restart it if it does not answer); a broken transport asks it to reconnect.
Failures that say the server is unhealthy count toward opening the circuit; an
error the server answered with does not.

The breaker is the one every retry in Nexus uses
(:class:`nexus.domain.resilience.CircuitBreaker`), counting failures in a row:
``breaker_threshold`` of them open it, ``breaker_cooldown`` seconds later one
trial call is let through. :class:`CallGate` is how calls meet it here: a
refusal names the server, the failures in a row and the last one, and says when
to retry; an opening is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from nexus.domain.errors import EffectTimeout, InfrastructureError
from nexus.domain.resilience import BreakerState, CircuitBreaker, Permit
from nexus.metrics import count_denial
from nexus.tools.mcp._catalog import ToolCatalog
from nexus.tools.mcp._convert import map_mcp_error, result_json
from nexus.tools.mcp._link import Link
from nexus.tools.pins import ToolState

__all__ = ["CallGate", "ToolCaller"]

logger = logging.getLogger("nexus.tools.mcp")


class CallGate:
    """One server's circuit breaker as its calls meet it.

    Args:
        server: the server's name, for messages.
        breaker: the breaker (failures counted in a row: ``window=None``).
    """

    def __init__(self, server: str, breaker: CircuitBreaker) -> None:
        self.server = server
        self.breaker = breaker
        #: failures in a row, as the refusal reports them
        self.failures = 0
        #: why the latest failure failed
        self.last_failure = ""

    def admit(self) -> Permit:
        """A permit for one call (``permit.probe``: it is the half-open trial), or raise.

        Raises:
            InfrastructureError: the circuit is open (or its trial is in flight);
                ``retry_after`` says when to try again.
        """
        permit = self.breaker.try_acquire()
        if permit is not None:
            return permit
        remaining = self.breaker.retry_in()
        raise InfrastructureError(
            f"MCP server '{self.server}': circuit open after {self.failures} consecutive "
            f"failure(s) (last: {self.last_failure}); calls fail fast for {remaining:.1f}s",
            retry_after=remaining or self.breaker.cooldown,
        )

    def settle(self, permit: Permit, ok: bool | None, reason: str = "") -> None:
        """Record a call's outcome: ``True`` success, ``False`` failure (for ``reason``),
        ``None`` neither (cancelled, or refused before reaching the server)."""
        if ok is None:
            permit.release()
        elif ok:
            permit.success()
            if self.breaker.state is BreakerState.CLOSED:
                self.failures = 0
        else:
            self.failures += 1
            self.last_failure = reason
            was_closed = self.breaker.state is BreakerState.CLOSED
            permit.failure()
            if (was_closed or permit.probe) and self.breaker.state is BreakerState.OPEN:
                logger.warning("MCP server %r: circuit opened (%s)", self.server, reason)


class ToolCaller:
    """Calls the tools of one server on its live session.

    Args:
        server: the server's name.
        call_timeout: seconds a call may take, waiting for a session included.
        catalog: the server's tools and their states.
        link: the live session and the signals to its supervisor.
        gate: the server's circuit breaker, as calls meet it.
    """

    def __init__(
        self,
        server: str,
        call_timeout: float,
        catalog: ToolCatalog,
        link: Link,
        gate: CallGate,
    ) -> None:
        self.server = server
        self.call_timeout = call_timeout
        self._catalog = catalog
        self._link = link
        self._gate = gate

    async def call(self, tool: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Call ``tool`` with ``args``: ``{content, structured, is_error, provenance}``.

        Raises:
            PolicyDenied: the tool is not ``approved`` (pending, changed, blocked by lint).
            NotFoundError: the server does not list the tool.
            EffectTimeout: no answer within ``call_timeout``.
            InfrastructureError: not connected, the connection broke, or the circuit is open.
            ToolFailed / UserError: the server rejected the call (see :func:`map_mcp_error`).
        """
        status = self._catalog.status(tool)
        if status.state is not ToolState.APPROVED:
            if status.state is ToolState.BLOCKED_BY_LINT:
                count_denial(status.name, "mcp_lint")
            elif status.state is not ToolState.REMOVED:
                count_denial(status.name, "mcp_unapproved")
            raise self._catalog.refusal(status)
        permit = self._gate.admit()
        outcome: bool | None = None
        reason = ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.call_timeout
        try:
            try:
                generation, session = await self._link.session_by(deadline)
            except TimeoutError:
                reason = f"not connected ({self._link.last_error})"
                outcome = False
                raise InfrastructureError(f"MCP server '{self.server}' is {reason}") from None
            try:
                async with asyncio.timeout_at(deadline):
                    result = await session.call_tool(tool, dict(args))
            except TimeoutError:
                reason = f"timeout after {self.call_timeout}s"
                outcome = False
                self._link.signal(generation, "probe")
                raise EffectTimeout(
                    f"MCP tool '{status.name}' did not answer within call_timeout="
                    f"{self.call_timeout}s"
                ) from None
            except Exception as exc:
                error = map_mcp_error(self.server, tool, exc)
                transient = isinstance(error, InfrastructureError)
                if transient:
                    broken = not isinstance(error, EffectTimeout)
                    self._link.signal(generation, "broken" if broken else "probe")
                outcome = not transient
                reason = error.message
                raise error from exc
            outcome = True
            return result_json(self.server, result)
        finally:
            self._gate.settle(permit, outcome, reason)
