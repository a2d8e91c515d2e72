"""What a paused run says ran out, and the flag that raises it (nexus.budget.pause)."""

from __future__ import annotations

from decimal import Decimal

from nexus.budget.pause import SpentLimit, pause_advice, spent_limits
from nexus.domain.budget import Scope, Spend
from nexus.domain.canonical import GENESIS_HASH
from nexus.domain.events import Draft, EventType, seal
from nexus.domain.payloads import RunStarted
from nexus.domain.plan import AgentSpec, Plan, TaskSpec
from nexus.domain.state import RunState

RUN = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def test_each_scope_and_dimension_gets_its_own_words_and_flag() -> None:
    cases = [
        (
            SpentLimit(Scope("run"), "tokens", 30, 32),
            "the run's tokens budget ran out (limit 30 tokens, 32 tokens used)",
            "tokens=60",
        ),
        (
            SpentLimit(Scope("agent", "coder"), "usd", Decimal("0.5"), Decimal("0.51")),
            "agent coder's usd budget ran out (limit $0.5000, $0.5100 spent)",
            "agent.coder.usd=1",
        ),
        (
            SpentLimit(Scope("task", "fix"), "tool_calls", 4, 4),
            "task fix's tool_calls budget ran out (limit 4 tool calls, 4 tool calls made)",
            "task.fix.tool_calls=8",
        ),
        (
            SpentLimit(Scope("run"), "wall", 600.0),
            "the run's wall budget ran out (limit 600 s)",
            "wall=1200",
        ),
        (SpentLimit(Scope("run"), "usd", Decimal(0), Decimal(0)), None, "usd=1"),
    ]
    for limit, words, flag in cases:
        if words is not None:
            assert limit.describe() == words
        assert limit.flag == flag


def test_the_advice_lists_every_limit_and_one_command() -> None:
    spent = [
        SpentLimit(Scope("run"), "tokens", 30, 32),
        SpentLimit(Scope("agent", "coder"), "tool_calls", 2, 2),
    ]
    assert pause_advice(RUN, spent) == [
        "the run's tokens budget ran out (limit 30 tokens, 32 tokens used)",
        "agent coder's tool_calls budget ran out (limit 2 tool calls, 2 tool calls made)",
        f"see: nexus cost {RUN}",
        f"raise it and go on: nexus resume {RUN} --budget tokens=60 "
        "--budget agent.coder.tool_calls=4",
    ]


def test_a_tenant_budget_is_raised_in_nexus_toml_not_with_a_flag() -> None:
    tenant = SpentLimit(Scope("tenant", "acme"), "usd")
    assert tenant.flag is None
    assert tenant.describe() == "tenant acme's usd budget ran out"
    assert pause_advice(RUN, [tenant])[-2:] == [
        "raise [budgets.tenant] usd in nexus.toml (tenant acme's budget is shared by its runs)",
        f"then go on: nexus resume {RUN}",
    ]


def test_without_a_known_limit_the_advice_stays_general() -> None:
    assert pause_advice(RUN, []) == [
        f"a budget ran out; see: nexus cost {RUN}",
        f"raise it and go on: nexus resume {RUN} --budget DIMENSION=AMOUNT",
    ]


def test_spent_limits_reads_the_crossings_not_raised_since() -> None:
    agent = AgentSpec("coder", model="scripted:coder", budget={"usd": "1"})
    plan = Plan(
        "p", {"t": TaskSpec("t", agent="coder", prompt="x")}, {"coder": agent}, budget={"tokens": 9}
    )
    started = RunStarted(
        name="p",
        plan=plan.to_dict(),
        plan_hash="h",
        inputs={},
        workspace="/tmp",
        source=None,
    )
    first = seal(
        RUN,
        1,
        Draft(EventType.RUN_STARTED, "2026-01-01T00:00:00Z", started.to_data()),
        GENESIS_HASH,
    )
    state = RunState.start(first)
    state.spent = {"run:": Spend(tokens=12), "agent:coder": Spend(usd=Decimal("1.2"))}
    state.reported = {
        ("run:", "tokens", "0.8"),
        ("run:", "tokens", "1"),
        ("agent:coder", "usd", "1"),
        ("tenant:acme", "usd", "1"),
    }
    assert spent_limits(state) == [
        SpentLimit(Scope("agent", "coder"), "usd", Decimal("1"), Decimal("1.2")),
        SpentLimit(Scope("run"), "tokens", 9, 12),
        SpentLimit(Scope("tenant", "acme"), "usd"),
    ]
