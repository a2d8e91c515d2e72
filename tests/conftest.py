"""Shared fixtures. The network is blocked for every test except loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nexus.store.sqlite import SQLiteStore

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
