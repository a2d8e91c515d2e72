"""The OpenAI-compatible adapter against the fake server: requests, answers, streams, quirks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fakeserver import (
    FakeServer,
    collect,
    endpoint_for,
    json_reply,
    openai_chunk,
    openai_completion,
    openai_error,
    openai_stream,
    openai_usage,
    raw_reply,
    sse_data,
    sse_reply,
    user,
)

from nexus.domain.errors import ErrorKind, UserError
from nexus.gateway.base import ChatMessage, ModelRequest, ToolCall, ToolSpec, Usage
from nexus.gateway.errors import ProviderError
from nexus.gateway.openai_compat import (
    OpenAICompatProvider,
    ToolCallAssembler,
)
from nexus.gateway.openai_compat import (
    openai_usage as to_usage,
)

WEATHER = ToolSpec(
    "weather",
    "Current weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def complete(server: FakeServer, request: ModelRequest, **endpoint: Any) -> Any:
    async def main() -> Any:
        provider = OpenAICompatProvider(endpoint_for(server, **endpoint))
        try:
            return await provider.complete(request, {})
        finally:
            await provider.aclose()

    return asyncio.run(main())


def stream(server: FakeServer, request: ModelRequest, **endpoint: Any) -> Any:
    async def main() -> Any:
        provider = OpenAICompatProvider(endpoint_for(server, **endpoint))
        try:
            return await collect(provider.stream(request, {}))
        finally:
            await provider.aclose()

    return asyncio.run(main())


# -- requests -----------------------------------------------------------------------------


def test_request_carries_model_messages_tools_and_no_sdk_retries(server: FakeServer) -> None:
    request = ModelRequest(
        model="openai:gpt-4.1-mini",
        messages=(
            ChatMessage("system", "be brief"),
            ChatMessage("user", "weather in Oslo?"),
            ChatMessage(
                "assistant", "", tool_calls=(ToolCall("c1", "weather", '{"city":"Oslo"}'),)
            ),
            ChatMessage("tool", "-3C", tool_call_id="c1"),
        ),
        tools=(WEATHER,),
        max_tokens=64,
        temperature=0.0,
    )
    server.enqueue(openai_error(500, "boom"))
    with pytest.raises(ProviderError):
        complete(server, request, key="sk-abc")
    assert len(server.requests) == 1, "the SDK must not retry on its own"
    sent = server.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-abc"
    body = sent.json()
    assert body["model"] == "gpt-4.1-mini"
    assert body["max_completion_tokens"] == 64
    assert body["temperature"] == 0.0
    assert body["messages"][2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
            }
        ],
    }
    assert body["messages"][3] == {"role": "tool", "content": "-3C", "tool_call_id": "c1"}
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Current weather in a city",
                "parameters": dict(WEATHER.parameters),
            },
        }
    ]


def test_streams_ask_for_usage(server: FakeServer) -> None:
    stream(server, user())
    body = server.requests[0].json()
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_other_servers_get_max_tokens(server: FakeServer) -> None:
    complete(server, user(model="vllm:qwen", max_tokens=7), provider="vllm", key="")
    body = server.requests[0].json()
    assert body["model"] == "qwen"
    assert body["max_tokens"] == 7
    assert "max_completion_tokens" not in body


def test_openai_compatible_endpoint_and_model(server: FakeServer) -> None:
    common = {"provider": "openai_compatible", "name": "lab", "key": ""}
    complete(server, user(model="openai_compatible:lab/org/model-7b"), **common)
    complete(server, user(model="openai_compatible:lab"), default_model="dflt", **common)
    assert [r.json()["model"] for r in server.requests] == ["org/model-7b", "dflt"]
    with pytest.raises(UserError, match="names no model"):
        complete(server, user(model="openai_compatible:lab"), **common)
    with pytest.raises(UserError, match="was sent to"):
        complete(server, user(model="openai_compatible:other/x"), **common)


def test_a_model_for_another_provider_is_refused_before_sending(server: FakeServer) -> None:
    with pytest.raises(UserError):
        complete(server, user(model="anthropic:claude"))
    assert server.requests == []


# -- answers ------------------------------------------------------------------------------


def test_text_answer_and_usage_details(server: FakeServer) -> None:
    usage = openai_usage(120, 30, cached=100, reasoning=12)
    server.enqueue(json_reply(openai_completion("Hello", usage=usage)))
    response = complete(server, user(model="openai:gpt-4.1"))
    assert response.text == "Hello"
    assert response.model == "openai:gpt-4.1"
    assert response.finish_reason == "stop"
    assert response.usage == Usage(
        prompt_tokens=120, completion_tokens=30, cached_tokens=100, reasoning_tokens=12
    )


def test_tool_calls_answer(server: FakeServer) -> None:
    calls = [("call_1", "weather", '{"city":"Oslo"}'), ("call_2", "weather", '{"city":"Rome"}')]
    server.enqueue(json_reply(openai_completion(None, tool_calls=calls)))
    response = complete(server, user(tools=(WEATHER,)))
    assert response.text == ""
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == tuple(ToolCall(*c) for c in calls)
    assert response.tool_calls[1].parsed_arguments() == {"city": "Rome"}


def test_tool_call_without_id_gets_a_deterministic_one(server: FakeServer) -> None:
    body = openai_completion(None, tool_calls=[("", "weather", '{"city":"Oslo"}')])
    server.enqueue(json_reply(body), json_reply(body))
    first = complete(server, user()).tool_calls[0]
    second = complete(server, user()).tool_calls[0]
    assert first.id.startswith("call_")
    assert first == second


def test_answer_without_usage_is_estimated(server: FakeServer) -> None:
    body = openai_completion("four score and seven")
    del body["usage"]
    server.enqueue(json_reply(body))
    usage = complete(server, user("x" * 40)).usage
    assert usage.estimated
    assert usage.prompt_tokens == 10 + 4
    assert usage.completion_tokens == 5


@pytest.mark.parametrize(
    "reply",
    [
        raw_reply(b'{"id": "x", "choi'),
        raw_reply(b"<html>bad gateway</html>", content_type="text/html"),
        raw_reply(b'{"object": "chat.completion"}'),
    ],
    ids=["truncated-json", "not-json", "no-choices"],
)
def test_malformed_bodies_are_transient(server: FakeServer, reply: Any) -> None:
    server.enqueue(reply)
    with pytest.raises(ProviderError) as info:
        complete(server, user())
    assert info.value.kind is ErrorKind.TRANSIENT
    assert info.value.reason == "malformed_body"
    assert info.value.retryable


# -- streams ------------------------------------------------------------------------------


def test_stream_text_and_usage(server: FakeServer) -> None:
    usage = openai_usage(9, 3, cached=4, reasoning=1)
    server.enqueue(sse_reply(openai_stream(["Hel", "lo", "!"], usage=usage)))
    texts, response = stream(server, user())
    assert texts == ["Hel", "lo", "!"]
    assert response.text == "Hello!"
    assert response.finish_reason == "stop"
    assert response.usage == Usage(9, 3, cached_tokens=4, reasoning_tokens=1)
    assert not response.usage.estimated


def test_stream_tool_calls(server: FakeServer) -> None:
    calls = [("call_a", "weather", '{"city": "Oslo"}'), ("call_b", "clock", '{"tz": "CET"}')]
    server.enqueue(sse_reply(openai_stream([], tool_calls=calls)))
    texts, response = stream(server, user())
    assert texts == []
    assert response.tool_calls == tuple(ToolCall(*c) for c in calls)
    assert response.finish_reason == "tool_calls"


def test_streamed_and_unstreamed_answers_agree(server: FakeServer) -> None:
    calls = [("call_a", "weather", '{"city": "Oslo"}')]
    usage = openai_usage(50, 20, cached=10)
    server.enqueue(json_reply(openai_completion("Sunny", tool_calls=calls, usage=usage)))
    server.enqueue(sse_reply(openai_stream(["Sun", "ny"], tool_calls=calls, usage=usage)))
    plain = complete(server, user())
    _, streamed = stream(server, user())
    assert streamed == plain


# -- OpenAI-compatible stream quirks (Ollama, vLLM, llama.cpp) ------------------------------


def _tc(**fields: Any) -> dict[str, Any]:
    """A delta with one tool-call item made of ``fields`` (function parts nested)."""
    item: dict[str, Any] = {k: v for k, v in fields.items() if k in ("index", "id", "type")}
    function = {k: v for k, v in fields.items() if k in ("name", "arguments")}
    if function:
        item["function"] = function
    return {"tool_calls": [item]}


EXPECTED_PAIR = [("weather", '{"city":"Oslo"}'), ("clock", '{"tz":"CET"}')]

QUIRKS: dict[str, list[dict[str, Any]]] = {
    "index-missing": [
        _tc(id="a", type="function", name="weather", arguments='{"city":'),
        _tc(arguments='"Oslo"}'),
        _tc(id="b", type="function", name="clock", arguments='{"tz":'),
        _tc(arguments='"CET"}'),
    ],
    "index-always-0-with-ids": [
        _tc(index=0, id="a", type="function", name="weather", arguments=""),
        _tc(index=0, arguments='{"city":"Oslo"}'),
        _tc(index=0, id="b", type="function", name="clock", arguments=""),
        _tc(index=0, arguments='{"tz":"CET"}'),
    ],
    "index-always-0-no-ids": [
        _tc(index=0, name="weather", arguments='{"city":'),
        _tc(index=0, arguments='"Oslo"}'),
        _tc(index=0, name="clock", arguments='{"tz":"CET"}'),
    ],
    "whole-calls-per-chunk-same-name": [
        _tc(index=0, name="weather", arguments='{"city":"Oslo"}'),
        _tc(index=0, name="weather", arguments='{"city":"Rome"}'),
    ],
    "id-and-name-repeated": [
        _tc(index=0, id="a", type="function", name="weather", arguments='{"city":'),
        _tc(index=0, id="a", type="function", name="weather", arguments='"Oslo"}'),
        _tc(index=1, id="b", type="function", name="clock", arguments='{"tz":"CET"}'),
    ],
    "type-missing": [
        _tc(index=0, id="a", name="weather", arguments='{"city":"Oslo"}'),
        _tc(index=1, id="b", name="clock", arguments='{"tz":"CET"}'),
    ],
    "empty-id-strings": [
        _tc(index=0, id="", name="weather", arguments='{"city":"Oslo"}'),
        _tc(index=1, id="", name="clock", arguments='{"tz":"CET"}'),
    ],
}


WITH_IDS = {"index-missing", "index-always-0-with-ids", "id-and-name-repeated", "type-missing"}


@pytest.mark.parametrize("quirk", sorted(QUIRKS))
def test_tool_calls_rebuilt_across_quirks(server: FakeServer, quirk: str) -> None:
    events = [sse_data(openai_chunk({"role": "assistant", "content": None}))]
    events += [sse_data(openai_chunk(delta)) for delta in QUIRKS[quirk]]
    events.append(sse_data(openai_chunk({}, finish_reason="tool_calls")))
    events.append(sse_data(openai_chunk(choices=False, usage=openai_usage(10, 5))))
    events.append(sse_data("[DONE]"))
    server.enqueue(sse_reply(events))
    _, response = stream(server, user())
    got = [(c.name, json.loads(c.arguments)) for c in response.tool_calls]
    if quirk == "whole-calls-per-chunk-same-name":
        assert got == [("weather", {"city": "Oslo"}), ("weather", {"city": "Rome"})]
    else:
        assert got == [(n, json.loads(a)) for n, a in EXPECTED_PAIR]
    ids = [c.id for c in response.tool_calls]
    assert all(ids)
    assert len(set(ids)) == len(ids)
    if quirk in WITH_IDS:
        assert ids == ["a", "b"]


def test_usage_on_a_chunk_that_also_has_choices(server: FakeServer) -> None:
    events = [
        sse_data(openai_chunk({"role": "assistant", "content": "Hi"})),
        sse_data(openai_chunk({}, finish_reason="stop", usage=openai_usage(7, 2))),
        sse_data("[DONE]"),
    ]
    server.enqueue(sse_reply(events))
    _, response = stream(server, user())
    assert response.text == "Hi"
    assert response.usage == Usage(7, 2)


def test_done_without_usage_marks_it_estimated(server: FakeServer) -> None:
    server.enqueue(sse_reply(openai_stream(["abcd", "efgh"], include_usage=False)))
    _, response = stream(server, user("x" * 8))
    assert response.usage.estimated
    assert response.usage.completion_tokens == 2
    assert response.usage.prompt_tokens == 2 + 4


def test_stream_without_done_marker_still_completes(server: FakeServer) -> None:
    server.enqueue(sse_reply(openai_stream(["ok"], done=False)))
    texts, response = stream(server, user())
    assert texts == ["ok"]
    assert response.text == "ok"


def test_a_non_json_event_is_a_malformed_transient_error(server: FakeServer) -> None:
    events = [sse_data(openai_chunk({"content": "a"})), "data: {not json\n\n"]
    server.enqueue(sse_reply(events))
    with pytest.raises(ProviderError) as info:
        stream(server, user())
    assert (info.value.kind, info.value.reason) == (ErrorKind.TRANSIENT, "malformed_body")


def test_an_error_event_inside_the_stream_is_classified(server: FakeServer) -> None:
    error = {"error": {"message": "server overloaded", "type": "server_error", "code": None}}
    server.enqueue(sse_reply([sse_data(openai_chunk({"content": "a"})), sse_data(error)]))
    with pytest.raises(ProviderError) as info:
        stream(server, user())
    assert info.value.kind is ErrorKind.TRANSIENT
    assert info.value.reason == "server_error"


def test_assembler_feeds_arguments_given_as_objects() -> None:
    assembler = ToolCallAssembler()
    assembler.feed({"index": 0, "function": {"name": "f", "arguments": {"a": 1}}})
    (call,) = assembler.calls()
    assert call.name == "f"
    assert json.loads(call.arguments) == {"a": 1}


def test_usage_mapping_tolerates_nulls() -> None:
    assert to_usage(None) is None
    assert to_usage({}) is None
    data = {
        "prompt_tokens": 3,
        "completion_tokens": None,
        "prompt_tokens_details": None,
        "completion_tokens_details": {"reasoning_tokens": None},
    }
    assert to_usage(data) == Usage(3, 0)
