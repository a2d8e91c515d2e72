"""Sagas: when a task with ``on_failure: compensate`` fails for good, the tasks that
succeeded and say how to undo themselves (``compensate``) are compensated in the
reverse order of their completion, once each, every compensation an attempt
recorded, resumed and replayed like any other."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from _runs import RUN_TIMEOUT, check_replay, crash, forge, resume, run_plan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.domain.errors import IntegrityError
from nexus.domain.events import Draft, Event, EventType, seal
from nexus.domain.payloads import SagaFinished, SagaStarted
from nexus.domain.plan import Plan
from nexus.domain.state import RunState
from nexus.engine.facade import Engine, RunResult
from nexus.planning.workflow import compile_workflow
from nexus.store.sqlite import SQLiteStore
from nexus.testing import TestModel
from nexus.tools.base import FunctionTool, ToolFailed, ToolRegistry
from nexus.tools.builtins import builtin_tools

FAST = {"initial": 0.001, "multiplier": 1, "maximum": 0.002}


class Steps:
    """The ``step`` tool: notes each call's ``name``; names in ``failing`` always fail,
    names in ``flaky`` fail their first call, a name equal to ``hang`` waits until
    ``hang`` is set to another (or the call is cancelled)."""

    def __init__(
        self, failing: frozenset[str] = frozenset(), flaky: frozenset[str] = frozenset()
    ) -> None:
        self.failing = failing
        self.flaky = flaky
        self.calls: list[str] = []
        self.hang: str | None = None

    def tools(self) -> ToolRegistry:
        tools = builtin_tools()
        tools.add(FunctionTool("step", self.step))
        return tools

    async def step(self, name: str, seen: Any = None) -> dict[str, Any]:
        first = name not in self.calls
        self.calls.append(name)
        deadline = time.monotonic() + 60
        while name == self.hang and time.monotonic() < deadline:  # noqa: ASYNC110 - set from another loop
            await asyncio.sleep(0.01)
        if name in self.failing or (first and name in self.flaky):
            raise ToolFailed(f"{name} fails")
        return {"did": name, "seen": seen}


def _undo(name: str, **extra: Any) -> dict[str, Any]:
    return {"tool": "step", "with": {"name": f"undo-{name}"}, **extra}


def _chain(
    names: list[str], undone: set[str], *, on_failure: str = "compensate", **workflow: Any
) -> Plan:
    """``names`` as a chain of step tasks, each needing the one before; those in
    ``undone`` have a compensation."""
    tasks: dict[str, Any] = {}
    for i, name in enumerate(names):
        task: dict[str, Any] = {"tool": "step", "with": {"name": name}}
        if i:
            task["needs"] = [names[i - 1]]
        if name in undone:
            task["compensate"] = _undo(name, retries=1, backoff=FAST)
        tasks[name] = task
    doc = {"version": 1, "name": "saga", "on_failure": on_failure, "tasks": tasks, **workflow}
    return _compile(doc)


def _compile(doc: dict[str, Any]) -> Plan:
    return compile_workflow(doc, file="saga.yaml", known_tools=[*builtin_tools().names(), "step"])


def _one(events: list[Event], kind: EventType) -> Event:
    (found,) = [e for e in events if e.type is kind]
    return found


def _finished(events: list[Event]) -> SagaFinished:
    return SagaFinished.of(_one(events, EventType.SAGA_FINISHED).data)


# --------------------------------------------------------------------------- the saga


def test_the_third_step_failing_compensates_the_first_two_in_reverse(tmp_path: Path) -> None:
    steps = Steps(failing=frozenset({"c"}))
    db = tmp_path / "nexus.db"
    plan = _chain(["a", "b", "c", "d"], {"a", "b", "c", "d"})
    result, events = asyncio.run(run_plan(db, plan, steps.tools()))
    assert result.status == "failed"
    assert steps.calls == ["a", "b", "c", "undo-b", "undo-a"]
    assert result.tasks["d"]["status"] == "skipped", "what had not started does not run"
    assert result.tasks["b.compensate"] == {"status": "succeeded", "attempts": 1}
    assert result.tasks["a.compensate"] == {"status": "succeeded", "attempts": 1}
    started = SagaStarted.of(_one(events, EventType.SAGA_STARTED).data)
    assert (started.task, started.steps) == ("c", ["b", "a"])
    steps_started = [e.data for e in events if e.type is EventType.COMPENSATION_STARTED]
    assert steps_started == [
        {"task": "b", "compensation": "b.compensate", "step": 1, "total": 2},
        {"task": "a", "compensation": "a.compensate", "step": 2, "total": 2},
    ]
    finished = _finished(events)
    assert (finished.compensated, finished.failed, finished.not_run) == (["b", "a"], [], [])
    kinds = [e.type for e in events]
    assert kinds.index(EventType.SAGA_FINISHED) == len(kinds) - 2
    assert kinds[-1] is EventType.RUN_FAILED
    assert RunResult.of(RunState.fold(events)) == result, "the fold of the log is the live state"
    asyncio.run(check_replay(db, result.run_id, Steps(failing=frozenset({"c"})).tools()))


def test_a_compensation_sees_its_task_output_and_the_failed_task(tmp_path: Path) -> None:
    doc = {
        "version": 1,
        "name": "saga",
        "inputs": {"who": "ana"},
        "tasks": {
            "book": {
                "tool": "step",
                "with": {"name": "book"},
                "compensate": {
                    "tool": "step",
                    "with": {
                        "name": "cancel",
                        "seen": {
                            "own": "{{ compensating.output.did }}",
                            "same": "{{ tasks.book.output.did }}",
                            "task": "{{ compensating.task }}",
                            "failed": "{{ compensating.failed }}",
                            "who": "{{ inputs.who }}",
                        },
                    },
                },
            },
            "pay": {"needs": ["book"], "tool": "step", "with": {"name": "pay"}},
            "ship": {
                "needs": ["pay"],
                "tool": "step",
                "with": {"name": "ship"},
                "on_failure": "compensate",
            },
        },
    }
    steps = Steps(failing=frozenset({"ship"}))
    result, events = asyncio.run(run_plan(tmp_path / "nexus.db", _compile(doc), steps.tools()))
    assert steps.calls == ["book", "pay", "ship", "cancel"]
    state = RunState.fold(events)
    assert state.tasks["book.compensate"].output["seen"] == {
        "own": "book",
        "same": "book",
        "task": "book",
        "failed": "ship",
        "who": "ana",
    }
    assert result.status == "failed"


def test_a_failing_compensation_is_retried_then_recorded_and_the_saga_goes_on(
    tmp_path: Path,
) -> None:
    steps = Steps(failing=frozenset({"c", "undo-b"}), flaky=frozenset({"undo-a"}))
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, _chain(["a", "b", "c"], {"a", "b"}), steps.tools()))
    assert steps.calls == ["a", "b", "c", "undo-b", "undo-b", "undo-a", "undo-a"]
    assert result.tasks["b.compensate"] == {"status": "failed", "attempts": 2}
    assert result.tasks["a.compensate"] == {"status": "succeeded", "attempts": 2}
    finished = _finished(events)
    assert (finished.compensated, finished.failed) == (["a"], ["b"])
    assert result.status == "failed"
    assert RunResult.of(RunState.fold(events)) == result
    replay_steps = Steps(failing=frozenset({"c", "undo-b"}), flaky=frozenset({"undo-a"}))
    asyncio.run(check_replay(db, result.run_id, replay_steps.tools()))


def test_only_on_failure_compensate_starts_a_saga(tmp_path: Path) -> None:
    steps = Steps(failing=frozenset({"b"}))
    plan = _chain(["a", "b", "c"], {"a"}, on_failure="fail")
    result, events = asyncio.run(run_plan(tmp_path / "nexus.db", plan, steps.tools()))
    assert steps.calls == ["a", "b"]
    assert result.status == "failed"
    assert not [e for e in events if e.type is EventType.SAGA_STARTED]
    assert "a.compensate" not in result.tasks


def test_a_task_s_own_on_failure_wins_over_the_workflow_s(tmp_path: Path) -> None:
    doc = {
        "version": 1,
        "name": "saga",
        "on_failure": "compensate",
        "fail_fast": False,
        "tasks": {
            "a": {"tool": "step", "with": {"name": "a"}, "compensate": _undo("a")},
            "optional": {
                "needs": ["a"],
                "tool": "step",
                "with": {"name": "optional"},
                "on_failure": "fail",
            },
            "b": {"needs": ["a"], "tool": "step", "with": {"name": "b"}},
        },
    }
    plan = _compile(doc)
    assert plan.tasks["optional"].on_failure == "fail"
    assert plan.tasks["b"].on_failure == "compensate"
    steps = Steps(failing=frozenset({"optional"}))
    result, events = asyncio.run(run_plan(tmp_path / "nexus.db", plan, steps.tools()))
    assert sorted(steps.calls) == ["a", "b", "optional"]
    assert not [e for e in events if e.type is EventType.SAGA_STARTED]
    assert result.tasks["b"]["status"] == "succeeded"


def test_running_work_is_cancelled_not_compensated(tmp_path: Path) -> None:
    """A branch still running when the saga starts is cancelled (as a cancel does);
    it did not succeed, so it is not compensated."""
    doc = {
        "version": 1,
        "name": "saga",
        "on_failure": "compensate",
        "tasks": {
            "a": {"tool": "step", "with": {"name": "a"}, "compensate": _undo("a")},
            "slow": {
                "needs": ["a"],
                "tool": "step",
                "with": {"name": "slow"},
                "compensate": _undo("slow"),
            },
            "bad": {"needs": ["a"], "tool": "step", "with": {"name": "bad"}},
        },
    }
    steps = Steps(failing=frozenset({"bad"}))
    steps.hang = "slow"
    result, events = asyncio.run(run_plan(tmp_path / "nexus.db", _compile(doc), steps.tools()))
    assert result.tasks["slow"]["status"] == "cancelled"
    assert steps.calls.count("undo-a") == 1
    assert "undo-slow" not in steps.calls
    assert _finished(events).compensated == ["a"]


def test_a_failing_foreach_task_starts_the_saga(tmp_path: Path) -> None:
    doc = {
        "version": 1,
        "name": "saga",
        "fail_fast": False,
        "tasks": {
            "a": {"tool": "step", "with": {"name": "a"}, "compensate": _undo("a")},
            "each": {
                "needs": ["a"],
                "foreach": ["x", "y"],
                "tool": "step",
                "with": {"name": "{{ item }}"},
                "on_failure": "compensate",
            },
        },
    }
    steps = Steps(failing=frozenset({"y"}))
    result, events = asyncio.run(run_plan(tmp_path / "nexus.db", _compile(doc), steps.tools()))
    assert result.tasks["each"]["status"] == "failed"
    assert steps.calls[-1] == "undo-a"
    assert SagaStarted.of(_one(events, EventType.SAGA_STARTED).data).task == "each"


def test_nothing_to_compensate_still_records_the_saga(tmp_path: Path) -> None:
    steps = Steps(failing=frozenset({"a"}))
    result, events = asyncio.run(
        run_plan(tmp_path / "nexus.db", _chain(["a"], set()), steps.tools())
    )
    assert SagaStarted.of(_one(events, EventType.SAGA_STARTED).data).steps == []
    assert _finished(events).compensated == []
    assert result.status == "failed"


def test_an_agent_compensation_is_recorded_and_replayed_with_no_model_call(
    tmp_path: Path,
) -> None:
    doc = {
        "version": 1,
        "name": "saga",
        "on_failure": "compensate",
        "agents": {"clerk": {"model": "test:clerk", "capabilities": ["undo"]}},
        "tasks": {
            "order": {
                "tool": "step",
                "with": {"name": "order"},
                "compensate": {
                    "capability": "undo",
                    "prompt": (
                        "Cancel order {{ compensating.output.did }}; "
                        "{{ compensating.failed }} failed"
                    ),
                },
            },
            "ship": {"needs": ["order"], "tool": "step", "with": {"name": "ship"}},
        },
    }
    model = TestModel("order cancelled")
    db = tmp_path / "nexus.db"
    steps = Steps(failing=frozenset({"ship"}))
    result, _ = asyncio.run(run_plan(db, _compile(doc), steps.tools(), providers=model.registry()))
    assert len(model.requests) == 1
    assert model.requests[0].messages[-1].content == "Cancel order order; ship failed"
    assert result.tasks["order.compensate"]["status"] == "succeeded"
    idle = TestModel()
    asyncio.run(
        check_replay(
            db, result.run_id, Steps(failing=frozenset({"ship"})).tools(), providers=idle.registry()
        )
    )
    assert idle.requests == [], "a replay asks no model"


def test_a_cancel_during_the_saga_stops_it(tmp_path: Path) -> None:
    steps = Steps(failing=frozenset({"c"}))
    steps.hang = "undo-b"
    db = tmp_path / "nexus.db"
    plan = _chain(["a", "b", "c"], {"a", "b"})

    async def go() -> tuple[RunResult, list[Event]]:
        store = SQLiteStore.open(db)
        try:
            engine = Engine(store, tools=steps.tools())
            driver = asyncio.create_task(engine.start(plan))
            deadline = time.monotonic() + 10
            while "undo-b" not in steps.calls:
                assert time.monotonic() < deadline, "the compensation never started"
                await asyncio.sleep(0.02)
            (record,) = await store.list_runs()
            outcome = await Engine(store, tools=steps.tools()).cancel(record.run_id, "enough")
            assert outcome == "requested"
            while getattr(await store.get_run(record.run_id), "status", None) != "cancelled":
                assert time.monotonic() < deadline + 10, "the cancel was not honoured"
                await asyncio.sleep(0.02)
            steps.hang = None  # the function tool is not killed as a process would be
            result = await asyncio.wait_for(driver, RUN_TIMEOUT)
            return result, await store.load(result.run_id)
        finally:
            await store.close()

    result, events = asyncio.run(go())
    assert result.status == "cancelled"
    assert "undo-a" not in steps.calls
    finished = _finished(events)
    assert (finished.compensated, finished.failed, finished.not_run) == ([], ["b"], ["a"])
    assert RunResult.of(RunState.fold(events)) == result


# --------------------------------------------------------------------------- resume


def test_a_resumed_saga_runs_no_recorded_compensation_again(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"
    steps = Steps(failing=frozenset({"c"}))
    steps.hang = "undo-a"  # the process "dies" during the second compensation
    plan = _chain(["a", "b", "c"], {"a", "b"})

    run_id = asyncio.run(
        crash(
            db,
            plan,
            steps.tools(),
            until=lambda _: "undo-a" in steps.calls,
            waiting="the second compensation never started",
        )
    )
    steps.hang = None

    result, events = asyncio.run(resume(db, run_id, steps.tools()))
    assert steps.calls == ["a", "b", "c", "undo-b", "undo-a", "undo-a"]
    assert result.tasks["a.compensate"] == {"status": "succeeded", "attempts": 2}
    assert result.tasks["b.compensate"] == {"status": "succeeded", "attempts": 1}
    assert _finished(events).compensated == ["b", "a"]
    assert len([e for e in events if e.type is EventType.COMPENSATION_STARTED]) == 2
    assert RunResult.of(RunState.fold(events)) == result
    asyncio.run(check_replay(db, run_id, Steps(failing=frozenset({"c"})).tools()))


# --------------------------------------------------------------------------- the fold


def _ran(task: str, ok: bool = True) -> list[tuple[EventType, dict[str, Any]]]:
    error = {"kind": "transient", "message": "no", "retryable": False}
    return [
        (EventType.ATTEMPT_STARTED, {"task": task, "attempt": 1, "tool": "step", "args": {}}),
        (
            EventType.ATTEMPT_FINISHED,
            {"task": task, "attempt": 1, "output": {}}
            if ok
            else {"task": task, "attempt": 1, "error": error},
        ),
        (
            (EventType.TASK_SUCCEEDED, {"task": task, "attempt": 1})
            if ok
            else (EventType.TASK_FAILED, {"task": task, "attempts": 1, "error": error})
        ),
    ]


def test_the_fold_refuses_a_saga_out_of_order() -> None:
    plan = _chain(["a", "b", "c"], {"a", "b"})
    events = forge(plan, *_ran("a"), *_ran("b"), *_ran("c", ok=False))
    state = RunState.fold(events)

    def apply(kind: EventType, data: dict[str, Any]) -> None:
        state.apply(seal("R", state.seq + 1, Draft(kind, events[0].at, data), state.last_hash))

    with pytest.raises(IntegrityError, match="not a plan task that failed"):
        apply(EventType.SAGA_STARTED, {"task": "a", "steps": []})
    state = RunState.fold(events)
    with pytest.raises(IntegrityError, match="did not succeed or has no compensate"):
        apply(EventType.SAGA_STARTED, {"task": "c", "steps": ["c"]})
    state = RunState.fold(events)
    apply(EventType.SAGA_STARTED, {"task": "c", "steps": ["b", "a"]})
    step_a = {"task": "a", "compensation": "a.compensate", "step": 1, "total": 2}
    with pytest.raises(IntegrityError, match="out of its saga's order"):
        apply(EventType.COMPENSATION_STARTED, step_a)
    done = {"task": "c", "compensated": [], "failed": [], "not_run": []}
    with pytest.raises(IntegrityError, match="before its steps ended"):
        apply(EventType.SAGA_FINISHED, done)
    step_b = {"task": "b", "compensation": "b.compensate", "step": 1, "total": 2}
    apply(EventType.COMPENSATION_STARTED, step_b)
    assert state.tasks["b.compensate"].compensates == "b"
    with pytest.raises(IntegrityError, match="out of its saga's order"):
        apply(EventType.COMPENSATION_STARTED, {**step_a, "step": 2})


# --------------------------------------------------------------------------- property


@st.composite
def sagas(draw: st.DrawFn) -> tuple[list[str], set[str], int, Steps]:
    """A chain of 1-6 steps, a random subset undoable, failing at a random step; some
    compensations flaky (fail once: retried), some failing for good."""
    n = draw(st.integers(1, 6))
    names = [f"s{i}" for i in range(n)]
    undone = set(draw(st.sets(st.sampled_from(names))))
    fail_at = draw(st.integers(0, n - 1))
    undos = [f"undo-{name}" for name in names]
    flaky = frozenset(draw(st.sets(st.sampled_from(undos))))
    broken = frozenset(draw(st.sets(st.sampled_from(undos)))) - flaky
    return names, undone, fail_at, Steps(failing=broken | {names[fail_at]}, flaky=flaky)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=sagas())
def test_random_sagas_compensate_what_a_reference_predicts(
    case: tuple[list[str], set[str], int, Steps], tmp_path_factory: pytest.TempPathFactory
) -> None:
    names, undone, fail_at, steps = case
    db = tmp_path_factory.mktemp("saga") / "nexus.db"
    failing, flaky = steps.failing, steps.flaky
    result, events = asyncio.run(run_plan(db, _chain(names, undone), steps.tools()))
    # the reference: the steps before the failure that have a compensation, last first;
    # a flaky compensation runs twice (retried once), a broken one twice then fails
    order = [name for name in reversed(names[:fail_at]) if name in undone]
    expected = names[: fail_at + 1]
    for name in order:
        undo = f"undo-{name}"
        expected += [undo] * (2 if undo in failing or undo in flaky else 1)
    assert steps.calls == expected
    finished = _finished(events)
    assert finished.compensated == [n for n in order if f"undo-{n}" not in failing]
    assert finished.failed == [n for n in order if f"undo-{n}" in failing]
    assert result.status == "failed"
    assert RunResult.of(RunState.fold(events)) == result, "the fold of the log is the live state"
    asyncio.run(check_replay(db, result.run_id, Steps(failing=failing, flaky=flaky).tools()))


def test_the_saga_shows_in_events_and_inspect(tmp_path: Path) -> None:
    from nexus.cli.inspection import view_run, view_task
    from nexus.cli.summaries import summary

    steps = Steps(failing=frozenset({"c", "undo-b"}))
    _, events = asyncio.run(
        run_plan(tmp_path / "nexus.db", _chain(["a", "b", "c"], {"a", "b"}), steps.tools())
    )
    lines = [summary(e) for e in events]
    assert "c failed: compensating b, a, in this order" in lines
    assert "b by b.compensate (step 1 of 2)" in lines
    assert "after c failed: compensated a; compensation failed: b" in lines
    state = RunState.fold(events)
    run = view_run({"run_id": "R"}, state, events)
    assert run["saga"] == {
        "failed": "c",
        "state": "finished",
        "steps": [
            {"task": "b", "compensation": "b.compensate", "status": "failed"},
            {"task": "a", "compensation": "a.compensate", "status": "succeeded"},
        ],
    }
    assert run["tasks"]["a"]["why"] == "compensated after c failed"
    assert run["tasks"]["b"]["why"] == "compensation failed after c failed"
    doc = view_task(state, events, "a.compensate")
    assert (doc["kind"], doc["compensates"]) == ("compensation", "a")
    assert view_task(state, events, "b")["compensation"] == {
        "task": "b.compensate",
        "status": "failed",
    }


def test_a_resume_that_fails_a_task_at_the_interrupt_limit_cancels_the_others_once() -> None:
    """``nexus resume`` fails a task interrupted once too often; its saga cancels the
    other running task, which is then not reported interrupted (it is not running)."""
    from nexus.engine.decider import MAX_INTERRUPTS, Decider

    doc = {
        "version": 1,
        "name": "saga",
        "tasks": {
            "a": {"tool": "step", "with": {"name": "a"}, "priority": 1, "on_failure": "compensate"},
            "b": {"tool": "step", "with": {"name": "b"}},
        },
    }
    plan = _compile(doc)
    at = "2026-01-01T00:00:00.000000Z"
    rows: list[tuple[EventType, dict[str, Any]]] = []
    for n in range(1, MAX_INTERRUPTS + 1):
        error = {"kind": "interrupted", "message": "stopped", "retryable": True}
        rows += [
            (EventType.ATTEMPT_STARTED, {"task": "a", "attempt": n, "tool": "step", "args": {}}),
            (EventType.ATTEMPT_INTERRUPTED, {"task": "a", "attempt": n, "error": error}),
            (
                EventType.RETRY_SCHEDULED,
                {
                    "task": "a",
                    "attempt": n,
                    "error": {**error, "interrupts": n},
                    "delay_ms": 0,
                    "not_before": at,
                },
            ),
            (EventType.TIMER_FIRED, {"task": "a"}),
        ]
    rows += [
        (EventType.ATTEMPT_STARTED, {"task": "a", "attempt": 4, "tool": "step", "args": {}}),
        (EventType.ATTEMPT_STARTED, {"task": "b", "attempt": 1, "tool": "step", "args": {}}),
    ]
    events = forge(plan, *rows)
    state = RunState.fold(events)

    def emit(draft: Draft) -> Event:
        event = seal("R", state.seq + 1, draft, state.last_hash)
        state.apply(event)
        events.append(event)
        return event

    resumed = emit(Draft(EventType.RUN_RESUMED, at, {"interrupted": ["a", "b"], "pid": 1}))
    Decider(state, emit).react(resumed)
    kinds = [(e.type, e.data.get("task")) for e in events[len(rows) + 2 :]]
    assert kinds[:4] == [
        (EventType.ATTEMPT_INTERRUPTED, "a"),
        (EventType.TASK_FAILED, "a"),
        (EventType.SAGA_STARTED, "a"),
        (EventType.TASK_CANCELLED, "b"),
    ]
    assert (EventType.ATTEMPT_INTERRUPTED, "b") not in kinds
    assert state.status == "failed"
    assert RunState.fold(events).tasks == state.tasks


def test_tasks_a_plan_extension_added_are_compensated_too(tmp_path: Path) -> None:
    """An extension's tasks say how to undo themselves as the file's do; they are
    compensated in the order they succeeded, with the workflow's own tasks."""
    steps = Steps(failing=frozenset({"last"}))
    added = {
        "tasks": {
            "x": {"tool": "step", "with": {"name": "x"}, "compensate": _undo("x")},
            "y": {
                "needs": ["x"],
                "tool": "step",
                "with": {"name": "y"},
                "compensate": _undo("y"),
            },
        }
    }
    tools = steps.tools()

    async def propose() -> dict[str, Any]:
        return added

    tools.add(FunctionTool("propose", propose))
    doc = {
        "version": 1,
        "name": "saga",
        "on_failure": "compensate",
        "tasks": {
            "a": {"tool": "step", "with": {"name": "a"}, "compensate": _undo("a")},
            "grow": {"needs": ["a"], "tool": "propose", "extend": True},
            "last": {"needs": ["grow"], "tool": "step", "with": {"name": "last"}},
        },
    }
    names = [*builtin_tools().names(), "step", "propose"]
    plan = compile_workflow(doc, file="saga.yaml", known_tools=names)
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, plan, tools))
    assert steps.calls == ["a", "x", "y", "last", "undo-y", "undo-x", "undo-a"]
    assert _finished(events).compensated == ["y", "x", "a"]
    assert RunResult.of(RunState.fold(events)) == result
    replay = Steps(failing=frozenset({"last"})).tools()
    replay.add(FunctionTool("propose", propose))
    asyncio.run(check_replay(db, result.run_id, replay))
