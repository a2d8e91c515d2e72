"""Retry delays: exponential backoff with deterministic jitter.

The jitter comes from a generator seeded by run, task and attempt, so replay
computes the very delays the live run recorded ("equal jitter": half the
backoff fixed, half random, which keeps retries apart without starving them).
"""

from __future__ import annotations

import hashlib
import random

from nexus.domain.plan import RetryPolicy


def backoff_ms(
    policy: RetryPolicy, run_id: str, task: str, failures: int, retry_after: float | None = None
) -> int:
    """Delay before the retry that follows failure number ``failures`` (1-based), in ms."""
    base = min(policy.maximum, policy.initial * policy.multiplier ** max(0, failures - 1))
    seed = hashlib.sha256(f"{run_id}/{task}/{failures}".encode()).digest()
    jitter = random.Random(seed).random()
    delay = base / 2 + base / 2 * jitter
    if retry_after is not None:
        delay = max(delay, retry_after)
    return int(delay * 1000)
