"""The event store: the ``Store`` port, the SQLite adapter, the audit chain and signed heads.

Example:
    >>> from nexus.store import SQLiteStore, verify_store
    >>> store = SQLiteStore.open(".nexus/nexus.db")  # doctest: +SKIP

The names below are loaded on first use (PEP 562), so importing the port
(``nexus.store.base``) does not import SQLAlchemy.
"""

import typing as _typing

from nexus.domain._lazy import on_first_use as _on_first_use

if _typing.TYPE_CHECKING:
    from nexus.store.audit import AuditReport as AuditReport
    from nexus.store.audit import verify_chain as verify_chain
    from nexus.store.audit import verify_store as verify_store
    from nexus.store.base import ChainRow as ChainRow
    from nexus.store.base import Command as Command
    from nexus.store.base import Lease as Lease
    from nexus.store.base import RunFilter as RunFilter
    from nexus.store.base import RunRecord as RunRecord
    from nexus.store.base import Store as Store
    from nexus.store.base import StoreUnusable as StoreUnusable
    from nexus.store.heads import HeadSigner as HeadSigner
    from nexus.store.heads import SignedHead as SignedHead
    from nexus.store.sqlite import SQLiteStore as SQLiteStore

#: Where each public name lives; :func:`__getattr__` imports it on first use.
_EXPORTS: dict[str, str] = {
    "AuditReport": "nexus.store.audit",
    "ChainRow": "nexus.store.base",
    "Command": "nexus.store.base",
    "HeadSigner": "nexus.store.heads",
    "Lease": "nexus.store.base",
    "RunFilter": "nexus.store.base",
    "RunRecord": "nexus.store.base",
    "SQLiteStore": "nexus.store.sqlite",
    "SignedHead": "nexus.store.heads",
    "Store": "nexus.store.base",
    "StoreUnusable": "nexus.store.base",
    "verify_chain": "nexus.store.audit",
    "verify_store": "nexus.store.audit",
}


__getattr__, __dir__ = _on_first_use(__name__, _EXPORTS, globals())


__all__ = [
    "AuditReport",
    "ChainRow",
    "Command",
    "HeadSigner",
    "Lease",
    "RunFilter",
    "RunRecord",
    "SQLiteStore",
    "SignedHead",
    "Store",
    "StoreUnusable",
    "verify_chain",
    "verify_store",
]
