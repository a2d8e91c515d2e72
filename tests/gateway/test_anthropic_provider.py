"""The Anthropic adapter against the fake server: requests, answers, streams, usage."""

from __future__ import annotations

import asyncio
import json
import warnings
from typing import Any

import pytest
from anthropic.resources.messages import DEPRECATED_MODELS
from fakeserver import (
    FakeServer,
    active_connections,
    anthropic_message,
    anthropic_stream,
    anthropic_usage,
    collect,
    endpoint_for,
    json_reply,
    sse_event,
    sse_reply,
    user,
)

from nexus.domain.errors import ErrorKind
from nexus.gateway.anthropic_provider import AnthropicProvider
from nexus.gateway.anthropic_provider import anthropic_usage as to_usage
from nexus.gateway.base import ChatMessage, ModelRequest, ToolCall, ToolSpec, Usage
from nexus.gateway.errors import ProviderError
from nexus.gateway.resilience import ResilientProvider

MODEL = "anthropic:claude-haiku-4-5"
WEATHER = ToolSpec("weather", "Weather", {"type": "object", "properties": {"city": {}}})


def complete(server: FakeServer, request: ModelRequest, **endpoint: Any) -> Any:
    async def main() -> Any:
        provider = AnthropicProvider(endpoint_for(server, "anthropic", **endpoint))
        try:
            return await provider.complete(request, {})
        finally:
            await provider.aclose()

    return asyncio.run(main())


def stream(server: FakeServer, request: ModelRequest, **endpoint: Any) -> Any:
    async def main() -> Any:
        provider = AnthropicProvider(endpoint_for(server, "anthropic", **endpoint))
        try:
            return await collect(provider.stream(request, {}))
        finally:
            await provider.aclose()

    return asyncio.run(main())


def test_request_translates_system_tools_and_tool_results(server: FakeServer) -> None:
    request = ModelRequest(
        model=MODEL,
        messages=(
            ChatMessage("system", "be brief"),
            ChatMessage("user", "weather?"),
            ChatMessage(
                "assistant",
                "checking",
                tool_calls=(
                    ToolCall("t1", "weather", '{"city":"Oslo"}'),
                    ToolCall("t2", "weather", '{"city":"Rome"}'),
                ),
            ),
            ChatMessage("tool", "-3C", tool_call_id="t1"),
            ChatMessage("tool", "20C", tool_call_id="t2"),
        ),
        tools=(WEATHER,),
        temperature=0.5,
    )
    complete(server, request, key="sk-ant-xyz")
    (sent,) = server.requests
    assert sent.path == "/v1/messages"
    assert "sk-ant-xyz" in (
        sent.headers.get("x-api-key", "") + sent.headers.get("authorization", "")
    )
    body = sent.json()
    assert body["model"] == "claude-haiku-4-5"
    assert body["max_tokens"] == 4096
    assert body["system"] == "be brief"
    assert body["temperature"] == 0.5
    assert body["tools"] == [
        {"name": "weather", "description": "Weather", "input_schema": dict(WEATHER.parameters)}
    ]
    assert body["messages"] == [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "checking"},
                {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "t2", "name": "weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "-3C"},
                {"type": "tool_result", "tool_use_id": "t2", "content": "20C"},
            ],
        },
    ]


def test_no_sdk_retries(server: FakeServer) -> None:
    server.enqueue(json_reply({"type": "error", "error": {"type": "api_error"}}, status=500))
    with pytest.raises(ProviderError):
        complete(server, user(model=MODEL))
    assert len(server.requests) == 1


def test_text_tool_use_and_usage(server: FakeServer) -> None:
    usage = anthropic_usage(10, 40, cache_read=1000, cache_write=200)
    body = anthropic_message(
        "Let me check", tool_uses=[("toolu_1", "weather", {"city": "Oslo"})], usage=usage
    )
    server.enqueue(json_reply(body))
    response = complete(server, user(model=MODEL))
    assert response.text == "Let me check"
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == (ToolCall("toolu_1", "weather", '{"city":"Oslo"}'),)
    # input_tokens excludes the cache: prompt_tokens counts all of it
    assert response.usage == Usage(
        prompt_tokens=1210, completion_tokens=40, cached_tokens=1000, cache_write_tokens=200
    )


def test_stream_text_tool_use_and_usage(server: FakeServer) -> None:
    usage = anthropic_usage(10, 40, cache_read=1000, cache_write=200)
    events = anthropic_stream(
        ["Let me ", "check"], tool_uses=[("toolu_1", "weather", '{"city": "Oslo"}')], usage=usage
    )
    server.enqueue(sse_reply(events))
    texts, response = stream(server, user(model=MODEL))
    assert texts == ["Let me ", "check"]
    assert response.text == "Let me check"
    assert response.tool_calls == (ToolCall("toolu_1", "weather", '{"city":"Oslo"}'),)
    assert response.usage == Usage(1210, 40, cached_tokens=1000, cache_write_tokens=200)
    assert response.finish_reason == "tool_calls"


def test_streamed_and_unstreamed_answers_agree(server: FakeServer) -> None:
    usage = anthropic_usage(33, 7, cache_read=5)
    uses = [("toolu_9", "weather", {"city": "Rome", "unit": "C"})]
    server.enqueue(json_reply(anthropic_message("Hi", tool_uses=uses, usage=usage)))
    server.enqueue(
        sse_reply(
            anthropic_stream(
                ["H", "i"], tool_uses=[(i, n, json.dumps(a)) for i, n, a in uses], usage=usage
            )
        )
    )
    plain = complete(server, user(model=MODEL))
    _, streamed = stream(server, user(model=MODEL))
    assert streamed == plain


def test_stream_usage_takes_the_last_cumulative_figures(server: FakeServer) -> None:
    events = anthropic_stream(["a"], usage=anthropic_usage(12, 99))
    server.enqueue(sse_reply(events))
    _, response = stream(server, user(model=MODEL))
    # message_start said 1 output token; message_delta's cumulative 99 wins
    assert response.usage == Usage(12, 99)


def test_in_stream_overloaded_error_is_transient(server: FakeServer) -> None:
    events = anthropic_stream(["a"])[:3]
    events.append(
        sse_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "x"}})
    )
    server.enqueue(sse_reply(events))
    with pytest.raises(ProviderError) as info:
        stream(server, user(model=MODEL))
    assert (info.value.kind, info.value.reason) == (ErrorKind.TRANSIENT, "overloaded")


def test_stream_ending_without_message_stop_is_incomplete(server: FakeServer) -> None:
    server.enqueue(sse_reply(anthropic_stream(["a", "b"])[:-2]))
    with pytest.raises(ProviderError) as info:
        stream(server, user(model=MODEL))
    assert (info.value.kind, info.value.reason) == (ErrorKind.TRANSIENT, "incomplete_stream")


def test_answer_without_usage_is_estimated(server: FakeServer) -> None:
    body = anthropic_message("abcdefgh")
    del body["usage"]
    server.enqueue(json_reply(body))
    response = complete(server, user("x" * 4, model=MODEL))
    assert response.usage == Usage(1 + 4, 2, estimated=True)


def test_usage_mapping_reads_thinking_tokens() -> None:
    data = {
        "input_tokens": 3,
        "output_tokens": 50,
        "output_tokens_details": {"thinking_tokens": 40},
    }
    assert to_usage(data) == Usage(3, 50, reasoning_tokens=40)
    assert to_usage(None) is None


# -- the streamed path: the SDK client's raw SSE events, not the typed ``create``


def test_stream_sends_the_same_request_as_complete_plus_stream(server: FakeServer) -> None:
    request = ModelRequest(
        model=MODEL,
        messages=(ChatMessage("system", "be brief"), ChatMessage("user", "weather?")),
        tools=(WEATHER,),
        temperature=0.25,
        max_tokens=64,
    )
    server.enqueue(json_reply(anthropic_message("ok")), sse_reply(anthropic_stream(["ok"])))
    complete(server, request, key="sk-ant-xyz")
    stream(server, request, key="sk-ant-xyz")
    plain, streamed = server.requests
    assert (
        (streamed.method, streamed.path) == (plain.method, plain.path) == ("POST", "/v1/messages")
    )
    assert streamed.json() == {**plain.json(), "stream": True}
    assert plain.json()["temperature"] == 0.25
    for header in ("x-api-key", "anthropic-version", "content-type"):
        assert streamed.headers.get(header) == plain.headers.get(header), header


def deprecated_model() -> str:
    """A model the installed SDK deprecates (its own table, so an SDK upgrade cannot stale it)."""
    return sorted(DEPRECATED_MODELS)[0]


def test_stream_warns_for_a_deprecated_model_as_the_sdk_does(server: FakeServer) -> None:
    request = user(model=f"anthropic:{deprecated_model()}")
    server.enqueue(json_reply(anthropic_message("ok")), sse_reply(anthropic_stream(["ok"])))
    with pytest.warns(DeprecationWarning, match="is deprecated") as typed:
        complete(server, request)  # the SDK's typed ``create`` warns itself
    with pytest.warns(DeprecationWarning, match="is deprecated") as raw:
        texts, _ = stream(server, request)
    assert texts == ["ok"]
    assert [str(w.message) for w in raw] == [str(w.message) for w in typed]
    assert deprecated_model() in str(raw[0].message)


def test_stream_for_a_current_model_does_not_warn(server: FakeServer) -> None:
    assert MODEL.partition(":")[2] not in DEPRECATED_MODELS
    server.enqueue(sse_reply(anthropic_stream(["ok"])))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        texts, _ = stream(server, user(model=MODEL))
    assert texts == ["ok"]


def test_stream_ignores_pings_and_events_that_are_not_objects(server: FakeServer) -> None:
    events = anthropic_stream(["a", "b"])
    events.insert(3, "event: content_block_delta\ndata: [1, 2]\n\n")
    events.insert(4, "event: ping\ndata: {}\n\n")
    server.enqueue(sse_reply(events))
    texts, response = stream(server, user(model=MODEL))
    assert (texts, response.text) == (["a", "b"], "ab")


def test_stream_parallel_tool_uses_keep_their_order_and_ids(server: FakeServer) -> None:
    uses = [("toolu_1", "weather", '{"city": "Oslo"}'), ("toolu_2", "weather", "")]
    server.enqueue(sse_reply(anthropic_stream([], tool_uses=uses)))
    texts, response = stream(server, user(model=MODEL))
    assert texts == []
    assert response.tool_calls == (
        ToolCall("toolu_1", "weather", '{"city":"Oslo"}'),
        ToolCall("toolu_2", "weather", "{}"),  # no input at all: an empty object
    )


def test_stream_abandoned_after_the_first_token_frees_the_connection(server: FakeServer) -> None:
    server.enqueue(sse_reply(anthropic_stream(["a", "b", "c"]), event_delay=0.05))

    async def main() -> tuple[str, int]:
        provider = AnthropicProvider(endpoint_for(server, "anthropic"))
        try:
            events = provider.stream(user(model=MODEL), {})
            first = await anext(events)
            await events.aclose()
            return getattr(first, "text", ""), active_connections(provider)
        finally:
            await provider.aclose()

    first, leftover = asyncio.run(main())
    assert (first, leftover) == ("a", 0)
    assert server.wait_idle(connections=0)


@pytest.mark.timeout(30)  # half the SDK's timeout: a deadline that did not hold runs into it
def test_stream_deadline_mid_stream_is_a_timeout_and_frees_the_connection(
    server: FakeServer,
) -> None:
    server.enqueue(sse_reply(anthropic_stream(["a"] * 50), event_delay=0.05))

    async def main() -> tuple[list[str], ProviderError, int]:
        adapter = AnthropicProvider(endpoint_for(server, "anthropic", timeout=60))
        resilient = ResilientProvider(adapter, deadline=0.4)
        texts: list[str] = []

        async def drain() -> None:
            async for event in resilient.stream(user(model=MODEL), {}):
                texts.append(getattr(event, "text", ""))

        try:
            with pytest.raises(ProviderError) as info:
                await drain()
            leftover = active_connections(adapter)
        finally:
            await resilient.aclose()
        return texts, info.value, leftover

    texts, error, leftover = asyncio.run(main())
    assert texts, "no token arrived before the deadline"
    assert set(texts) == {"a"}
    assert (error.kind, error.reason) == (ErrorKind.TIMEOUT, "deadline")
    assert leftover == 0
    assert server.wait_idle(connections=0)
