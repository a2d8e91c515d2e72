"""``nexus validate`` on fan-outs: ``agents`` lists known agents once, ``aggregate`` is on a
fan-out and says what it can mean; what a plan without them records is unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from nexus.budget.estimate import estimate_plan
from nexus.domain.errors import WorkflowError
from nexus.domain.plan import AggregatePolicy, Plan, plan_hash
from nexus.planning.workflow import compile_workflow

AGENTS = {
    "a": {"model": "scripted:a", "scripted": ["yes"]},
    "b": {"model": "scripted:b", "scripted": ["no"]},
}
SCHEMA = {"type": "object", "properties": {"verdict": {"type": "string"}}}


def flow(**ask: Any) -> dict[str, Any]:
    task: dict[str, Any] = {"agents": ["a", "b"], "prompt": "Is it? ({{ item }})", **ask}
    return {"version": 1, "name": "wf", "agents": AGENTS, "tasks": {"ask": task}}


def problems(doc: dict[str, Any]) -> list[str]:
    try:
        compile_workflow(doc, file="flow.yaml")
    except WorkflowError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_a_fan_out_compiles_into_the_plan() -> None:
    plan = compile_workflow(
        flow(aggregate={"method": "majority", "key": "verdict"}, output_schema=SCHEMA), file="f"
    )
    ask = plan.tasks["ask"]
    assert ask.agents == ("a", "b")
    assert ask.aggregate == AggregatePolicy(method="majority", key="verdict", quorum=1)
    assert plan.to_dict()["tasks"]["ask"]["aggregate"] == {
        "method": "majority",
        "key": "verdict",
        "quorum": 1,
    }
    assert Plan.from_dict(plan.to_dict()) == plan
    short = compile_workflow(flow(aggregate="vote"), file="f")
    assert short.tasks["ask"].aggregate == AggregatePolicy(method="vote")
    assert plan_hash(short) != plan_hash(plan)


def test_a_plan_without_them_records_neither_key() -> None:
    doc = {"version": 1, "name": "wf", "tasks": {"t": {"tool": "noop", "foreach": [1, 2]}}}
    data = compile_workflow(doc, file="f").to_dict()["tasks"]["t"]
    assert "agents" not in data
    assert "aggregate" not in data


def test_the_estimate_counts_one_call_per_agent() -> None:
    plan = compile_workflow(flow(aggregate="vote"), file="f")
    estimate = estimate_plan(plan)
    ask = estimate.per_task["ask"]
    assert ask.calls == 2
    assert ask.instances == 2
    assert "a fan-out over 2 agents" in ask.notes[-1]
    assert set(estimate.by_agent) == {"a", "b"}
    assert estimate.calls == 2


@pytest.mark.parametrize(
    ("ask", "field", "words"),
    [
        ({"agents": ["a", "zed"]}, "agents[1]", "unknown agent 'zed'"),
        ({"agents": ["a", "a"]}, "agents[1]", "listed twice"),
        ({"agents": []}, "tasks.ask.agents", "at least 1"),
        ({"agent": "a"}, "agent", "remove `agent`"),
        ({"capability": "x"}, "capability", "remove `capability`"),
        ({"foreach": [1, 2]}, "foreach", "cannot also have `foreach`"),
        ({"extend": True}, "extend", "cannot also have `extend`"),
        ({"prompt": None}, "prompt", "needs a `prompt`"),
        ({"aggregate": "plurality"}, "tasks.ask.aggregate.method", "'vote'"),
        (
            {"aggregate": {"method": "vote", "quorom": 2}},
            "tasks.ask.aggregate.quorom",
            "did you mean",
        ),
        (
            {"aggregate": {"method": "vote", "quorum": 3}},
            "aggregate.quorum",
            "the 2 items",
        ),
        ({"aggregate": {"method": "vote", "quorum": 0}}, "tasks.ask.aggregate.quorum", "1"),
        (
            {"aggregate": {"method": "first_success", "key": "verdict"}},
            "aggregate.key",
            "remove `key`",
        ),
        (
            {"aggregate": {"method": "first_success", "quorum": 1}},
            "aggregate.quorum",
            "remove `quorum`",
        ),
        (
            {"aggregate": {"method": "vote", "key": "verdict"}},
            "aggregate.key",
            "output_schema",
        ),
        (
            {"aggregate": {"method": "vote", "key": "a..b"}, "output_schema": SCHEMA},
            "aggregate.key",
            "dotted path",
        ),
    ],
)
def test_bad_fan_outs_are_refused_naming_the_field(
    ask: dict[str, Any], field: str, words: str
) -> None:
    doc = flow(**ask)
    if ask.get("prompt", "") is None:
        del doc["tasks"]["ask"]["prompt"]
    found = problems(doc)
    assert any(f"field '{field}'" in p and words in p for p in found), found


def test_aggregate_needs_a_fan_out() -> None:
    doc = {
        "version": 1,
        "name": "wf",
        "tasks": {"t": {"tool": "noop", "aggregate": "vote"}},
    }
    found = problems(doc)
    assert any("field 'aggregate'" in p and "give the task a `foreach`" in p for p in found), found


def test_a_tool_fan_out_may_aggregate_on_a_key_and_a_template_foreach_any_quorum() -> None:
    doc = {
        "version": 1,
        "name": "wf",
        "inputs": {"seeds": [1, 2, 3]},
        "tasks": {
            "t": {
                "tool": "noop",
                "foreach": "{{ inputs.seeds }}",
                "with": {"seed": "{{ item }}"},
                "aggregate": {"method": "vote", "key": "seed", "quorum": 9},
            }
        },
    }
    plan = compile_workflow(doc, file="f")
    assert plan.tasks["t"].aggregate == AggregatePolicy(method="vote", key="seed", quorum=9)


def test_a_switch_has_no_fan_out() -> None:
    doc = {
        "version": 1,
        "name": "wf",
        "agents": AGENTS,
        "tasks": {
            "route": {
                "switch": "x",
                "cases": {"default": []},
                "agents": ["a"],
                "aggregate": "vote",
            },
        },
    }
    found = problems(doc)
    assert any("field 'agents'" in p and "runs nothing" in p for p in found), found
    assert any("field 'aggregate'" in p and "runs nothing" in p for p in found), found


def test_an_item_of_an_agents_fan_out_may_read_item() -> None:
    plan = compile_workflow(flow(aggregate="vote"), file="f")
    assert plan.tasks["ask"].prompt == "Is it? ({{ item }})"


def test_a_behaviour_tree_has_no_fan_out_of_agents_nor_aggregate() -> None:
    doc = {
        "version": 1,
        "name": "wf",
        "agents": AGENTS,
        "tasks": {
            "tree": {
                "foreach": [1, 2],
                "bt": {"max_steps": 2, "root": {"action": {"tool": "noop"}}},
                "agents": ["a"],
                "aggregate": "vote",
            }
        },
    }
    found = problems(doc)
    assert any("field 'agents'" in p and "tree" in p for p in found), found
    assert any("field 'aggregate'" in p and "tree" in p for p in found), found
