"""``ManualClock``: a wall clock that moves only when a test moves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["ManualClock"]


class ManualClock:
    """A wall clock that moves only when told to (or by ``tick`` per reading).

    It fits wherever Nexus takes a clock: the engine's ``clock=`` and the
    response cache's.

    Args:
        start: the first reading (default: 2026-01-01T00:00:00Z).
        tick: seconds added after each reading.

    Example:
        >>> clock = ManualClock(tick=1)
        >>> clock.now().second, clock.now().second
        (0, 1)
        >>> clock.advance(60)
        >>> clock.now().minute
        1
    """

    def __init__(self, start: datetime | None = None, tick: float = 0.0) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._tick = timedelta(seconds=tick)

    def now(self) -> datetime:
        current = self._now
        self._now += self._tick
        return current

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward."""
        self._now += timedelta(seconds=seconds)
