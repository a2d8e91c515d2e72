"""The response cache: keys, hits and misses, expiry, what is never cached, storage, savings."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from nexus.domain.errors import UserError
from nexus.gateway.base import (
    ChatMessage,
    ModelRequest,
    ModelResponse,
    RouteStep,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolSpec,
    Usage,
)
from nexus.gateway.cache import (
    CacheSavings,
    CachingProvider,
    MemoryResponseCache,
    ResponseCache,
    SQLiteResponseCache,
    is_cacheable,
    request_key,
    savings,
)
from nexus.gateway.pricing import PricingTable
from nexus.testing import Call, ManualClock, Reply, TestModel

MODEL = "openai:gpt-4.1-mini"


def ask(text: str = "Summarise the changelog", **kwargs: Any) -> ModelRequest:
    return ModelRequest(
        model=kwargs.pop("model", MODEL), messages=(ChatMessage("user", text),), **kwargs
    )


def counting(
    text: str = "three fixes and one feature",
    finish_reason: str | None = "stop",
) -> TestModel:
    """A model answering ``<text> #<call number>``, with the route a resilient provider adds."""

    def answer(request: ModelRequest) -> ModelResponse:
        return ModelResponse(
            text=f"{text} #{model.calls}",
            model=request.model,
            usage=Usage(120, 30, cached_tokens=20),
            finish_reason=finish_reason,
            route=(RouteStep(request.model, "answered", "primary", 1),),
        )

    model = TestModel(answer)
    return model


@pytest.fixture(params=["memory", "sqlite"])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ResponseCache]:
    if request.param == "memory":
        yield MemoryResponseCache()
    else:
        with SQLiteResponseCache(tmp_path / "cache" / "responses.db") as db:
            yield db


def make(
    cache: ResponseCache, inner: TestModel | None = None, ttl: float = 60.0
) -> tuple[CachingProvider, TestModel, ManualClock]:
    clock = ManualClock()
    inner = inner if inner is not None else counting()
    return CachingProvider(inner, cache, ttl=ttl, clock=clock), inner, clock


def run(fn: Callable[[], Any]) -> Any:
    return asyncio.run(fn())


async def drain(events: AsyncIterator[StreamEvent]) -> tuple[list[str], ModelResponse]:
    texts: list[str] = []
    end: ModelResponse | None = None
    async for event in events:
        if isinstance(event, TextDelta):
            texts.append(event.text)
        else:
            end = event.response
    assert end is not None
    return texts, end


# -- keys ---------------------------------------------------------------------------------


def test_key_ignores_turn_but_not_anything_else() -> None:
    base = ask()
    assert request_key(base) == request_key(ask(turn=7))
    assert len(request_key(base)) == 64
    different = [
        ask("Summarise the changelog."),
        ask(model="openai:gpt-4.1"),
        ask(max_tokens=100),
        ask(temperature=0.0),
        ask(tools=(ToolSpec("git_log"),)),
        ModelRequest(MODEL, (ChatMessage("system", "Summarise the changelog"),)),
    ]
    keys = {request_key(r) for r in different}
    assert len(keys) == len(different)
    assert request_key(base) not in keys


def test_cacheable_unless_temperature_above_zero() -> None:
    assert is_cacheable(ask())
    assert is_cacheable(ask(temperature=0.0))
    assert not is_cacheable(ask(temperature=0.7))


# -- hits and misses ----------------------------------------------------------------------


def test_miss_then_hit_costs_nothing_and_marks_the_saving(cache: ResponseCache) -> None:
    provider, inner, _ = make(cache)

    async def main() -> tuple[ModelResponse, ModelResponse, ModelResponse]:
        first = await provider.complete(ask(), {})
        second = await provider.complete(ask(turn=3), {})
        third = await provider.complete(ask("something else"), {})
        return first, second, third

    first, second, third = run(main)
    assert inner.calls == 2
    assert first.cache is None
    assert first.usage == Usage(120, 30, cached_tokens=20)
    assert first.route  # a miss is returned unchanged
    assert second.text == first.text
    assert second.usage == Usage()
    assert second.route == ()
    assert second.cache == {
        "hit": True,
        "key": request_key(ask()),
        "saved": {"prompt_tokens": 120, "completion_tokens": 30, "cached_tokens": 20},
    }
    assert third.cache is None
    assert third.text.endswith("#2")
    assert ModelResponse.from_dict(second.to_dict()) == second
    assert cache.stats().entries == 2


def test_entries_expire_after_ttl(cache: ResponseCache) -> None:
    provider, inner, clock = make(cache, ttl=30)

    async def main() -> list[ModelResponse]:
        answers = [await provider.complete(ask(), {})]
        clock.advance(29.9)
        answers.append(await provider.complete(ask(), {}))
        clock.advance(0.1)  # exactly ttl after the write: expired
        answers.append(await provider.complete(ask(), {}))
        clock.advance(10)
        answers.append(await provider.complete(ask(), {}))
        return answers

    answers = run(main)
    assert [a.cache is not None for a in answers] == [False, True, False, True]
    assert inner.calls == 2
    assert answers[3].text == answers[2].text  # the refreshed answer


def test_purge_removes_only_expired(cache: ResponseCache) -> None:
    cache.put("old", {"text": "a", "model": MODEL, "usage": {}}, now=0, ttl=10)
    cache.put("new", {"text": "b", "model": MODEL, "usage": {}}, now=5, ttl=10)
    assert cache.purge(now=12) == 1
    assert cache.get("old", now=0) is None
    entry = cache.get("new", now=12)
    assert entry is not None
    assert (entry.model, entry.created, entry.expires) == (MODEL, 5, 15)
    assert cache.stats().entries == 1


def test_ttl_must_be_positive(cache: ResponseCache) -> None:
    with pytest.raises(ValueError, match="positive"):
        CachingProvider(counting(), cache, ttl=0)
    with pytest.raises(ValueError, match="positive"):
        cache.put("k", {"text": "", "model": MODEL}, now=0, ttl=-1)


def test_positive_temperature_bypasses_the_cache(cache: ResponseCache) -> None:
    provider, inner, _ = make(cache)

    async def main() -> list[ModelResponse]:
        return [await provider.complete(ask(temperature=0.8), {}) for _ in range(2)]

    first, second = run(main)
    assert inner.calls == 2
    assert first.text != second.text
    assert second.cache is None
    assert cache.stats().entries == 0


@pytest.mark.parametrize("reason", ["length", "content_filter"])
def test_truncated_or_filtered_answers_are_not_cached(cache: ResponseCache, reason: str) -> None:
    provider, inner, _ = make(cache, counting(finish_reason=reason))

    async def main() -> None:
        await provider.complete(ask(), {})
        await provider.complete(ask(), {})
        await drain(provider.stream(ask(), {}))

    run(main)
    assert inner.calls == 3
    assert cache.stats().entries == 0


def test_a_failed_call_stores_nothing(cache: ResponseCache) -> None:
    provider, _, _ = make(cache, TestModel(RuntimeError("provider exploded")))
    with pytest.raises(RuntimeError, match="exploded"):
        run(lambda: provider.complete(ask(), {}))
    assert cache.stats().entries == 0


def test_tool_calls_and_no_finish_reason_are_cached(cache: ResponseCache) -> None:
    tooling = TestModel(
        Reply(calls=[Call("git_log", id="c1")], usage=Usage(40, 9), finish_reason=None)
    )
    provider, inner, _ = make(cache, tooling)

    async def main() -> list[ModelResponse]:
        return [await provider.complete(ask(), {}) for _ in range(2)]

    first, second = run(main)
    assert inner.calls == 1
    assert second.tool_calls == first.tool_calls
    assert second.finish_reason is None


# -- streams ------------------------------------------------------------------------------


def test_stream_miss_passes_through_and_a_hit_is_one_delta(cache: ResponseCache) -> None:
    provider, inner, _ = make(cache)

    async def main() -> tuple[Any, Any, ModelResponse]:
        miss = await drain(provider.stream(ask(), {}))
        hit = await drain(provider.stream(ask(), {}))
        completed = await provider.complete(ask(), {})
        return miss, hit, completed

    (miss_texts, miss_end), (hit_texts, hit_end), completed = run(main)
    assert inner.calls == 1
    assert miss_texts == ["three ", "fixes ", "and ", "one ", "feature ", "#1"]
    assert miss_end.cache is None
    assert miss_end.usage.prompt_tokens == 120
    assert hit_texts == [miss_end.text]
    assert hit_end.usage == Usage()
    assert hit_end.cache is not None
    assert hit_end.cache["saved"]["prompt_tokens"] == 120
    assert completed.cache is not None  # a streamed answer serves later completes too
    assert inner.streams_closed == 1


def test_stream_is_stored_even_if_the_consumer_stops_at_the_end(cache: ResponseCache) -> None:
    provider, inner, _ = make(cache)

    async def main() -> ModelResponse:
        events = provider.stream(ask(), {})
        async for event in events:
            if isinstance(event, StreamEnd):
                break
        await events.aclose()  # type: ignore[attr-defined]
        return await provider.complete(ask(), {})

    assert run(main).cache is not None
    assert inner.calls == 1
    assert inner.streams_closed == 1


def test_an_abandoned_stream_stores_nothing_and_closes_the_inner_one(cache: ResponseCache) -> None:
    provider, inner, _ = make(cache)

    async def main() -> None:
        events = provider.stream(ask(), {})
        first = await anext(events)
        assert isinstance(first, TextDelta)
        await events.aclose()  # type: ignore[attr-defined]
        assert inner.streams_closed == 1  # closed at once, not when collected

    run(main)
    assert cache.stats().entries == 0


def test_stream_over_a_provider_that_cannot_stream(cache: ResponseCache) -> None:
    inner = TestModel(Reply("plain answer", usage=Usage(10, 2)))
    provider = CachingProvider(inner.complete_only(), cache, ttl=60.0, clock=ManualClock())

    async def main() -> tuple[Any, Any]:
        return await drain(provider.stream(ask(), {})), await drain(provider.stream(ask(), {}))

    (texts, end), (hit_texts, hit_end) = run(main)
    assert (texts, end.text) == ([], "plain answer")
    assert (hit_texts, hit_end.cache is not None) == (["plain answer"], True)
    assert inner.calls == 1


def test_stream_with_positive_temperature_is_not_cached(cache: ResponseCache) -> None:
    provider, inner, _ = make(cache)

    async def main() -> None:
        for _ in range(2):
            await drain(provider.stream(ask(temperature=1.0), {}))

    run(main)
    assert inner.calls == 2
    assert cache.stats().entries == 0


# -- storage ------------------------------------------------------------------------------


def test_memory_cache_hands_out_copies() -> None:
    cache = MemoryResponseCache()
    cache.put("k", {"text": "a", "model": MODEL, "usage": {"prompt_tokens": 1}}, now=0, ttl=5)
    entry = cache.get("k", now=1)
    assert entry is not None
    entry.response["usage"]["prompt_tokens"] = 99
    again = cache.get("k", now=1)
    assert again is not None
    assert again.response["usage"]["prompt_tokens"] == 1
    assert cache.stats() == type(cache.stats())(entries=1, hits=2, misses=0, writes=1)


def test_sqlite_cache_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "responses.db"
    clock = ManualClock()

    async def call(cache: SQLiteResponseCache, inner: TestModel) -> ModelResponse:
        return await CachingProvider(inner, cache, ttl=3600, clock=clock).complete(ask(), {})

    inner = counting()
    with SQLiteResponseCache(path) as first:
        original = asyncio.run(call(first, inner))
    clock.advance(60)
    with SQLiteResponseCache(path) as second:
        replayed = asyncio.run(call(second, inner))
        assert second.stats().entries == 1
    assert inner.calls == 1
    assert replayed.text == original.text
    assert replayed.cache is not None
    assert path.parent.is_dir()
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_two_sqlite_instances_from_threads(tmp_path: Path) -> None:
    path = tmp_path / "responses.db"
    errors: list[BaseException] = []
    # a worker that cannot open the file must fail the test, not leave the other waiting
    start = threading.Barrier(2, timeout=60)

    def worker(name: str) -> None:
        try:
            with SQLiteResponseCache(path) as cache:
                start.wait()
                for i in range(150):
                    cache.put(f"{name}-{i}", {"text": f"{name}{i}", "model": MODEL}, now=0, ttl=60)
                    shared = f"shared-{i % 10}"
                    cache.put(shared, {"text": name, "model": MODEL}, now=0, ttl=60)
                    assert cache.get(f"{name}-{i}", now=1) is not None
                    assert cache.get(shared, now=1) is not None
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with SQLiteResponseCache(path) as cache:
        assert cache.stats().entries == 310
        entry = cache.get("b-149", now=1)
        assert entry is not None
        assert entry.response == {"text": "b149", "model": MODEL}


def test_one_sqlite_instance_shared_by_threads(tmp_path: Path) -> None:
    with SQLiteResponseCache(tmp_path / "responses.db") as cache:

        def worker(offset: int) -> None:
            for i in range(100):
                cache.put(str(offset + i), {"text": "x", "model": MODEL}, now=0, ttl=60)
                cache.get(str(offset + i), now=0)

        threads = [threading.Thread(target=worker, args=(n * 1000,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = cache.stats()
        assert (stats.entries, stats.writes, stats.hits) == (400, 400, 400)


def test_a_file_that_is_not_a_database_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "responses.db"
    path.write_text("this is not sqlite, it is a shopping list\n" * 100)
    with pytest.raises(UserError, match=r"responses\.db is not a SQLite database"):
        SQLiteResponseCache(path)


# -- savings ------------------------------------------------------------------------------

PRICES = PricingTable.from_mapping(
    {
        "models": {
            "openai:gpt-4.1-mini": {"input": "0.40", "cached_input": "0.10", "output": "1.60"},
            "anthropic:claude-haiku-4-5": {"input": "1", "output": "5"},
        }
    }
)


def test_savings_are_exact(cache: ResponseCache) -> None:
    provider, _, _ = make(cache)  # usage 120 prompt (20 cached), 30 completion

    async def main() -> list[ModelResponse]:
        return [await provider.complete(ask(), {}) for _ in range(4)]

    responses = run(main)
    claude_hit = {
        "text": "ok",
        "model": "anthropic:claude-haiku-4-5",
        "usage": {"prompt_tokens": 0, "completion_tokens": 0},
        "cache": {"hit": True, "key": "k", "saved": {"prompt_tokens": 7, "completion_tokens": 3}},
    }
    unpriced_hit = {**claude_hit, "model": "ollama:qwen2.5-coder"}
    result = savings([*responses, claude_hit, unpriced_hit], PRICES)
    # per gpt hit: (100 * 0.40 + 20 * 0.10 + 30 * 1.60) / 1e6 = 0.00009
    # the claude hit: (7 * 1 + 3 * 5) / 1e6 = 0.000022
    assert result == CacheSavings(
        hits=5, tokens_saved=3 * 150 + 10 + 10, usd_saved=Decimal("0.000292"), unpriced=1
    )
    assert result.usd_saved == Decimal("3") * Decimal("0.00009") + Decimal("0.000022")
    assert result.to_dict()["usd_saved"] == str(result.usd_saved)
    assert savings([responses[0]], PRICES) == CacheSavings()


def test_a_response_without_the_marker_serialises_as_before() -> None:
    plain = ModelResponse("hi", MODEL, Usage(1, 1), finish_reason="stop")
    assert "cache" not in plain.to_dict()
    assert ModelResponse.from_dict(plain.to_dict()) == plain
