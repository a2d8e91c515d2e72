"""The retry loop, the deadline, the circuit breaker and the fallback chain, in virtual time."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fakeserver import collect, user
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from nexus.domain.errors import ErrorKind
from nexus.gateway.base import (
    ModelResponse,
    RouteStep,
    StreamEvent,
    TextDelta,
    Usage,
)
from nexus.gateway.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from nexus.gateway.resilience import (
    Backoff,
    BreakerBoard,
    BreakerState,
    Candidate,
    CircuitBreaker,
    Permit,
    ResilientProvider,
    with_fallback,
)
from nexus.gateway.scripted import ScriptedProvider
from nexus.testing import HANG, Answer, Fault, Reply, TestModel

MODEL = "openai:gpt-test"


def unavailable() -> Fault:
    return Fault("transient", "503", provider="openai", status=503, reason="unavailable")


def ok(text: str = "ok", model: str = MODEL) -> ModelResponse:
    return ModelResponse(text=text, model=model, usage=Usage(3, 1))


def streamed(*chunks: str, error: Fault | None = None) -> Reply:
    """A streamed answer: ``chunks``, then the answer they make up (or ``error``)."""
    return Reply(chunks=chunks, usage=Usage(3, 1), error=error)


def script(*answers: Answer) -> TestModel:
    """A provider answering ``answers`` in turn; one call more than that fails the test."""
    return TestModel(*answers, repeat_last=False)


class VirtualTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def resilient(
    inner: Any,
    vt: VirtualTime | None = None,
    *,
    attempts: int = 4,
    deadline: float = 60.0,
    failures: int = 100,
    **backoff: Any,
) -> ResilientProvider:
    vt = vt or VirtualTime()
    return ResilientProvider(
        inner,
        backoff=Backoff(max_attempts=attempts, **backoff),
        deadline=deadline,
        breakers=BreakerBoard(failures=failures, window=60, cooldown=30, clock=vt.clock),
        sleep=vt.sleep,
        rng=random.Random(7),
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def drain(events: AsyncIterator[StreamEvent], seen: list[str]) -> None:
    """Consume a stream, keeping its text deltas in ``seen`` (even if it fails)."""
    async for event in events:
        if isinstance(event, TextDelta):
            seen.append(event.text)


# -- the retry loop -----------------------------------------------------------------------


def test_retries_transient_errors_then_answers() -> None:
    inner = script(unavailable(), unavailable(), ok("third time"))
    vt = VirtualTime()
    response = run(resilient(inner, vt).complete(user(), {}))
    assert response.text == "third time"
    assert inner.calls == 3
    assert len(vt.sleeps) == 2
    assert response.route == (RouteStep(MODEL, "answered", "primary", 3),)


def test_attempts_are_bounded() -> None:
    inner = script(*(unavailable() for _ in range(10)))
    with pytest.raises(ProviderUnavailable) as info:
        run(resilient(inner, attempts=3).complete(user(), {}))
    assert inner.calls == 3
    assert info.value.attempts == 3


@pytest.mark.parametrize(
    "error",
    [
        ProviderRejected("too long", status=400, reason="context_length_exceeded"),
        ProviderAuthError("no", status=401),
        ProviderRateLimited("quota", status=429, reason="quota", retryable=False),
    ],
    ids=["validation", "auth", "quota"],
)
def test_errors_that_retrying_cannot_cure_are_not_retried(error: ProviderError) -> None:
    inner = script(error, ok())
    vt = VirtualTime()
    with pytest.raises(type(error)):
        run(resilient(inner, vt).complete(user(), {}))
    assert inner.calls == 1
    assert vt.sleeps == []


def test_retry_after_is_honoured() -> None:
    inner = script(ProviderRateLimited("slow", status=429, retry_after=3.0), ok())
    vt = VirtualTime()
    run(resilient(inner, vt, initial=0.01).complete(user(), {}))
    assert vt.sleeps == [pytest.approx(3.0)]


def test_a_retry_after_longer_than_allowed_ends_the_loop() -> None:
    inner = script(ProviderRateLimited("slow", status=429, retry_after=120.0), ok())
    vt = VirtualTime()
    with pytest.raises(ProviderRateLimited) as info:
        run(resilient(inner, vt, max_retry_after=60).complete(user(), {}))
    assert info.value.retry_after == 120.0  # the engine can schedule the task later
    assert inner.calls == 1
    assert vt.sleeps == []


def test_no_wait_that_would_end_past_the_deadline() -> None:
    inner = script(ProviderRateLimited("slow", status=429, retry_after=5.0), ok())
    vt = VirtualTime()
    with pytest.raises(ProviderRateLimited):
        run(resilient(inner, vt, deadline=2.0).complete(user(), {}))
    assert vt.sleeps == []


def test_unmapped_exceptions_of_a_foreign_provider_are_internal() -> None:
    inner = script(ValueError("bug"), ok())
    with pytest.raises(ProviderError) as info:
        run(resilient(inner).complete(user(), {}))
    assert info.value.kind is ErrorKind.INTERNAL
    assert inner.calls == 1


@settings(max_examples=200, deadline=None)
@given(
    failures=st.integers(1, 30),
    initial=st.floats(0.001, 5),
    multiplier=st.floats(1, 4),
    cap=st.floats(0.001, 60),
    jitter=st.sampled_from(["full", "equal"]),
    seed=st.integers(0, 2**32),
    retry_after=st.none() | st.floats(0, 100),
)
def test_backoff_stays_within_its_bounds(
    failures: int,
    initial: float,
    multiplier: float,
    cap: float,
    jitter: Any,
    seed: int,
    retry_after: float | None,
) -> None:
    backoff = Backoff(initial=initial, multiplier=multiplier, cap=cap, jitter=jitter)
    wait = backoff.delay(failures, random.Random(seed), retry_after)
    ceiling = min(cap, initial * multiplier ** (failures - 1))
    low = ceiling / 2 if jitter == "equal" else 0.0
    if retry_after is not None:
        assert wait >= retry_after
        assert wait <= max(ceiling, retry_after) + 1e-9
    else:
        assert low - 1e-9 <= wait <= ceiling + 1e-9


# -- the deadline ---------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_total_deadline_cuts_a_hanging_call() -> None:
    inner = TestModel(HANG)
    provider = resilient(inner, deadline=0.2)
    with pytest.raises(ProviderTimeout) as info:  # the call hangs: the timeout marker
        run(provider.complete(user(), {}))
    assert info.value.reason == "deadline"
    assert info.value.attempts == 1
    assert info.value.retryable


def test_deadline_cuts_a_stream_that_stalls() -> None:
    stalling = TestModel(Reply(chunks=["a"], stall=True))

    async def main() -> list[str]:
        seen: list[str] = []
        with pytest.raises(ProviderTimeout):
            await drain(resilient(stalling, deadline=0.2).stream(user(), {}), seen)
        return seen

    assert run(main()) == ["a"]


def test_cancellation_propagates_and_is_not_a_failure() -> None:
    inner = TestModel(HANG)
    provider = resilient(inner, failures=1)

    async def main() -> None:
        task = asyncio.create_task(provider.complete(user(), {}))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert provider.breakers.get(MODEL).state is BreakerState.CLOSED


# -- streams ------------------------------------------------------------------------------


def test_stream_retries_before_the_first_token() -> None:
    inner = script(unavailable(), streamed("a", "b"))
    texts, response = run(collect(resilient(inner).stream(user(), {})))
    assert texts == ["a", "b"]
    assert response.text == "ab"
    assert inner.calls == 2
    assert response.route[-1].attempts == 2


def test_stream_is_not_retried_once_a_token_was_passed_on() -> None:
    inner = script(streamed("a", error=unavailable()), streamed("x"))

    async def main() -> list[str]:
        seen: list[str] = []
        with pytest.raises(ProviderUnavailable) as info:
            await drain(resilient(inner).stream(user(), {}), seen)
        assert "not retried" in " ".join(info.value.__notes__)
        return seen

    assert run(main()) == ["a"]
    assert inner.calls == 1


def test_a_provider_that_cannot_stream_yields_only_the_end() -> None:
    provider = resilient(ScriptedProvider("a", ("hello",)))
    texts, response = run(collect(provider.stream(user(model="scripted:a"), {})))
    assert texts == []
    assert response.text == "hello"


def test_closing_a_stream_early_frees_a_half_open_probe() -> None:
    vt = VirtualTime()
    inner = script(streamed("a", "b"))
    provider = resilient(inner, vt, failures=1)
    breaker = provider.breakers.get(MODEL)
    fail(breaker)
    vt.now += 30  # cool-down over: half-open

    async def main() -> None:
        events = provider.stream(user(), {})
        first = await anext(events)
        assert first == TextDelta("a")
        assert breaker.try_acquire() is None  # the probe is out
        await events.aclose()  # type: ignore[attr-defined]

    run(main())
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.try_acquire() is not None  # slot freed for the next probe


# -- the circuit breaker --------------------------------------------------------------------


def state(breaker: CircuitBreaker) -> BreakerState:
    """The breaker's state now (a call, so type checkers do not narrow across events)."""
    return breaker.state


def fail(breaker: CircuitBreaker) -> None:
    permit = breaker.try_acquire()
    assert permit is not None
    permit.failure()


def test_breaker_opens_rejects_probes_and_closes() -> None:
    vt = VirtualTime()
    inner = script(*(unavailable() for _ in range(3)), ok("probe ok"), ok("after"))
    provider = resilient(inner, vt, attempts=1, failures=3)
    for _ in range(3):
        with pytest.raises(ProviderUnavailable):
            run(provider.complete(user(), {}))
    breaker = provider.breakers.get(MODEL)
    assert state(breaker) is BreakerState.OPEN
    with pytest.raises(ProviderUnavailable) as info:
        run(provider.complete(user(), {}))
    assert info.value.reason == "breaker_open"
    assert info.value.retry_after == pytest.approx(30)
    assert inner.calls == 3, "an open breaker must not call the provider"
    vt.now += 30
    assert run(provider.complete(user(), {})).text == "probe ok"
    assert state(breaker) is BreakerState.CLOSED
    assert run(provider.complete(user(), {})).text == "after"


def test_failures_outside_the_window_do_not_count() -> None:
    vt = VirtualTime()
    breaker = CircuitBreaker(failures=3, window=10, cooldown=5, clock=vt.clock)
    for _ in range(2):
        fail(breaker)
    vt.now += 11
    fail(breaker)
    assert state(breaker) is BreakerState.CLOSED
    fail(breaker)
    fail(breaker)
    assert state(breaker) is BreakerState.OPEN


def test_failed_probe_reopens_and_answering_errors_count_as_health() -> None:
    vt = VirtualTime()
    board = BreakerBoard(failures=1, window=10, cooldown=5, clock=vt.clock)
    breaker = board.get(MODEL)
    fail(breaker)
    vt.now += 5
    fail(breaker)
    assert state(breaker) is BreakerState.OPEN
    assert breaker.retry_in() == 5
    vt.now += 5
    # a 400 to the probe proves the server is up
    inner = script(ProviderRejected("bad", status=400))
    provider = ResilientProvider(inner, breakers=board, sleep=vt.sleep)
    with pytest.raises(ProviderRejected):
        run(provider.complete(user(), {}))
    assert state(breaker) is BreakerState.CLOSED


def test_breakers_are_per_model() -> None:
    vt = VirtualTime()
    inner = script(unavailable(), ok("other model"))
    provider = resilient(inner, vt, attempts=1, failures=1)
    with pytest.raises(ProviderUnavailable):
        run(provider.complete(user(model="openai:a"), {}))
    assert run(provider.complete(user(model="openai:b"), {})).text == "other model"
    assert provider.breakers.states() == {
        "openai:a": BreakerState.OPEN,
        "openai:b": BreakerState.CLOSED,
    }


class BreakerMachine(RuleBasedStateMachine):
    """Any interleaving of calls, outcomes and time: the breaker never admits while open."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.breaker = CircuitBreaker(failures=3, window=10, cooldown=5, clock=lambda: self.now)
        self.permits: list[Permit] = []
        # an independent model of the states the breaker must be in
        self.opened_at: float | None = None
        self.recent: list[float] = []

    def model_state(self) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.CLOSED
        if self.now - self.opened_at < 5:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    @rule(dt=st.floats(0, 8))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule()
    def acquire(self) -> None:
        before = self.breaker.state
        probes_out = sum(1 for p in self.permits if p.probe)
        permit = self.breaker.try_acquire()
        if before is BreakerState.OPEN:
            assert permit is None, "admitted a call while open"
        if before is BreakerState.HALF_OPEN and probes_out:
            assert permit is None, "a second probe while half-open"
        if permit is not None:
            assert permit.probe == (before is BreakerState.HALF_OPEN)
            self.permits.append(permit)

    @precondition(lambda self: bool(self.permits))
    @rule(data=st.data(), outcome=st.sampled_from(["success", "failure", "release"]))
    def settle(self, data: st.DataObject, outcome: str) -> None:
        permit = self.permits.pop(data.draw(st.integers(0, len(self.permits) - 1)))
        # the model's transition
        if permit.probe:
            if outcome == "success":
                self.opened_at, self.recent = None, []
            elif outcome == "failure":
                self.opened_at = self.now
        elif outcome == "failure" and self.opened_at is None:
            self.recent = [t for t in self.recent if self.now - t < 10] + [self.now]
            if len(self.recent) >= 3:
                self.opened_at, self.recent = self.now, []
        getattr(permit, outcome)()
        getattr(permit, outcome)()  # settling twice changes nothing

    @invariant()
    def agrees_with_the_model(self) -> None:
        assert self.breaker.state is self.model_state()

    @invariant()
    def at_most_one_probe(self) -> None:
        assert sum(1 for p in self.permits if p.probe) <= 1


BreakerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
TestBreakerProperties = BreakerMachine.TestCase


# -- fallback -----------------------------------------------------------------------------


def test_fallback_after_retryable_failure_records_the_route() -> None:
    primary = script(*(unavailable() for _ in range(2)))
    backup = script(ok("from backup", model="anthropic:claude"))
    chain = resilient(primary, attempts=2).with_fallback(
        Candidate(resilient(backup), "anthropic:claude")
    )
    response = run(chain.complete(user(), {}))
    assert response.text == "from backup"
    assert backup.requests[0].model == "anthropic:claude"
    assert response.route == (
        RouteStep(MODEL, "failed", "transient/unavailable", 2),
        RouteStep(
            "anthropic:claude",
            "answered",
            f"fallback after {MODEL} failed (transient/unavailable)",
            1,
        ),
    )
    assert response.to_dict()["route"][0]["outcome"] == "failed"


def test_an_open_breaker_is_skipped() -> None:
    vt = VirtualTime()
    primary_inner = script(unavailable())
    primary = resilient(primary_inner, vt, attempts=1, failures=1)
    with pytest.raises(ProviderUnavailable):
        run(primary.complete(user(), {}))
    chain = with_fallback(primary, Candidate(script(ok("b")), "openai:backup"))
    response = run(chain.complete(user(), {}))
    assert response.route[0] == RouteStep(MODEL, "skipped", "transient/breaker_open", 0)
    assert primary_inner.calls == 1


def test_quota_falls_back_but_invalid_requests_do_not() -> None:
    quota = ProviderRateLimited("no credit", status=429, reason="quota", retryable=False)
    chain = with_fallback(script(quota), Candidate(script(ok("paid")), "openai:other"))
    assert run(chain.complete(user(), {})).text == "paid"

    invalid = ProviderRejected("too long", status=400, reason="context_length_exceeded")
    backup = script(ok())
    chain = with_fallback(script(invalid), Candidate(backup, "openai:other"))
    with pytest.raises(ProviderRejected) as info:
        run(chain.complete(user(), {}))
    assert backup.calls == 0
    assert info.value.route == (
        RouteStep(MODEL, "failed", "validation/context_length_exceeded", 1),
    )


def test_when_every_candidate_fails_the_last_error_carries_the_route() -> None:
    chain = with_fallback(
        script(unavailable()), Candidate(script(ProviderTimeout("slow", reason="deadline")), "x:y")
    )
    with pytest.raises(ProviderTimeout) as info:
        run(chain.complete(user(), {}))
    assert [s.outcome for s in info.value.route] == ["failed", "failed"]
    assert "route:" in info.value.__notes__[0]


def test_stream_falls_back_only_before_the_first_token() -> None:
    chain = with_fallback(script(unavailable()), Candidate(script(streamed("b")), "x:y"))
    texts, response = run(collect(chain.stream(user(), {})))
    assert texts == ["b"]
    assert [s.outcome for s in response.route] == ["failed", "answered"]

    backup = script(streamed("b"))
    chain = with_fallback(script(streamed("a", error=unavailable())), Candidate(backup, "x:y"))
    with pytest.raises(ProviderUnavailable):
        run(collect(chain.stream(user(), {})))
    assert backup.calls == 0


def test_chain_deadline() -> None:
    chain = with_fallback(TestModel(HANG), Candidate(script(ok()), "x:y"), deadline=0.2)
    with pytest.raises(ProviderTimeout) as info:
        run(chain.complete(user(), {}))
    assert info.value.reason == "deadline"
