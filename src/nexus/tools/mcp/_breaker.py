"""The per-server circuit breaker: consecutive failures open it; a cool-down, then one trial."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum

from nexus.domain.errors import InfrastructureError

__all__ = ["BreakerState", "CircuitBreaker"]

logger = logging.getLogger("nexus.tools.mcp")


class BreakerState(StrEnum):
    """Circuit breaker states."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Consecutive-failure circuit breaker for one server.

    Closed: calls pass; ``threshold`` consecutive failures open it. Open: calls
    fail fast until ``cooldown`` seconds have passed, then it is half-open and
    lets one trial call through: success closes it, failure re-opens it.

    Args:
        name: the server's name, for messages.
        threshold: consecutive failures that open the circuit.
        cooldown: seconds before an open circuit lets a trial through.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        name: str,
        threshold: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False
        self.last_failure = ""

    @property
    def state(self) -> BreakerState:
        """The current state (an open circuit turns half-open once cooled down)."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def acquire(self) -> bool:
        """Admit a call, or raise; returns whether the call is the half-open trial.

        Raises:
            InfrastructureError: the circuit is open (or a trial is in flight);
                ``retry_after`` says when to try again.
        """
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.HALF_OPEN and not self._trial:
            self._trial = True
            return True
        assert self._opened_at is not None
        remaining = max(0.0, self.cooldown - (self._clock() - self._opened_at))
        raise InfrastructureError(
            f"MCP server '{self.name}': circuit open after {self._failures} consecutive "
            f"failure(s) (last: {self.last_failure}); calls fail fast for {remaining:.1f}s",
            retry_after=remaining or self.cooldown,
        )

    def record(self, ok: bool | None, *, trial: bool, reason: str = "") -> None:
        """Record a call's outcome: ``True`` success, ``False`` failure, ``None`` neither
        (cancelled, or refused before reaching the server)."""
        if trial:
            self._trial = False
        if ok is None:
            return
        if ok:
            self._failures = 0
            self._opened_at = None
            return
        self._failures += 1
        self.last_failure = reason
        if trial or self._failures >= self.threshold:
            if self._opened_at is None or trial:
                logger.warning("MCP server %r: circuit opened (%s)", self.name, reason)
            self._opened_at = self._clock()
