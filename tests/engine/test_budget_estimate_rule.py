"""A run the preflight estimate passes is not refused its first call (issue 11, bug 4).

The estimate and the reservation a call makes before it runs count a call's
tokens by one rule (:mod:`nexus.budget.spend`): a run whose budget is exactly
its estimate, for an agent without ``max_tokens``, gets its first call. Before,
each call reserved 1,024 completion tokens while the estimate assumed 512, so
such a run passed the gate and paused before its first call with nothing spent.

The model is the test kit's ``TestModel``, priced so that money moves.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from nexus.budget.estimate import DEFAULT_COMPLETION_TOKENS
from nexus.budget.spend import RESERVED_COMPLETION, estimate_request_usage
from nexus.domain.plan import AgentSpec, Plan, TaskSpec
from nexus.domain.state import RunState
from nexus.gateway import ChatMessage, ModelRequest, PricingTable
from nexus.gateway.base import Usage
from nexus.gateway.pricing import cost_of
from nexus.testing import Reply, TestModel, temp_engine

PRICES = PricingTable.from_mapping(
    {"currency": "USD", "models": {"test:*": {"input": "2.00", "output": "8.00"}}}
)
INSTRUCTIONS = "You write short release notes."
PROMPT = "Summarise the changes in one line."


def plan(budget: dict[str, object] | None = None) -> Plan:
    writer = AgentSpec("writer", model="test:writer", instructions=INSTRUCTIONS)
    task = TaskSpec("notes", agent="writer", prompt=PROMPT)
    return Plan("notes", {"notes": task}, {"writer": writer}, budget=budget)


@pytest.mark.parametrize("dimension", ["usd", "tokens"])
def test_a_budget_equal_to_the_estimate_admits_the_first_call(dimension: str) -> None:
    model = TestModel(Reply("Faster start-up.", usage=Usage(40, 5)))

    async def main() -> tuple[str, RunState]:
        async with temp_engine(providers=model.registry(), pricing=PRICES) as engine:
            estimate, over = engine.preflight(plan())
            assert not over
            budget = (
                {"usd": str(estimate.usd)} if dimension == "usd" else {"tokens": estimate.tokens}
            )
            result = await engine.start(plan(budget))
            state, _ = await engine.load_state(result.run_id)
            return result.status, state

    status, state = asyncio.run(main())
    assert status == "succeeded", state.tasks["notes"].last_error
    assert model.calls == 1


def test_the_estimate_and_the_reservation_count_a_call_alike() -> None:
    assert DEFAULT_COMPLETION_TOKENS == RESERVED_COMPLETION
    request = ModelRequest(
        "test:writer",
        (ChatMessage("system", INSTRUCTIONS), ChatMessage("user", PROMPT)),
    )
    reserved = estimate_request_usage(request.to_dict())
    model = TestModel()

    async def main() -> int:
        async with temp_engine(providers=model.registry(), pricing=PRICES) as engine:
            estimate, _ = engine.preflight(plan())
            return estimate.tokens

    assert reserved.total_tokens == asyncio.run(main())
    assert reserved.completion_tokens == RESERVED_COMPLETION
    assert cost_of(reserved, "test:writer", PRICES) > Decimal(0)
