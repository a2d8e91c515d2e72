"""Resilience: one retry loop, a total deadline, circuit breakers and a fallback chain.

Everything here wraps a :class:`~nexus.gateway.base.ModelProvider` by
composition (PydanticAI's ``model.with_fallback()``), never by subclassing::

    provider = ResilientProvider(OpenAICompatProvider(endpoint), breakers=board)
    chain = provider.with_fallback(Candidate(anthropic, "anthropic:claude-haiku-4-5"))

The rules the issue sets, and where each lives:

* **One retry loop, ours.** The adapters build their SDK clients with
  ``max_retries=0``; :class:`ResilientProvider` retries errors whose
  ``retryable`` is true, with exponential backoff and full (or equal) jitter,
  capped, and never sooner than the provider's ``Retry-After``
  (:func:`~nexus.domain.resilience.backoff_delay`, the engine's rule too). A
  ``Retry-After`` longer than :attr:`Backoff.max_retry_after`, or one that
  would end past the deadline, ends the loop at once (the error carries
  ``retry_after`` so the engine can schedule the task later).
* **A total deadline per call**, independent of the SDK's per-request
  timeouts, enforced with ``asyncio.timeout_at`` around every await (never
  around a ``yield``, so a consumer's code is never cancelled by our scope).
* **No retry and no fallback once a streamed token reached the consumer**:
  :meth:`ResilientProvider.stream` and :meth:`FallbackProvider.stream` track a
  ``committed`` flag and re-raise after it is set.
* **A circuit breaker per provider and model** (:class:`BreakerBoard` of
  :class:`~nexus.domain.resilience.CircuitBreaker`, the breaker MCP servers
  use too): closed -> open after ``failures`` health failures (transient,
  timeout, rate-limited) within ``window`` seconds -> half-open after
  ``cooldown``, letting exactly one probe through; the probe's success closes
  it, its failure re-opens it. Errors that prove the server answered (a 400,
  a 404) count as health; a cancelled probe frees the slot for the next one.
* **A fallback chain** (:class:`FallbackProvider`) moves on when a provider
  fails with a retryable error, its breaker is open, or its quota is spent, and
  records every step as a :class:`~nexus.gateway.base.RouteStep` on the
  response (or on the final error) -- the "why this model" record.
* **A route is built when the chain first reaches it**
  (:meth:`Candidate.deferred`): a fallback whose provider cannot be built (no
  API key, a host residency does not allow, an endpoint not configured) is
  skipped with the reason recorded, and fails only the calls that reach it;
  when no candidate can be built, the error names each and why.

Clock, sleep and randomness are injected so tests run in virtual time.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal

from nexus.domain.errors import RETRYABLE_KINDS, ErrorKind, NexusError
from nexus.domain.resilience import (
    BreakerState,
    CircuitBreaker,
    Clock,
    Jitter,
    Permit,
    backoff_delay,
)
from nexus.gateway.base import (
    ModelProvider,
    ModelRequest,
    ModelResponse,
    RouteStep,
    StreamEnd,
    StreamEvent,
    StreamingProvider,
    close_if_closable,
)
from nexus.gateway.errors import (
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    map_provider_error,
)

__all__ = [
    "Backoff",
    "BreakerBoard",
    "BreakerState",
    "Candidate",
    "CircuitBreaker",
    "FallbackProvider",
    "Permit",
    "ResilientProvider",
    "with_fallback",
]

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Backoff:
    """How the retry loop waits and when it gives up.

    Attributes:
        max_attempts: calls in all, the first included.
        initial: the backoff ceiling before the first retry, in seconds.
        multiplier: growth of the ceiling per failure.
        cap: the largest ceiling.
        jitter: ``full`` waits ``ceiling * u``; ``equal`` waits
            ``ceiling/2 + ceiling/2 * u``, ``u`` drawn uniformly from ``[0, 1)``.
        max_retry_after: a ``Retry-After`` longer than this ends the loop.
    """

    max_attempts: int = 4
    initial: float = 0.5
    multiplier: float = 2.0
    cap: float = 20.0
    jitter: Jitter = "full"
    max_retry_after: float = 60.0

    def delay(self, failures: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait after failure number ``failures`` (1-based).

        The rule is :func:`nexus.domain.resilience.backoff_delay`'s, the one every
        retry in Nexus follows.
        """
        return backoff_delay(
            failures,
            initial=self.initial,
            multiplier=self.multiplier,
            cap=self.cap,
            rng=rng,
            jitter=self.jitter,
            retry_after=retry_after,
        )


# -- circuit breakers ---------------------------------------------------------------------


class BreakerBoard:
    """One :class:`CircuitBreaker` per key (``provider:model``), made on first use."""

    def __init__(
        self,
        *,
        failures: int = 5,
        window: float = 60.0,
        cooldown: float = 30.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._failures = failures
        self._window = window
        self._cooldown = cooldown
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, key: str) -> CircuitBreaker:
        """The breaker of ``key``, made on first use (failures counted within the window)."""
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(
                failures=self._failures,
                window=self._window,
                cooldown=self._cooldown,
                clock=self._clock,
            )
            self._breakers[key] = breaker
        return breaker

    def states(self) -> dict[str, BreakerState]:
        """Every breaker's state, by key (for health reports)."""
        return {key: breaker.state for key, breaker in sorted(self._breakers.items())}


# -- the retry loop -----------------------------------------------------------------------


class _Expired(Exception):
    """Our deadline passed (internal: becomes a ProviderTimeout)."""


async def _before(deadline_at: float | None, awaitable: Awaitable[Any]) -> Any:
    """Await ``awaitable`` but not past ``deadline_at`` (loop time; None: no limit)."""
    if deadline_at is None:
        return await awaitable
    scope = asyncio.timeout_at(deadline_at)
    try:
        async with scope:
            return await awaitable
    except TimeoutError:
        if scope.expired():
            raise _Expired from None
        raise


_END = object()


@asynccontextmanager
async def _closing(events: AsyncIterator[StreamEvent]) -> AsyncIterator[AsyncIterator[StreamEvent]]:
    """Close an event stream (and so its HTTP response) however the block ends."""
    try:
        yield events
    finally:
        await close_if_closable(events)


async def _next_event(events: AsyncIterator[StreamEvent], deadline_at: float | None) -> Any:
    try:
        return await _before(deadline_at, anext(events))
    except StopAsyncIteration:
        return _END


def _prefix(model: str) -> str:
    return model.partition(":")[0]


def _settle(permit: Permit, error: NexusError) -> None:
    if error.kind in RETRYABLE_KINDS:
        permit.failure()
    elif isinstance(error, ProviderError) and error.status is not None:
        permit.success()  # the server answered: it is up, the request was wrong
    else:
        permit.release()


def _record_attempts(error: NexusError, attempts: int, of: int) -> None:
    if isinstance(error, ProviderError):
        error.attempts = attempts
    if isinstance(error, ProviderTimeout):
        error.at_attempt(attempts, of)  # a per-request timeout says which attempt it ended


class ResilientProvider:
    """Retries, a total deadline and a circuit breaker around one provider.

    Args:
        inner: the provider to call (an adapter, usually).
        backoff: retry policy.
        deadline: seconds one call may take in all, retries and waits included.
        breakers: the breaker board, shared by every provider of a gateway so
            that all calls to one model see one breaker.
        sleep: how to wait between attempts (tests pass a virtual one).
        rng: the jitter source.

    Example:
        >>> from nexus.gateway.scripted import ScriptedProvider
        >>> provider = ResilientProvider(ScriptedProvider("a", ("hi",)), deadline=5)
        >>> provider
        ResilientProvider(ScriptedProvider(agent='a', lines=('hi',)), deadline=5s, attempts=4)
    """

    def __init__(
        self,
        inner: ModelProvider,
        *,
        backoff: Backoff | None = None,
        deadline: float = 120.0,
        breakers: BreakerBoard | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if deadline <= 0:
            raise ValueError("deadline must be positive")
        self.inner = inner
        self.backoff = backoff or Backoff()
        self.deadline = deadline
        self.breakers = breakers or BreakerBoard()
        self._sleep = sleep
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        return (
            f"ResilientProvider({self.inner!r}, deadline={self.deadline:g}s, "
            f"attempts={self.backoff.max_attempts})"
        )

    def with_fallback(self, *others: ModelProvider | Candidate) -> FallbackProvider:
        """This provider first, then ``others`` in order."""
        return with_fallback(self, *others)

    async def aclose(self) -> None:
        """Close the inner provider, if it holds connections."""
        await close_if_closable(self.inner)

    # -- shared pieces
    def _open_error(self, model: str, breaker: CircuitBreaker) -> ProviderUnavailable:
        wait = breaker.retry_in()
        return ProviderUnavailable(
            f"{model}: circuit breaker open after {breaker.failures} failures in "
            f"{breaker.window:g}s; next probe in {wait:.1f}s",
            provider=_prefix(model),
            reason="breaker_open",
            retry_after=wait,
        )

    def _deadline_error(self, model: str, attempts: int) -> ProviderTimeout:
        error = ProviderTimeout(
            f"{model}: no answer within the {self.deadline:g}s deadline "
            f"({attempts} attempt{'s' if attempts != 1 else ''})",
            provider=_prefix(model),
            reason="deadline",
        )
        error.attempts = attempts
        return error

    def _wait_before_retry(
        self, error: NexusError, attempts: int, deadline_at: float, breaker: CircuitBreaker
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        if not error.retryable or attempts >= self.backoff.max_attempts:
            return None
        if breaker.state is not BreakerState.CLOSED:
            return None  # this failure opened it (or a probe failed): do not wait for nothing
        retry_after = error.retry_after
        if retry_after is not None and retry_after > self.backoff.max_retry_after:
            return None
        wait = self.backoff.delay(attempts, self._rng, retry_after)
        if wait >= deadline_at - asyncio.get_running_loop().time():
            return None  # we would wake up past the deadline
        return wait

    def _acquire(self, model: str, breaker: CircuitBreaker, last: NexusError | None) -> Permit:
        permit = breaker.try_acquire()
        if permit is None:
            # our own failures just opened it: the last real error says more
            raise last if last is not None else self._open_error(model, breaker)
        return permit

    # -- complete
    async def complete(self, request: ModelRequest, context: Mapping[str, Any]) -> ModelResponse:
        """Answer ``request``, retrying what can be retried within the deadline.

        Raises:
            NexusError: the last error when attempts, time or retryability run out;
                ``ProviderTimeout(reason="deadline")`` when the deadline passed;
                ``ProviderUnavailable(reason="breaker_open")`` when the breaker
                refused the first attempt.
        """
        breaker = self.breakers.get(request.model)
        deadline_at = asyncio.get_running_loop().time() + self.deadline
        attempts = 0
        last: NexusError | None = None
        while True:
            permit = self._acquire(request.model, breaker, last)
            attempts += 1
            try:
                response: ModelResponse = await _before(
                    deadline_at, self.inner.complete(request, context)
                )
            except _Expired:
                permit.failure()
                raise self._deadline_error(request.model, attempts) from None
            except asyncio.CancelledError:
                permit.release()
                raise
            except Exception as exc:
                error = map_provider_error(exc, provider=_prefix(request.model))
                _settle(permit, error)
                _record_attempts(error, attempts, self.backoff.max_attempts)
                wait = self._wait_before_retry(error, attempts, deadline_at, breaker)
                if wait is None:
                    raise error from (exc.__cause__ if error is exc else exc)
                last = error
                await self._sleep(wait)
                continue
            permit.success()
            step = RouteStep(request.model, "answered", "primary", attempts)
            return response.routed(step)

    # -- stream
    async def stream(
        self, request: ModelRequest, context: Mapping[str, Any]
    ) -> AsyncIterator[StreamEvent]:
        """Stream the answer; retry only until the first token has been passed on.

        A provider that cannot stream is called with ``complete`` and yields
        only the final :class:`StreamEnd`.

        Raises:
            NexusError: as :meth:`complete`; an error after the first token is
                raised as is, with a note that it was not retried.
        """
        breaker = self.breakers.get(request.model)
        deadline_at = asyncio.get_running_loop().time() + self.deadline
        attempts = 0
        committed = False
        last: NexusError | None = None
        while True:
            permit = self._acquire(request.model, breaker, last)
            attempts += 1
            try:
                events = _events(self.inner, request, context)
                async with _closing(events):
                    while True:
                        event = await _next_event(events, deadline_at)
                        if event is _END:
                            raise _incomplete(request.model)
                        if isinstance(event, StreamEnd):
                            permit.success()
                            response = event.response
                            step = RouteStep(request.model, "answered", "primary", attempts)
                            yield StreamEnd(response.routed(step))
                            return
                        committed = True
                        yield event
            except _Expired:
                permit.failure()
                raise self._deadline_error(request.model, attempts) from None
            except Exception as exc:
                error = map_provider_error(exc, provider=_prefix(request.model))
                _settle(permit, error)
                _record_attempts(error, attempts, self.backoff.max_attempts)
                if committed:
                    error.add_note("failed after streaming had begun; not retried")
                    raise error from (exc.__cause__ if error is exc else exc)
                wait = self._wait_before_retry(error, attempts, deadline_at, breaker)
                if wait is None:
                    raise error from (exc.__cause__ if error is exc else exc)
                last = error
                await self._sleep(wait)
            finally:
                permit.release()  # no-op once settled; frees a probe on cancel or close


def _events(
    provider: ModelProvider, request: ModelRequest, context: Mapping[str, Any]
) -> AsyncIterator[StreamEvent]:
    """``provider``'s stream of events; one that cannot stream answers as a single end."""
    if isinstance(provider, StreamingProvider):
        return provider.stream(request, context)
    return _complete_as_stream(provider, request, context)


async def _complete_as_stream(
    provider: ModelProvider, request: ModelRequest, context: Mapping[str, Any]
) -> AsyncIterator[StreamEvent]:
    yield StreamEnd(await provider.complete(request, context))


def _incomplete(model: str) -> ProviderUnavailable:
    return ProviderUnavailable(
        f"{model}: the stream ended without a response",
        provider=_prefix(model),
        reason="incomplete_stream",
    )


# -- fallback -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """A provider in a fallback chain and the model to ask it for (None: the request's).

    A candidate made with :meth:`deferred` holds no provider yet, only how to
    build one: the chain builds it when it first reaches the candidate, so a
    fallback that is never needed costs nothing and needs nothing (a key, a
    reachable host).
    """

    provider: ModelProvider | None
    model: str | None = None
    build: Callable[[], ModelProvider] | None = None

    def __post_init__(self) -> None:
        if (self.provider is None) == (self.build is None):
            raise ValueError("a candidate needs either a provider or a way to build one")
        if self.build is not None and self.model is None:
            raise ValueError("a deferred candidate must name its model")

    @classmethod
    def deferred(cls, build: Callable[[], ModelProvider], model: str) -> Candidate:
        """A candidate for ``model`` whose provider ``build()`` makes on first need.

        A :class:`~nexus.domain.errors.NexusError` from ``build`` (no API key,
        residency, an unknown endpoint) makes the chain skip this candidate and
        record why; any other exception is a bug and propagates.

        Example:
            >>> from nexus.gateway.scripted import ScriptedProvider
            >>> Candidate.deferred(lambda: ScriptedProvider("b", ("y",)), "scripted:b").model
            'scripted:b'
        """
        return cls(None, model, build)


def _falls_back(error: NexusError) -> bool:
    reason = getattr(error, "reason", "")
    return error.retryable or reason in ("breaker_open", "quota")


def _why(error: NexusError) -> str:
    return f"{error.kind}/{getattr(error, 'reason', '') or error.kind}"


def _cause(error: NexusError) -> str:
    """``kind/reason: message`` (``kind: message`` when it has no reason of its own)."""
    reason = getattr(error, "reason", "")
    kind = f"{error.kind}/{reason}" if reason and reason != error.kind else str(error.kind)
    return f"{kind}: {error.message}"


def _unusable(model: str, error: NexusError) -> RouteStep:
    """The step of a candidate whose provider could not be built: skipped, and why."""
    return RouteStep(model, "skipped", f"cannot be used: {_cause(error)}")


class FallbackProvider:
    """Try candidates in order; move on when one fails retryably, is open, or out of quota.

    Errors that another provider would not cure (an invalid request, bad
    credentials, an unknown model) end the chain at once. A deferred candidate
    (:meth:`Candidate.deferred`) is built when the chain reaches it; one that
    cannot be built is skipped, its reason recorded, and the chain goes on. The
    answer carries the :class:`~nexus.gateway.base.RouteStep` of every
    candidate tried; when all fail, the last call's error is raised with the
    same record in its ``route`` (and in a note), or, when no candidate could
    be built, an error naming each and why (``policy_denied`` if residency
    refused any of them).

    Args:
        candidates: providers (with their models) in order of preference.
        deadline: seconds for the whole chain (None: each candidate's own).
    """

    def __init__(self, candidates: tuple[Candidate, ...], *, deadline: float | None = None) -> None:
        if not candidates:
            raise ValueError("a fallback chain needs at least one provider")
        self.candidates = candidates
        self.deadline = deadline
        self._built: dict[int, ModelProvider] = {}

    def __repr__(self) -> str:
        names = ", ".join(c.model or repr(c.provider) for c in self.candidates)
        return f"FallbackProvider({names})"

    def with_fallback(self, *others: ModelProvider | Candidate) -> FallbackProvider:
        return with_fallback(self, *others)

    async def aclose(self) -> None:
        """Close every candidate's provider (the deferred ones only if they were built)."""
        for index, candidate in enumerate(self.candidates):
            provider = (
                self._built.pop(index, None) if candidate.provider is None else candidate.provider
            )
            if provider is not None:
                await close_if_closable(provider)

    def _provider(self, index: int) -> ModelProvider | NexusError:
        """Candidate ``index``'s provider, built on first need; or why it cannot be built.

        A built provider is kept for the chain's later calls. A failure is not:
        it is cheap to find again, and each call gets an error of its own.
        """
        candidate = self.candidates[index]
        if candidate.provider is not None:
            return candidate.provider
        provider = self._built.get(index)
        if provider is None:
            assert candidate.build is not None
            try:
                provider = candidate.build()
            except NexusError as exc:
                return exc
            self._built[index] = provider
        return provider

    def _deadline_at(self) -> float | None:
        if self.deadline is None:
            return None
        return asyncio.get_running_loop().time() + self.deadline

    def _plan(self, request: ModelRequest) -> list[ModelRequest]:
        """The request each candidate is asked, in order (its own model, when it pins one)."""
        return [replace(request, model=c.model) if c.model else request for c in self.candidates]

    @staticmethod
    def _reason(index: int, steps: list[RouteStep]) -> str:
        if index == 0:
            return "primary"
        previous = steps[-1]
        return f"fallback after {previous.model} {previous.outcome} ({previous.reason})"

    @staticmethod
    def _failed(model: str, error: NexusError) -> RouteStep:
        reason = getattr(error, "reason", "")
        outcome: Literal["failed", "skipped"] = "skipped" if reason == "breaker_open" else "failed"
        attempts = 0 if outcome == "skipped" else max(1, getattr(error, "attempts", 0) or 1)
        return RouteStep(model, outcome, _why(error), attempts)

    @staticmethod
    def _give_up(error: NexusError, steps: list[RouteStep]) -> NexusError:
        if isinstance(error, ProviderError):
            error.route = tuple(steps)
        error.add_note("route: " + "; ".join(f"{s.model} {s.outcome} ({s.reason})" for s in steps))
        return error

    @staticmethod
    def _none_usable(unusable: list[tuple[str, NexusError]], steps: list[RouteStep]) -> NexusError:
        """The error when no candidate could be built: it names each and why.

        Its kind is ``policy_denied`` when residency refused any of them (as
        routing's own "no model is left"), else the last candidate's.
        """
        denied = [e for _, e in unusable if e.kind is ErrorKind.POLICY_DENIED]
        error = denied[0] if denied else unusable[-1][1]
        error.message = "no model route can be used: " + "; ".join(
            f"{model} ({_cause(e)})" for model, e in unusable
        )
        error.args = (error.message,)
        if isinstance(error, ProviderError):
            error.route = tuple(steps)
        return error

    @staticmethod
    def _answered(response: ModelResponse, model: str, reason: str) -> RouteStep:
        attempts = response.route[-1].attempts if response.route else 1
        return RouteStep(model, "answered", reason, attempts)

    async def complete(self, request: ModelRequest, context: Mapping[str, Any]) -> ModelResponse:
        """The first candidate's answer that comes; see the class docstring."""
        deadline_at = self._deadline_at()
        steps: list[RouteStep] = []
        unusable: list[tuple[str, NexusError]] = []
        error: NexusError | None = None
        for index, sub in enumerate(self._plan(request)):
            reason = self._reason(index, steps)
            provider = self._provider(index)
            if isinstance(provider, NexusError):
                steps.append(_unusable(sub.model, provider))
                unusable.append((sub.model, provider))
                continue
            try:
                response: ModelResponse = await _before(
                    deadline_at, provider.complete(sub, context)
                )
            except _Expired:
                raise self._expired(sub.model, steps) from None
            except Exception as exc:
                error = map_provider_error(exc, provider=_prefix(sub.model))
                steps.append(self._failed(sub.model, error))
                if not _falls_back(error):
                    raise self._give_up(error, steps) from (exc.__cause__ if error is exc else exc)
                continue
            steps.append(self._answered(response, sub.model, reason))
            return replace(response, route=tuple(steps))
        raise self._exhausted(error, unusable, steps)

    def _exhausted(
        self,
        error: NexusError | None,
        unusable: list[tuple[str, NexusError]],
        steps: list[RouteStep],
    ) -> NexusError:
        """The error ending a chain that ran out: the last call's, or (no call made)
        one naming every candidate that could not be built."""
        if error is None:
            error = self._none_usable(unusable, steps)
        return self._give_up(error, steps)

    def _expired(self, model: str, steps: list[RouteStep]) -> NexusError:
        """The chain's deadline passed while ``model`` was being asked."""
        timeout = ProviderTimeout(
            f"fallback chain: no answer within {self.deadline:g}s",
            provider=_prefix(model),
            reason="deadline",
        )
        steps.append(RouteStep(model, "failed", _why(timeout), 1))
        return self._give_up(timeout, steps)

    async def stream(
        self, request: ModelRequest, context: Mapping[str, Any]
    ) -> AsyncIterator[StreamEvent]:
        """Stream from the first candidate that starts answering; never switch mid-stream."""
        deadline_at = self._deadline_at()
        steps: list[RouteStep] = []
        unusable: list[tuple[str, NexusError]] = []
        error: NexusError | None = None
        committed = False
        for index, sub in enumerate(self._plan(request)):
            reason = self._reason(index, steps)
            provider = self._provider(index)
            if isinstance(provider, NexusError):
                steps.append(_unusable(sub.model, provider))
                unusable.append((sub.model, provider))
                continue
            events = _events(provider, sub, context)
            try:
                async with _closing(events):
                    while True:
                        event = await _next_event(events, deadline_at)
                        if event is _END:
                            raise _incomplete(sub.model)
                        if isinstance(event, StreamEnd):
                            steps.append(self._answered(event.response, sub.model, reason))
                            yield StreamEnd(replace(event.response, route=tuple(steps)))
                            return
                        committed = True
                        yield event
            except _Expired:
                raise self._expired(sub.model, steps) from None
            except Exception as exc:
                error = map_provider_error(exc, provider=_prefix(sub.model))
                steps.append(self._failed(sub.model, error))
                if committed or not _falls_back(error):
                    raise self._give_up(error, steps) from (exc.__cause__ if error is exc else exc)
        raise self._exhausted(error, unusable, steps)


def with_fallback(
    *providers: ModelProvider | Candidate, deadline: float | None = None
) -> FallbackProvider:
    """A chain trying ``providers`` in order (a :class:`Candidate` pins a model).

    Example:
        >>> from nexus.gateway.scripted import ScriptedProvider
        >>> backup = Candidate(ScriptedProvider("b", ("y",)), "scripted:b")
        >>> with_fallback(ScriptedProvider("a", ("x",)), backup)
        FallbackProvider(ScriptedProvider(agent='a', lines=('x',)), scripted:b)
    """
    candidates = tuple(p if isinstance(p, Candidate) else Candidate(p) for p in providers)
    return FallbackProvider(candidates, deadline=deadline)
