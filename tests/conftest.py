"""Shared fixtures. The network is blocked for every test except loopback."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from nexus.store.sqlite import SQLiteStore

#: the test kit's fixtures (nexus_store, nexus_clock), as a user's conftest lists them
pytest_plugins = ["nexus.testing.pytest_plugin"]

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and (
        host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")
    ):
        return _real_connect(self, address)
    if self.family == socket.AF_UNIX:
        return _real_connect(self, address)
    raise ConnectionRefusedError(f"tests may not reach the network ({address!r})")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


def operations(fn: Callable[[], object]) -> int:
    """How much work ``fn()`` does: Python lines executed plus functions called (Python and C).

    Deterministic, unlike the clock, which a loaded machine stretches: a test compares
    it at two sizes to catch a quadratic blow-up (work growing 16x for 4x the input).
    Work done in C without a call (``x in some_list``) is not seen; performance
    proper belongs in ``bench/``.
    """
    count = 0

    def on_trace(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        count += event in ("call", "line")
        return on_trace

    def on_profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal count
        count += event == "c_call"

    trace, profile = sys.gettrace(), sys.getprofile()
    sys.settrace(on_trace)
    sys.setprofile(on_profile)
    try:
        fn()
    finally:
        sys.settrace(trace)
        sys.setprofile(profile)
    return count


@pytest.fixture(name="operations")
def _operations() -> Callable[[Callable[[], object]], int]:
    """The :func:`operations` counter, for tests that guard against quadratic work."""
    return operations


@pytest.fixture
def nexus_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh NEXUS_HOME for CLI tests."""
    home = tmp_path / "home"
    monkeypatch.setenv("NEXUS_HOME", str(home))
    return home


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A fresh SQLite store (closed by the test's event loop or here)."""
    store = SQLiteStore.open(tmp_path / "nexus.db")
    yield store
    # close synchronously if the test did not
    if not store._closed:
        store._pool.shutdown(wait=True)
        store._engine.dispose()
