"""The adapters the Store contract runs against (``test_contract.py``, ``test_tenant_holds.py``).

Every contract test takes the ``store_factory`` fixture and runs once per entry of
:data:`BACKENDS`. A second adapter joins by adding one line there, for instance::

    pytest.param(postgres_from_env, id="postgres", marks=needs("NEXUS_TEST_POSTGRES_URL")),

where the factory opens a store on a fresh, empty schema. No contract test knows
which adapter it is talking to.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nexus.store.base import Store
from nexus.store.sqlite import SQLiteStore

StoreFactory = Callable[[], Store]
"""Opens a store on the test's database; called twice, two connections to one database."""

#: one ``pytest.param`` per adapter: a factory ``(tmp_path) -> Store`` and the adapter's id
BACKENDS = [
    pytest.param(lambda tmp: SQLiteStore.open(tmp / "contract.db"), id="sqlite"),
]


@pytest.fixture(params=BACKENDS)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    make: Callable[[Path], Store] = request.param
    return lambda: make(tmp_path)
