"""``nexus validate`` on switch tasks: every problem names the task and the field."""

from __future__ import annotations

from typing import Any

import pytest

from nexus.domain.errors import WorkflowError
from nexus.domain.plan import Plan, TaskSpec, plan_hash
from nexus.planning import WorkflowBuilder
from nexus.planning.workflow import compile_workflow


def flow(route: dict[str, Any] | None = None, **tasks: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "wf",
        "tasks": {
            "classify": {"tool": "noop", "with": {"kind": "bug"}},
            "route": {
                "needs": ["classify"],
                "switch": "{{ tasks.classify.output.kind }}",
                "cases": {"bug": ["fix"], "default": ["triage"]},
                **(route or {}),
            },
            "fix": {"tool": "noop", "needs": ["route"]},
            "triage": {"tool": "noop", "needs": ["route"]},
            **tasks,
        },
    }


def problems(doc: dict[str, Any]) -> list[str]:
    try:
        compile_workflow(doc, file="flow.yaml")
    except WorkflowError as exc:
        return [str(p) for p in exc.problems]
    return []


def where(field: str, task: str = "route") -> str:
    return f"flow.yaml, task '{task}', field '{field}': "


def test_a_valid_switch_compiles_into_the_plan() -> None:
    plan = compile_workflow(flow({"cases": {"bug": ["fix"], "default": ["triage"]}}), file="f")
    route = plan.tasks["route"]
    assert route.is_switch
    assert route.tool is None
    assert route.prompt is None
    assert route.cases == {"bug": ("fix",), "default": ("triage",)}
    data = plan.to_dict()["tasks"]["route"]
    assert data["switch"] == "{{ tasks.classify.output.kind }}"
    assert data["cases"] == {"bug": ["fix"], "default": ["triage"]}
    assert Plan.from_dict(plan.to_dict()) == plan
    assert "switch" not in plan.to_dict()["tasks"]["fix"]


def test_plans_without_a_switch_keep_their_hash() -> None:
    bare = Plan(name="p", tasks={"a": TaskSpec(id="a", tool="noop")})
    data = bare.to_dict()["tasks"]["a"]
    assert not {"switch", "cases", "loop"} & data.keys()
    # the hash of this plan before switch existed
    assert plan_hash(bare) == plan_hash(Plan.from_dict(bare.to_dict()))


def test_case_targets_are_recorded_sorted_so_their_order_does_not_change_the_hash() -> None:
    a = flow({"cases": {"bug": ["fix", "triage"], "default": []}})
    b = flow({"cases": {"bug": ["triage", "fix"], "default": []}})
    assert plan_hash(compile_workflow(a, file="f")) == plan_hash(compile_workflow(b, file="f"))


def test_a_case_may_be_one_task_id() -> None:
    plan = compile_workflow(flow({"cases": {"bug": "fix", "default": "triage"}}), file="f")
    assert plan.tasks["route"].cases == {"bug": ("fix",), "default": ("triage",)}


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (
            {"switch": None},
            where("cases") + "`cases` needs a `switch`: the template whose value picks a case",
        ),
        (
            {"cases": None},
            where("cases") + "a switch needs `cases`: a mapping from each value to the tasks it "
            "runs, such as {bug: [fix], default: [triage]}",
        ),
        (
            {"tool": "noop"},
            where("tool") + "a switch task runs nothing (its value picks which of its cases "
            "run); remove `tool` and give it to a task of a case",
        ),
        (
            {"with": {"a": 1}},
            where("with") + "a switch task runs nothing (its value picks which of its cases "
            "run); remove `with` and give it to a task of a case",
        ),
        (
            {"retries": 2},
            where("retries") + "a switch task runs nothing (its value picks which of its cases "
            "run); remove `retries` and give it to a task of a case",
        ),
        (
            {"cases": {"bug": ["fix"]}},
            where("cases") + "no `default` case: the switch's value may be anything its template "
            "gives, so say what runs when it names no case (`default: []` runs nothing)",
        ),
        (
            {"cases": {"bug": ["fixx"], "default": ["triage"]}},
            where("cases.bug") + "runs unknown task 'fixx' (did you mean 'fix'?)",
        ),
        (
            {"cases": {"bug": ["route"], "default": ["triage", "fix"]}},
            where("cases.bug") + "a switch cannot route to itself",
        ),
        (
            {"cases": {"bug": ["fix"], "default": ["fix", "triage"]}},
            where("cases.default") + "task 'fix' is in case 'bug' and case 'default'; a task "
            "runs for one case (give another case a task of its own)",
        ),
        (
            {"cases": {"bug": ["fix", "fix"], "default": ["triage"]}},
            where("cases.bug") + "lists 'fix' twice",
        ),
        (
            {"cases": {True: ["fix"], "true": ["triage"], "default": []}},
            where("cases.true") + "case 'true' is written twice: true and \"true\" both name it",
        ),
        (
            {"cases": {1.5: ["fix"], "default": ["triage"]}},
            where("cases") + "case 1.5 is a number; a case is named by a string, a boolean, "
            "a whole number or null",
        ),
        (
            {"cases": {" bug": ["fix"], "default": ["triage"]}},
            where("cases") + "case ' bug' has blanks around it; a value is trimmed before it "
            "is compared, so write 'bug'",
        ),
        (
            {"cases": {"bug": {"tasks": ["fix"]}, "default": ["triage"]}},
            where("cases.bug") + "a case lists the tasks it runs (a list of task ids), "
            "not a mapping",
        ),
        (
            {"switch": "{{ tasks.fix.output ) }}"},
            None,  # a syntax error: named, checked below
        ),
    ],
)
def test_each_problem_names_the_task_and_field(route: dict[str, Any], expected: str | None) -> None:
    found = problems(flow(route))
    if expected is None:
        assert len(found) == 1
        assert found[0].startswith(where("switch"))
        return
    assert found == [expected]


def test_a_case_task_must_need_the_switch() -> None:
    doc = flow()
    doc["tasks"]["fix"]["needs"] = ["classify"]
    assert problems(doc) == [
        where("cases.bug") + "task 'fix' does not need 'route', so it could start before the "
        "switch picks; add 'route' to its needs"
    ]


def test_the_switch_reads_only_the_tasks_it_needs() -> None:
    doc = flow({"switch": "{{ tasks.other.output }}"}, other={"tool": "noop"})
    assert problems(doc) == [
        where("switch") + "the switch reads tasks.other, which is not in the task's needs; "
        "a switch may only read the tasks the task needs (add 'other' to needs)"
    ]
    doc = flow({"switch": "{{ inputs.mode }}"})
    found = problems(doc)
    assert len(found) == 1
    assert found[0].startswith(where("switch"))
    assert "inputs.mode" in found[0]


# -- values an output schema bounds -------------------------------------------------


def schema_flow(cases: dict[Any, Any], prop: dict[str, Any]) -> dict[str, Any]:
    doc = flow({"switch": "{{ tasks.classify.output.data.kind }}", "cases": cases})
    doc["agents"] = {"c": {"model": "scripted:c", "capabilities": ["classify"]}}
    doc["tasks"]["classify"] = {
        "capability": "classify",
        "prompt": "bug or feature?",
        "output_schema": {"type": "object", "properties": {"kind": prop}},
    }
    return doc


def test_values_an_enum_bounds_need_no_default_when_each_has_a_case() -> None:
    enum = {"type": "string", "enum": ["bug", "feature"]}
    assert problems(schema_flow({"bug": ["fix"], "feature": ["triage"]}, enum)) == []
    assert problems(schema_flow({True: ["fix"], False: ["triage"]}, {"type": "boolean"})) == []


def test_a_value_of_the_enum_without_a_case_is_named() -> None:
    enum = {"type": "string", "enum": ["bug", "feature", "question"]}
    assert problems(schema_flow({"bug": ["fix"], "feature": ["triage"]}, enum)) == [
        where("cases") + "no case for 'question', which tasks.classify.output.data.kind "
        "(its output_schema) may be; add a case for each, or a `default`"
    ]
    assert problems(schema_flow({"bug": ["fix"], "default": ["triage"]}, enum)) == []


def test_a_case_the_enum_never_gives_is_named() -> None:
    enum = {"type": "string", "enum": ["bug", "feature"]}
    assert problems(schema_flow({"bug": ["fix"], "featur": ["triage"], "default": []}, enum)) == [
        where("cases.featur") + "case 'featur' can never be picked: "
        "tasks.classify.output.data.kind (its output_schema) is one of bug, feature"
    ]


def test_a_property_the_schema_does_not_bound_needs_a_default() -> None:
    found = problems(schema_flow({"bug": ["fix"]}, {"type": "string"}))
    assert len(found) == 1
    assert "no `default` case" in found[0]


# -- the Python API -----------------------------------------------------------------


def test_builder_and_file_give_the_same_plan() -> None:
    wf = WorkflowBuilder("wf")
    classify = wf.task("classify", tool="noop", args={"kind": "bug"})
    route = wf.task(
        "route",
        needs=[classify],
        switch="{{ tasks.classify.output.kind }}",
        cases={"bug": ["fix"], "default": ["triage"]},
    )
    wf.task("fix", tool="noop", needs=[route])
    wf.task("triage", tool="noop", needs=[route])
    from_code = wf.compile()
    from_file = compile_workflow(flow(), file="flow.yaml")
    assert from_code.to_dict() == from_file.to_dict()
    assert plan_hash(from_code) == plan_hash(from_file)


def test_builder_takes_task_refs_and_typed_case_keys() -> None:
    wf = WorkflowBuilder("wf")
    check = wf.task("check", tool="noop", args={"ok": True})
    fix = wf.task("fix", tool="noop", needs=["route"])  # by id: route comes next
    wf.task(
        "route",
        needs=[check],
        switch="{{ tasks.check.output.ok }}",
        cases={True: [fix], False: [], "default": []},
    )
    plan = wf.compile()
    assert plan.tasks["route"].cases == {"true": ("fix",), "false": (), "default": ()}
