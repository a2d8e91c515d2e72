"""Retry delays of tasks: the shared backoff curve with a jitter replay can recompute.

The curve and the jitter rule are :func:`nexus.domain.resilience.backoff_delay`'s
(the one the model gateway and the MCP client follow too), with equal jitter: half
the backoff fixed, half random, which keeps retries apart without starving them.
The random draw comes from a generator seeded by run, task and failure count, so a
replay computes the very delays the live run recorded.
"""

from __future__ import annotations

import hashlib
import random

from nexus.domain.plan import RetryPolicy
from nexus.domain.resilience import backoff_delay


def backoff_ms(
    policy: RetryPolicy, run_id: str, task: str, failures: int, retry_after: float | None = None
) -> int:
    """Delay before the retry that follows failure number ``failures`` (1-based), in ms.

    Args:
        policy: the task's retry policy (``initial``, ``multiplier``, ``maximum``).
        run_id: the run, part of the jitter's seed.
        task: the task, part of the jitter's seed.
        failures: failures of the task so far.
        retry_after: a floor in seconds (a provider's ``Retry-After``).
    """
    seed = hashlib.sha256(f"{run_id}/{task}/{failures}".encode()).digest()
    delay = backoff_delay(
        failures,
        initial=policy.initial,
        multiplier=policy.multiplier,
        cap=policy.maximum,
        rng=random.Random(seed),
        jitter="equal",
        retry_after=retry_after,
    )
    return int(delay * 1000)
