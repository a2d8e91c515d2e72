"""Gateway overhead per model call, beyond the provider's own latency.

The provider's endpoint is a fake one served through ``httpx2.MockTransport``
inside the SDK's own HTTP client, so every layer a real call crosses runs for real -- our
resilience wrapper (breaker, deadline scope, route record), our request
translation and response parsing, the official SDK (request building, SSE
decoding, and typed response models where an adapter asks for them: the
Anthropic non-streamed call) and httpx2 -- while the network does not: no
socket, no loopback TCP, no server thread competing for the GIL. The fake
stamps the time it spends answering; the overhead of a call is

    overhead = client-side wall time - time inside the fake provider

Figures (each sample is the p50 or p95 over ``--calls`` sequential calls):

* ``gateway p95 (openai, complete)`` -- the headline: ResilientProvider over
  the OpenAI adapter, non-streamed; floor p95 < 1 ms;
* the same for a streamed answer (20 chunks, usage on the last), and for the
  Anthropic adapter, both modes;
* the same headline call against a provider that takes 20 ms, to show the
  overhead does not grow with the provider's latency;
* ``resilience layer alone`` -- ResilientProvider + a fallback chain around an
  in-process provider that answers at once (our code only, no SDK).

Usage: ``python bench/gateway_overhead.py [--quick] [--runs N] [--calls N] [--json PATH]``
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
import httpx2
import openai

from _common import ROOT, Metric, parser, percentile, report, runs_for

sys.path.insert(0, str(ROOT / "tests" / "gateway"))

from fakeserver import (
    anthropic_message,
    anthropic_stream,
    openai_completion,
    openai_stream,
)

from nexus.gateway.anthropic_provider import AnthropicProvider
from nexus.gateway.base import (
    ChatMessage,
    ModelRequest,
    ModelResponse,
    StreamEnd,
    Usage,
)
from nexus.gateway.openai_compat import OpenAICompatProvider
from nexus.gateway.resilience import (
    BreakerBoard,
    Candidate,
    ResilientProvider,
    with_fallback,
)
from nexus.gateway.settings import Endpoint, Secret
from nexus.testing import TestModel

FLOOR_P95_MS = 1.0
PROVIDER_LATENCY_S = 0.020


class FakeEndpoint:
    """The provider's HTTP side: fixed bytes for every request after ``latency`` seconds.

    It times itself. Not a model provider (the kit's ``TestModel`` is one): the
    point here is that the SDK adapters above it run for real, as
    ``tests/gateway/fakeserver.py`` does for the tests.
    """

    def __init__(self, body: bytes, content_type: str, latency: float = 0.0) -> None:
        self.body = body
        self.content_type = content_type
        self.latency = latency
        self.spent = 0.0  # seconds inside the handler for the last request

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        started = time.perf_counter()
        await request.aread()
        if self.latency:
            await asyncio.sleep(self.latency)
        response = httpx2.Response(
            200, headers={"content-type": self.content_type}, content=self.body
        )
        self.spent = time.perf_counter() - started
        return response


def sse(events: list[str]) -> bytes:
    return "".join(events).encode()


def endpoint(provider: str) -> Endpoint:
    base = "http://fake.invalid" + ("" if provider == "anthropic" else "/v1")
    return Endpoint(provider, "", base, Secret("sk-bench"), True, timeout=30)


def build(provider: str, fake: FakeEndpoint) -> ResilientProvider:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(fake))
    adapter: Any
    if provider == "anthropic":
        client = anthropic.AsyncAnthropic(
            api_key="sk-bench",
            base_url=endpoint(provider).base_url,
            max_retries=0,
            http_client=http,
        )
        adapter = AnthropicProvider(endpoint(provider), client=client)
    else:
        client_oa = openai.AsyncOpenAI(
            api_key="sk-bench",
            base_url=endpoint(provider).base_url,
            max_retries=0,
            http_client=http,
        )
        adapter = OpenAICompatProvider(endpoint(provider), client=client_oa)
    return ResilientProvider(adapter, deadline=30, breakers=BreakerBoard())


REQUESTS = {
    "openai": ModelRequest(
        model="openai:gpt-4.1-mini",
        messages=(ChatMessage("system", "You are terse."), ChatMessage("user", "Say ok.")),
    ),
    "anthropic": ModelRequest(
        model="anthropic:claude-haiku-4-5",
        messages=(ChatMessage("system", "You are terse."), ChatMessage("user", "Say ok.")),
    ),
}

PIECES = [f"tok{i} " for i in range(20)]


def fake_for(provider: str, mode: str, latency: float = 0.0) -> FakeEndpoint:
    if provider == "openai":
        if mode == "stream":
            return FakeEndpoint(sse(openai_stream(PIECES)), "text/event-stream", latency)
        body = json.dumps(openai_completion("".join(PIECES))).encode()
        return FakeEndpoint(body, "application/json", latency)
    if mode == "stream":
        return FakeEndpoint(sse(anthropic_stream(PIECES)), "text/event-stream", latency)
    body = json.dumps(anthropic_message("".join(PIECES))).encode()
    return FakeEndpoint(body, "application/json", latency)


async def one_call(provider: ResilientProvider, request: ModelRequest, mode: str) -> ModelResponse:
    if mode == "complete":
        return await provider.complete(request, {})
    final = None
    async for event in provider.stream(request, {}):
        if isinstance(event, StreamEnd):
            final = event.response
    assert final is not None
    return final


async def overheads_ms(
    provider_name: str, mode: str, calls: int, latency: float = 0.0
) -> list[float]:
    fake = fake_for(provider_name, mode, latency)
    provider = build(provider_name, fake)
    request = REQUESTS[provider_name]
    try:
        for _ in range(min(50, calls)):  # warm up: imports, pools, caches
            await one_call(provider, request, mode)
        out = []
        for _ in range(calls):
            started = time.perf_counter()
            response = await one_call(provider, request, mode)
            total = time.perf_counter() - started
            out.append((total - fake.spent) * 1000)
        assert response.text == "".join(PIECES), response.text
        return sorted(out)
    finally:
        await provider.aclose()


def instant() -> TestModel:
    """An in-process provider that answers at once (no SDK, no HTTP): the kit's model."""
    return TestModel(ModelResponse("ok", "openai:gpt-4.1-mini", Usage(5, 1)), record=False)


async def resilience_only_ms(calls: int) -> list[float]:
    primary = ResilientProvider(instant(), breakers=BreakerBoard())
    chain = with_fallback(primary, Candidate(ResilientProvider(instant()), "openai:backup"))
    request = REQUESTS["openai"]
    bare = instant()
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        await bare.complete(request, {})
        direct = time.perf_counter() - started
        started = time.perf_counter()
        await chain.complete(request, {})
        wrapped = time.perf_counter() - started
        out.append(max(0.0, wrapped - direct) * 1000)
    return sorted(out)


Measure = Callable[[], Awaitable[list[float]]]


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=None, help="calls per sample")
    args = p.parse_args()
    runs = runs_for(args, full=5, quick=1)
    calls = args.calls or (200 if args.quick else 1000)
    started = time.perf_counter()

    cases: list[tuple[str, Measure, float | None, str]] = [
        (
            "gateway (openai, complete)",
            lambda: overheads_ms("openai", "complete", calls),
            FLOOR_P95_MS,
            "ResilientProvider + OpenAI adapter + SDK + httpx2; the headline figure",
        ),
        (
            "gateway (openai, stream 20 chunks)",
            lambda: overheads_ms("openai", "stream", calls),
            None,
            "",
        ),
        (
            "gateway (anthropic, complete)",
            lambda: overheads_ms("anthropic", "complete", calls),
            None,
            "",
        ),
        (
            "gateway (anthropic, stream 20 chunks)",
            lambda: overheads_ms("anthropic", "stream", calls),
            None,
            "",
        ),
        (
            "gateway (openai, complete, 20 ms provider)",
            lambda: overheads_ms("openai", "complete", max(50, calls // 5), PROVIDER_LATENCY_S),
            None,
            "client time minus the provider's own 20 ms",
        ),
        (
            "resilience layer alone",
            lambda: resilience_only_ms(calls),
            None,
            "ResilientProvider in a 2-deep fallback chain vs the bare provider",
        ),
    ]
    metrics: list[Metric] = []
    for name, measure, floor, note in cases:
        p50s: list[float] = []
        p95s: list[float] = []
        for _ in range(runs):
            values = asyncio.run(measure())
            p50s.append(percentile(values, 50))
            p95s.append(percentile(values, 95))
        metrics.append(
            Metric(f"{name} p95", "ms", p95s, higher_is_better=False, floor=floor, note=note)
        )
        metrics.append(Metric(f"  {name} p50", "ms", p50s, higher_is_better=False))
    info = {
        "calls per sample": calls,
        "provider latency variant": f"{PROVIDER_LATENCY_S * 1000:g} ms",
    }
    result = report("gateway overhead", metrics, args, started, info)
    failed = [m for m in result["metrics"] if m["passed"] is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
