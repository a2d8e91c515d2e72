"""Identifiers derived from a run's log.

Run ids are ULIDs (sortable by creation time, unique without coordination),
drawn at the edge by the engine and recorded in ``run.started``.
"""

from __future__ import annotations


def effect_key(run_id: str, task: str, attempt: int, call: int) -> str:
    """The key an effect is recorded and replayed under."""
    return f"{run_id}/{task}/{attempt}/{call}"
