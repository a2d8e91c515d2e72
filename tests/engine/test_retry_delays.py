"""Retry delays are what ``RetryPolicy`` documents: equal jitter over a capped backoff."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nexus.domain.plan import RetryPolicy
from nexus.engine.retry import backoff_ms

policies = st.builds(
    RetryPolicy,
    retries=st.just(3),
    initial=st.floats(0.001, 10),
    multiplier=st.floats(1, 4),
    maximum=st.floats(0.001, 60),
)
names = st.text(min_size=1, max_size=8)


@given(policies, names, names, st.integers(1, 12))
def test_the_delay_is_half_the_backoff_plus_a_seeded_part_of_the_other_half(
    policy: RetryPolicy, run_id: str, task: str, failures: int
) -> None:
    backoff = min(policy.maximum, policy.initial * policy.multiplier ** (failures - 1)) * 1000
    delay = backoff_ms(policy, run_id, task, failures)
    assert int(backoff / 2) <= delay <= backoff
    assert delay == backoff_ms(policy, run_id, task, failures)  # replay computes the same


@given(policies, names, st.integers(1, 12), st.floats(0, 120))
def test_retry_after_is_a_floor(
    policy: RetryPolicy, task: str, failures: int, retry_after: float
) -> None:
    delay = backoff_ms(policy, "run", task, failures, retry_after)
    assert delay >= int(retry_after * 1000)
    assert delay == max(backoff_ms(policy, "run", task, failures), int(retry_after * 1000))


def test_the_jitter_differs_between_tasks() -> None:
    policy = RetryPolicy(retries=3, initial=10, multiplier=2, maximum=60)
    assert len({backoff_ms(policy, "run", f"t{i}", 1) for i in range(20)}) > 10
