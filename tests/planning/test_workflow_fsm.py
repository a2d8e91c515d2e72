"""``nexus validate`` on state machines: every problem named by task, state and field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nexus.domain.errors import WorkflowError
from nexus.domain.plan import MAX_FSM_STEPS, FsmPolicy, FsmState, FsmTransition, Plan, plan_hash
from nexus.planning.workflow import compile_workflow
from nexus.tools.builtins import builtin_tools

STATES: dict[str, Any] = {
    "work": {
        "tool": "noop",
        "with": {"step": "{{ fsm.step }}", "last": "{{ fsm.output }}"},
        "transitions": [
            {"to": "done", "when": "{{ fsm.output.step >= 2 }}"},
            {"to": "work"},
        ],
    },
    "done": {"terminal": True, "output": "{{ fsm.outputs.work }}"},
}


def flow(states: dict[str, Any] | None = None, **task: Any) -> dict[str, Any]:
    fsm = {"initial": "work", "max_steps": 5, "states": copy.deepcopy(states or STATES)}
    return {
        "version": 1,
        "name": "wf",
        "agents": {"w": {"model": "scripted:w", "capabilities": ["write"]}},
        "tasks": {"first": {"tool": "noop"}, "m": {"fsm": fsm, **task}},
    }


def problems(doc: dict[str, Any]) -> list[str]:
    try:
        compile_workflow(doc, file="flow.yaml", known_tools=builtin_tools().names())
    except WorkflowError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_a_machine_compiles_into_the_plan() -> None:
    plan = compile_workflow(flow(), file="f")
    spec = plan.tasks["m"]
    assert (spec.tool, spec.agent, spec.prompt) == (None, None, None)
    assert spec.fsm == FsmPolicy(
        initial="work",
        max_steps=5,
        states={
            "work": FsmState(
                tool="noop",
                args={"step": "{{ fsm.step }}", "last": "{{ fsm.output }}"},
                transitions=(
                    FsmTransition(to="done", when="{{ fsm.output.step >= 2 }}"),
                    FsmTransition(to="work"),
                ),
            ),
            "done": FsmState(terminal=True, output="{{ fsm.outputs.work }}"),
        },
    )
    assert Plan.from_dict(plan.to_dict()) == plan
    other = compile_workflow(flow(), file="f")
    assert plan_hash(other) == plan_hash(plan)
    longer = flow()
    longer["tasks"]["m"]["fsm"]["max_steps"] = 6
    assert plan_hash(compile_workflow(longer, file="f")) != plan_hash(plan)


def test_a_plan_without_fsm_keeps_its_shape() -> None:
    plan = compile_workflow({"version": 1, "name": "p", "tasks": {"a": {"tool": "noop"}}}, file="f")
    assert "fsm" not in plan.to_dict()["tasks"]["a"], "older plans keep their hashes"


def _with(path: str, value: Any) -> dict[str, Any]:
    """``flow()`` with the value at a dotted path under the fsm set (None: removed)."""
    doc = flow()
    node = doc["tasks"]["m"]["fsm"]
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is None:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        (_with("max_steps", None), "tasks.m.fsm.max_steps", "missing required key"),
        (_with("max_steps", MAX_FSM_STEPS + 1), "tasks.m.fsm.max_steps", "1000"),
        (_with("max_steps", 0), "tasks.m.fsm.max_steps", "greater than or equal to 1"),
        (_with("initial", "wrok"), "fsm.initial", "no state 'wrok' (did you mean 'work'?)"),
        (_with("initial", "done"), "fsm.initial", "is terminal: the machine would run nothing"),
        (
            _with("states.work.transitions.1", {"to": "wrk"}),
            "fsm.states.work.transitions[1].to",
            "no state 'wrk' (did you mean 'work'?)",
        ),
        (
            _with("states.work.transitions.0.when", "true"),
            "fsm.states.work.transitions[0].when",
            "`when` must be a template",
        ),
        (
            _with("states.work.transitions.0.when", None),
            "fsm.states.work.transitions[0]",
            "has no `when`, so it is always taken: the 1 after it never are",
        ),
        (
            _with("states.work.transitions", []),
            "fsm.states.work.transitions",
            "a state with a body needs transitions",
        ),
        (_with("states.work.tool", "nope"), "fsm.states.work.tool", "nope"),
        (
            _with("states.work.with", {"step": "{{ fsm.nope }}"}),
            "fsm.states.work.with.step",
            "reads fsm.nope; fsm has state, step, output, outputs",
        ),
        (
            _with("states.work.with", {"x": "{{ tasks.first.output }}"}),
            "fsm.states.work.with.x",
            "first",
        ),
        (
            _with("states.work.transitions.0.when", "{{ fsm.output.x >"),
            "fsm.states.work.transitions[0].when",
            "",
        ),
        (_with("states.work.fail", True), "fsm.states.work.fail", "belongs to a terminal state"),
        (
            _with("states.done.tool", "noop"),
            "fsm.states.done.tool",
            "a terminal state runs nothing",
        ),
        (
            _with("states.done.transitions", [{"to": "work"}]),
            "fsm.states.done.transitions",
            "a terminal state runs nothing",
        ),
        (
            _with("states.done.reason", "why"),
            "fsm.states.done.reason",
            "`reason` says why a `fail: true` state fails",
        ),
        (_with("states.done.fail", True), "fsm.states.done.output", "give it a `reason` instead"),
        (_with("states.done.output", "{{ fsm.nope }}"), "fsm.states.done.output", "fsm has"),
        (
            _with("states.done.terminl", True),
            "tasks.m.fsm.states.done.terminl",
            "did you mean 'terminal'?",
        ),
        (
            _with("states.work.transitions.0.wen", "x"),
            "tasks.m.fsm.states.work.transitions[0].wen",
            "did you mean 'when'?",
        ),
        (_with("maxsteps", 3), "tasks.m.fsm.maxsteps", "did you mean 'max_steps'?"),
        (
            _with("states.work.transitions.0.when", "{{ loop.iteration > 2 }}"),
            "fsm.states.work.transitions[0].when",
            "read fsm.output and fsm.step",
        ),
        (_with("states.bad name", {"terminal": True}), "fsm.states", "invalid state name"),
        (_with("states.work.prompt", "hi"), "fsm.states.work.prompt", "not both"),
        (_with("states.work.agent", "nobody"), "fsm.states.work.agent", "not both"),
    ],
)
def test_each_problem_is_named(doc: dict[str, Any], field: str, words: str) -> None:
    found = problems(doc)
    assert any(f"field '{field}'" in p and words in p and "task 'm'" in p for p in found), found


def test_unreachable_states_and_states_that_cannot_end_are_errors() -> None:
    states = {
        **copy.deepcopy(STATES),
        "orphan": {"tool": "noop", "transitions": [{"to": "done"}]},
        "trap": {"tool": "noop", "transitions": [{"to": "trap"}]},
    }
    states["work"]["transitions"] = [
        {"to": "trap", "when": "{{ fsm.output.x }}"},
        *states["work"]["transitions"],
    ]
    found = problems(flow(states))
    assert any(
        "field 'fsm.states.orphan'" in p and "cannot be reached from 'work'" in p for p in found
    ), found
    assert any(
        "field 'fsm.states.trap.transitions'" in p and "no terminal state can be reached" in p
        for p in found
    ), found


def test_a_body_belongs_in_the_states_and_fsm_mixes_with_no_other_control() -> None:
    found = problems(
        flow(
            tool="noop",
            prompt="hi",
            loop={"until": "{{ 1 }}", "max_iterations": 2},
            extend=True,
        )
    )
    for field, words in (
        ("tool", "move `tool` into a state's body"),
        ("prompt", "move `prompt` into a state's body"),
        ("loop", "an fsm task cannot have `loop`"),
        ("extend", "an fsm task cannot have `extend`"),
    ):
        assert any(f"field '{field}'" in p and words in p for p in found), (field, found)


def test_fsm_is_read_only_in_the_states_of_an_fsm_task() -> None:
    doc = flow()
    doc["tasks"]["first"]["with"] = {"x": "{{ fsm.step }}"}
    found = problems(doc)
    assert any(
        "task 'first'" in p and "reads fsm, which only the states of an fsm task have" in p
        for p in found
    ), found


def test_an_agent_state_is_checked_like_an_agent_task() -> None:
    states = {
        "ask": {
            "capability": "write",
            "prompt": "Say {{ fsm.step }}",
            "output_schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
            "transitions": [{"to": "done", "when": "{{ fsm.output.data.ok }}"}, {"to": "ask"}],
        },
        "done": {"terminal": True},
    }
    doc = flow(states)
    doc["tasks"]["m"]["fsm"]["initial"] = "ask"
    plan = compile_workflow(doc, file="f")
    assert plan.tasks["m"].fsm is not None
    assert plan.tasks["m"].fsm.states["ask"].capability == "write"
    states["ask"]["capability"] = "wirte"
    found = problems(
        doc
        | {"tasks": {**doc["tasks"], "m": {"fsm": {**doc["tasks"]["m"]["fsm"], "states": states}}}}
    )
    assert any(
        "field 'fsm.states.ask.capability'" in p and "no agent has capability 'wirte'" in p
        for p in found
    ), found


def test_a_foreach_machine_may_read_item_in_its_states() -> None:
    states = copy.deepcopy(STATES)
    states["work"]["with"] = {"item": "{{ item }}"}
    assert problems(flow(states, foreach=[1, 2])) == []
    assert any("reads item, which only a foreach task has" in p for p in problems(flow(states)))


def test_the_estimate_counts_max_steps_of_the_costliest_state() -> None:
    from nexus.budget.estimate import estimate_plan

    plan = compile_workflow(flow(), file="f")
    estimate = estimate_plan(plan)
    assert estimate.per_task["m"].tool_calls == 5
    assert any("max_steps (5)" in note for note in estimate.per_task["m"].notes)


def test_function_tools_and_agent_refs_in_states_are_named_and_registered(tmp_path: Any) -> None:
    import nexus

    @nexus.tool
    def probe(n: int) -> dict[str, int]:
        return {"n": n}

    wf = nexus.Workflow("m", workspace=tmp_path)
    writer = wf.agent("writer", model="scripted:w", capabilities=["write"])
    wf.task(
        "m",
        fsm=nexus.Fsm(
            initial="look",
            max_steps=3,
            states={
                "look": nexus.FsmState(
                    tool=probe,
                    args={"n": "{{ fsm.step }}"},
                    transitions=[nexus.FsmTransition(to="say")],
                ),
                "say": nexus.FsmState(
                    agent=writer, prompt="hi", transitions=[nexus.FsmTransition(to="end")]
                ),
                "end": nexus.FsmState(terminal=True),
            },
        ),
    )
    plan = wf.compile()
    assert plan.tasks["m"].fsm is not None
    states = plan.tasks["m"].fsm.states
    assert (states["look"].tool, states["say"].agent) == ("probe", "writer")
    assert wf.function_tools() == [probe]
    with pytest.raises(TypeError, match=r"fsm must be a nexus\.Fsm"):
        wf.task("bad", fsm={"initial": "a"})  # type: ignore[arg-type]
