"""The failure matrix: {429, 500, 503, 529, refused, read timeout, disconnect, 400 context
length, 401, 404} x {stream, non-stream}, for both SDK adapters, over real HTTP.

Each case checks the classification (kind and reason), that attempts are bounded
(retryable failures use every attempt, the rest exactly one; a stream that broke
after its first token is not retried), that a 429's ``Retry-After`` is honoured,
and that no connection is left open: nothing mid-reply on the server, nothing
active in the client's pool, and no socket left once the client is closed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from fakeserver import (
    FakeServer,
    Reply,
    active_connections,
    anthropic_error,
    anthropic_message,
    anthropic_stream,
    collect,
    endpoint_for,
    hang,
    openai_completion,
    openai_error,
    openai_stream,
    sse_reply,
    truncated,
    unused_port,
    user,
)

from nexus.domain.errors import ErrorKind
from nexus.gateway.anthropic_provider import AnthropicProvider
from nexus.gateway.base import ModelRequest
from nexus.gateway.errors import ProviderError
from nexus.gateway.openai_compat import OpenAICompatProvider
from nexus.gateway.resilience import Backoff, BreakerBoard, ResilientProvider

ATTEMPTS = 3
SDK_TIMEOUT = 0.25
MODELS = {"openai": "openai:gpt-test", "anthropic": "anthropic:claude-haiku-4-5"}


@dataclass(frozen=True)
class Expect:
    kind: ErrorKind
    reason: str
    retried: bool


EXPECT = {
    "429": Expect(ErrorKind.RATE_LIMITED, "rate_limited", True),
    "500": Expect(ErrorKind.TRANSIENT, "server_error", True),
    "503": Expect(ErrorKind.TRANSIENT, "unavailable", True),
    "529": Expect(ErrorKind.TRANSIENT, "overloaded", True),
    "refused": Expect(ErrorKind.TRANSIENT, "connect_failed", True),
    "read-timeout": Expect(ErrorKind.TIMEOUT, "timeout", True),
    "disconnect": Expect(ErrorKind.TRANSIENT, "connection_lost", True),
    "context-length": Expect(ErrorKind.VALIDATION, "context_length_exceeded", False),
    "401": Expect(ErrorKind.AUTH, "authentication", False),
    "404": Expect(ErrorKind.NOT_FOUND, "not_found", False),
}


def failure_reply(provider: str, failure: str, mode: str) -> Reply | None:
    """The server's reply for one failure (None: no server involved)."""
    openai_side = provider == "openai"
    if failure == "429":
        if openai_side:
            return openai_error(
                429, "Rate limit reached", "rate_limit_exceeded", **{"retry-after": "1"}
            )
        return anthropic_error(429, "rate_limit_error", "Rate limited", **{"retry-after": "1"})
    if failure in ("500", "503", "529"):
        status = int(failure)
        if openai_side:
            return openai_error(status, "The server had an error", None)
        kind = "overloaded_error" if status == 529 else "api_error"
        return anthropic_error(status, kind, "Internal error")
    if failure == "refused":
        return None
    if failure == "read-timeout":
        return hang()
    if failure == "disconnect":
        if mode == "stream":
            # cut after the first text token has gone out
            if openai_side:
                return sse_reply(openai_stream(["o", "k"]), disconnect_after=2)
            return sse_reply(anthropic_stream(["o", "k"]), disconnect_after=4)
        return truncated(openai_completion() if openai_side else anthropic_message(), keep=30)
    if failure == "context-length":
        if openai_side:
            return openai_error(
                400,
                "This model's maximum context length is 128000 tokens. However, your messages "
                "resulted in 130000 tokens.",
                "context_length_exceeded",
            )
        return anthropic_error(
            400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"
        )
    if failure == "401":
        if openai_side:
            return openai_error(401, "Incorrect API key provided", "invalid_api_key")
        return anthropic_error(401, "authentication_error", "invalid x-api-key")
    if failure == "404":
        if openai_side:
            return openai_error(404, "The model `gpt-test` does not exist", "model_not_found")
        return anthropic_error(404, "not_found_error", "model: claude-haiku-4-5")
    raise AssertionError(failure)


def adapter_for(server: FakeServer, provider: str, failure: str) -> Any:
    base_url = f"http://127.0.0.1:{unused_port()}" if failure == "refused" else None
    if base_url and provider == "openai":
        base_url += "/v1"
    endpoint = endpoint_for(server, provider, timeout=SDK_TIMEOUT, base_url=base_url)
    if provider == "openai":
        return OpenAICompatProvider(endpoint)
    return AnthropicProvider(endpoint)


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


async def call(provider: ResilientProvider, request: ModelRequest, mode: str) -> Any:
    if mode == "stream":
        return await collect(provider.stream(request, {}))
    return await provider.complete(request, {})


CASES = [
    (provider, failure, mode)
    for provider in ("openai", "anthropic")
    for failure in EXPECT
    for mode in ("stream", "complete")
]


@pytest.mark.parametrize(
    ("provider", "failure", "mode"), CASES, ids=["-".join(case) for case in CASES]
)
def test_failure_matrix(server: FakeServer, provider: str, failure: str, mode: str) -> None:
    expect = EXPECT[failure]
    reply = failure_reply(provider, failure, mode)
    if reply is not None:
        server.enqueue(*(reply for _ in range(ATTEMPTS + 2)))
    sleeps = Sleeps()

    async def main() -> tuple[ProviderError, int]:
        adapter = adapter_for(server, provider, failure)
        resilient = ResilientProvider(
            adapter,
            backoff=Backoff(max_attempts=ATTEMPTS, initial=0.01, cap=0.02),
            deadline=10,
            breakers=BreakerBoard(failures=100),
            sleep=sleeps,
        )
        try:
            with pytest.raises(ProviderError) as info:
                await call(resilient, user(model=MODELS[provider]), mode)
            leftover = active_connections(adapter)
        finally:
            await resilient.aclose()
        return info.value, leftover

    error, leftover = asyncio.run(main())

    # classified right
    assert (error.kind, error.reason) == (expect.kind, expect.reason), str(error)
    assert error.retryable == expect.retried
    # attempts bounded
    committed = failure == "disconnect" and mode == "stream"
    attempts = ATTEMPTS if expect.retried and not committed else 1
    assert error.attempts == attempts
    assert len(server.requests) == (0 if failure == "refused" else attempts)
    assert len(sleeps.waits) == attempts - 1
    if failure == "429":
        assert error.retry_after == 1.0
        assert all(wait >= 1.0 for wait in sleeps.waits)
    if committed:
        assert any("not retried" in note for note in error.__notes__)
    # no connection left open
    assert leftover == 0, "the client pool holds an active connection"
    assert server.wait_idle(connections=0), (
        f"server: {server.busy} busy, {server.open_connections} open"
    )


RECOVERABLE = ["429", "500", "503", "529", "read-timeout", "disconnect"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("failure", RECOVERABLE)
@pytest.mark.parametrize("mode", ["stream", "complete"])
def test_one_failure_then_an_answer(
    server: FakeServer, provider: str, failure: str, mode: str
) -> None:
    reply = failure_reply(provider, failure, mode)
    assert reply is not None
    if failure == "disconnect" and mode == "stream":
        # cut before any token: still retryable
        events = openai_stream(["o", "k"]) if provider == "openai" else anthropic_stream(["o", "k"])
        reply = sse_reply(events, disconnect_after=1)
    server.enqueue(reply)

    async def main() -> Any:
        resilient = ResilientProvider(
            adapter_for(server, provider, failure),
            backoff=Backoff(max_attempts=ATTEMPTS, initial=0.01, cap=0.02),
            deadline=10,
            sleep=Sleeps(),
        )
        try:
            return await call(resilient, user(model=MODELS[provider]), mode)
        finally:
            await resilient.aclose()

    result = asyncio.run(main())
    response = result[1] if mode == "stream" else result
    assert response.text == "ok"
    assert response.route[-1].attempts == 2
    assert len(server.requests) == 2
    assert server.wait_idle(connections=0)


@pytest.mark.timeout(30)  # half the SDK's timeout: a deadline that did not hold runs into it
def test_deadline_holds_even_when_the_sdk_timeout_is_long(server: FakeServer) -> None:
    server.enqueue(hang())

    async def main() -> ProviderError:
        endpoint = endpoint_for(server, "openai", timeout=60)
        resilient = ResilientProvider(OpenAICompatProvider(endpoint), deadline=0.3)
        try:
            with pytest.raises(ProviderError) as info:
                await resilient.complete(user(), {})
        finally:
            await resilient.aclose()
        return info.value

    error = asyncio.run(main())
    assert (error.kind, error.reason) == (ErrorKind.TIMEOUT, "deadline")
    assert server.wait_idle(connections=0)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("mode", ["stream", "complete"])
def test_a_request_timeout_names_the_limit_the_attempt_and_the_host(
    server: FakeServer, provider: str, mode: str
) -> None:
    server.enqueue(*(hang() for _ in range(ATTEMPTS)))

    async def main() -> ProviderError:
        resilient = ResilientProvider(
            adapter_for(server, provider, "read-timeout"),
            backoff=Backoff(max_attempts=ATTEMPTS, initial=0.01, cap=0.02),
            deadline=10,
            breakers=BreakerBoard(failures=100),
            sleep=Sleeps(),
        )
        try:
            with pytest.raises(ProviderError) as info:
                await call(resilient, user(model=MODELS[provider]), mode)
        finally:
            await resilient.aclose()
        return info.value

    error = asyncio.run(main())
    message = str(error)
    assert (error.kind, error.reason) == (ErrorKind.TIMEOUT, "timeout")
    assert f"{SDK_TIMEOUT:g}s" in message, message  # the limit
    assert f"attempt {ATTEMPTS} of {ATTEMPTS}" in message, message
    assert f"127.0.0.1:{server.port}" in message, message  # the endpoint host
    assert message.startswith(f"{provider}: "), message
    assert error.to_data()["message"] == message
    assert server.wait_idle(connections=0)


def test_a_connect_timeout_names_the_connect_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx2

    from nexus.gateway.errors import ProviderTimeout

    async def never_connects(self: Any, request: Any) -> Any:
        raise httpx2.ConnectTimeout("timed out", request=request)

    monkeypatch.setattr(httpx2.AsyncHTTPTransport, "handle_async_request", never_connects)
    endpoint = endpoint_for(None, "openai", timeout=30, base_url="http://gpu.lab:8000/v1")

    async def main() -> ProviderError:
        resilient = ResilientProvider(
            OpenAICompatProvider(endpoint),
            backoff=Backoff(max_attempts=2, initial=0.01, cap=0.02),
            sleep=Sleeps(),
        )
        try:
            with pytest.raises(ProviderTimeout) as info:
                await resilient.complete(user(), {})
        finally:
            await resilient.aclose()
        return info.value

    error = asyncio.run(main())
    assert str(error) == (
        "openai: connect timeout: could not connect to gpu.lab:8000 within the 2s "
        "connect limit (attempt 2 of 2)"
    )
