"""Loops: a task's body runs again until ``until`` holds over its latest output, each
iteration an attempt recorded, resumed without running a finished one again, and
replayed with no tool or model call."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from _runs import check_replay, crash, forge, load, next_event, of, resume, run_plan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.domain.errors import IntegrityError
from nexus.domain.events import EventType
from nexus.domain.payloads import AttemptStarted, TaskIterated, TaskSucceeded
from nexus.domain.plan import LoopPolicy, Plan, RetryPolicy, TaskSpec
from nexus.domain.state import RunState
from nexus.engine.facade import RunResult
from nexus.planning.workflow import compile_workflow
from nexus.testing import TestModel
from nexus.tools.base import FunctionTool, ToolFailed, ToolRegistry
from nexus.tools.builtins import builtin_tools

FAST = RetryPolicy(retries=1, initial=0.001, multiplier=1.0, maximum=0.002)


class Steps:
    """The ``step`` tool: its output for iteration ``n`` is ``{"n": n, "done": n >= done}``.

    It notes every call; an iteration in ``flaky`` fails (retryably) the first
    time it is called, and one equal to ``hang`` never returns.
    """

    def __init__(self, done: int = 3, flaky: frozenset[int] = frozenset()) -> None:
        self.done = done
        self.flaky = flaky
        self.calls: list[int] = []
        self.hang: int | None = None

    def tools(self) -> ToolRegistry:
        tools = builtin_tools()
        tools.add(FunctionTool("step", self.step))
        return tools

    async def step(self, n: int, previous: Any = None) -> dict[str, Any]:
        first = n not in self.calls
        self.calls.append(n)
        if n == self.hang:
            await asyncio.sleep(60)
        if first and n in self.flaky:
            raise ToolFailed(f"iteration {n} fails once")
        return {"n": n, "done": n >= self.done, "previous": previous}


def _plan(max_iterations: int = 5, on_max: str = "fail", **extra: Any) -> Plan:
    doc = {
        "version": 1,
        "name": "loops",
        "fail_fast": False,
        "tasks": {
            "poll": {
                "tool": "step",
                "with": {"n": "{{ loop.iteration }}", "previous": "{{ loop.output }}"},
                "loop": {
                    "until": "{{ loop.output.done }}",
                    "max_iterations": max_iterations,
                    "on_max": on_max,
                },
                **extra,
            },
            "after": {
                "tool": "noop",
                "needs": ["poll"],
                "with": {"last": "{{ tasks.poll.output.n }}"},
            },
        },
    }
    return compile_workflow(doc, file="loops.yaml", known_tools=[*builtin_tools().names(), "step"])


# --------------------------------------------------------------------------- iterations


def test_the_body_runs_until_the_condition_holds(tmp_path: Path) -> None:
    steps = Steps(done=3)
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, _plan(), steps.tools()))
    assert result.status == "succeeded"
    assert steps.calls == [1, 2, 3]
    started = [AttemptStarted.of(e.data) for e in of(events, EventType.ATTEMPT_STARTED, "poll")]
    assert [(s.attempt, s.iteration) for s in started] == [(1, 1), (2, 2), (3, 3)]
    # each iteration's body sees the one before: loop.output
    assert [s.args for s in started] == [
        {"n": 1, "previous": None},
        {"n": 2, "previous": {"n": 1, "done": False, "previous": None}},
        {
            "n": 3,
            "previous": {
                "n": 2,
                "done": False,
                "previous": {"n": 1, "done": False, "previous": None},
            },
        },
    ]
    iterated = [TaskIterated.of(e.data) for e in of(events, EventType.TASK_ITERATED, "poll")]
    assert [(i.iteration, i.attempt, i.value) for i in iterated] == [(1, 1, False), (2, 2, False)]
    ended = TaskSucceeded.of(of(events, EventType.TASK_SUCCEEDED, "poll")[0].data)
    assert (ended.attempt, ended.iteration, ended.value) == (3, 3, True)
    state = RunState.fold(events)
    assert state.tasks["poll"].output["n"] == 3, "the task's output is its last iteration's"
    assert state.tasks["after"].output == {"last": 3}
    assert RunResult.of(state) == result
    asyncio.run(check_replay(db, result.run_id, Steps().tools()))


def test_the_first_iteration_may_be_the_last(tmp_path: Path) -> None:
    steps = Steps(done=1)
    result, events = asyncio.run(run_plan(tmp_path / "nexus.db", _plan(), steps.tools()))
    assert result.status == "succeeded"
    assert steps.calls == [1]
    assert not of(events, EventType.TASK_ITERATED, "poll")


def test_max_iterations_without_the_condition_fails_the_task(tmp_path: Path) -> None:
    steps = Steps(done=99)
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, _plan(max_iterations=4), steps.tools()))
    assert steps.calls == [1, 2, 3, 4]
    assert result.status == "failed"
    assert result.tasks["after"]["status"] == "skipped"
    failed = of(events, EventType.TASK_FAILED, "poll")[0].data
    assert failed["error"] == {
        "kind": "validation",
        "message": "loop.until still false after 4 iterations (max_iterations): "
        "{{ loop.output.done }} gave false",
        "retryable": False,
        "details": {"iterations": 4, "value": False},
    }
    asyncio.run(check_replay(db, result.run_id, Steps().tools()))


def test_on_max_succeed_keeps_the_last_output(tmp_path: Path) -> None:
    steps = Steps(done=99)
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(
        run_plan(db, _plan(max_iterations=2, on_max="succeed"), steps.tools())
    )
    assert result.status == "succeeded"
    assert steps.calls == [1, 2]
    ended = TaskSucceeded.of(of(events, EventType.TASK_SUCCEEDED, "poll")[0].data)
    assert (ended.iteration, ended.value) == (2, False), "the record says until never held"
    assert RunState.fold(events).tasks["after"].output == {"last": 2}
    asyncio.run(check_replay(db, result.run_id, Steps().tools()))


def test_retries_are_counted_per_iteration(tmp_path: Path) -> None:
    # every iteration fails once: one retry each is enough, however many iterations
    steps = Steps(done=3, flaky=frozenset({1, 2, 3}))
    plan = _plan(retries=1, backoff={"initial": 0.001, "multiplier": 1, "maximum": 0.002})
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, plan, steps.tools()))
    assert result.status == "succeeded"
    assert steps.calls == [1, 1, 2, 2, 3, 3]
    started = [AttemptStarted.of(e.data) for e in of(events, EventType.ATTEMPT_STARTED, "poll")]
    assert [(s.attempt, s.iteration) for s in started] == [
        (1, 1),
        (2, 1),
        (3, 2),
        (4, 2),
        (5, 3),
        (6, 3),
    ]
    retried = of(events, EventType.RETRY_SCHEDULED, "poll")
    assert [e.data["attempt"] for e in retried] == [1, 3, 5]
    asyncio.run(check_replay(db, result.run_id, Steps().tools()))


def test_a_second_failure_in_one_iteration_fails_the_task(tmp_path: Path) -> None:
    class Twice(Steps):
        async def step(self, n: int, previous: Any = None) -> dict[str, Any]:
            self.calls.append(n)
            if n == 2:
                raise ToolFailed("iteration 2 always fails")
            return {"n": n, "done": False}

    steps = Twice()
    plan = _plan(retries=1, backoff={"initial": 0.001, "multiplier": 1, "maximum": 0.002})
    result, _ = asyncio.run(run_plan(tmp_path / "nexus.db", plan, steps.tools()))
    assert result.status == "failed"
    assert steps.calls == [1, 2, 2]


def test_an_until_that_cannot_render_fails_naming_the_field(tmp_path: Path) -> None:
    plan = _plan()
    spec = plan.tasks["poll"]
    assert spec.loop is not None
    broken = TaskSpec(
        id="poll",
        tool="step",
        args=spec.args,
        loop=LoopPolicy(until="{{ loop.output.missing }}", max_iterations=3),
    )
    plan = Plan(name="p", tasks={"poll": broken}, fail_fast=False)
    result, events = asyncio.run(run_plan(tmp_path / "nexus.db", plan, Steps().tools()))
    assert result.status == "failed"
    message = of(events, EventType.TASK_FAILED, "poll")[0].data["error"]["message"]
    assert "task 'poll', field 'loop.until'" in message


def test_each_item_of_a_foreach_loops_on_its_own(tmp_path: Path) -> None:
    doc = {
        "version": 1,
        "name": "items",
        "tasks": {
            "poll": {
                "foreach": [2, 3],
                "tool": "step",
                "with": {"n": "{{ loop.iteration }}"},
                "loop": {"until": "{{ loop.output.n >= item }}", "max_iterations": 5},
            }
        },
    }
    plan = compile_workflow(doc, file="items.yaml", known_tools=[*builtin_tools().names(), "step"])
    steps = Steps(done=99)
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, plan, steps.tools()))
    assert result.status == "succeeded"
    assert sorted(steps.calls) == [1, 1, 2, 2, 3]
    state = RunState.fold(events)
    assert [state.tasks[c].output["n"] for c in ("poll[0]", "poll[1]")] == [2, 3]
    asyncio.run(check_replay(db, result.run_id, Steps().tools()))


def test_an_agent_loop_makes_one_model_call_per_iteration_and_replays_with_none(
    tmp_path: Path,
) -> None:
    doc = {
        "version": 1,
        "name": "draft",
        "agents": {"writer": {"model": "test:writer", "capabilities": ["write"]}},
        "tasks": {
            "draft": {
                "capability": "write",
                "prompt": "Draft {{ loop.iteration }}, after: {{ loop.output.text | default('') }}",
                "loop": {"until": "{{ 'DONE' in loop.output.text }}", "max_iterations": 5},
            }
        },
    }
    plan = compile_workflow(doc, file="draft.yaml")
    model = TestModel("first try", "second try", "DONE at last")
    db = tmp_path / "nexus.db"

    result, events = asyncio.run(run_plan(db, plan, builtin_tools(), providers=model.registry()))
    assert result.status == "succeeded"
    assert len(model.requests) == 3
    assert model.requests[1].messages[-1].content == "Draft 2, after: first try"
    assert RunState.fold(events).tasks["draft"].output["text"] == "DONE at last"
    idle = TestModel()
    asyncio.run(check_replay(db, result.run_id, builtin_tools(), providers=idle.registry()))
    assert idle.requests == [], "a replay asks no model"


# --------------------------------------------------------------------------- resume


def test_a_resumed_loop_runs_no_recorded_iteration_again(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"
    steps = Steps(done=4)
    steps.hang = 3  # the process "dies" in iteration 3
    plan = _plan()

    run_id = asyncio.run(
        crash(
            db,
            plan,
            steps.tools(),
            until=lambda _: 3 in steps.calls,
            waiting="iteration 3 never started",
        )
    )
    assert steps.calls == [1, 2, 3]
    steps.hang = None
    before = RunState.fold(asyncio.run(load(db, run_id)))
    assert before.tasks["poll"].iteration == 3

    result, events = asyncio.run(resume(db, run_id, steps.tools()))
    assert result.status == "succeeded"
    assert steps.calls == [1, 2, 3, 3, 4], "iterations 1 and 2 ran once; 3 again, interrupted"
    started = [AttemptStarted.of(e.data) for e in of(events, EventType.ATTEMPT_STARTED, "poll")]
    assert [(s.attempt, s.iteration) for s in started] == [(1, 1), (2, 2), (3, 3), (4, 3), (5, 4)]
    interrupted = of(events, EventType.ATTEMPT_INTERRUPTED, "poll")
    assert [e.data["attempt"] for e in interrupted] == [3]
    assert [
        TaskIterated.of(e.data).iteration for e in of(events, EventType.TASK_ITERATED, "poll")
    ] == [
        1,
        2,
        3,
    ]
    assert RunState.fold(events).tasks["poll"].output["n"] == 4
    asyncio.run(check_replay(db, run_id, Steps().tools()))
    assert steps.calls == [1, 2, 3, 3, 4]


# --------------------------------------------------------------------------- the fold


def test_the_fold_refuses_an_iteration_of_a_task_that_does_not_loop() -> None:
    plan = Plan(name="p", tasks={"a": TaskSpec(id="a", tool="noop")})
    events = forge(
        plan,
        (EventType.ATTEMPT_STARTED, {"task": "a", "attempt": 1, "tool": "noop", "args": {}}),
        (EventType.ATTEMPT_FINISHED, {"task": "a", "attempt": 1, "output": {}}),
    )
    state = RunState.fold(events)
    again = {"task": "a", "attempt": 1, "iteration": 1, "value": False}
    bad = next_event(events, EventType.TASK_ITERATED, again)
    with pytest.raises(IntegrityError, match="not a loop task"):
        state.apply(bad)


# --------------------------------------------------------------------------- property


@st.composite
def loops(draw: st.DrawFn) -> tuple[Plan, Steps, int, str]:
    """A loop of random length and cap, iterations failing once at random."""
    cap = draw(st.integers(1, 6))
    done = draw(st.integers(1, 8))
    on_max = draw(st.sampled_from(["fail", "succeed"]))
    flaky = frozenset(draw(st.sets(st.integers(1, 8), max_size=3)))
    plan = _plan(
        max_iterations=cap,
        on_max=on_max,
        retries=1,
        backoff={"initial": 0.001, "multiplier": 1, "maximum": 0.002},
    )
    return plan, Steps(done=done, flaky=flaky), cap, on_max


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=loops())
def test_random_loops_run_the_iterations_a_reference_predicts(
    case: tuple[Plan, Steps, int, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    plan, steps, cap, on_max = case
    db = tmp_path_factory.mktemp("loop") / "nexus.db"
    result, events = asyncio.run(run_plan(db, plan, steps.tools()))
    # the reference: iterations 1.. until done or the cap; a flaky one runs twice
    last = min(steps.done, cap)
    expected_calls = [n for n in range(1, last + 1) for _ in range(2 if n in steps.flaky else 1)]
    assert steps.calls == expected_calls
    held = steps.done <= cap
    status = "succeeded" if held or on_max == "succeed" else "failed"
    assert result.tasks["poll"]["status"] == status
    assert len(of(events, EventType.TASK_ITERATED, "poll")) == last - 1
    assert RunResult.of(RunState.fold(events)) == result, "the fold of the log is the live state"
    asyncio.run(check_replay(db, result.run_id, Steps().tools()))


def test_iterations_show_in_events_and_inspect(tmp_path: Path) -> None:
    from nexus.cli.inspection import view_task
    from nexus.cli.summaries import summary

    result, events = asyncio.run(run_plan(tmp_path / "nexus.db", _plan(), Steps(done=2).tools()))
    lines = [summary(e) for e in events if e.data.get("task") == "poll"]
    assert "poll attempt 2 (iteration 2) tool step" in lines
    assert "poll iteration 1 (attempt 1): until gave false" in lines
    assert "poll attempt 2, iteration 2: until gave true" in lines
    doc = view_task(RunState.fold(events), events, "poll")
    assert [(a["attempt"], a["iteration"], a["until"]) for a in doc["history"]] == [
        (1, 1, False),
        (2, 2, True),
    ]
    assert result.status == "succeeded"
