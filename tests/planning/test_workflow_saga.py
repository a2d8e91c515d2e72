"""``nexus validate`` on sagas: ``compensate`` is checked like a task's body, each
problem naming ``compensate.<field>``; ``on_failure`` is ``fail`` or ``compensate``."""

from __future__ import annotations

from typing import Any

import pytest

from nexus.domain.errors import WorkflowError
from nexus.domain.plan import Compensation, Plan, RetryPolicy, plan_hash
from nexus.planning.workflow import compile_workflow
from nexus.planning.workflow._context import WorkflowContext, tool_infos
from nexus.tools.builtins import builtin_tools

AGENTS = {"clerk": {"model": "test:clerk", "capabilities": ["undo"]}}


def flow(top: dict[str, Any] | None = None, **book: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "wf",
        "agents": AGENTS,
        **(top or {}),
        "tasks": {
            "book": {"tool": "noop", "with": {"id": 7}, **book},
            "pay": {"needs": ["book"], "tool": "noop"},
        },
    }


def problems(doc: dict[str, Any]) -> list[str]:
    context = WorkflowContext(tools=tool_infos(builtin_tools()))
    try:
        compile_workflow(doc, file="flow.yaml", context=context)
    except WorkflowError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_compensate_and_on_failure_compile_into_the_plan() -> None:
    undo = {"tool": "shell", "with": {"cmd": "echo undo {{ compensating.output.id }}"}}
    doc = flow({"on_failure": "compensate", "defaults": {"retries": 2}}, compensate=undo)
    doc["tasks"]["pay"]["on_failure"] = "fail"
    plan = compile_workflow(doc, file="f")
    book = plan.tasks["book"]
    assert book.compensate == Compensation(
        tool="shell",
        args={"cmd": "echo undo {{ compensating.output.id }}"},
        retry=RetryPolicy(retries=2),
    )
    assert (book.on_failure, plan.tasks["pay"].on_failure) == ("compensate", "fail")
    assert Plan.from_dict(plan.to_dict()) == plan
    spec = book.compensate.spec(book)
    assert (spec.id, spec.tool, spec.needs) == ("book.compensate", "shell", ())
    agent = {"capability": "undo", "prompt": "undo {{ tasks.book.output }}", "retries": 1}
    with_agent = compile_workflow(flow(compensate=agent), file="f")
    assert with_agent.tasks["book"].compensate == Compensation(
        capability="undo", prompt="undo {{ tasks.book.output }}", retry=RetryPolicy(retries=1)
    )
    assert plan_hash(with_agent) != plan_hash(plan)


def test_a_plan_without_sagas_keeps_its_hash() -> None:
    """Neither key is written when unset: plans recorded before sagas hash the same."""
    plan = compile_workflow(flow(), file="f")
    data = plan.to_dict()["tasks"]["book"]
    assert "compensate" not in data
    assert "on_failure" not in data
    assert compile_workflow(flow({"on_failure": "fail"}), file="f").to_dict() == plan.to_dict()


@pytest.mark.parametrize(
    ("compensate", "field", "words"),
    [
        ({}, "compensate", "the compensation does nothing"),
        ({"tool": "nope"}, "compensate.tool", "unknown tool 'nope'"),
        ({"tool": "shell", "with": {"cmd": 1}}, "compensate.with.cmd", "must be a string"),
        ({"tool": "shell", "with": {"cmd": "x", "cwd": "/"}}, "compensate.with.cwd", "unknown"),
        ({"tool": "shell", "with": {}}, "compensate.with", "missing argument 'cmd'"),
        ({"tool": "noop", "prompt": "x"}, "compensate.prompt", "not both"),
        ({"agent": "zed", "prompt": "x"}, "compensate.agent", "unknown agent 'zed'"),
        ({"capability": "fly", "prompt": "x"}, "compensate.capability", "no agent has"),
        ({"prompt": "x"}, "compensate.prompt", "needs an `agent` or a `capability`"),
        ({"agent": "clerk"}, "compensate.prompt", "needs a `prompt`"),
        ({"agent": "clerk", "prompt": "x", "with": {}}, "compensate.with", "for a tool call"),
        (
            {"tool": "noop", "with": {"x": "{{ compensating.outptu }}"}},
            "compensate.with.x",
            "compensating has task, output, failed",
        ),
        (
            {"tool": "noop", "with": {"x": "{{ tasks.zz.output }}"}},
            "compensate.with.x",
            "no task 'zz'",
        ),
        (
            {"capability": "undo", "prompt": "{{ item }}"},
            "compensate.prompt",
            "only a foreach task has",
        ),
        ({"tool": "noop", "with": {"x": "{{ oops"}}, "compensate.with.x", "oops"),
        ({"tool": "noop", "retry": 2}, "tasks.book.compensate.retry", "did you mean 'retries'"),
        ({"tool": "noop", "timeout": 0}, "tasks.book.compensate.timeout", "greater than 0"),
        (
            {"tool": "noop", "backoff": {"intial": 1}},
            "tasks.book.compensate.backoff.intial",
            "did you mean 'initial'",
        ),
    ],
)
def test_a_bad_compensate_is_reported_naming_its_field(
    compensate: dict[str, Any], field: str, words: str
) -> None:
    found = problems(flow(compensate=compensate))
    assert found, "refused"
    assert any(f"task 'book', field '{field}'" in p and words in p for p in found), found


def test_a_bad_on_failure_is_refused() -> None:
    task = problems(flow(on_failure="undo"))
    assert task == [
        "flow.yaml, task 'book', field 'tasks.book.on_failure': Value error, must be 'fail', "
        "'compensate', 'replan' or {replan: N} (N from 1 to 10), got 'undo'"
    ]
    top = problems(flow({"on_failure": "rollback"}))
    assert top == [
        "flow.yaml, field 'on_failure': Input should be 'fail' or 'compensate', got 'rollback'"
    ]


def test_compensating_outside_a_compensate_is_refused() -> None:
    doc = flow()
    doc["tasks"] = {"a": {"tool": "noop", "with": {"x": "{{ compensating.output }}"}}}
    assert problems(doc) == [
        "flow.yaml, task 'a', field 'with.x': reads compensating, which only a task's "
        "`compensate` has"
    ]


def test_tasks_without_a_body_to_undo_cannot_have_compensate() -> None:
    switch = {
        "version": 1,
        "name": "wf",
        "tasks": {
            "a": {"tool": "noop"},
            "route": {
                "needs": ["a"],
                "switch": "{{ tasks.a.output }}",
                "cases": {"default": []},
                "compensate": {"tool": "noop"},
            },
        },
    }
    (found,) = problems(switch)
    assert "task 'route', field 'compensate': a switch task runs nothing" in found
    (each,) = problems(flow(foreach=[1, 2], compensate={"tool": "noop"}))
    assert "field 'compensate': a foreach task cannot have `compensate`" in each
    # a switch may start a saga all the same: it can fail (no case for its value)
    switch["tasks"]["route"].pop("compensate")
    switch["tasks"]["route"]["on_failure"] = "compensate"
    assert problems(switch) == []


def test_an_mcp_compensation_must_be_granted_by_the_task_profile() -> None:
    doc = flow(
        compensate={"tool": "files.delete", "with": {"path": "x"}},
    )
    doc["mcp_servers"] = {"files": {"command": "files-server"}}
    (found,) = problems(doc)
    assert "field 'compensate.tool': MCP tool 'files.delete' is not granted" in found
    doc["tasks"]["book"]["profile"] = {"mcp_tools": ["files.*"]}
    assert problems(doc) == []
