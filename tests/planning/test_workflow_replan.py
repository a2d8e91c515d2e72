"""``on_failure: replan`` on a task that extends the plan: the issue's spelling of
``extend: {replan: N}``, compiled into the very same plan, and refused with the
task and field named wherever it cannot mean that."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexus.domain.errors import WorkflowError
from nexus.domain.plan import DEFAULT_REPLANS, MAX_REPLANS, ExtendPolicy, plan_hash
from nexus.planning.workflow import Extension, compile_extension, compile_workflow


def flow(top: dict[str, Any] | None = None, **plan: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "wf",
        **(top or {}),
        "tasks": {
            "plan": {"tool": "noop", **plan},
            "after": {"needs": ["plan"], "tool": "noop"},
        },
    }


def problems(doc: dict[str, Any]) -> list[str]:
    try:
        compile_workflow(doc, file="flow.yaml")
    except WorkflowError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_replan_alone_re_plans_the_default_number_of_times() -> None:
    plan = compile_workflow(flow(extend=True, on_failure="replan"), file="f")
    assert plan.tasks["plan"].extend == ExtendPolicy(replan=DEFAULT_REPLANS)
    assert DEFAULT_REPLANS == 1
    # the re-plan is the extension's: the saga setting stays the workflow's
    assert plan.tasks["plan"].on_failure == "fail"


@given(st.integers(min_value=1, max_value=MAX_REPLANS), st.booleans())
def test_on_failure_replan_is_the_same_plan_as_extend_replan(rounds: int, review: bool) -> None:
    spelled = compile_workflow(
        flow(extend={"review": review}, on_failure={"replan": rounds}), file="f"
    )
    classic = compile_workflow(flow(extend={"review": review, "replan": rounds}), file="f")
    assert spelled.to_dict() == classic.to_dict()
    assert plan_hash(spelled) == plan_hash(classic)
    # saying it in both places is fine when both say the same
    both = flow(extend={"review": review, "replan": rounds}, on_failure={"replan": rounds})
    assert plan_hash(compile_workflow(both, file="f")) == plan_hash(classic)


def test_once_the_re_plans_are_used_up_the_workflows_on_failure_decides() -> None:
    plan = compile_workflow(
        flow({"on_failure": "compensate"}, extend=True, on_failure="replan"), file="f"
    )
    assert plan.tasks["plan"].on_failure == "compensate"
    assert plan.tasks["plan"].extend == ExtendPolicy(replan=1)


def test_replan_without_extend_names_the_task_and_field() -> None:
    found = problems(flow(on_failure="replan"))
    assert len(found) == 1
    assert "task 'plan', field 'on_failure'" in found[0]
    assert "does not extend the plan; add `extend: true`" in found[0]
    found = problems(flow(on_failure={"replan": 2}))
    assert "does not extend the plan" in found[0]


def test_two_different_counts_are_refused() -> None:
    found = problems(flow(extend={"replan": 2}, on_failure={"replan": 3}))
    assert len(found) == 1
    assert "task 'plan', field 'on_failure'" in found[0]
    assert "re-plans 3 time(s) and `extend.replan` says 2: say it once" in found[0]
    # an explicit 0 in extend is a count too
    assert "says 0" in problems(flow(extend={"replan": 0}, on_failure="replan"))[0]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("retry", "must be 'fail', 'compensate', 'replan' or {replan: N}"),
        ({"replan": 0}, "`replan` must be a whole number from 1 to 10"),
        ({"replan": MAX_REPLANS + 1}, "from 1 to 10"),
        ({"replan": "2"}, "from 1 to 10"),
        ({"replan": True}, "from 1 to 10"),
        ({"replan": 2, "feedback": "x"}, "must be 'fail', 'compensate', 'replan'"),
        ({}, "must be 'fail', 'compensate', 'replan'"),
        (["replan"], "must be 'fail', 'compensate', 'replan'"),
        (3, "must be 'fail', 'compensate', 'replan'"),
    ],
)
def test_a_bad_on_failure_names_the_task_and_field(value: Any, words: str) -> None:
    found = problems(flow(extend=True, on_failure=value))
    assert len(found) == 1
    assert "task 'plan'" in found[0]
    assert "on_failure" in found[0]
    assert words in found[0]


def test_replan_is_not_a_workflow_wide_setting() -> None:
    for value in ("replan", {"replan": 2}):
        found = problems(flow({"on_failure": value}, extend=True))
        assert len(found) == 1
        assert "field 'on_failure'" in found[0]
        assert "set on that task" in found[0]


def test_an_extension_may_add_a_re_planning_task_within_its_depth() -> None:
    plan = compile_workflow(
        flow({"extensions": {"max_depth": 2}}, extend=True), file="f", known_tools=["noop"]
    )
    extension = Extension(by="plan", existing=plan.tasks, depth=1, room=10, why_room="")
    sub = {"tool": "noop", "extend": True, "on_failure": "replan"}
    added = compile_extension(plan, {"tasks": {"sub": sub}}, extension)
    assert added[0].extend == ExtendPolicy(replan=1)
    with pytest.raises(WorkflowError) as caught:
        compile_extension(
            plan, {"tasks": {"bad": {"tool": "noop", "on_failure": "replan"}}}, extension
        )
    assert "task 'bad', field 'on_failure'" in str(caught.value)
    assert str(caught.value).startswith("the plan extension of task 'plan'")
