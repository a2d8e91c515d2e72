"""Pytest fixtures of the test kit, for projects that opt in.

List the plugin in a ``conftest.py``::

    pytest_plugins = ["nexus.testing.pytest_plugin"]

Fixtures:

* ``nexus_store``: a SQLite store in the test's ``tmp_path``, closed after the
  test if the test did not close it;
* ``nexus_clock``: a :class:`~nexus.testing.ManualClock`.

The fixtures are plain (not async): open an engine over ``nexus_store`` inside
the test's own event loop (``asyncio.run``, or your async test plugin's).

Example::

    def test_release_notes(nexus_store: SQLiteStore) -> None:
        model = TestModel("Faster, safer.")
        engine = Engine(nexus_store, providers=model.registry())
        result = asyncio.run(engine.start(plan))
        assert result.status == "succeeded"
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus.config import DB_FILE
from nexus.store.sqlite import SQLiteStore
from nexus.testing._clock import ManualClock

__all__ = ["nexus_clock", "nexus_store"]


@pytest.fixture
def nexus_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A SQLite store in ``tmp_path``; closed after the test (closing twice is harmless)."""
    store = SQLiteStore.open(tmp_path / DB_FILE)
    try:
        yield store
    finally:
        asyncio.run(store.close())


@pytest.fixture
def nexus_clock() -> ManualClock:
    """A :class:`~nexus.testing.ManualClock` at 2026-01-01T00:00:00Z."""
    return ManualClock()
