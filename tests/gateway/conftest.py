"""Fixtures for the gateway tests: one fake model server per module, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakeserver import FakeServer


@pytest.fixture(scope="module")
def _server_process() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture
def server(_server_process: FakeServer) -> Iterator[FakeServer]:
    """The module's fake server with an empty script and no recorded requests."""
    _server_process.reset()
    yield _server_process
    _server_process.reset()
