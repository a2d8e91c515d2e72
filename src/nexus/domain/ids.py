"""Identifiers. Run ids are ULIDs: sortable by creation time, unique without coordination."""

from __future__ import annotations

from ulid import ULID


def new_run_id() -> str:
    """A fresh ULID for a run (read at the edge, then recorded in ``run.started``)."""
    return str(ULID())


def effect_key(run_id: str, task: str, attempt: int, call: int) -> str:
    """The key an effect is recorded and replayed under."""
    return f"{run_id}/{task}/{attempt}/{call}"
