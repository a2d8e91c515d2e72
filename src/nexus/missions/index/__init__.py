"""The repository index: files, symbols, imports and tests in SQLite with FTS5.

Build it with :meth:`RepoIndex.update` (the first call builds, later ones
re-read only what changed), ask it with :meth:`RepoIndex.context` for the
snippets that best answer a query within a token budget. See
``docs/missions.md`` ("Repository index").
"""

from __future__ import annotations

from nexus.missions.index._files import DEFAULT_MAX_BYTES
from nexus.missions.index._index import (
    INDEX_FILE,
    IndexStats,
    RepoIndex,
    UpdateReport,
    index_path,
)
from nexus.missions.index._rank import ContextItem, ContextPack, estimate_tokens

__all__ = [
    "DEFAULT_MAX_BYTES",
    "INDEX_FILE",
    "ContextItem",
    "ContextPack",
    "IndexStats",
    "RepoIndex",
    "UpdateReport",
    "estimate_tokens",
    "index_path",
]
