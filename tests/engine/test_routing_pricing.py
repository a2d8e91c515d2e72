"""Routing estimates with the deployment's prices, recorded in ``run.started`` for replay.

Agent ``a`` answers on ``scripted:a`` with ``scripted:b`` as its fallback; both
are free in the shipped table (``scripted:*``). A deployment that prices
``scripted:a`` high makes a task's ``max_cost`` exclude it, so routing picks
``scripted:b`` -- and the run records the override, so replay (by an engine
priced differently, or not at all) decides the same.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.domain.events import Event, EventType
from nexus.domain.plan import AgentSpec, Plan, TaskSpec
from nexus.engine.facade import Engine
from nexus.gateway.pricing import ModelPrice, PricingTable, default_pricing
from nexus.gateway.routing import price_overrides, pricing_with
from nexus.store.sqlite import SQLiteStore

E = EventType
#: $1,000 per million tokens: one call of a short prompt costs well over a cent
DEAR = ModelPrice(input=Decimal(1000), cached_input=Decimal(1000), output=Decimal(1000))
CHEAP = ModelPrice(input=Decimal("0.5"), cached_input=Decimal("0.5"), output=Decimal(2))


def dear_a() -> PricingTable:
    """The shipped table with ``scripted:a`` priced high."""
    return default_pricing().merged(PricingTable({"scripted:a": DEAR}))


def the_plan(ws: Path, routing: dict[str, Any], model: str = "scripted:a") -> Plan:
    agent = AgentSpec(
        name="a",
        model=model,
        scripted=("hi",),
        fallbacks=("scripted:b",),
        max_tokens=16,
    )
    task = TaskSpec(id="t", agent="a", prompt="say hi", routing=routing)
    return Plan(name="routed", tasks={"t": task}, agents={"a": agent}, workspace=str(ws))


def run(db: Path, fn: Any) -> Any:
    async def main() -> Any:
        store = SQLiteStore.open(db)
        try:
            return await asyncio.wait_for(fn(store), 60)
        finally:
            await store.close()

    return asyncio.run(main())


def start(
    db: Path, plan: Plan, pricing: PricingTable | None, replay_pricing: PricingTable | None = None
) -> tuple[list[Event], dict[str, Any]]:
    """Run ``plan`` priced with ``pricing``; replay it with ``replay_pricing``."""

    async def main(store: SQLiteStore) -> tuple[list[Event], dict[str, Any]]:
        result = await Engine(store, pricing=pricing).start(plan)
        assert result.status == "succeeded", result
        report = await Engine(store, pricing=replay_pricing).replay(result.run_id)
        return await store.load(result.run_id), report.to_dict()

    found: tuple[list[Event], dict[str, Any]] = run(db, main)
    return found


def attempt(events: list[Event]) -> dict[str, Any]:
    return next(e.data for e in events if e.type is E.ATTEMPT_STARTED)


# -- the engine ---------------------------------------------------------------------------


def test_a_deployment_price_steers_routing_and_is_recorded(tmp_path: Path) -> None:
    plan = the_plan(tmp_path, {"max_cost": "0.01"})

    shipped, _ = start(tmp_path / "shipped.db", plan, None)
    assert attempt(shipped)["models"] == ["scripted:a", "scripted:b"]

    events, report = start(tmp_path / "dear.db", plan, dear_a())
    started = events[0].data
    assert started["pricing"] == {
        "models": {"scripted:a": {"input": "1000", "cached_input": "1000", "output": "1000"}}
    }
    data = attempt(events)
    assert data["model"] == "scripted:b"
    assert data["models"] == ["scripted:b"]
    (excluded,) = [c for c in data["model_route"]["considered"] if c["verdict"] == "excluded"]
    assert excluded["model"] == "scripted:a"
    assert "> ceiling $0.01" in excluded["reason"]
    # replayed by an engine on the shipped prices: the recorded ones decide
    assert report["identical"] is True, report


def test_a_tier_orders_by_the_deployment_prices(tmp_path: Path) -> None:
    plan = the_plan(tmp_path, {"tier": "small"})
    shipped, _ = start(tmp_path / "shipped.db", plan, None)
    assert attempt(shipped)["models"] == ["scripted:a", "scripted:b"]

    events, report = start(tmp_path / "dear.db", plan, dear_a(), replay_pricing=dear_a())
    assert attempt(events)["models"] == ["scripted:b", "scripted:a"]
    assert report["identical"] is True, report


def test_a_table_without_a_model_leaves_it_unpriced(tmp_path: Path) -> None:
    # a table of its own, not merged over the shipped one: openai:gpt-4.1 has no price
    # (an unpriced scripted model would count as free: it runs locally)
    own = PricingTable({"scripted:b": CHEAP})
    plan = the_plan(tmp_path, {"max_cost": "0.01"}, model="openai:gpt-4.1")
    events, report = start(tmp_path / "db", plan, own)
    recorded = events[0].data["pricing"]
    assert recorded["models"] == {
        "scripted:b": {"input": "0.5", "cached_input": "0.5", "output": "2"}
    }
    assert set(recorded["removed"]) == set(default_pricing().prices)
    assert recorded["removed"] == sorted(recorded["removed"])
    data = attempt(events)
    assert data["models"] == ["scripted:b"]
    excluded = data["model_route"]["considered"][-1]
    assert excluded["model"] == "openai:gpt-4.1"
    assert excluded["reason"] == "no price, cannot meet the $0.01/call ceiling"
    assert report["identical"] is True, report


def test_shipped_prices_record_nothing_and_old_logs_replay_under_new_prices(
    tmp_path: Path,
) -> None:
    plan = the_plan(tmp_path, {"max_cost": "0.01"})
    same = default_pricing().merged(PricingTable(dict(default_pricing().prices), as_of="today"))
    for name, pricing in (("none", None), ("shipped", default_pricing()), ("same", same)):
        # a run.started without 'pricing' is what every log before this change holds;
        # an engine whose prices changed since still replays it as it ran
        events, report = start(tmp_path / f"{name}.db", plan, pricing, replay_pricing=dear_a())
        assert "pricing" not in events[0].data, name
        assert attempt(events)["model"] == "scripted:a", name
        assert report["identical"] is True, (name, report)


# -- the recorded form --------------------------------------------------------------------

SHIPPED = sorted(default_pricing().prices)
amounts = st.decimals(min_value=0, max_value=10_000, places=3)
prices = st.builds(
    ModelPrice,
    input=amounts,
    cached_input=amounts,
    output=amounts,
    cache_write=st.none() | amounts,
)
names = st.sampled_from(SHIPPED) | st.from_regex(r"acme:[a-z][a-z0-9.-]{0,12}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(
    removed=st.sets(st.sampled_from(SHIPPED)),
    changed=st.dictionaries(names, prices, max_size=6),
)
def test_recorded_overrides_rebuild_the_same_table(
    removed: set[str], changed: dict[str, ModelPrice]
) -> None:
    kept = {n: p for n, p in default_pricing().prices.items() if n not in removed}
    table = PricingTable({**kept, **changed})
    overrides = price_overrides(table)
    if overrides is None:
        assert table.prices == default_pricing().prices
        return
    assert pricing_with(overrides).prices == table.prices
    assert price_overrides(pricing_with(overrides)) == overrides
