"""Model routing per task: the catalog, route policies and choose_models."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any, TypedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.domain.errors import PolicyDenied, UserError
from nexus.gateway.base import Usage
from nexus.gateway.pricing import PricingTable, cost_of, default_pricing
from nexus.gateway.routing import (
    TIERS,
    Considered,
    ModelCatalog,
    ModelChoice,
    ModelInfo,
    Residency,
    RoutePolicy,
    choose_models,
    default_catalog,
)

NANO = "openai:gpt-4.1-nano"
MINI = "openai:gpt-4.1-mini"
BIG = "openai:gpt-4.1"
HAIKU = "anthropic:claude-haiku-4-5"
SONNET = "anthropic:claude-sonnet-4-5"


class Tokens(TypedDict):
    prompt_tokens: int
    completion_tokens: int


TOKENS: Tokens = {"prompt_tokens": 1000, "completion_tokens": 100}


def est(model: str) -> Decimal:
    return cost_of(Usage(prompt_tokens=1000, completion_tokens=100), model)


# -- the catalog ----------------------------------------------------------------------------


def test_the_catalog_covers_every_priced_model() -> None:
    catalog = default_catalog()
    missing = [name for name in default_pricing().prices if name not in catalog.models]
    assert missing == []
    assert catalog is default_catalog(), "the default catalog is loaded once"


def test_the_shipped_catalog_file_is_the_default(tmp_path: Path) -> None:
    shipped = Path(__file__).parents[2] / "src/nexus/gateway/models.json"
    assert ModelCatalog.load(shipped) == default_catalog()
    assert default_catalog().as_of


def test_local_and_offline_wildcards() -> None:
    catalog = default_catalog()
    for model in ("ollama:qwen2.5-coder", "vllm:llama", "openai_compatible:lab/q"):
        info = catalog.info_for(model)
        assert info is not None
        assert info.tier == "medium"
    assert catalog.info_for("scripted:anything") == ModelInfo("small", 0, 1000000)
    # a cassette is routed alike under its name and its former one
    assert catalog.info_for("cassette:demo") == catalog.info_for("replay:demo") is not None


def test_lookup_rules_follow_the_pricing_table() -> None:
    catalog = ModelCatalog(
        {
            "anthropic:claude-sonnet-4-5": ModelInfo("large", 9000, 200000),
            "openai_compatible:lab/*": ModelInfo("large", 100, 8192),
            "openai_compatible:*": ModelInfo("medium", 3000, 32768),
        }
    )
    assert catalog.info_for("anthropic:claude-sonnet-4-5-20250929") == ModelInfo(
        "large", 9000, 200000
    )
    assert catalog.info_for("anthropic:claude-sonnet-4-5-latest") is not None
    assert catalog.info_for("openai_compatible:lab/qwen") == ModelInfo("large", 100, 8192)
    assert catalog.info_for("openai_compatible:other") == ModelInfo("medium", 3000, 32768)
    assert catalog.info_for("anthropic:claude-opus-9") is None
    merged = catalog.merged(ModelCatalog({"x:y": ModelInfo("small", 1, 1)}, as_of="2030"))
    assert merged.info_for("x:y") is not None
    assert merged.as_of == "2030"
    assert merged.info_for("openai_compatible:lab/qwen") is not None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"tier": "huge", "latency_ms": 1, "context": 1}, r"'openai:m'.*'tier'.*huge"),
        ({"latency_ms": 1, "context": 1}, r"'openai:m'.*'tier'"),
        ({"tier": "small", "latency_ms": 1.5, "context": 1}, r"'openai:m'.*'latency_ms'"),
        ({"tier": "small", "latency_ms": -1, "context": 1}, r"'openai:m'.*'latency_ms'"),
        ({"tier": "small", "latency_ms": True, "context": 1}, r"'openai:m'.*'latency_ms'"),
        ({"tier": "small", "latency_ms": 1, "context": 0}, r"'openai:m'.*'context'"),
        ({"tier": "small", "latency_ms": 1}, r"'openai:m'.*'context'"),
        ({"tier": "small", "latency_ms": 1, "context": 1, "speed": 2}, r"'openai:m'.*speed"),
        ("large", r"'openai:m' must map"),
    ],
)
def test_bad_catalog_entries_name_the_model_and_field(entry: Any, message: str) -> None:
    with pytest.raises(UserError, match=message):
        ModelCatalog.from_mapping({"models": {"openai:m": entry}})


def test_bad_catalogs(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="'models' mapping"):
        ModelCatalog.from_mapping({})
    with pytest.raises(UserError, match="'gpt' must be written provider:model"):
        ModelCatalog.from_mapping({"models": {"gpt": {}}})
    broken = tmp_path / "models.json"
    broken.write_text("{nope")
    with pytest.raises(UserError, match="cannot read model catalog"):
        ModelCatalog.load(broken)
    broken.write_text("[]")
    with pytest.raises(UserError, match="JSON object"):
        ModelCatalog.load(broken)
    with pytest.raises(UserError, match="cannot read"):
        ModelCatalog.load(tmp_path / "absent.json")


# -- route policies -------------------------------------------------------------------------


def test_route_policy_round_trips_with_money_as_strings() -> None:
    policy = RoutePolicy(tier="medium", max_cost=Decimal("0.0100"), max_latency_ms=4000)
    data = policy.to_dict()
    assert data == {"tier": "medium", "max_cost": "0.01", "max_latency_ms": 4000}
    assert json.loads(json.dumps(data)) == data
    assert RoutePolicy.from_dict(data) == policy
    assert RoutePolicy().to_dict() == {}
    assert not RoutePolicy().constrained
    assert RoutePolicy(max_cost=Decimal(0)).constrained
    assert RoutePolicy.from_dict({"max_cost": 2}).to_dict() == {"max_cost": "2"}
    assert RoutePolicy(max_cost=Decimal("1E+2")).to_dict() == {"max_cost": "100"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"max_cost": 0.01}, "'max_cost' must be a string or integer"),
        ({"max_cost": True}, "'max_cost' must be a string or integer"),
        ({"max_cost": "cheap"}, "'max_cost' is not a number"),
        ({"max_cost": "-1"}, "'max_cost' must be a non-negative"),
        ({"max_cost": "NaN"}, "'max_cost' must be a non-negative"),
        ({"tier": "xl"}, "'tier' must be one of small, medium, large"),
        ({"max_latency_ms": 0}, "'max_latency_ms' must be an integer >= 1"),
        ({"max_latency_ms": "5s"}, "'max_latency_ms'"),
        ({"budget": 1}, "unknown field.*budget"),
    ],
)
def test_bad_route_policies(data: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        RoutePolicy.from_dict(data)


# -- choosing without constraints -----------------------------------------------------------


def test_no_constraints_keep_the_declared_order() -> None:
    choice = choose_models((SONNET, MINI, "ollama:qwen"), RoutePolicy(), **TOKENS)
    assert choice.chain == (SONNET, MINI, "ollama:qwen")
    assert choice.model == SONNET
    assert choice.why == f"agent's model {SONNET}; fallbacks {MINI}, ollama:qwen"
    assert [c.verdict for c in choice.considered] == ["chosen", "fallback", "fallback"]
    assert choice.considered[0].reason == "the agent's model"
    assert choice.considered[1].reason == "fallback 1 (declared order)"
    alone = choose_models((MINI,), RoutePolicy(), **TOKENS)
    assert alone.why == f"agent's model {MINI}; no fallbacks"


def test_no_constraints_still_honour_residency() -> None:
    residency = Residency(strict=True, providers=("openai",))
    choice = choose_models((SONNET, MINI, SONNET), RoutePolicy(), residency=residency, **TOKENS)
    assert choice.chain == (MINI,)
    assert choice.why == (
        f"agent's model {SONNET} is excluded; using {MINI}; no fallbacks; excluded "
        f"{SONNET} (residency: provider not allowed; allowed: openai)"
    )
    assert choice.considered[-1] == Considered(
        SONNET, "excluded", "residency: provider not allowed; allowed: openai", est(SONNET), 9000
    )


def test_tier_map_models_join_the_candidates_in_tier_order() -> None:
    tiers = {"large": SONNET, "small": NANO}
    choice = choose_models((MINI,), RoutePolicy(), tiers=tiers, **TOKENS)
    assert choice.chain == (MINI, NANO, SONNET)


# -- choosing by tier -----------------------------------------------------------------------


def test_a_tier_picks_the_cheapest_model_of_that_tier_or_above() -> None:
    candidates = (BIG, NANO, HAIKU, MINI)
    residency = Residency(strict=True, providers=("openai",))
    choice = choose_models(candidates, RoutePolicy(tier="medium"), residency=residency, **TOKENS)
    assert choice.chain == (MINI, BIG)
    assert choice.why == (
        f"tier medium: {MINI} is the cheapest eligible (est $0.00056/call, ~5 s); 1 fallback; "
        f"excluded {NANO} (tier small < medium), "
        f"{HAIKU} (residency: provider not allowed; allowed: openai)"
    )
    assert [(c.model, c.verdict) for c in choice.considered] == [
        (MINI, "chosen"),
        (BIG, "fallback"),
        (NANO, "excluded"),
        (HAIKU, "excluded"),
    ]
    assert choice.considered[0].est_cost == Decimal("0.00056")
    assert choice.considered[1].reason == "fallback 1 (by cost)"


def test_the_agents_tier_model_leads_even_when_dearer() -> None:
    choice = choose_models(
        (MINI, HAIKU), RoutePolicy(tier="medium"), tiers={"medium": SONNET}, **TOKENS
    )
    assert choice.chain == (SONNET, MINI, HAIKU)
    assert choice.why.startswith(f"tier medium: {SONNET} is the agent's medium model (est $")
    assert choice.why.endswith("; 2 fallbacks")
    small = choose_models((BIG,), RoutePolicy(tier="small"), tiers={"small": NANO}, **TOKENS)
    assert small.chain == (NANO, BIG)


def test_the_tier_model_bypasses_the_tier_check_but_not_the_filters() -> None:
    local = "ollama:tiny"
    chosen = choose_models((BIG,), RoutePolicy(tier="large"), tiers={"large": local}, **TOKENS)
    assert chosen.chain == (local, BIG)
    residency = Residency(strict=True, providers=("openai",))
    denied = choose_models(
        (BIG,), RoutePolicy(tier="large"), tiers={"large": local}, residency=residency, **TOKENS
    )
    assert denied.chain == (BIG,)
    assert "cheapest eligible" in denied.why


def test_ties_and_unpriced_models() -> None:
    unknown_cost = "openai:gpt-9"
    catalog = default_catalog().merged(ModelCatalog({unknown_cost: ModelInfo("large", 1000, 1000)}))
    choice = choose_models(
        (unknown_cost, "vllm:b", "ollama:a", BIG),
        RoutePolicy(tier="medium"),
        catalog=catalog,
        **TOKENS,
    )
    # local models cost 0 and keep their declared order; the unpriced one goes last
    assert choice.chain == ("vllm:b", "ollama:a", BIG, unknown_cost)
    assert choice.considered[-1].est_cost is None
    assert "est $0/call, ~3 s" in choice.why


def test_models_missing_from_the_catalog_fail_tier_and_latency() -> None:
    mystery = "openai:gpt-9"
    choice = choose_models((mystery, MINI), RoutePolicy(tier="small"), **TOKENS)
    assert choice.chain == (MINI,)
    assert f"{mystery} (not in the model catalog, tier unknown)" in choice.why
    fast = choose_models((mystery, MINI), RoutePolicy(max_latency_ms=9000), **TOKENS)
    assert fast.chain == (MINI,)
    assert "latency unknown, limit 9 s" in fast.why


# -- filters --------------------------------------------------------------------------------


def test_a_cost_ceiling_filters_in_declared_order_without_a_tier() -> None:
    ceiling = est(MINI)
    choice = choose_models(
        (SONNET, MINI, NANO, "ollama:q"), RoutePolicy(max_cost=ceiling), **TOKENS
    )
    assert choice.chain == (MINI, NANO, "ollama:q")
    assert choice.why == (
        f"max $0.00056/call: {MINI} is the first eligible in declared order "
        f"(est $0.00056/call, ~5 s); 2 fallbacks; "
        f"excluded {SONNET} (est $0.0045/call > ceiling $0.00056)"
    )


def test_unpriced_remote_models_fail_a_cost_ceiling() -> None:
    choice = choose_models(("mystery:m", MINI), RoutePolicy(max_cost=Decimal(1)), **TOKENS)
    assert choice.chain == (MINI,)
    assert "mystery:m (no price, cannot meet the $1/call ceiling)" in choice.why


def test_a_latency_limit() -> None:
    choice = choose_models((SONNET, NANO, "scripted:s"), RoutePolicy(max_latency_ms=3000), **TOKENS)
    assert choice.chain == (NANO, "scripted:s")
    assert f"{SONNET} (~9 s > limit 3 s)" in choice.why
    quick = choose_models(("scripted:s",), RoutePolicy(max_latency_ms=500), **TOKENS)
    assert "(est $0/call, ~0 ms)" in quick.why


def test_tokens_drive_the_estimate() -> None:
    policy = RoutePolicy(max_cost=Decimal("0.001"))
    small = choose_models((MINI,), policy, prompt_tokens=100, completion_tokens=10)
    assert small.chain == (MINI,)
    with pytest.raises(UserError):
        choose_models((MINI,), policy, prompt_tokens=100_000, completion_tokens=10)


def test_custom_pricing_changes_the_order() -> None:
    pricing = PricingTable.from_mapping(
        {"models": {MINI: {"input": "9", "output": "9"}, BIG: {"input": "0", "output": "0"}}}
    )
    choice = choose_models((MINI, BIG), RoutePolicy(tier="medium"), pricing=pricing, **TOKENS)
    assert choice.chain == (BIG, MINI)


# -- nothing left ---------------------------------------------------------------------------


def test_nothing_left_is_a_user_error_listing_each_model() -> None:
    with pytest.raises(UserError) as info:
        choose_models(
            (NANO, SONNET), RoutePolicy(tier="medium", max_cost=Decimal("0.001")), **TOKENS
        )
    assert not isinstance(info.value, PolicyDenied)
    assert str(info.value) == (
        "no model is left to route to (tier medium, max $0.001/call): "
        f"{NANO}: tier small < medium; {SONNET}: est $0.0045/call > ceiling $0.001"
    )


def test_nothing_left_because_of_residency_is_policy_denied() -> None:
    residency = Residency(strict=True, providers=("ollama",))
    with pytest.raises(PolicyDenied) as info:
        choose_models((MINI, NANO), RoutePolicy(tier="medium"), residency=residency, **TOKENS)
    assert str(info.value) == (
        "no model is left to route to (tier medium): "
        f"{MINI}: residency: provider not allowed; allowed: ollama; "
        f"{NANO}: residency: provider not allowed; allowed: ollama"
    )
    assert info.value.kind == "policy_denied"


@pytest.mark.parametrize(
    ("candidates", "tiers", "tokens", "message"),
    [
        ((), {}, (1, 1), "no candidate models"),
        (("gpt-4.1",), {}, (1, 1), "must be written provider:model"),
        ((MINI,), {"huge": BIG}, (1, 1), "unknown tier 'huge'"),
        ((MINI,), {}, (-1, 1), "may not be negative"),
    ],
)
def test_bad_inputs(
    candidates: tuple[str, ...], tiers: dict[str, str], tokens: tuple[int, int], message: str
) -> None:
    with pytest.raises(UserError, match=message):
        choose_models(
            candidates,
            RoutePolicy(),
            tiers=tiers,
            prompt_tokens=tokens[0],
            completion_tokens=tokens[1],
        )


def test_a_choice_serialises_to_json_and_back() -> None:
    choice = choose_models((BIG, "mystery:x", MINI), RoutePolicy(tier="medium"), **TOKENS)
    data = choice.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["considered"][0] == {
        "model": MINI,
        "verdict": "chosen",
        "reason": "the cheapest eligible",
        "est_cost": "0.00056",
        "latency_ms": 5000,
    }
    assert data["considered"][-1]["est_cost"] is None
    assert ModelChoice.from_dict(data) == choice
    with pytest.raises(UserError, match="verdict"):
        Considered.from_dict({**data["considered"][0], "verdict": "maybe"})


# -- properties -----------------------------------------------------------------------------

POOL = (
    *sorted(
        default_pricing().prices.keys()
        - {"ollama:*", "vllm:*", "scripted:*", "cassette:*", "replay:*"}
    ),
    "ollama:qwen",
    "vllm:llama",
    "openai_compatible:lab",
    "scripted:s",
    "openai:gpt-9",
    "mystery:m",
)
PROVIDERS = sorted({m.partition(":")[0] for m in POOL})

policies = st.builds(
    RoutePolicy,
    tier=st.none() | st.sampled_from(TIERS),
    max_cost=st.none() | st.decimals(min_value=0, max_value=1, places=5),
    max_latency_ms=st.none() | st.integers(1, 40000),
)
residencies = st.builds(
    Residency,
    strict=st.booleans(),
    providers=st.lists(st.sampled_from([*PROVIDERS, "openai:gpt-4.1*"])).map(tuple),
)
tier_maps = st.dictionaries(st.sampled_from(TIERS), st.sampled_from(POOL))


def _choose(
    candidates: list[str],
    policy: RoutePolicy,
    tiers: dict[str, str],
    residency: Residency,
    tokens: tuple[int, int],
) -> ModelChoice | str:
    try:
        return choose_models(
            candidates,
            policy,
            tiers=tiers,
            residency=residency,
            prompt_tokens=tokens[0],
            completion_tokens=tokens[1],
        )
    except PolicyDenied as exc:
        return f"denied: {exc}"
    except UserError as exc:
        return f"invalid: {exc}"


@settings(max_examples=150, deadline=None)
@given(
    candidates=st.lists(st.sampled_from(POOL), max_size=6),
    policy=policies,
    tiers=tier_maps,
    residency=residencies,
    tokens=st.tuples(st.integers(0, 200_000), st.integers(0, 20_000)),
)
def test_routing_properties(
    candidates: list[str],
    policy: RoutePolicy,
    tiers: dict[str, str],
    residency: Residency,
    tokens: tuple[int, int],
) -> None:
    result = _choose(candidates, policy, tiers, residency, tokens)
    # deterministic, and independent of the tier map's dict order
    assert _choose(candidates, policy, dict(reversed(tiers.items())), residency, tokens) == result
    pool = set(candidates) | set(tiers.values())
    if isinstance(result, str):
        if result.startswith("denied"):
            assert any(residency.denies(m) for m in pool)
        else:
            assert not pool or all(residency.denies(m) is None for m in pool)
        return
    assert result.chain
    assert len(set(result.chain)) == len(result.chain)
    assert set(result.chain) <= pool
    assert all(residency.denies(m) is None for m in result.chain)
    assert {c.model for c in result.considered} == pool
    assert len(result.considered) == len(pool)
    assert tuple(c.model for c in result.considered if c.verdict != "excluded") == result.chain
    assert result.considered[0].verdict == "chosen"
    if policy.max_cost is not None:
        for model in result.chain:
            cost = next(c.est_cost for c in result.considered if c.model == model)
            assert cost is not None
            assert cost <= policy.max_cost
    if policy.tier is not None and policy.tier not in tiers:
        costs = [next(c.est_cost for c in result.considered if c.model == m) for m in result.chain]
        first = costs[0]
        if first is None:
            assert all(cost is None for cost in costs)
        else:
            assert all(cost is None or first <= cost for cost in costs)
    if not policy.constrained:
        order = list(dict.fromkeys([*candidates, *(tiers[t] for t in TIERS if t in tiers)]))
        assert list(result.chain) == [m for m in order if m in result.chain]
