"""Workflow fields for LLM agents: tools, routing, budgets, structured output."""

from __future__ import annotations

from typing import Any

import pytest

from nexus.domain.errors import WorkflowError
from nexus.domain.plan import Plan, plan_hash
from nexus.planning.workflow import compile_workflow


def doc(tasks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    agents = {"w": {"model": "scripted:w", "capabilities": ["write"], "scripted": ["hi"]}}
    return {"version": 1, "name": "wf", "agents": agents, "tasks": tasks, **extra}


def error_of(document: dict[str, Any], **kwargs: Any) -> WorkflowError:
    with pytest.raises(WorkflowError) as info:
        compile_workflow(document, file="flow.yaml", **kwargs)
    return info.value


def test_agent_fields_compile_and_round_trip() -> None:
    document = doc({"t": {"agent": "w", "prompt": "go"}})
    document["agents"]["w"].update(
        {
            "role": "coder",
            "tools": ["file.read", "shell"],
            "max_steps": 4,
            "fallbacks": ["anthropic:claude-haiku-4-5"],
            "tiers": {"small": "openai:gpt-4.1-nano", "large": "openai:gpt-4.1"},
            "max_tokens": 300,
            "temperature": 0,
            "budget": {"usd": 0.5, "tool_calls": 20},
            "profile": {"network": ["api.example.com:443"]},
        }
    )
    plan = compile_workflow(document, known_tools=["file.read", "shell"])
    agent = plan.agents["w"]
    assert agent.tools == ("file.read", "shell")
    assert agent.max_steps == 4
    assert agent.fallbacks == ("anthropic:claude-haiku-4-5",)
    assert agent.tiers == {"large": "openai:gpt-4.1", "small": "openai:gpt-4.1-nano"}
    assert agent.budget == {"usd": "0.5", "tool_calls": 20}
    again = Plan.from_dict(plan.to_dict())
    assert again == plan
    assert plan_hash(again) == plan_hash(plan)


def test_plain_agents_keep_their_plan_hash_shape() -> None:
    plan = compile_workflow(doc({"t": {"agent": "w", "prompt": "go"}}))
    data = plan.to_dict()
    assert set(data["agents"]["w"]) == {
        "name",
        "role",
        "model",
        "capabilities",
        "instructions",
        "scripted",
        "max_concurrency",
    }
    assert set(data["tasks"]["t"]) >= {"id", "prompt"}
    assert "budget" not in data
    assert "output_schema" not in data["tasks"]["t"]


def test_task_fields_compile() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    plan = compile_workflow(
        doc(
            {
                "t": {
                    "capability": "write",
                    "prompt": "go",
                    "output_schema": schema,
                    "complexity": "medium",
                    "max_cost": 0.02,
                    "max_latency_ms": 5000,
                    "budget": {"tokens": 1000},
                }
            },
            budget={"usd": "2.50", "wall": "10m"},
        )
    )
    task = plan.tasks["t"]
    assert task.output_schema == schema
    assert task.routing == {"tier": "medium", "max_cost": "0.02", "max_latency_ms": 5000}
    assert task.budget == {"tokens": 1000}
    assert plan.budget == {"usd": "2.5", "wall": 600}
    assert Plan.from_dict(plan.to_dict()) == plan


def test_unknown_agent_tool_is_named() -> None:
    document = doc({"t": {"agent": "w", "prompt": "go"}})
    document["agents"]["w"]["tools"] = ["shell", "nope"]
    error = error_of(document, known_tools=["shell"])
    assert "unknown tool 'nope'" in str(error)
    assert error.field == "agents.w.tools[1]"


def test_mcp_server_tools_are_accepted_for_agents() -> None:
    document = doc({"t": {"agent": "w", "prompt": "go"}})
    document["agents"]["w"]["tools"] = ["time.get_current_time"]
    document["mcp_servers"] = {"time": {"command": "mcp-server-time"}}
    plan = compile_workflow(document, known_tools=["shell"])
    assert plan.agents["w"].tools == ("time.get_current_time",)


@pytest.mark.parametrize(
    ("task", "problem", "field"),
    [
        ({"tool": "noop", "output_schema": {"type": "object"}}, "agent tasks", "output_schema"),
        (
            {"agent": "w", "prompt": "go", "output_schema": {"type": "nonsense"}},
            "not a valid JSON schema",
            "output_schema",
        ),
        ({"tool": "noop", "complexity": "small"}, "agent tasks", "complexity"),
        ({"agent": "w", "prompt": "go", "complexity": "huge"}, "complexity", None),
        ({"agent": "w", "prompt": "go", "max_cost": -1}, "positive amount", "max_cost"),
        ({"agent": "w", "prompt": "go", "max_cost": "lots"}, "positive amount", "max_cost"),
        ({"agent": "w", "prompt": "go", "budget": {"usd": "x"}}, "usd", "budget"),
        ({"agent": "w", "prompt": "go", "budget": {"wall": "soon"}}, "wall", "budget"),
    ],
)
def test_task_field_errors(task: dict[str, Any], problem: str, field: str | None) -> None:
    error = error_of(doc({"t": task}))
    assert problem in str(error)
    assert str(error).startswith("flow.yaml")
    if field is not None:
        assert error.field == field
        assert error.task == "t"


def test_run_budget_error_names_the_field() -> None:
    error = error_of(doc({"t": {"tool": "noop"}}, budget={"usd": -5}))
    assert "budget" in str(error)
    assert error.field == "budget"
