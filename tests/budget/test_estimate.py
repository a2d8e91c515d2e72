"""Preflight estimate of a plan: instances, routing, tokens, prices, and the method in words."""

from __future__ import annotations

from decimal import Decimal

import pytest

from nexus.budget.estimate import (
    DEFAULT_COMPLETION_TOKENS,
    MESSAGE_OVERHEAD_TOKENS,
    compare,
    estimate_plan,
    preflight_check,
)
from nexus.domain.budget import BudgetLimitExceeded, Limits, Scope, Spend
from nexus.domain.errors import UserError
from nexus.domain.plan import AgentSpec, Plan, TaskSpec
from nexus.gateway.base import Usage
from nexus.gateway.pricing import PricingTable, cost_of

D = Decimal
MINI = "openai:gpt-4.1-mini"  # 0.40 in, 1.60 out per million
INSTRUCTIONS = "You write short release notes."  # 30 characters -> 8 tokens
PROMPT = "Summarise the changes."  # 22 characters -> 6 tokens


def _plan(tasks: list[TaskSpec], agents: list[AgentSpec]) -> Plan:
    return Plan("p", {t.id: t for t in tasks}, {a.name: a for a in agents})


def _writer(model: str = MINI, **extra: object) -> AgentSpec:
    return AgentSpec("writer", model=model, instructions=INSTRUCTIONS, **extra)  # type: ignore[arg-type]


def test_one_agent_task_by_hand() -> None:
    plan = _plan([TaskSpec("notes", agent="writer", prompt=PROMPT)], [_writer()])
    estimate = estimate_plan(plan)
    prompt = (8 + MESSAGE_OVERHEAD_TOKENS) + (6 + MESSAGE_OVERHEAD_TOKENS)
    completion = DEFAULT_COMPLETION_TOKENS
    expected = (prompt * D("0.40") + completion * D("1.60")) / 1_000_000
    task = estimate.per_task["notes"]
    assert (task.prompt_tokens, task.completion_tokens, task.calls) == (prompt, completion, 1)
    assert task.usd == expected
    assert (task.agent, task.model, task.instances, task.exact) == ("writer", MINI, 1, False)
    assert estimate.usd == expected
    assert estimate.tokens == prompt + completion
    assert estimate.calls == 1
    assert estimate.unpriced == ()
    assert estimate.by_agent["writer"].usd == expected


def test_completion_tokens_argument_and_its_validation() -> None:
    plan = _plan([TaskSpec("notes", agent="writer", prompt=PROMPT)], [_writer()])
    few = estimate_plan(plan, completion_tokens=10)
    assert few.per_task["notes"].completion_tokens == 10
    assert "completion tokens are 10 per call (the figure given)" in few.method
    assert f"{DEFAULT_COMPLETION_TOKENS} per call (the default)" in estimate_plan(plan).method
    with pytest.raises(UserError, match="completion_tokens must be >= 0"):
        estimate_plan(plan, completion_tokens=-1)


def test_foreach_literal_multiplies_by_its_length() -> None:
    one = TaskSpec("notes", agent="writer", prompt=PROMPT)
    three = TaskSpec("notes", agent="writer", prompt=PROMPT, foreach=["a", "b", "c"])
    none = TaskSpec("notes", agent="writer", prompt=PROMPT, foreach=[])
    single = estimate_plan(_plan([one], [_writer()]))
    triple = estimate_plan(_plan([three], [_writer()]))
    assert triple.per_task["notes"].instances == 3
    assert triple.calls == 3
    assert triple.tokens == 3 * single.tokens
    assert triple.usd == 3 * single.usd
    assert triple.per_task["notes"].notes == ()
    empty = estimate_plan(_plan([none], [_writer()]))
    assert (empty.calls, empty.tokens, empty.usd) == (0, 0, D(0))


def test_template_foreach_counts_once_and_says_so() -> None:
    task = TaskSpec("notes", agent="writer", prompt=PROMPT, foreach="{{ inputs.platforms }}")
    estimate = estimate_plan(_plan([task], [_writer()]))
    share = estimate.per_task["notes"]
    assert share.instances == 1
    assert share.notes == ("foreach is a template, unknown before the run: counted as 1 instance",)
    assert "a template foreach counts as 1 instance" in estimate.method
    guessed = "Guessed from templates (the real count or length is known only at run time): notes."
    assert guessed in estimate.method


def test_template_prompt_is_counted_as_written_with_a_note() -> None:
    prompt = "Review {{ tasks.draft.output }}"
    estimate = estimate_plan(
        _plan([TaskSpec("review", agent="writer", prompt=prompt)], [_writer()])
    )
    share = estimate.per_task["review"]
    assert share.prompt_tokens == (8 + 4) + (8 + 4)  # 31 characters -> 8 tokens
    assert "values templates pull in are not counted" in share.notes[0]
    assert "review." in estimate.method


def test_capability_routes_to_the_first_capable_agent_by_name() -> None:
    agents = [
        AgentSpec("zed", model="anthropic:claude-sonnet-4-5", capabilities=("write",)),
        AgentSpec("amy", model=MINI, capabilities=("write", "code")),
        AgentSpec("bob", model="openai:gpt-5", capabilities=("review",)),
    ]
    task = TaskSpec("notes", capability="write", prompt=PROMPT)
    estimate = estimate_plan(_plan([task], agents))
    share = estimate.per_task["notes"]
    assert (share.agent, share.model) == ("amy", MINI)
    usage = Usage(6 + 4, DEFAULT_COMPLETION_TOKENS)
    assert share.usd == cost_of(usage, MINI)


def test_unknown_agent_or_capability_is_a_user_error() -> None:
    with pytest.raises(UserError, match="task 'x': no agent has capability 'fly'"):
        estimate_plan(_plan([TaskSpec("x", capability="fly", prompt="p")], [_writer()]))
    with pytest.raises(UserError, match="task 'x': unknown agent 'ghost'"):
        estimate_plan(_plan([TaskSpec("x", agent="ghost", prompt="p")], [_writer()]))


def test_unpriced_model_is_listed_and_left_out_of_the_cost() -> None:
    agents = [_writer(), AgentSpec("lab", model="openai_compatible:lab/mystery")]
    tasks = [
        TaskSpec("a", agent="writer", prompt=PROMPT),
        TaskSpec("b", agent="lab", prompt=PROMPT),
    ]
    estimate = estimate_plan(_plan(tasks, agents))
    assert estimate.unpriced == ("openai_compatible:lab/mystery",)
    assert estimate.per_task["b"].usd is None
    assert estimate.per_task["b"].notes == (
        "no price for 'openai_compatible:lab/mystery': cost not counted",
    )
    assert estimate.usd == estimate.per_task["a"].usd
    assert estimate.tokens == estimate.per_task["a"].tokens + estimate.per_task["b"].tokens
    assert "No price, left out of the cost: openai_compatible:lab/mystery." in estimate.method
    assert estimate.to_dict()["per_task"]["b"]["usd"] is None


def test_deployment_pricing_table_is_used() -> None:
    table = PricingTable.from_mapping(
        {"models": {"openai_compatible:lab/*": {"input": "1", "output": "2"}}}
    )
    plan = _plan(
        [TaskSpec("b", agent="lab", prompt=PROMPT)],
        [AgentSpec("lab", model="openai_compatible:lab/mystery")],
    )
    estimate = estimate_plan(plan, pricing=table, completion_tokens=100)
    assert estimate.unpriced == ()
    assert estimate.usd == (10 * D(1) + 100 * D(2)) / 1_000_000
    assert "pricing table." in estimate.method  # this table has no as_of date


def test_scripted_costs_zero_exactly_and_counts_words() -> None:
    agent = AgentSpec(
        "bot",
        model="scripted:bot",
        instructions="Be brief.",
        scripted=("ok", "three words here"),
    )
    task = TaskSpec("t", agent="bot", prompt="say something nice", foreach=["x", "y"])
    estimate = estimate_plan(_plan([task], [agent]))
    share = estimate.per_task["t"]
    assert share.usd == 0
    assert share.exact
    assert (share.prompt_tokens, share.completion_tokens) == (2 * 5, 2 * 3)
    assert share.calls == 2
    assert estimate.usd == 0
    assert estimate.unpriced == ()


def test_function_agents_and_tool_tasks() -> None:
    agents = [AgentSpec("fn", model="function:fn", capabilities=("calc",))]
    tasks = [
        TaskSpec("calc", capability="calc", prompt="2+2"),
        TaskSpec("fetch", tool="http.get", args={"url": "x"}, foreach=[1, 2]),
    ]
    estimate = estimate_plan(_plan(tasks, agents))
    calc, fetch = estimate.per_task["calc"], estimate.per_task["fetch"]
    assert (calc.calls, calc.tokens, calc.usd, calc.exact) == (0, 0, D(0), True)
    assert calc.notes == ("function agent: no model call",)
    assert (fetch.agent, fetch.model, fetch.tool_calls, fetch.calls) == (None, None, 2, 0)
    assert (estimate.calls, estimate.tool_calls, estimate.usd) == (0, 2, D(0))
    assert "fn" in estimate.by_agent


def test_estimate_to_dict_is_json_with_money_as_text() -> None:
    plan = _plan([TaskSpec("notes", agent="writer", prompt=PROMPT)], [_writer()])
    data = estimate_plan(plan, completion_tokens=100).to_dict()
    assert data["usd"] == "0.0001688"  # (22 * 0.40 + 100 * 1.60) / 1e6
    assert data["tokens"] == 122
    assert data["calls"] == 1
    assert data["tool_calls"] == 0
    assert data["unpriced"] == []
    assert data["by_agent"] == {"writer": {"usd": "0.0001688", "tokens": 122, "tool_calls": 0}}
    assert data["per_task"]["notes"]["prompt_tokens"] == 22
    assert data["method"].startswith("One model call per agent-task instance")


def test_preflight_check_compares_run_agent_and_task_budgets() -> None:
    agents = [_writer(), AgentSpec("fn", model="function:fn")]
    tasks = [
        TaskSpec("notes", agent="writer", prompt=PROMPT, foreach=list(range(10))),
        TaskSpec("fetch", tool="http.get", foreach=[1, 2, 3]),
    ]
    estimate = estimate_plan(_plan(tasks, agents), completion_tokens=100)  # $0.001688, 1,220 tokens
    assert preflight_check(estimate, {Scope("run", "r"): Limits(usd=D("0.01"))}) == []
    errors = preflight_check(
        estimate,
        {
            Scope("run", "r"): Limits(usd=D("0.001"), tool_calls=5),
            Scope("agent", "writer"): Limits(tokens=1000),
            Scope("agent", "fn"): Limits(tokens=0),
            Scope("task", "fetch"): Limits(tool_calls=2),
            Scope("task", "missing"): Limits(usd=D(0)),
        },
    )
    assert all(isinstance(e, BudgetLimitExceeded) for e in errors)
    assert [e.message for e in errors] == [
        "budget exceeded: the preflight estimate for run is $0.001688, over its limit $0.0010",
        "budget exceeded: the preflight estimate for agent writer is 1,220 tokens, "
        "over its limit 1,000 tokens",
        "budget exceeded: the preflight estimate for task fetch is 3 tool calls, "
        "over its limit 2 tool calls",
    ]
    assert errors[0].to_data()["budget"] == {
        "scope": "run",
        "key": "r",
        "dimension": "usd",
        "limit": "0.001",
        "spent": "0",
        "reserved": "0",
        "asked": "0.001688",
    }


def test_compare_estimate_with_actual() -> None:
    assert compare(D("0.012"), D("0.010")) == {
        "estimate": "0.012",
        "actual": "0.01",
        "error": "0.002",
        "abs_error": "0.002",
        "relative_error": 0.2,
    }
    under = compare(D("0.005"), D("0.010"))
    assert (under["error"], under["abs_error"], under["relative_error"]) == ("-0.005", "0.005", 0.5)
    assert compare(D(0), D(0))["relative_error"] == 0.0
    assert compare(D("0.01"), D(0))["relative_error"] is None


def test_the_total_is_the_sum_of_the_tasks_spend() -> None:
    """The totals add each task's spend exactly as ``Spend`` adds (an unpriced model
    counting $0), though they are summed without a ``Spend`` per task."""
    plan = _plan(
        [
            TaskSpec("notes", agent="writer", prompt=PROMPT),
            TaskSpec("odd", agent="odd", prompt=PROMPT),
            TaskSpec("fetch", tool="noop"),
            TaskSpec("each", tool="noop", foreach=[1, 2, 3]),
        ],
        [_writer(), AgentSpec("odd", model="openai_compatible:lab/mystery")],
    )
    estimate = estimate_plan(plan)
    spends = [task.spend for task in estimate.per_task.values()]
    total = sum(spends, Spend())
    assert estimate.spend == total
    assert str(estimate.usd) == str(total.usd)  # the same Decimal, exponent and all
    assert (estimate.tokens, estimate.tool_calls) == (total.tokens, 4)
    assert estimate.unpriced == ("openai_compatible:lab/mystery",)
