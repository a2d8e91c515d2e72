"""A run's failure threshold in a workflow file and the builder: ``max_failures`` and
``max_failure_rate`` reach the plan, bad values are named, and plans without them keep
their bytes and hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nexus.domain.errors import WorkflowError
from nexus.domain.plan import Plan, TaskSpec, plan_hash
from nexus.planning.builder import WorkflowBuilder
from nexus.planning.workflow import compile_workflow


def doc(**top: Any) -> dict[str, Any]:
    return {"version": 1, "name": "wf", "tasks": {"a": {"tool": "noop"}}, **top}


def problems(document: dict[str, Any]) -> list[WorkflowError]:
    try:
        compile_workflow(document, file="flow.yaml")
    except WorkflowError as exc:
        return list(exc.problems)
    return []


def test_the_thresholds_reach_the_plan_and_round_trip() -> None:
    plan = compile_workflow(doc(fail_fast=False, max_failures=3, max_failure_rate=0.25))
    assert (plan.max_failures, plan.max_failure_rate) == (3, 0.25)
    data = plan.to_dict()
    assert (data["max_failures"], data["max_failure_rate"]) == (3, 0.25)
    again = Plan.from_dict(data)
    assert (again.max_failures, again.max_failure_rate) == (3, 0.25)
    assert plan_hash(again) == plan_hash(plan)
    whole = compile_workflow(doc(fail_fast=False, max_failure_rate=1))
    assert whole.to_dict()["max_failure_rate"] == 1  # canonical: an integral rate is an int


def test_a_plan_without_thresholds_keeps_its_bytes_and_hash() -> None:
    plan = Plan(name="p", tasks={"a": TaskSpec(id="a", tool="noop")}, fail_fast=False)
    data = plan.to_dict()
    assert "max_failures" not in data
    assert "max_failure_rate" not in data
    # the hash of this very plan computed by the code before the thresholds existed
    assert plan_hash(plan) == "780f29676adcb4af468011e6bd3edf8efcde804547cd0a66cc12d3dd7dfc8d59"


@pytest.mark.parametrize(
    ("top", "field", "message"),
    [
        ({"fail_fast": False, "max_failures": 0}, "max_failures", "greater than or equal to 1"),
        ({"fail_fast": False, "max_failures": "5"}, "max_failures", "integer"),
        ({"fail_fast": False, "max_failure_rate": 0}, "max_failure_rate", "greater than 0"),
        (
            {"fail_fast": False, "max_failure_rate": 1.5},
            "max_failure_rate",
            "less than or equal to 1",
        ),
        ({"max_failures": 2}, "max_failures", "fail_fast is true (the default)"),
        ({"fail_fast": True, "max_failure_rate": 0.5}, "max_failure_rate", "fail_fast is true"),
    ],
)
def test_bad_thresholds_are_named(top: dict[str, Any], field: str, message: str) -> None:
    (problem,) = problems(doc(**top))
    assert problem.field == field
    assert message in str(problem)


def test_with_fail_fast_the_threshold_is_refused_with_what_to_do() -> None:
    (problem,) = problems(doc(max_failures=2))
    assert str(problem) == (
        "flow.yaml, field 'max_failures': max_failures has no effect while fail_fast is "
        "true (the default): the first failed task already stops the run; set "
        "fail_fast: false"
    )


def test_the_builder_takes_the_thresholds(tmp_path: Path) -> None:
    wf = WorkflowBuilder("wf", fail_fast=False, max_failures=4, max_failure_rate=0.5)
    wf.task("a", tool="noop")
    plan = wf.compile()
    assert (plan.max_failures, plan.max_failure_rate) == (4, 0.5)
    same = compile_workflow(doc(fail_fast=False, max_failures=4, max_failure_rate=0.5))
    assert plan_hash(plan) == plan_hash(same)
    bad = WorkflowBuilder("wf", max_failures=4)
    bad.task("a", tool="noop")
    with pytest.raises(WorkflowError, match="fail_fast is true"):
        bad.compile()
