"""TestModel: scripted answers, tool calls, structured output, usage, faults, streams, records."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import pytest

from nexus.domain.errors import ErrorKind, UserError
from nexus.domain.plan import AgentSpec
from nexus.gateway.base import (
    ChatMessage,
    ModelRequest,
    ModelResponse,
    ProviderRegistry,
    StreamEnd,
    StreamEvent,
    StreamingProvider,
    TextDelta,
    ToolCall,
    Usage,
)
from nexus.gateway.errors import (
    ProviderAuthError,
    ProviderConflict,
    ProviderError,
    ProviderInternalError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRefused,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from nexus.testing import (
    HANG,
    Call,
    Fault,
    Reply,
    ScriptExhausted,
    TestModel,
    model_registry,
)

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def ask(text: str = "Say hi.", model: str = "test:m", answers: int = 0) -> ModelRequest:
    """A request whose conversation already holds ``answers`` assistant messages."""
    messages = [ChatMessage("user", text)]
    for i in range(answers):
        messages += [ChatMessage("assistant", f"answer {i}"), ChatMessage("user", "go on")]
    return ModelRequest(model=model, messages=tuple(messages))


async def drain(events: AsyncIterator[StreamEvent]) -> tuple[list[str], ModelResponse | None]:
    texts: list[str] = []
    end: ModelResponse | None = None
    async for event in events:
        if isinstance(event, TextDelta):
            texts.append(event.text)
        elif isinstance(event, StreamEnd):
            end = event.response
    return texts, end


# -- the script ---------------------------------------------------------------------------


def test_text_replies_in_order_then_the_last_repeats() -> None:
    model = TestModel("one", "two")

    async def main() -> list[str]:
        return [(await model.complete(ask(f"q{i}"), {"i": i})).text for i in range(4)]

    assert run(main()) == ["one", "two", "two", "two"]
    assert model.calls == 4
    assert [r.messages[0].content for r in model.requests] == ["q0", "q1", "q2", "q3"]
    assert model.contexts == [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}]


def test_without_a_script_every_call_is_answered_ok() -> None:
    response = run(TestModel().complete(ask(), {}))
    assert (response.text, response.model, response.finish_reason) == ("ok", "test:m", "stop")


def test_one_call_too_many_raises_when_the_last_must_not_repeat() -> None:
    model = TestModel("only", repeat_last=False)
    assert run(model.complete(ask(), {})).text == "only"
    with pytest.raises(
        ScriptExhausted, match=r"got call 2 of 'test:m', but its script has 1 entries"
    ):
        run(model.complete(ask(), {}))
    assert model.calls == 2
    assert model.in_flight == 0
    by_step = TestModel("first", match="step", repeat_last=False)
    with pytest.raises(ScriptExhausted, match=r"got step 2 \(call 1\) of 'test:m'"):
        run(by_step.complete(ask(answers=2), {}))


def test_match_by_step_walks_each_conversation_from_the_top() -> None:
    model = TestModel("first", "second", "third", match="step")

    async def main() -> list[str]:
        requests = [ask(answers=0), ask(answers=1), ask(answers=0), ask(answers=2), ask(answers=5)]
        return [(await model.complete(r, {})).text for r in requests]

    assert run(main()) == ["first", "second", "first", "third", "third"]


def test_a_function_entry_answers_from_the_request() -> None:
    model = TestModel(lambda request: f"echo: {request.messages[-1].content}")
    assert run(model.complete(ask("ping"), {})).text == "echo: ping"
    assert run(model.complete(ask("pong"), {})).text == "echo: pong"


def test_a_function_entry_of_the_wrong_type_is_named() -> None:
    model = TestModel(lambda request: 42)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="call 1 gave int; expected str, Reply"):
        run(model.complete(ask(), {}))
    assert model.in_flight == 0


def test_a_model_response_is_returned_as_it_is() -> None:
    answer = ModelResponse("as recorded", "openai:gpt-4.1", Usage(7, 2), finish_reason=None)
    assert run(TestModel(answer).complete(ask(), {})) is answer


def test_a_bad_match_is_refused() -> None:
    with pytest.raises(ValueError, match="match must be 'call' or 'step'"):
        TestModel(match="turn")  # type: ignore[arg-type]


# -- what an answer holds -----------------------------------------------------------------


def test_tool_calls_are_numbered_by_step_and_ask_for_tools() -> None:
    model = TestModel(
        Reply("looking", calls=[Call("file.read", {"path": "a.txt"}), Call("time.now")]),
        Reply(calls=[Call("lookup", '{"city": "Oslo"', id="mine")]),
    )
    first = run(model.complete(ask(), {}))
    second = run(model.complete(ask(answers=1), {}))
    assert first.tool_calls == (
        ToolCall("call_0_0", "file.read", '{"path": "a.txt"}'),
        ToolCall("call_0_1", "time.now", "{}"),
    )
    assert first.text == "looking"
    assert first.finish_reason == "tool_calls"
    # the text a model wrote is passed on as written, even when it is not JSON
    assert second.tool_calls == (ToolCall("mine", "lookup", '{"city": "Oslo"'),)


def test_a_mapping_is_a_structured_answer() -> None:
    model = TestModel({"city": "Oslo", "people": 1}, Reply.of_json([1, 2], usage=Usage(1, 1)))
    assert json.loads(run(model.complete(ask(), {})).text) == {"city": "Oslo", "people": 1}
    second = run(model.complete(ask(), {}))
    assert (second.text, second.usage) == ("[1, 2]", Usage(1, 1))
    with pytest.raises(ValueError, match="a structured Reply must be JSON"):
        Reply.of_json({"when": object()})
    with pytest.raises(ValueError, match="must be JSON"):
        TestModel({"bad": {1, 2}})


def test_usage_is_the_replys_else_the_models_else_counted() -> None:
    counted = run(
        TestModel(Reply("three little words", calls=[Call("t", {"a": 1})])).complete(
            ask("one two three four"), {}
        )
    )
    # words of the prompt; words of the text plus one per call and its argument words
    assert counted.usage == Usage(prompt_tokens=4, completion_tokens=3 + 1 + 2)
    fixed = TestModel("x", Reply("y", usage=Usage()), usage=Usage(120, 30, cached_tokens=20))
    assert run(fixed.complete(ask(), {})).usage == Usage(120, 30, cached_tokens=20)
    assert run(fixed.complete(ask(), {})).usage == Usage()  # zero is a value, not "unset"


def test_finish_reason_and_model_can_be_set() -> None:
    reply = Reply("cut", finish_reason="length", model="openai:other")
    response = run(TestModel(reply, Reply("none", finish_reason=None)).complete(ask(), {}))
    assert (response.finish_reason, response.model) == ("length", "openai:other")
    assert (
        run(TestModel(Reply("none", finish_reason=None)).complete(ask(), {})).finish_reason is None
    )


def test_a_reply_checks_its_chunks_and_delay() -> None:
    assert Reply(chunks=["a", "b"]).text == "ab"
    with pytest.raises(ValueError, match=r"chunks \('a', 'b'\) do not join to its text 'abc'"):
        Reply("abc", chunks=["a", "b"])
    with pytest.raises(ValueError, match="delay must not be negative"):
        Reply("x", delay=-1)


# -- faults -------------------------------------------------------------------------------

KINDS: dict[str, type[ProviderError]] = {
    "transient": ProviderUnavailable,
    "timeout": ProviderTimeout,
    "rate_limited": ProviderRateLimited,
    "validation": ProviderRejected,
    "auth": ProviderAuthError,
    "not_found": ProviderNotFound,
    "conflict": ProviderConflict,
    "policy_denied": ProviderRefused,
    "internal": ProviderInternalError,
}


def test_every_kind_a_provider_fails_with_has_a_fault() -> None:
    assert set(KINDS) == {k.value for k in ErrorKind} - {"budget_exceeded"}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_fault_raises_a_fresh_provider_error_of_its_kind(kind: str) -> None:
    model = TestModel(Fault(kind, reason="because", status=599))
    errors = []
    for _ in range(2):
        with pytest.raises(KINDS[kind]) as info:
            run(model.complete(ask(model="openai:gpt"), {}))
        errors.append(info.value)
    first, second = errors
    assert first is not second  # a retry loop may mark an error; each call gets its own
    assert first.kind == ErrorKind(kind)
    assert (first.provider, first.reason, first.status) == ("openai", "because", 599)
    assert first.message == f"test model failed: {kind} (because)"
    assert model.calls == 2
    assert model.in_flight == 0


def test_fault_fields_reach_the_error() -> None:
    quota = Fault(ErrorKind.RATE_LIMITED, "no credit", reason="quota", retryable=False)
    slow = Fault("rate_limited", retry_after=3.0, code="rate_limit", provider="anthropic")
    with pytest.raises(ProviderRateLimited) as info:
        run(TestModel(quota).complete(ask(), {}))
    assert (info.value.message, info.value.retryable, info.value.provider) == (
        "no credit",
        False,
        "test",
    )
    with pytest.raises(ProviderRateLimited) as info:
        run(TestModel(slow).complete(ask(), {}))
    assert (info.value.retry_after, info.value.retryable, info.value.code) == (
        3.0,
        True,
        "rate_limit",
    )
    assert info.value.provider == "anthropic"


@pytest.mark.parametrize("kind", ["budget_exceeded", "flaky", ""])
def test_a_fault_of_no_provider_kind_is_refused(kind: str) -> None:
    with pytest.raises(ValueError, match=f"Fault kind '{kind}' is not a provider failure"):
        Fault(kind)


def test_an_exception_is_raised_as_it_is() -> None:
    error = RuntimeError("provider exploded")
    model = TestModel(error)
    with pytest.raises(RuntimeError) as info:
        run(model.complete(ask(), {}))
    assert info.value is error


def test_a_fault_can_take_its_time() -> None:
    model = TestModel(Fault("timeout", delay=5))

    async def main() -> None:
        async with asyncio.timeout(0.05):
            await model.complete(ask(), {})

    with pytest.raises(TimeoutError):
        run(main())
    assert model.in_flight == 0


# -- time ---------------------------------------------------------------------------------


def test_hang_ends_only_by_cancellation_and_calls_in_flight_are_counted() -> None:
    model = TestModel(HANG)

    async def main() -> tuple[int, int]:
        calls = [asyncio.create_task(model.complete(ask(), {})) for _ in range(3)]
        await asyncio.sleep(0.01)
        during = model.in_flight
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        return during, model.in_flight

    assert run(main()) == (3, 0)
    assert model.peak_in_flight == 3
    assert len(model.requests) == 3


def test_a_delay_holds_the_answer_back() -> None:
    model = TestModel(Reply("late", delay=0.05))

    async def main() -> tuple[bool, str]:
        call = asyncio.create_task(model.complete(ask(), {}))
        await asyncio.sleep(0.01)
        pending = not call.done()
        return pending, (await call).text

    assert run(main()) == (True, "late")


def test_the_models_delay_holds_back_every_answer_and_adds_to_a_replys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    answer = ModelResponse("recorded", "test:m", Usage(1, 1))
    model = TestModel(answer, Reply("slower", delay=0.5), Fault("transient", delay=2), delay=1)
    assert run(model.complete(ask(), {})) is answer  # a ModelResponse entry waits too
    assert run(model.complete(ask(), {})).text == "slower"
    with pytest.raises(ProviderUnavailable):
        run(model.complete(ask(), {}))
    assert slept == [1, 1.5, 3]
    run(TestModel("x").complete(ask(), {}))  # no delay: no sleep at all
    assert slept == [1, 1.5, 3]
    with pytest.raises(ValueError, match="TestModel delay must not be negative"):
        TestModel(delay=-0.1)


# -- streams ------------------------------------------------------------------------------


def test_a_stream_hands_out_words_that_join_to_the_answer() -> None:
    model = TestModel("three fixes and one feature")
    assert isinstance(model, StreamingProvider)
    texts, end = run(drain(model.stream(ask(), {})))
    assert texts == ["three ", "fixes ", "and ", "one ", "feature"]
    assert end is not None
    assert "".join(texts) == end.text
    assert model.streams_closed == 1
    assert model.in_flight == 0


def test_a_stream_with_chunks_then_an_error_is_cut_after_them() -> None:
    model = TestModel(Reply(chunks=["a", "b"], error=Fault("transient")))
    seen: list[str] = []

    async def main() -> None:
        async for event in model.stream(ask(), {}):
            assert isinstance(event, TextDelta)
            seen.append(event.text)

    with pytest.raises(ProviderUnavailable):
        run(main())
    assert seen == ["a", "b"]
    with pytest.raises(ProviderUnavailable):  # a plain call fails at once
        run(model.complete(ask(), {}))


def test_a_stream_that_stalls_after_its_chunks() -> None:
    model = TestModel(Reply(chunks=["a"], stall=True))
    seen: list[str] = []

    async def main() -> None:
        async with asyncio.timeout(0.05):
            async for event in model.stream(ask(), {}):
                assert isinstance(event, TextDelta)
                seen.append(event.text)

    with pytest.raises(TimeoutError):
        run(main())
    assert seen == ["a"]
    assert model.streams_closed == 1


def test_a_stream_of_a_model_response_and_of_an_empty_answer() -> None:
    answer = ModelResponse("as recorded", "openai:gpt-4.1", Usage(7, 2))
    texts, end = run(drain(TestModel(answer).stream(ask(), {})))
    assert (texts, end) == (["as ", "recorded"], answer)
    texts, end = run(drain(TestModel(Reply(calls=[Call("t")])).stream(ask(), {})))
    assert texts == []
    assert end is not None
    assert end.tool_calls[0].name == "t"


def test_closing_a_stream_early_closes_it_at_once() -> None:
    model = TestModel("a b c")

    async def main() -> int:
        events = model.stream(ask(), {})
        await anext(events)
        await events.aclose()  # type: ignore[attr-defined]
        return model.streams_closed

    assert run(main()) == 1
    assert model.in_flight == 0


def test_complete_only_is_a_provider_that_cannot_stream() -> None:
    model = TestModel("plain")
    view = model.complete_only()
    assert not isinstance(view, StreamingProvider)
    assert run(view.complete(ask(), {})).text == "plain"
    assert model.calls == 1


def test_without_recording_only_the_counters_are_kept() -> None:
    model = TestModel("x", record=False)
    run(model.complete(ask(), {"a": 1}))
    assert (model.calls, model.requests, model.contexts) == (1, [], [])


# -- registries ---------------------------------------------------------------------------


def test_registry_serves_every_name_under_its_prefix_and_keeps_the_base() -> None:
    model = TestModel("x")
    base = ProviderRegistry({"other": lambda agent: TestModel()})
    registry = model.registry("slow", base=base)
    assert registry.prefixes() == ("other", "slow")
    assert base.prefixes() == ("other",)  # copied, not changed
    assert registry.provider_for(AgentSpec(name="a", model="slow:anything")) is model
    assert TestModel().registry().prefixes() == ("test",)
    with pytest.raises(ValueError, match="provider prefix"):
        model.registry("a:b")


def test_model_registry_serves_by_name_and_checks_ahead() -> None:
    writer, critic = TestModel("draft"), TestModel("ok")
    registry = model_registry({"writer": writer, "critic": critic})
    assert registry.provider_for(AgentSpec(name="w", model="test:writer")) is writer
    assert registry.provider_for(AgentSpec(name="c", model="test:critic")) is critic
    registry.check(AgentSpec(name="w", model="test:writer", fallbacks=("openai:gpt",)))
    with pytest.raises(UserError) as info:
        registry.check(AgentSpec(name="e", model="openai:gpt", fallbacks=("test:editor",)))
    assert info.value.message == (
        "agent 'e': model 'test:editor' is not a registered test model "
        "(registered: test:critic, test:writer)"
    )
    with pytest.raises(UserError, match="'test:editor' is not a registered test model"):
        registry.provider_for(AgentSpec(name="e", model="test:editor"))


def test_the_class_is_not_collected_as_a_test() -> None:
    assert TestModel.__test__ is False
