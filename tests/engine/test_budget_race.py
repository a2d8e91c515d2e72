"""Parallel agents racing for one run budget: reservations admit no more than it holds.

Every model call reserves its worst case (prompt plus ``max_tokens``) before it
runs and settles what it really cost after. The provider here sleeps, so the
admitted calls are all in flight together while the others ask; the pricing
table makes each call cost exactly what it reserves ($1 a completion token,
``max_tokens: 1``), so a budget of $N fits exactly N calls.
"""

from __future__ import annotations

import asyncio
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.budget.report import cost_report
from nexus.domain.events import Event, EventType
from nexus.domain.plan import AgentSpec, Plan, TaskSpec
from nexus.engine.facade import Engine, RunResult
from nexus.gateway.base import Usage
from nexus.gateway.pricing import PricingTable
from nexus.store.sqlite import SQLiteStore
from nexus.testing import Reply, TestModel

E = EventType
#: $1 per completion token, prompts free: a call's reservation is its max_tokens in dollars.
PRICING = PricingTable.from_mapping(
    {"currency": "USD", "models": {"slow:*": {"input": "0", "output": "1000000"}}}
)


def slow_model(delay: float, completion: int = 1) -> TestModel:
    """Answers after ``delay`` seconds with ``completion`` tokens; counts calls in flight."""
    usage = Usage(prompt_tokens=3, completion_tokens=completion)
    return TestModel(Reply("ok", delay=delay, usage=usage))


def race(
    db: Path, model: TestModel, tasks: int, budget: str, *, max_parallel: int, max_tokens: int = 1
) -> tuple[RunResult, list[Event]]:
    spec = AgentSpec(name="a", model="slow:m", max_tokens=max_tokens)
    plan = Plan(
        name="race",
        tasks={f"t{i:02}": TaskSpec(id=f"t{i:02}", agent="a", prompt="go") for i in range(tasks)},
        agents={"a": spec},
        workspace=str(db.parent),
        max_parallel=max_parallel,
        budget={"usd": budget},
    )

    async def main() -> tuple[RunResult, list[Event]]:
        store = SQLiteStore.open(db)
        try:
            engine = Engine(store, providers=model.registry("slow"), pricing=PRICING)
            result = await asyncio.wait_for(engine.start(plan, force=True), 60)
            return result, await store.load(result.run_id)
        finally:
            await store.close()

    return asyncio.run(main())


def model_effects(evs: list[Event]) -> list[dict[str, Any]]:
    return [e.data for e in evs if e.type is E.EFFECT_RECORDED and e.data["kind"] == "model"]


def test_fifty_parallel_agents_against_a_budget_for_ten_get_exactly_ten_calls(
    tmp_path: Path,
) -> None:
    model = slow_model(delay=0.2)
    result, evs = race(tmp_path / "db", model, 50, "10", max_parallel=50)

    assert model.calls == 10
    assert model.peak_in_flight == 10, "the admitted calls did not overlap: no race was run"
    recorded = model_effects(evs)
    paid = [e for e in recorded if e["error"] is None]
    refused = [e for e in recorded if e["error"] is not None]
    assert len(paid) == 10
    assert all(e["spend"] == {"usd": "1", "tokens": 4} for e in paid)
    assert sum(Decimal(e["spend"]["usd"]) for e in paid) == Decimal(10)
    assert len(refused) == 40
    assert {e["error"]["kind"] for e in refused} == {"budget_exceeded"}

    assert result.status == "paused"
    statuses = [t["status"] for t in result.tasks.values()]
    assert statuses.count("succeeded") == 10
    assert statuses.count("paused") == 40
    report = cost_report(evs, PRICING)
    assert report["budgets"]["run"]["spent"]["usd"] == "10"
    assert report["total"]["usd"] == "10"
    # the refusal came while the ten were in flight; the 80% warning when eight had settled
    kinds = {e["type"]: e for e in report["budget_events"]}
    assert sorted(kinds) == ["budget.exceeded", "budget.warning"]
    assert (kinds["budget.exceeded"]["scope"], kinds["budget.exceeded"]["limit"]) == ("run", "10")
    assert kinds["budget.warning"]["spent"] == "8"


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    tasks=st.integers(min_value=1, max_value=12),
    parallel=st.integers(min_value=1, max_value=12),
    cents=st.integers(min_value=0, max_value=1500),
    max_tokens=st.integers(min_value=1, max_value=3),
    completion=st.integers(min_value=0, max_value=3),
)
def test_recorded_spend_never_exceeds_the_run_budget(
    tasks: int, parallel: int, cents: int, max_tokens: int, completion: int
) -> None:
    # a provider that honours max_tokens never writes more than was reserved
    used = min(completion, max_tokens)
    budget = Decimal(cents) / 100
    model = slow_model(delay=0.002, completion=used)
    with tempfile.TemporaryDirectory() as folder:
        result, evs = race(
            Path(folder) / "db",
            model,
            tasks,
            str(budget),
            max_parallel=parallel,
            max_tokens=max_tokens,
        )
    paid = [e for e in model_effects(evs) if e["error"] is None]
    spent = sum((Decimal(e["spend"]["usd"]) for e in paid), Decimal(0))
    assert spent <= budget
    assert all(Decimal(e["spend"]["usd"]) == used for e in paid)
    assert model.calls == len(paid)
    statuses = [t["status"] for t in result.tasks.values()]
    assert statuses.count("succeeded") == len(paid)
    # a call is refused only when its reservation no longer fits
    if budget >= tasks * max_tokens:
        assert result.status == "succeeded"
    else:
        assert len(paid) >= budget // max_tokens
        if len(paid) < tasks:
            assert result.status == "paused"
            assert any(e.type is E.BUDGET_EXCEEDED for e in evs)
