"""State machines: an ``fsm`` task runs one state's body per step, takes the first
transition that holds, and ends in a terminal state; every step and transition is
an event, resumed without running a finished step again, and replayed with no tool
or model call."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from _runs import check_replay, crash, forge, load, next_event, of, resume, run_plan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.domain.errors import IntegrityError
from nexus.domain.events import Event, EventType
from nexus.domain.payloads import AttemptStarted, FsmTransitioned
from nexus.domain.plan import Plan
from nexus.domain.state import RunState
from nexus.engine.facade import RunResult
from nexus.planning.workflow import compile_workflow
from nexus.testing import TestModel
from nexus.tools.base import FunctionTool, ToolFailed, ToolRegistry
from nexus.tools.builtins import builtin_tools

FAST = {"initial": 0.001, "multiplier": 1, "maximum": 0.002}


class Machine:
    """The ``act`` tool: in state ``s``, its ``k``-th step (from 0) gives
    ``{"state": s, "step": n, "v": values[s][k % len]}``.

    It notes every call as ``(state, step)``; a ``(state, k)`` in ``flaky`` fails
    (retryably) the first time, and a step equal to ``hang`` never returns.
    """

    def __init__(
        self,
        values: dict[str, list[int]],
        flaky: frozenset[tuple[str, int]] = frozenset(),
    ) -> None:
        self.values = values
        self.flaky = flaky
        self.calls: list[tuple[str, int]] = []
        self.hang: int | None = None
        self._steps: dict[str, list[int]] = {}

    def tools(self) -> ToolRegistry:
        tools = builtin_tools()
        tools.add(FunctionTool("act", self.act))
        return tools

    async def act(self, state: str, step: int, previous: Any = None) -> dict[str, Any]:
        seen = self._steps.setdefault(state, [])
        first = step not in seen
        if first:
            seen.append(step)
        k = seen.index(step)
        retried = (state, step) in self.calls
        self.calls.append((state, step))
        if step == self.hang:
            await asyncio.sleep(60)
        if not retried and (state, k) in self.flaky:
            raise ToolFailed(f"state {state} fails once at its visit {k}")
        values = self.values.get(state) or [0]
        return {"state": state, "step": step, "v": values[k % len(values)], "previous": previous}


def _body(**extra: Any) -> dict[str, Any]:
    return {
        "tool": "act",
        "with": {"state": "{{ fsm.state }}", "step": "{{ fsm.step }}", **extra},
    }


def _doc(states: dict[str, Any], *, initial: str = "a", max_steps: int = 10, **task: Any) -> Any:
    return {
        "version": 1,
        "name": "machines",
        "fail_fast": False,
        "tasks": {
            "m": {"fsm": {"initial": initial, "max_steps": max_steps, "states": states}, **task},
            "after": {"tool": "noop", "needs": ["m"], "with": {"got": "{{ tasks.m.output }}"}},
        },
    }


def _compile(doc: Any) -> Plan:
    return compile_workflow(doc, file="m.yaml", known_tools=[*builtin_tools().names(), "act"])


#: a, then b until b's value is 1 (then done), a value of 2 fails it
REVIEW = {
    "a": {**_body(previous="{{ fsm.output }}"), "transitions": [{"to": "b"}]},
    "b": {
        **_body(),
        "transitions": [
            {"to": "done", "when": "{{ fsm.output.v == 1 }}"},
            {"to": "broken", "when": "{{ fsm.output.v == 2 }}"},
            {"to": "a"},
        ],
    },
    "done": {"terminal": True, "output": "{{ fsm.outputs.a.step * 100 + fsm.output.step }}"},
    "broken": {"terminal": True, "fail": True, "reason": "b gave {{ fsm.output.v }}"},
}


def _path(events: list[Event], task: str = "m") -> list[tuple[int, str, str, Any]]:
    moved = [FsmTransitioned.of(e.data) for e in of(events, EventType.FSM_TRANSITIONED, task)]
    return [(m.step, m.state, m.to, m.value) for m in moved]


# --------------------------------------------------------------------------- steps


def test_each_state_runs_its_body_and_the_first_transition_that_holds_is_taken(
    tmp_path: Path,
) -> None:
    machine = Machine({"b": [0, 1]})
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, _compile(_doc(REVIEW)), machine.tools()))
    assert result.status == "succeeded"
    assert machine.calls == [("a", 1), ("b", 2), ("a", 3), ("b", 4)]
    assert _path(events) == [
        (1, "a", "b", None),
        (2, "b", "a", None),
        (3, "a", "b", None),
        (4, "b", "done", True),
    ]
    started = [AttemptStarted.of(e.data) for e in of(events, EventType.ATTEMPT_STARTED, "m")]
    assert [(s.attempt, s.state, s.step) for s in started] == [
        (1, "a", 1),
        (2, "b", 2),
        (3, "a", 3),
        (4, "b", 4),
    ]
    # a body sees the step before it (fsm.output): null in the first
    assert started[0].args["previous"] is None
    assert started[2].args["previous"] == {"state": "b", "step": 2, "v": 0, "previous": None}
    last = FsmTransitioned.of(of(events, EventType.FSM_TRANSITIONED, "m")[-1].data)
    assert last.output == 304, "the terminal state's output, rendered when entered"
    state = RunState.fold(events)
    assert state.tasks["m"].output == 304
    assert state.tasks["after"].output == {"got": 304}
    assert RunResult.of(state) == result, "the fold of the log is the live state"
    asyncio.run(check_replay(db, result.run_id, Machine({}).tools()))


def test_a_terminal_state_without_output_ends_with_the_last_body_output(tmp_path: Path) -> None:
    states = {**REVIEW, "done": {"terminal": True}}
    result, events = asyncio.run(
        run_plan(tmp_path / "nexus.db", _compile(_doc(states)), Machine({"b": [1]}).tools())
    )
    assert result.status == "succeeded"
    assert RunState.fold(events).tasks["m"].output["step"] == 2


def test_a_fail_state_fails_the_task_with_its_reason(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, _compile(_doc(REVIEW)), Machine({"b": [2]}).tools()))
    assert result.status == "failed"
    assert result.tasks["after"]["status"] == "skipped"
    assert _path(events)[-1] == (2, "b", "broken", True)
    error = of(events, EventType.TASK_FAILED, "m")[0].data["error"]
    assert error == {
        "kind": "validation",
        "message": "fsm: reached state 'broken', which fails the task (from 'b' at step 2): "
        "b gave 2",
        "retryable": False,
        "details": {"state": "broken", "from": "b", "step": 2},
    }
    asyncio.run(check_replay(db, result.run_id, Machine({}).tools()))


def test_no_transition_holding_fails_naming_the_state_and_the_values(tmp_path: Path) -> None:
    states = {
        "a": {
            **_body(),
            "transitions": [
                {"to": "done", "when": "{{ fsm.output.v == 1 }}"},
                {"to": "a", "when": "{{ fsm.output.v > 5 }}"},
            ],
        },
        "done": {"terminal": True},
    }
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, _compile(_doc(states)), Machine({"a": [0]}).tools()))
    assert result.status == "failed"
    assert not _path(events)
    error = of(events, EventType.TASK_FAILED, "m")[0].data["error"]
    assert error["message"] == (
        "fsm: no transition out of state 'a' holds at step 1: {{ fsm.output.v == 1 }} gave "
        "false; {{ fsm.output.v > 5 }} gave false"
    )
    assert error["details"]["transitions"] == [
        {"to": "done", "when": "{{ fsm.output.v == 1 }}", "value": False},
        {"to": "a", "when": "{{ fsm.output.v > 5 }}", "value": False},
    ]


def test_max_steps_fails_the_task_before_another_body_runs(tmp_path: Path) -> None:
    machine = Machine({"b": [0]})
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, _compile(_doc(REVIEW, max_steps=3)), machine.tools()))
    assert result.status == "failed"
    assert machine.calls == [("a", 1), ("b", 2), ("a", 3)]
    error = of(events, EventType.TASK_FAILED, "m")[0].data["error"]
    assert error["message"] == (
        "fsm: max_steps (3) reached: state 'a' would go to 'b', whose body would be step 4"
    )
    assert error["details"] == {"state": "a", "to": "b", "step": 3, "max_steps": 3}
    asyncio.run(check_replay(db, result.run_id, Machine({}).tools()))


def test_entering_a_terminal_state_at_max_steps_still_ends_the_task(tmp_path: Path) -> None:
    result, _ = asyncio.run(
        run_plan(
            tmp_path / "nexus.db", _compile(_doc(REVIEW, max_steps=2)), Machine({"b": [1]}).tools()
        )
    )
    assert result.status == "succeeded"


def test_retries_are_counted_per_step(tmp_path: Path) -> None:
    # every step fails once: one retry each is enough, however many steps
    flaky = frozenset({("a", 0), ("b", 0), ("a", 1), ("b", 1)})
    machine = Machine({"b": [0, 1]}, flaky=flaky)
    db = tmp_path / "nexus.db"
    plan = _compile(_doc(REVIEW, retries=1, backoff=FAST))
    result, events = asyncio.run(run_plan(db, plan, machine.tools()))
    assert result.status == "succeeded"
    steps = [("a", 1), ("b", 2), ("a", 3), ("b", 4)]
    assert machine.calls == [call for step in steps for call in (step, step)]
    started = [AttemptStarted.of(e.data) for e in of(events, EventType.ATTEMPT_STARTED, "m")]
    assert [(s.attempt, s.state, s.step) for s in started][:3] == [
        (1, "a", 1),
        (2, "a", 1),
        (3, "b", 2),
    ]
    asyncio.run(check_replay(db, result.run_id, Machine({}).tools()))


def test_a_when_that_cannot_render_fails_naming_the_field(tmp_path: Path) -> None:
    states = {
        "a": {**_body(), "transitions": [{"to": "done", "when": "{{ fsm.output.nope.deeper }}"}]},
        "done": {"terminal": True},
    }
    result, events = asyncio.run(
        run_plan(tmp_path / "nexus.db", _compile(_doc(states)), Machine({}).tools())
    )
    assert result.status == "failed"
    message = of(events, EventType.TASK_FAILED, "m")[0].data["error"]["message"]
    assert "task 'm', field 'fsm.states.a.transitions[0].when'" in message


def test_each_item_of_a_foreach_runs_its_own_machine(tmp_path: Path) -> None:
    states = {
        "a": {
            **_body(),
            "transitions": [{"to": "done", "when": "{{ fsm.step >= item }}"}, {"to": "a"}],
        },
        "done": {"terminal": True, "output": "{{ item }}:{{ fsm.step }}"},
    }
    doc = _doc(states, foreach=[1, 3])
    db = tmp_path / "nexus.db"
    machine = Machine({})
    result, events = asyncio.run(run_plan(db, _compile(doc), machine.tools()))
    assert result.status == "succeeded"
    assert sorted(machine.calls) == [("a", 1), ("a", 1), ("a", 2), ("a", 3)]
    state = RunState.fold(events)
    assert state.tasks["m"].output == ["1:1", "3:3"]
    asyncio.run(check_replay(db, result.run_id, Machine({}).tools()))


def test_an_agent_machine_makes_one_model_call_per_step_and_replays_with_none(
    tmp_path: Path,
) -> None:
    doc = {
        "version": 1,
        "name": "review",
        "agents": {
            "writer": {"model": "test:writer", "capabilities": ["write"]},
            "critic": {"model": "test:critic", "capabilities": ["review"]},
        },
        "tasks": {
            "review": {
                "fsm": {
                    "initial": "draft",
                    "max_steps": 6,
                    "states": {
                        "draft": {
                            "capability": "write",
                            "prompt": "Draft (step {{ fsm.step }}) after: "
                            "{{ fsm.output.text | default('nothing') }}",
                            "transitions": [{"to": "critique"}],
                        },
                        "critique": {
                            "capability": "review",
                            "prompt": "Review: {{ fsm.output.text }}",
                            "transitions": [
                                {"to": "done", "when": "{{ 'OK' in fsm.output.text }}"},
                                {"to": "draft"},
                            ],
                        },
                        "done": {"terminal": True, "output": "{{ fsm.outputs.draft.text }}"},
                    },
                }
            }
        },
    }
    plan = compile_workflow(doc, file="review.yaml")
    model = TestModel("first draft", "too short", "second draft", "OK")
    db = tmp_path / "nexus.db"

    result, events = asyncio.run(run_plan(db, plan, builtin_tools(), providers=model.registry()))
    assert result.status == "succeeded"
    assert len(model.requests) == 4
    assert model.requests[2].messages[-1].content == "Draft (step 3) after: too short"
    started = [AttemptStarted.of(e.data) for e in of(events, EventType.ATTEMPT_STARTED, "review")]
    assert [s.agent for s in started] == ["writer", "critic", "writer", "critic"]
    assert RunState.fold(events).tasks["review"].output == "second draft"
    idle = TestModel()
    asyncio.run(check_replay(db, result.run_id, builtin_tools(), providers=idle.registry()))
    assert idle.requests == [], "a replay asks no model"


# --------------------------------------------------------------------------- resume


def test_a_resumed_machine_runs_no_recorded_step_again(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"
    machine = Machine({"b": [0, 1]})
    machine.hang = 3  # the process "dies" in step 3
    plan = _compile(_doc(REVIEW))

    run_id = asyncio.run(
        crash(
            db,
            plan,
            machine.tools(),
            until=lambda _: ("a", 3) in machine.calls,
            waiting="step 3 never started",
        )
    )
    assert machine.calls == [("a", 1), ("b", 2), ("a", 3)]
    machine.hang = None
    before = RunState.fold(asyncio.run(load(db, run_id)))
    assert (before.tasks["m"].fsm_state, before.tasks["m"].iteration) == ("a", 3)

    result, events = asyncio.run(resume(db, run_id, machine.tools()))
    assert result.status == "succeeded"
    assert machine.calls == [("a", 1), ("b", 2), ("a", 3), ("a", 3), ("b", 4)], (
        "steps 1 and 2 ran once; 3 again, interrupted"
    )
    started = [AttemptStarted.of(e.data) for e in of(events, EventType.ATTEMPT_STARTED, "m")]
    assert [(s.attempt, s.state, s.step) for s in started] == [
        (1, "a", 1),
        (2, "b", 2),
        (3, "a", 3),
        (4, "a", 3),
        (5, "b", 4),
    ]
    assert [e.data["attempt"] for e in of(events, EventType.ATTEMPT_INTERRUPTED, "m")] == [3]
    assert [p[:3] for p in _path(events)] == [
        (1, "a", "b"),
        (2, "b", "a"),
        (3, "a", "b"),
        (4, "b", "done"),
    ]
    assert RunState.fold(events).tasks["m"].output == 304
    asyncio.run(check_replay(db, run_id, Machine({}).tools()))
    assert len(machine.calls) == 5


# --------------------------------------------------------------------------- the fold


def test_the_fold_refuses_a_transition_it_cannot_make() -> None:
    plan = _compile(_doc(REVIEW))
    events = forge(plan)
    for kind, data in (
        (
            EventType.ATTEMPT_STARTED,
            {"task": "m", "attempt": 1, "tool": "act", "args": {}, "state": "a", "step": 1},
        ),
        (EventType.ATTEMPT_FINISHED, {"task": "m", "attempt": 1, "output": {}}),
    ):
        events.append(next_event(events, kind, data))
    state = RunState.fold(events)
    good = {"task": "m", "attempt": 1, "step": 1, "state": "a", "to": "b", "transition": 0}
    for bad in (
        {**good, "state": "b"},  # not the state it is in
        {**good, "step": 2},  # not its step
        {**good, "to": "nowhere"},  # no such state
        {**good, "task": "after"},  # not an fsm task
    ):
        with pytest.raises(IntegrityError, match="not an fsm task"):
            state.apply(next_event(events, EventType.FSM_TRANSITIONED, {**bad, "value": None}))
    state.apply(next_event(events, EventType.FSM_TRANSITIONED, {**good, "value": None}))
    assert (state.tasks["m"].fsm_state, state.tasks["m"].status) == ("b", "pending")


def test_the_fold_refuses_an_attempt_of_another_state_and_success_before_a_terminal() -> None:
    plan = _compile(_doc(REVIEW))
    events = forge(plan)
    state = RunState.fold(events)
    wrong = {"task": "m", "attempt": 1, "tool": "act", "args": {}, "state": "b", "step": 1}
    with pytest.raises(IntegrityError, match="the task is in state 'a' at step 1"):
        state.apply(next_event(events, EventType.ATTEMPT_STARTED, wrong))
    for kind, data in (
        (EventType.ATTEMPT_STARTED, {**wrong, "state": "a"}),
        (EventType.ATTEMPT_FINISHED, {"task": "m", "attempt": 1, "output": {}}),
    ):
        events.append(next_event(events, kind, data))
    state = RunState.fold(events)
    with pytest.raises(IntegrityError, match="not a terminal state that succeeds"):
        state.apply(next_event(events, EventType.TASK_SUCCEEDED, {"task": "m", "attempt": 1}))


# --------------------------------------------------------------------------- property


@st.composite
def machines(draw: st.DrawFn) -> tuple[dict[str, Any], Machine, int]:
    """A random machine over the ``act`` tool: 1 to 4 states with bodies, each with
    random transitions guarded by ``fsm.output.v == K`` (a default at random), to
    states with bodies or the terminals ``ok`` and ``bad`` (a fail state); every
    state reachable and able to end (a chain s0 -> s1 -> ... -> ok runs through
    them). Each state's values come round in turn; some visits fail once."""
    n = draw(st.integers(1, 4))
    names = [f"s{i}" for i in range(n)]
    targets = [*names, "ok", "bad"]
    states: dict[str, Any] = {}
    for i, name in enumerate(names):
        chain = names[i + 1] if i + 1 < n else "ok"
        guarded = [
            {"to": draw(st.sampled_from(targets)), "when": f"{{{{ fsm.output.v == {k} }}}}"}
            for k in draw(st.lists(st.integers(0, 2), max_size=3))
        ]
        forced_default = draw(st.booleans())
        if forced_default:
            transitions = [*guarded, {"to": chain}]
        else:
            at = draw(st.integers(0, len(guarded)))
            k = draw(st.integers(0, 2))
            guarded.insert(at, {"to": chain, "when": f"{{{{ fsm.output.v == {k} }}}}"})
            transitions = guarded
            if draw(st.booleans()):
                transitions = [*transitions, {"to": draw(st.sampled_from(targets))}]
        states[name] = {**_body(), "transitions": transitions}
    states["ok"] = {"terminal": True}
    used = {t["to"] for s in states.values() for t in s.get("transitions", [])}
    if "bad" in used:
        states["bad"] = {"terminal": True, "fail": True}
    values = {name: draw(st.lists(st.integers(0, 2), min_size=1, max_size=4)) for name in names}
    flaky = frozenset(
        draw(st.sets(st.tuples(st.sampled_from(names), st.integers(0, 3)), max_size=3))
    )
    return states, Machine(values, flaky), draw(st.integers(1, 8))


def _reference(
    states: dict[str, Any], machine: Machine, max_steps: int
) -> tuple[list[tuple[str, int]], list[tuple[int, str, str]], str]:
    """What the machine must do: the calls of ``act``, the transitions, the status."""
    calls: list[tuple[str, int]] = []
    path: list[tuple[int, str, str]] = []
    visits: dict[str, int] = {}
    name, step = "s0", 1
    while True:
        k = visits.get(name, 0)
        visits[name] = k + 1
        calls += [(name, step)] * (2 if (name, k) in machine.flaky else 1)
        values = machine.values[name]
        v = values[k % len(values)]
        taken = next(
            (
                t["to"]
                for t in states[name]["transitions"]
                if "when" not in t or t["when"] == f"{{{{ fsm.output.v == {v} }}}}"
            ),
            None,
        )
        if taken is None:
            return calls, path, "failed"
        target = states[taken]
        if not target.get("terminal") and step >= max_steps:
            return calls, path, "failed"
        path.append((step, name, taken))
        if target.get("terminal"):
            return calls, path, "failed" if target.get("fail") else "succeeded"
        name, step = taken, step + 1


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=machines())
def test_random_machines_take_the_transitions_a_reference_predicts(
    case: tuple[dict[str, Any], Machine, int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    states, machine, max_steps = case
    plan = _compile(_doc(states, initial="s0", max_steps=max_steps, retries=1, backoff=FAST))
    db = tmp_path_factory.mktemp("fsm") / "nexus.db"
    result, events = asyncio.run(run_plan(db, plan, machine.tools()))
    calls, path, status = _reference(states, machine, max_steps)
    assert machine.calls == calls
    assert [p[:3] for p in _path(events)] == path
    assert result.tasks["m"]["status"] == status
    assert RunResult.of(RunState.fold(events)) == result, "the fold of the log is the live state"
    asyncio.run(check_replay(db, result.run_id, Machine({}).tools()))


# --------------------------------------------------------------------------- the CLI


def test_the_path_shows_in_events_and_inspect(tmp_path: Path) -> None:
    from nexus.cli.inspection import view_task
    from nexus.cli.summaries import summary

    result, events = asyncio.run(
        run_plan(tmp_path / "nexus.db", _compile(_doc(REVIEW)), Machine({"b": [1]}).tools())
    )
    assert result.status == "succeeded"
    lines = [summary(e) for e in events if e.data.get("task") == "m"]
    assert "m attempt 2 (state b, step 2) tool act" in lines
    assert "m step 1: a -> b (default)" in lines
    assert "m step 2: b -> done (when gave true)" in lines
    doc = view_task(RunState.fold(events), events, "m")
    assert doc["kind"] == "fsm"
    assert doc["fsm"]["path"] == ["a", "b", "done"]
    assert doc["fsm"]["state"] == "done"
    assert [(a["state"], a["step"], a["to"], a["when"]) for a in doc["history"]] == [
        ("a", 1, "b", None),
        ("b", 2, "done", True),
    ]
