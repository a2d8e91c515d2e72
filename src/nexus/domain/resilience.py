"""The circuit breaker and the backoff curve every retry in Nexus uses.

One breaker and one backoff function serve the model gateway
(:mod:`nexus.gateway.resilience`), the MCP client (a breaker per server, its
reconnect loop) and the engine's task retries (:mod:`nexus.engine.retry`).
Both are pure: the clock and the random draw are passed in, nothing here
sleeps, reads the time or does IO, so tests run them in virtual time and the
engine's replay recomputes the very delays a live run recorded.

The backoff rule (:func:`backoff_delay`), exactly as computed:

* the *ceiling* after failure ``n`` (1-based) is
  ``min(cap, initial * multiplier ** max(0, n - 1))``; when the power
  overflows a float the ceiling is ``cap``;
* one number ``u = rng.random()`` in ``[0, 1)`` is drawn, always exactly one;
* ``jitter="full"`` waits ``ceiling * u`` (anywhere in ``[0, ceiling)``);
  ``jitter="equal"`` waits ``ceiling / 2 + ceiling / 2 * u`` (half fixed,
  half random: retries spread out without any of them coming back at once);
* a ``retry_after`` (a server's ``Retry-After``) is a floor:
  the wait is ``max(wait, retry_after)``.

The breaker (:class:`CircuitBreaker`) counts health failures in one of two
ways: within a sliding ``window`` of seconds (the gateway: a success does not
forgive earlier failures), or, with ``window=None``, in a row (MCP servers: a
success resets the count). Either way it is closed -> open when the count
reaches ``failures`` -> half-open once ``cooldown`` seconds passed, when it
lets exactly one probe through; the probe's success closes it, its failure
re-opens it for another ``cooldown``. A failure reported while open, by a
call admitted before it opened, changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Literal, Protocol

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "Clock",
    "Jitter",
    "Permit",
    "UniformSource",
    "backoff_ceiling",
    "backoff_delay",
]

#: Monotonic seconds (``time.monotonic`` in production, a virtual clock in tests).
Clock = Callable[[], float]

#: ``full``: anywhere below the ceiling; ``equal``: the upper half of it.
Jitter = Literal["full", "equal"]


class UniformSource(Protocol):
    """Where the jitter comes from: ``random.Random`` (seeded, for replay) fits."""

    def random(self) -> float:
        """A number in ``[0, 1)``."""
        ...


# -- backoff ------------------------------------------------------------------------------


def backoff_ceiling(failures: int, *, initial: float, multiplier: float, cap: float) -> float:
    """The largest wait after failure number ``failures`` (1-based): the capped exponential.

    Example:
        >>> [backoff_ceiling(n, initial=0.5, multiplier=2, cap=3) for n in (1, 2, 3, 4)]
        [0.5, 1.0, 2.0, 3]
    """
    try:
        grown = initial * multiplier ** max(0, failures - 1)
    except OverflowError:
        return cap
    return min(cap, grown)


def backoff_delay(
    failures: int,
    *,
    initial: float,
    multiplier: float,
    cap: float,
    rng: UniformSource,
    jitter: Jitter = "equal",
    retry_after: float | None = None,
) -> float:
    """Seconds to wait after failure number ``failures`` (1-based); the rule is in the module
    docstring.

    Args:
        failures: failures so far (the first retry follows failure 1).
        initial: the ceiling after the first failure, in seconds.
        multiplier: growth of the ceiling per failure (>= 1 for a growing curve).
        cap: the largest ceiling.
        rng: the jitter source; exactly one ``rng.random()`` is drawn per call.
        jitter: ``"full"`` or ``"equal"``.
        retry_after: a floor on the wait (a server's ``Retry-After``).

    Example:
        >>> import random
        >>> wait = backoff_delay(3, initial=1, multiplier=2, cap=60, rng=random.Random(7))
        >>> 2.0 <= wait < 4.0
        True
    """
    ceiling = backoff_ceiling(failures, initial=initial, multiplier=multiplier, cap=cap)
    draw = rng.random()
    wait = ceiling * draw if jitter == "full" else ceiling / 2 + ceiling / 2 * draw
    if retry_after is not None:
        wait = max(wait, retry_after)
    return wait


# -- circuit breaker ----------------------------------------------------------------------


class BreakerState(StrEnum):
    """Where a breaker is; ``str()`` of a state is how reports show it."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class Permit:
    """Leave to make one call; settle it exactly once (later settlements are ignored)."""

    __slots__ = ("_breaker", "_settled", "probe")

    def __init__(self, breaker: CircuitBreaker, probe: bool) -> None:
        self._breaker = breaker
        self._settled = False
        self.probe = probe

    def success(self) -> None:
        """The callee answered (even with an error that says it is healthy)."""
        if not self._settled:
            self._settled = True
            self._breaker._on_success(self)

    def failure(self) -> None:
        """The callee failed in a way that says it is unhealthy."""
        if not self._settled:
            self._settled = True
            self._breaker._on_failure(self)

    def release(self) -> None:
        """The call ended without telling anything about health (cancelled, refused early)."""
        if not self._settled:
            self._settled = True
            self._breaker._on_release(self)


class CircuitBreaker:
    """closed -> open after ``failures`` failures -> half-open after ``cooldown`` seconds.

    Args:
        failures: the count of failures that opens the breaker (>= 1).
        window: seconds within which failures count; ``None`` counts failures in
            a row instead (a success resets the count).
        cooldown: seconds an open breaker refuses calls before it lets a probe through.
        clock: monotonic seconds.

    Raises:
        ValueError: ``failures < 1``, ``window <= 0`` or ``cooldown <= 0``.

    Example:
        >>> now = [0.0]
        >>> breaker = CircuitBreaker(failures=2, window=10, cooldown=5, clock=lambda: now[0])
        >>> for _ in range(2):
        ...     breaker.try_acquire().failure()
        >>> breaker.state, breaker.try_acquire()
        (<BreakerState.OPEN: 'open'>, None)
        >>> now[0] = 5.0
        >>> probe = breaker.try_acquire()
        >>> probe.probe, breaker.try_acquire()
        (True, None)
        >>> probe.success()
        >>> breaker.state
        <BreakerState.CLOSED: 'closed'>
    """

    __slots__ = ("_clock", "_opened_at", "_probing", "_recent", "cooldown", "failures", "window")

    def __init__(
        self, *, failures: int, window: float | None, cooldown: float, clock: Clock
    ) -> None:
        if failures < 1 or (window is not None and window <= 0) or cooldown <= 0:
            raise ValueError("failures >= 1, window > 0 (or None) and cooldown > 0 are required")
        self.failures = failures
        self.window = window
        self.cooldown = cooldown
        self._clock = clock
        self._recent: list[float] = []  # when the counted failures happened
        self._opened_at: float | None = None
        self._probing = False

    def __repr__(self) -> str:
        counting = "in a row" if self.window is None else f"in {self.window:g}s"
        return (
            f"CircuitBreaker({self.state}, {self.failures} failures {counting}, "
            f"cooldown={self.cooldown:g}s)"
        )

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose cool-down passed reads half-open)."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at < self.cooldown:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    @property
    def counted(self) -> int:
        """Failures counted toward opening now (0 once open: the count starts afresh)."""
        if self.window is None or not self._recent:
            return len(self._recent)
        now = self._clock()
        return sum(1 for t in self._recent if now - t < self.window)

    def retry_in(self) -> float:
        """Seconds until a probe may go through (0 when one may go now, or when closed)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown - self._clock())

    def try_acquire(self) -> Permit | None:
        """A permit to call, or None while open (or while the half-open probe is out)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return Permit(self, probe=False)
        if state is BreakerState.OPEN or self._probing:
            return None
        self._probing = True
        return Permit(self, probe=True)

    def _on_success(self, permit: Permit) -> None:
        if permit.probe:
            self._probing = False
            self._opened_at = None
            self._recent.clear()
        elif self.window is None and self._opened_at is None:
            self._recent.clear()  # counting in a row: a success forgives

    def _on_failure(self, permit: Permit) -> None:
        now = self._clock()
        if permit.probe:
            self._probing = False
            self._opened_at = now
            return
        if self._opened_at is not None:
            return  # already open: a late failure of a call admitted before
        if self.window is not None:
            self._recent = [t for t in self._recent if now - t < self.window]
        self._recent.append(now)
        if len(self._recent) >= self.failures:
            self._opened_at = now
            self._recent.clear()

    def _on_release(self, permit: Permit) -> None:
        if permit.probe:
            self._probing = False
