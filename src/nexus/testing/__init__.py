"""Test doubles users need: a controllable clock and ready-made stores and engines.

Example:
    >>> clock = ManualClock()
    >>> clock.advance(1.5)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from nexus.engine.runtime import Engine
from nexus.gateway import default_providers
from nexus.store.heads import HeadSigner
from nexus.store.sqlite import SQLiteStore
from nexus.tools.builtins import builtin_tools


class ManualClock:
    """A wall clock that moves only when told to (or by ``tick`` per reading)."""

    def __init__(self, start: datetime | None = None, tick: float = 0.0) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._tick = timedelta(seconds=tick)

    def now(self) -> datetime:
        current = self._now
        self._now += self._tick
        return current

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


def sqlite_engine(home: Path, **kwargs: object) -> Engine:
    """An engine over a SQLite store in ``home`` with the built-in tools.

    Its runs are signed with the home's audit key (created on first use), as
    CLI runs are.
    """
    store = SQLiteStore.open(home / "nexus.db", signer=HeadSigner.for_home(home))
    return Engine(
        store,
        tools=kwargs.pop("tools", builtin_tools()),  # type: ignore[arg-type]
        providers=kwargs.pop("providers", default_providers()),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


__all__ = ["ManualClock", "sqlite_engine"]
