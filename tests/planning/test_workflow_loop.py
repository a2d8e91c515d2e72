"""``nexus validate`` on loops: bounded, a template to judge, ``loop.*`` only where it exists."""

from __future__ import annotations

from typing import Any

import pytest

from nexus.domain.errors import WorkflowError
from nexus.domain.plan import MAX_ITERATIONS, LoopPolicy, Plan, plan_hash
from nexus.planning import Loop, WorkflowBuilder
from nexus.planning.workflow import compile_workflow


def flow(loop: Any = None, **poll: Any) -> dict[str, Any]:
    task: dict[str, Any] = {"tool": "noop", "with": {"n": "{{ loop.iteration }}"}, **poll}
    if loop is not None:
        task["loop"] = loop
    return {"version": 1, "name": "wf", "tasks": {"poll": task}}


LOOP = {"until": "{{ loop.output.n >= 3 }}", "max_iterations": 5}


def problems(doc: dict[str, Any]) -> list[str]:
    try:
        compile_workflow(doc, file="flow.yaml")
    except WorkflowError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_a_loop_compiles_into_the_plan() -> None:
    plan = compile_workflow(flow(LOOP), file="f")
    assert plan.tasks["poll"].loop == LoopPolicy(
        until="{{ loop.output.n >= 3 }}", max_iterations=5, on_max="fail"
    )
    assert plan.to_dict()["tasks"]["poll"]["loop"] == {
        "until": "{{ loop.output.n >= 3 }}",
        "max_iterations": 5,
        "on_max": "fail",
    }
    assert Plan.from_dict(plan.to_dict()) == plan
    on_max = compile_workflow(flow({**LOOP, "on_max": "succeed"}), file="f")
    assert on_max.tasks["poll"].loop is not None
    assert on_max.tasks["poll"].loop.on_max == "succeed"
    assert plan_hash(on_max) != plan_hash(plan)


@pytest.mark.parametrize(
    ("loop", "field", "words"),
    [
        (
            {"until": "{{ loop.output.done }}"},
            "tasks.poll.loop.max_iterations",
            "missing required key",
        ),
        ({**LOOP, "max_iterations": MAX_ITERATIONS + 1}, "tasks.poll.loop.max_iterations", "1000"),
        (
            {**LOOP, "max_iterations": 0},
            "tasks.poll.loop.max_iterations",
            "greater than or equal to 1",
        ),
        ({**LOOP, "on_max": "retry"}, "tasks.poll.loop.on_max", "'fail' or 'succeed'"),
        (
            {**LOOP, "max_iteration": 3},
            "tasks.poll.loop.max_iteration",
            "did you mean 'max_iterations'?",
        ),
        ({"max_iterations": 3}, "tasks.poll.loop.until", "missing required key"),
        ({**LOOP, "until": "true"}, "loop.until", "must be a template"),
        ({**LOOP, "until": "{{ loop.output ) }}"}, "loop.until", "syntax"),
        ({**LOOP, "until": "{{ inputs.nope }}"}, "loop.until", "inputs.nope"),
        ("forever", "tasks.poll.loop", "valid dictionary"),
    ],
)
def test_a_bad_loop_is_named(loop: Any, field: str, words: str) -> None:
    # the file model's problems name the key's full path, the compiler's the task's field
    found = problems(flow(loop))
    assert len(found) == 1, found
    assert f"task 'poll', field '{field}'" in found[0]
    assert words in found[0]


def test_the_largest_loop_is_allowed() -> None:
    assert problems(flow({**LOOP, "max_iterations": MAX_ITERATIONS})) == []


def test_only_a_loop_task_reads_loop_output() -> None:
    found = problems(flow(None))
    assert found == [
        "flow.yaml, task 'poll', field 'with.n': reads loop.output or loop.iteration, which "
        "only a loop task has (give the task a `loop`)"
    ]
    # Jinja's own loop variable, inside a for, is not ours
    assert (
        problems(flow(None, **{"with": {"n": "{% for x in [1] %}{{ loop.index }}{% endfor %}"}}))
        == []
    )


def test_until_may_read_the_tasks_the_body_may_read() -> None:
    doc = flow({**LOOP, "until": "{{ loop.output.n >= tasks.goal.output.n }}"})
    doc["tasks"]["goal"] = {"tool": "noop", "with": {"n": 3}}
    assert len(problems(doc)) == 1, "a task it does not depend on"
    doc["tasks"]["poll"]["needs"] = ["goal"]
    assert problems(doc) == []


def test_a_switch_task_cannot_loop() -> None:
    doc = {
        "version": 1,
        "name": "wf",
        "tasks": {
            "route": {"switch": "x", "cases": {"default": []}, "loop": LOOP},
        },
    }
    found = problems(doc)
    assert any("field 'loop'" in p and "a switch task runs nothing" in p for p in found)


def test_builder_and_file_give_the_same_plan() -> None:
    wf = WorkflowBuilder("wf")
    wf.task(
        "poll",
        tool="noop",
        args={"n": "{{ loop.iteration }}"},
        loop=Loop(until="{{ loop.output.n >= 3 }}", max_iterations=5),
    )
    from_code = wf.compile()
    from_file = compile_workflow(flow(LOOP), file="flow.yaml")
    assert from_code.to_dict() == from_file.to_dict()
    assert plan_hash(from_code) == plan_hash(from_file)


def test_builder_wants_a_loop_value() -> None:
    wf = WorkflowBuilder("wf")
    with pytest.raises(TypeError, match=r"loop must be a nexus.Loop, not dict"):
        wf.task("poll", tool="noop", loop={"until": "x", "max_iterations": 2})  # type: ignore[arg-type]
