"""``nexus validate`` on barriers: ``needs_any``, ``quorum`` and ``wait`` name real needs,
count within bounds, join the graph (cycles included) and keep a switch's routing."""

from __future__ import annotations

from typing import Any

import pytest

from nexus.domain.errors import WorkflowError
from nexus.domain.plan import BarrierPolicy, Plan, plan_hash
from nexus.planning import Wait, WorkflowBuilder
from nexus.planning.workflow import compile_workflow


def flow(**merge: Any) -> dict[str, Any]:
    tasks: dict[str, Any] = {name: {"tool": "noop"} for name in ("a", "b", "c", "d", "e")}
    tasks["merge"] = {"tool": "noop", **merge}
    return {"version": 1, "name": "wf", "tasks": tasks}


def problems(doc: dict[str, Any]) -> list[str]:
    try:
        compile_workflow(doc, file="flow.yaml")
    except WorkflowError as exc:
        return [str(p) for p in exc.problems]
    return []


def barrier(**merge: Any) -> BarrierPolicy | None:
    return compile_workflow(flow(**merge), file="f").tasks["merge"].barrier


def test_needs_any_joins_the_needs_and_counts_one_of_them() -> None:
    plan = compile_workflow(flow(needs=["a"], needs_any=["b", "c"]), file="f")
    spec = plan.tasks["merge"]
    assert spec.needs == ("a", "b", "c"), "the graph holds every need"
    assert spec.barrier == BarrierPolicy(of=("b", "c"), quorum=1)
    assert plan.to_dict()["tasks"]["merge"]["barrier"] == {"of": ["b", "c"], "quorum": 1}
    assert Plan.from_dict(plan.to_dict()) == plan
    assert barrier(needs_any="b") == BarrierPolicy(of=("b",), quorum=1), "one id, as needs"


def test_a_quorum_counts_needs_or_needs_any() -> None:
    five = ["a", "b", "c", "d", "e"]
    assert barrier(needs=five, quorum=3) == BarrierPolicy(of=tuple(five), quorum=3)
    assert barrier(needs=five, quorum="3 of 5") == BarrierPolicy(of=tuple(five), quorum=3)
    assert barrier(needs=five, quorum=" 3  of  5 ") == BarrierPolicy(of=tuple(five), quorum=3)
    assert barrier(needs=["a"], needs_any=["b", "c", "d"], quorum="2 of 3") == BarrierPolicy(
        of=("b", "c", "d"), quorum=2
    )


def test_a_wait_compiles_its_duration_and_choice() -> None:
    policy = barrier(needs=["a", "b"], wait={"timeout": "1m30s", "on_timeout": "continue"})
    assert policy == BarrierPolicy(of=("a", "b"), quorum=2, timeout=90.0, on_timeout="continue")
    assert barrier(needs=["a"], wait={"timeout": 5}) == BarrierPolicy(
        of=("a",), quorum=1, timeout=5.0, on_timeout="fail"
    )
    data = compile_workflow(flow(needs=["a"], wait={"timeout": 5}), file="f").to_dict()
    assert data["tasks"]["merge"]["barrier"] == {
        "of": ["a"],
        "quorum": 1,
        "timeout": 5,
        "on_timeout": "fail",
    }


def test_a_plan_without_barriers_keeps_its_hash() -> None:
    plain = compile_workflow(flow(needs=["a", "b"]), file="f")
    assert "barrier" not in plain.to_dict()["tasks"]["merge"]
    quorum = compile_workflow(flow(needs=["a", "b"], quorum=1), file="f")
    assert plan_hash(quorum) != plan_hash(plain)


@pytest.mark.parametrize(
    ("merge", "field", "words"),
    [
        ({"needs": ["a", "b"], "quorum": 3}, "quorum", "between 1 and the 2 needs"),
        ({"needs": ["a", "b"], "quorum": 0}, "quorum", "between 1 and the 2 needs"),
        ({"needs": ["a", "b"], "quorum": "1 of 3"}, "quorum", "says 1 of 3, but the task counts 2"),
        ({"needs": ["a", "b"], "quorum": "most"}, "quorum", "'K of N' ('3 of 5'), got 'most'"),
        ({"needs": ["a"], "quorum": True}, "tasks.merge.quorum", "a number of needs"),
        ({"quorum": 1}, "quorum", "a quorum is about the task's needs, and it has none"),
        ({"wait": {"timeout": 1}}, "wait", "a wait is about the task's needs, and it has none"),
        ({"needs_any": []}, "needs_any", "lists no task"),
        ({"needs_any": ["a", "bb"]}, "needs_any", "names unknown task 'bb' (did you mean 'b'?)"),
        ({"needs": ["a"], "needs_any": ["a", "b"]}, "needs_any", "'a' is in both needs"),
        ({"needs_any": ["b", "merge"]}, "needs", "depends on itself"),
        ({"needs_any": ["b"], "quorum": 2}, "quorum", "between 1 and the 1 needs"),
        ({"needs": ["a"], "wait": {"timeout": "0s"}}, "tasks.merge.wait.timeout", "positive"),
        ({"needs": ["a"], "wait": {"timeout": "31d"}}, "tasks.merge.wait.timeout", "30 days"),
        ({"needs": ["a"], "wait": {}}, "tasks.merge.wait.timeout", "missing required key"),
        (
            {"needs": ["a"], "wait": {"timeout": 1, "on_timeout": "skip"}},
            "tasks.merge.wait.on_timeout",
            "'fail' or 'continue'",
        ),
        (
            {"needs": ["a"], "wait": {"timeout": 1, "on_timout": "fail"}},
            "tasks.merge.wait.on_timout",
            "did you mean 'on_timeout'?",
        ),
        ({"needs": ["a"], "needz_any": ["b"]}, "tasks.merge.needz_any", "did you mean 'needs_any'"),
    ],
)
def test_bad_barriers_are_refused_naming_the_field(
    merge: dict[str, Any], field: str, words: str
) -> None:
    found = problems(flow(**merge))
    assert any(f"task 'merge', field '{field}'" in p and words in p for p in found), found


def test_a_cycle_through_needs_any_is_refused() -> None:
    doc = flow(needs_any=["a", "b"])
    doc["tasks"]["a"]["needs"] = ["merge"]
    (problem,) = problems(doc)
    assert "dependency cycle" in problem
    assert "merge" in problem
    assert "'needs'" in problem


def test_templates_may_read_needs_any() -> None:
    ok = flow(needs_any=["a", "b"], **{"with": {"x": "{{ tasks.a.output }}"}})
    assert problems(ok) == []
    stray = flow(needs_any=["a", "b"], **{"with": {"x": "{{ tasks.c.output }}"}})
    assert any("reads tasks.c but does not depend on it" in p for p in problems(stray))


def switched(**target: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "wf",
        "tasks": {
            "a": {"tool": "noop"},
            "pick": {
                "needs": ["a"],
                "switch": "{{ tasks.a.output.k }}",
                "cases": {"x": ["t"], "default": []},
            },
            "t": {"tool": "noop", **target},
        },
    }


def test_a_task_a_switch_routes_to_keeps_the_switch_required() -> None:
    assert problems(switched(needs=["pick"], needs_any=["a"])) == []
    quorum = problems(switched(needs=["pick", "a"], quorum=1))
    assert any("the quorum counts switch 'pick'" in p for p in quorum), quorum
    waits = problems(switched(needs=["pick"], wait={"timeout": 1}))
    assert any("switch 'pick' routes to this task: its wait" in p for p in waits), waits
    moved = problems(switched(needs_any=["pick", "a"]))
    assert any("does not need 'pick'" in p for p in moved), moved


def test_the_builder_writes_what_the_file_does() -> None:
    wf = WorkflowBuilder("wf")
    a = wf.task("a", tool="noop")
    b = wf.task("b", tool="noop")
    wf.task(
        "merge",
        tool="noop",
        needs=[a],
        needs_any=[b, "c"],
        quorum=1,
        wait=Wait(timeout="10s", on_timeout="continue"),
    )
    wf.task("c", tool="noop")
    spec = wf.compile().tasks["merge"]
    assert spec.barrier == BarrierPolicy(
        of=("b", "c"), quorum=1, timeout=10.0, on_timeout="continue"
    )
    with pytest.raises(TypeError, match=r"wait must be a nexus\.Wait"):
        wf.task("x", tool="noop", needs=[a], wait={"timeout": 1})  # type: ignore[arg-type]


def test_conflicts_reject_counts_only_the_needs_a_barrier_waits_for() -> None:
    def doc(**merge: Any) -> dict[str, Any]:
        tasks: dict[str, Any] = {
            "a": {"tool": "noop", "writes": ["out/report.md"]},
            "b": {"tool": "noop"},
            "merge": {"tool": "noop", "writes": ["out"], **merge},
        }
        return {"version": 1, "name": "wf", "conflicts": "reject", "tasks": tasks}

    assert problems(doc(needs=["a", "b"])) == []
    assert problems(doc(needs=["a"], needs_any=["b"])) == [], "a is required: it has ended"
    assert problems(doc(needs=["a", "b"], quorum=2)) == [], "all counted: all ended"
    for merge in (
        {"needs_any": ["a", "b"]},
        {"needs": ["a", "b"], "quorum": 1},
        {"needs": ["a"], "wait": {"timeout": 5, "on_timeout": "continue"}},
    ):
        found = problems(doc(**merge))
        assert any("may run at the same time" in p for p in found), (merge, found)
    assert problems(doc(needs=["a"], wait={"timeout": 5})) == [], "fail: never without a"
