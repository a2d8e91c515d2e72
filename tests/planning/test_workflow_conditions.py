"""``nexus validate`` on conditions: ``when`` reads only the tasks in ``needs``, and says so."""

from __future__ import annotations

from typing import Any

import pytest

from nexus.domain.errors import WorkflowError
from nexus.domain.plan import plan_hash
from nexus.planning import WorkflowBuilder
from nexus.planning.workflow import compile_workflow


def flow(**deploy: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "wf",
        "inputs": {"go": True},
        "tasks": {
            "check": {"tool": "noop"},
            "build": {"tool": "noop", "needs": ["check"]},
            "deploy": {"tool": "noop", "needs": ["build"], **deploy},
        },
    }


def problems(doc: dict[str, Any]) -> list[str]:
    try:
        compile_workflow(doc, file="flow.yaml")
    except WorkflowError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_when_may_read_its_needs_and_inputs() -> None:
    assert problems(flow(when="{{ tasks.build.output and inputs.go }}")) == []
    assert problems(flow(when="{{ tasks['build'].status == 'succeeded' }}")) == []


def test_when_may_not_read_a_task_it_only_needs_indirectly() -> None:
    # ``with`` may read tasks.check (a transitive need); a condition may not
    found = problems(flow(when="{{ tasks.check.output }}"))
    assert found == [
        "flow.yaml, task 'deploy', field 'when': the condition reads tasks.check, which is "
        "not in the task's needs; a condition may only read the tasks the task needs "
        "(add 'check' to needs)"
    ]


def test_when_reading_an_unknown_task_or_input_is_named() -> None:
    found = problems(flow(when="{{ tasks.nope.output }}"))
    assert len(found) == 1
    assert "field 'when'" in found[0]
    assert "there is no task 'nope'" in found[0]
    found = problems(flow(when="{{ inputs.og }}"))
    assert len(found) == 1
    assert "field 'when'" in found[0]
    assert "inputs.og" in found[0]


def test_when_on_foreach_reads_no_item() -> None:
    found = problems(flow(foreach=[1, 2], when="{{ item }}"))
    assert len(found) == 1
    assert "field 'when'" in found[0]
    assert "item" in found[0]


def test_when_syntax_error_is_named() -> None:
    found = problems(flow(when="{{ tasks.build.output ) }}"))
    assert len(found) == 1
    assert "field 'when'" in found[0]


def test_when_must_be_text() -> None:
    found = problems(flow(when=["x"]))
    assert len(found) == 1
    assert "when" in found[0]


@pytest.mark.parametrize("when", [None, "{{ tasks.build.output.ok }}"])
def test_builder_and_file_give_the_same_plan(when: str | None) -> None:
    wf = WorkflowBuilder("wf", inputs={"go": True})
    check = wf.task("check", tool="noop")
    build = wf.task("build", tool="noop", needs=[check])
    wf.task("deploy", tool="noop", needs=[build], when=when)
    doc = flow() if when is None else flow(when=when)
    from_file = compile_workflow(doc, file="flow.yaml")
    from_code = wf.compile()
    assert from_code.tasks["deploy"].when == when
    assert plan_hash(from_code) == plan_hash(from_file)
