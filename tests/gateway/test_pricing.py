"""Usage accounting: exact costs from the pricing table, exact sums, streamed = unstreamed."""

from __future__ import annotations

import asyncio
import json
import random
from decimal import Decimal
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from fakeserver import (
    FakeServer,
    anthropic_message,
    anthropic_stream,
    anthropic_usage,
    collect,
    endpoint_for,
    json_reply,
    openai_completion,
    openai_stream,
    openai_usage,
    sse_reply,
    user,
)

from nexus.domain.budget import exactly
from nexus.domain.errors import NotFoundError, UserError
from nexus.gateway.anthropic_provider import AnthropicProvider
from nexus.gateway.base import ChatMessage, ModelRequest, ToolCall, Usage
from nexus.gateway.openai_compat import OpenAICompatProvider
from nexus.gateway.pricing import (
    ModelPrice,
    PricingTable,
    cost_of,
    default_pricing,
    estimate_usage,
)


def test_openai_cost_with_cached_and_reasoning_tokens() -> None:
    # gpt-4.1-mini: 0.40 in, 0.10 cached, 1.60 out per million
    usage = Usage(
        prompt_tokens=10_000, completion_tokens=2_000, cached_tokens=6_000, reasoning_tokens=500
    )
    expected = (
        Decimal(4_000) * Decimal("0.40") + 6_000 * Decimal("0.10") + 2_000 * Decimal("1.60")
    ) / 1_000_000
    assert cost_of(usage, "openai:gpt-4.1-mini") == expected == Decimal("0.0054")


def test_anthropic_cost_with_cache_reads_and_writes() -> None:
    # claude-haiku-4-5: 1.00 in, 0.10 read, 1.25 write, 5.00 out
    usage = Usage(
        prompt_tokens=1210, completion_tokens=40, cached_tokens=1000, cache_write_tokens=200
    )
    expected = (
        10 * Decimal("1.00") + 1000 * Decimal("0.10") + 200 * Decimal("1.25") + 40 * Decimal(5)
    ) / 10**6
    assert cost_of(usage, "anthropic:claude-haiku-4-5") == expected


def test_lookups_strip_dates_and_use_wildcards() -> None:
    usage = Usage(1_000_000, 0)
    assert cost_of(usage, "anthropic:claude-sonnet-4-5-20250929") == Decimal(3)
    assert cost_of(usage, "openai:gpt-4.1-mini-2025-04-14") == Decimal("0.40")
    assert cost_of(usage, "ollama:qwen2.5-coder") == 0
    assert cost_of(usage, "cassette:c.yaml") == cost_of(usage, "replay:c.yaml") == 0
    with pytest.raises(NotFoundError):
        cost_of(usage, "openai:gpt-unknown")


def test_shipped_table_is_valid_data() -> None:
    text = resources.files("nexus.gateway").joinpath("pricing.json").read_text()
    data = json.loads(text)
    table = default_pricing()
    assert table.currency == "USD"
    assert table.as_of
    assert set(table.prices) == set(data["models"])
    for name, price in table.prices.items():
        assert price.cached_input <= price.input, name


def test_table_can_be_overridden_per_deployment(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "currency": "USD",
                "models": {
                    "openai:gpt-4.1-mini": {"input": "0.20", "output": "0.80"},
                    "openai_compatible:lab/*": {"input": "0", "output": "0"},
                },
            }
        )
    )
    mine = PricingTable.load(path)
    assert cost_of(Usage(1_000_000, 0), "openai:gpt-4.1-mini", mine) == Decimal("0.20")
    merged = default_pricing().merged(mine)
    assert merged.price_for("openai:gpt-4.1-mini") == ModelPrice(
        Decimal("0.20"), Decimal("0.20"), Decimal("0.80")
    )
    assert merged.price_for("openai:gpt-4.1") == default_pricing().price_for("openai:gpt-4.1")
    assert cost_of(Usage(5, 5), "openai_compatible:lab/qwen", merged) == 0
    assert merged.price_for("openai_compatible:other/qwen") is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"input": 0.4, "output": "1"}, "not a float"),
        ({"input": "-1", "output": "1"}, "non-negative"),
        ({"input": "1"}, "'output' is missing"),
        ({"input": "abc", "output": "1"}, "not a number"),
    ],
)
def test_bad_prices_are_refused(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        PricingTable.from_mapping({"models": {"x:y": entry}})


# -- the ledger ---------------------------------------------------------------------------


def _exact(usage: Usage, price: dict[str, str]) -> Fraction:
    """The cost computed independently, in rationals, from the JSON strings."""
    cached = Fraction(price.get("cached_input", price["input"]))
    write = Fraction(price.get("cache_write", price["input"]))
    uncached = usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
    total = (
        uncached * Fraction(price["input"])
        + usage.cached_tokens * cached
        + usage.cache_write_tokens * write
        + usage.completion_tokens * Fraction(price["output"])
    )
    return total / 1_000_000


def test_a_thousand_random_calls_add_up_exactly() -> None:
    rng = random.Random(20260101)
    prices = json.loads(resources.files("nexus.gateway").joinpath("pricing.json").read_text())
    models = [m for m in prices["models"] if not m.endswith("*")]
    total = Decimal(0)
    expected = Fraction(0)
    for _ in range(1000):
        model = rng.choice(models)
        prompt = rng.randint(0, 200_000)
        cached = rng.randint(0, prompt)
        written = rng.randint(0, prompt - cached) if model.startswith("anthropic:") else 0
        usage = Usage(
            prompt_tokens=prompt,
            completion_tokens=rng.randint(0, 30_000),
            cached_tokens=cached,
            cache_write_tokens=written,
            reasoning_tokens=0,
        )
        cost = cost_of(usage, model)
        assert isinstance(cost, Decimal)
        assert Fraction(cost) == _exact(usage, prices["models"][model]), model
        with exactly():  # the sum traps any rounding, as a run's spend does
            total += cost
        expected += Fraction(cost)
    assert Fraction(total) == expected


def test_an_unpriced_model_is_not_found_and_a_priced_one_costs_exactly() -> None:
    with pytest.raises(NotFoundError):
        cost_of(Usage(10, 10), "openai_compatible:lab/x")
    assert cost_of(Usage(1_000_000, 0), "openai:gpt-4.1") == Decimal(2)


# -- streamed vs unstreamed -------------------------------------------------------------------


def _both(server: FakeServer, provider: str, model: str) -> tuple[Any, Any]:
    async def main() -> tuple[Any, Any]:
        endpoint = endpoint_for(server, provider)
        adapter: Any = (
            AnthropicProvider(endpoint)
            if provider == "anthropic"
            else OpenAICompatProvider(endpoint)
        )
        try:
            plain = await adapter.complete(user(model=model), {})
            _, streamed = await collect(adapter.stream(user(model=model), {}))
        finally:
            await adapter.aclose()
        return plain, streamed

    return asyncio.run(main())


@pytest.mark.parametrize("seed", range(5))
def test_a_streamed_call_costs_what_the_unstreamed_call_costs(
    server: FakeServer, seed: int
) -> None:
    rng = random.Random(seed)
    prompt, completion = rng.randint(100, 90_000), rng.randint(1, 8_000)
    cached, written = rng.randint(0, prompt // 2), rng.randint(0, 500)
    # OpenAI
    usage = openai_usage(prompt, completion, cached=cached, reasoning=completion // 3)
    server.enqueue(json_reply(openai_completion("x", usage=usage)))
    server.enqueue(sse_reply(openai_stream(["x"], usage=usage)))
    plain, streamed = _both(server, "openai", "openai:o4-mini")
    assert streamed.usage == plain.usage
    assert cost_of(streamed.usage, "openai:o4-mini") == cost_of(plain.usage, "openai:o4-mini")
    assert cost_of(plain.usage, "openai:o4-mini") > 0
    # Anthropic
    usage = anthropic_usage(prompt, completion, cache_read=cached, cache_write=written)
    server.enqueue(json_reply(anthropic_message("x", usage=usage)))
    server.enqueue(sse_reply(anthropic_stream(["x"], usage=usage)))
    model = "anthropic:claude-haiku-4-5"
    plain, streamed = _both(server, "anthropic", model)
    assert streamed.usage == plain.usage
    assert cost_of(streamed.usage, model) == cost_of(plain.usage, model)


def test_estimates_are_marked_and_cover_tools() -> None:
    request = ModelRequest(
        model="ollama:x", messages=(ChatMessage("system", "s" * 40), ChatMessage("user", "u" * 8))
    )
    usage = estimate_usage(request, "a" * 12, [ToolCall("c", "tool", '{"q": 1}')])
    assert usage.estimated
    assert usage.prompt_tokens == (10 + 4) + (2 + 4)
    assert usage.completion_tokens == 3 + 1 + 2
    assert usage.to_dict()["estimated"] is True
