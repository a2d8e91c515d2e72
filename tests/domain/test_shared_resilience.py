"""The shared backoff curve and circuit breaker (gateway, MCP and engine use these)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from nexus.domain.resilience import (
    BreakerState,
    CircuitBreaker,
    Permit,
    backoff_ceiling,
    backoff_delay,
)

curves = st.fixed_dictionaries(
    {
        "initial": st.floats(0.001, 10),
        "multiplier": st.floats(1, 4),
        "cap": st.floats(0.001, 60),
    }
)
jitters = st.sampled_from(["full", "equal"])


class Fixed:
    """A jitter source that always draws ``value`` and counts its draws."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.draws = 0

    def random(self) -> float:
        self.draws += 1
        return self.value


# -- backoff ------------------------------------------------------------------------------


@given(curves, jitters, st.integers(1, 40), st.integers(0, 2**64))
def test_the_wait_stays_within_the_jitter_band_of_the_ceiling(
    curve: dict[str, float], jitter: str, failures: int, seed: int
) -> None:
    ceiling = backoff_ceiling(failures, **curve)
    wait = backoff_delay(failures, **curve, rng=random.Random(seed), jitter=jitter)  # type: ignore[arg-type]
    low = ceiling / 2 if jitter == "equal" else 0.0
    assert low <= wait <= ceiling
    assert ceiling <= curve["cap"]


@given(curves, st.integers(1, 40))
def test_the_ceiling_grows_monotonically_until_the_cap_and_stays_there(
    curve: dict[str, float], failures: int
) -> None:
    here = backoff_ceiling(failures, **curve)
    after = backoff_ceiling(failures + 1, **curve)
    assert here <= after <= curve["cap"]
    if here == curve["cap"]:
        assert after == curve["cap"]


@given(curves, jitters, st.integers(1, 40), st.floats(0, 0.999999))
def test_with_the_same_draw_a_later_failure_never_waits_less(
    curve: dict[str, float], jitter: str, failures: int, draw: float
) -> None:
    def wait(n: int) -> float:
        return backoff_delay(n, **curve, rng=Fixed(draw), jitter=jitter)  # type: ignore[arg-type]

    assert wait(failures) <= wait(failures + 1)


@given(curves, jitters, st.integers(1, 40), st.integers(0, 2**64), st.none() | st.floats(0, 120))
def test_a_seeded_generator_gives_the_same_wait_every_time(
    curve: dict[str, float], jitter: str, failures: int, seed: int, retry_after: float | None
) -> None:
    def wait() -> float:
        return backoff_delay(
            failures,
            **curve,
            rng=random.Random(seed),
            jitter=jitter,  # type: ignore[arg-type]
            retry_after=retry_after,
        )

    assert wait() == wait()


@given(curves, jitters, st.integers(1, 40), st.floats(0, 0.999999), st.floats(0, 120))
def test_retry_after_is_a_floor_and_nothing_more(
    curve: dict[str, float], jitter: str, failures: int, draw: float, retry_after: float
) -> None:
    plain = backoff_delay(failures, **curve, rng=Fixed(draw), jitter=jitter)  # type: ignore[arg-type]
    floored = backoff_delay(
        failures,
        **curve,
        rng=Fixed(draw),
        jitter=jitter,  # type: ignore[arg-type]
        retry_after=retry_after,
    )
    assert floored == max(plain, retry_after)


@pytest.mark.parametrize("retry_after", [None, 5.0])
def test_exactly_one_number_is_drawn_per_wait(retry_after: float | None) -> None:
    source = Fixed(0.5)
    backoff_delay(3, initial=1, multiplier=2, cap=60, rng=source, retry_after=retry_after)
    assert source.draws == 1


def test_the_jitter_rules_as_documented() -> None:
    # ceiling after failure 3: min(60, 1 * 2**2) = 4
    full = backoff_delay(3, initial=1, multiplier=2, cap=60, rng=Fixed(0.25), jitter="full")
    equal = backoff_delay(3, initial=1, multiplier=2, cap=60, rng=Fixed(0.25), jitter="equal")
    assert (full, equal) == (1.0, 2.5)


def test_a_ceiling_past_the_float_range_is_the_cap() -> None:
    # 2.0 ** 1100 overflows a float: an endless reconnect loop must still get its cap
    assert backoff_ceiling(1101, initial=0.5, multiplier=2, cap=30) == 30
    wait = backoff_delay(5000, initial=0.5, multiplier=2, cap=30, rng=Fixed(0.0))
    assert wait == 15.0


def test_failure_zero_waits_the_initial_ceiling() -> None:
    assert backoff_ceiling(0, initial=0.5, multiplier=2, cap=30) == 0.5


# -- the breaker: construction and the two counting rules ----------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fail(breaker: CircuitBreaker) -> None:
    permit = breaker.try_acquire()
    assert permit is not None
    permit.failure()


def succeed(breaker: CircuitBreaker) -> None:
    permit = breaker.try_acquire()
    assert permit is not None
    permit.success()


@pytest.mark.parametrize(
    ("failures", "window", "cooldown"),
    [(0, 10.0, 5.0), (1, 0.0, 5.0), (1, -1.0, 5.0), (1, 10.0, 0.0), (1, None, -1.0)],
)
def test_invalid_settings_are_refused(failures: int, window: float | None, cooldown: float) -> None:
    with pytest.raises(ValueError, match="failures >= 1"):
        CircuitBreaker(failures=failures, window=window, cooldown=cooldown, clock=Clock())


def test_in_a_row_a_success_forgives_earlier_failures() -> None:
    breaker = CircuitBreaker(failures=3, window=None, cooldown=10, clock=Clock())
    fail(breaker)
    fail(breaker)
    succeed(breaker)
    assert breaker.counted == 0
    fail(breaker)
    fail(breaker)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker)
    assert breaker.state is BreakerState.OPEN


def test_within_a_window_a_success_forgives_nothing() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, window=10, cooldown=10, clock=clock)
    fail(breaker)
    fail(breaker)
    succeed(breaker)
    assert breaker.counted == 2
    clock.now += 10  # both leave the window
    assert breaker.counted == 0
    fail(breaker)
    assert breaker.state is BreakerState.CLOSED


def test_open_refuses_then_one_probe_decides() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, window=None, cooldown=10, clock=clock)
    fail(breaker)
    assert (breaker.state, breaker.try_acquire(), breaker.retry_in()) == (
        BreakerState.OPEN,
        None,
        10.0,
    )
    clock.now += 10
    assert str(breaker.state) == "half-open"
    probe = breaker.try_acquire()
    assert probe is not None
    assert probe.probe
    assert breaker.try_acquire() is None  # one probe at a time
    probe.release()  # cancelled: tells nothing, frees the slot
    probe = breaker.try_acquire()
    assert probe is not None
    probe.failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_in() == 10.0  # re-opened for a whole cool-down
    clock.now += 10
    succeed(breaker)
    assert breaker.state is BreakerState.CLOSED


def test_a_late_failure_while_open_changes_nothing_and_permits_settle_once() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, window=60, cooldown=10, clock=clock)
    late = breaker.try_acquire()
    assert late is not None
    fail(breaker)
    clock.now += 4
    late.failure()
    late.success()  # a second settlement is ignored
    assert breaker.retry_in() == 6.0
    assert "1 failures in 60s" in repr(breaker)


# -- the breaker: any interleaving, against an independent model ----------------------------


class BreakerMachine(RuleBasedStateMachine):
    """Calls, outcomes and time in any order, for both counting rules."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.breaker: CircuitBreaker | None = None
        self.permits: list[Permit] = []
        self.opened_at: float | None = None
        self.counted: list[float] = []

    @precondition(lambda self: self.breaker is None)
    @rule(
        failures=st.integers(1, 4),
        window=st.none() | st.floats(1, 20),
        cooldown=st.floats(1, 10),
    )
    def build(self, failures: int, window: float | None, cooldown: float) -> None:
        self.breaker = CircuitBreaker(
            failures=failures, window=window, cooldown=cooldown, clock=lambda: self.now
        )

    def model_state(self) -> BreakerState:
        assert self.breaker is not None
        if self.opened_at is None:
            return BreakerState.CLOSED
        if self.now - self.opened_at < self.breaker.cooldown:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    @rule(dt=st.floats(0, 12))
    def advance(self, dt: float) -> None:
        self.now += dt

    @precondition(lambda self: self.breaker is not None)
    @rule()
    def acquire(self) -> None:
        assert self.breaker is not None
        before = self.model_state()
        probe_out = any(p.probe for p in self.permits)
        permit = self.breaker.try_acquire()
        if before is BreakerState.OPEN or (before is BreakerState.HALF_OPEN and probe_out):
            assert permit is None
            return
        assert permit is not None
        assert permit.probe == (before is BreakerState.HALF_OPEN)
        self.permits.append(permit)

    @precondition(lambda self: bool(self.permits))
    @rule(data=st.data(), outcome=st.sampled_from(["success", "failure", "release"]))
    def settle(self, data: st.DataObject, outcome: str) -> None:
        assert self.breaker is not None
        permit = self.permits.pop(data.draw(st.integers(0, len(self.permits) - 1)))
        window = self.breaker.window
        if permit.probe:
            if outcome == "success":
                self.opened_at, self.counted = None, []
            elif outcome == "failure":
                self.opened_at = self.now
        elif self.opened_at is None:
            if outcome == "success" and window is None:
                self.counted = []
            elif outcome == "failure":
                if window is not None:
                    self.counted = [t for t in self.counted if self.now - t < window]
                self.counted.append(self.now)
                if len(self.counted) >= self.breaker.failures:
                    self.opened_at, self.counted = self.now, []
        getattr(permit, outcome)()

    @invariant()
    def agrees_with_the_model(self) -> None:
        if self.breaker is None:
            return
        assert self.breaker.state is self.model_state()
        if self.opened_at is None:
            assert self.breaker.retry_in() == 0.0
        else:
            expected = max(0.0, self.opened_at + self.breaker.cooldown - self.now)
            assert self.breaker.retry_in() == pytest.approx(expected)


TestBreakerMachine = BreakerMachine.TestCase
