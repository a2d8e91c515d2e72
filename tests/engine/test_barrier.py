"""Barriers: a task that starts once some of its needs succeeded (``needs_any``,
``quorum``), or when its ``wait`` is over (``on_timeout: continue|fail``).

The decider is driven here with recorded inputs (no clock, no workers), so every
order of outcomes can be tried; the engine tests run real tools and timers, crash
a run while it waits and replay runs with no tool call.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _runs import check_replay, crash, load, resume, run_plan, run_started
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.domain.errors import IntegrityError
from nexus.domain.events import Draft, Event, EventType, format_time, seal
from nexus.domain.payloads import AttemptStarted, BarrierArmed
from nexus.domain.plan import Plan
from nexus.domain.state import RunState, TaskStatus
from nexus.engine.decider import Decider
from nexus.engine.facade import RunResult
from nexus.planning.workflow import compile_workflow
from nexus.tools.base import FunctionTool, ToolFailed, ToolRegistry
from nexus.tools.builtins import builtin_tools

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def _plan(tasks: dict[str, Any], **workflow: Any) -> Plan:
    doc = {"version": 1, "name": "barrier", "fail_fast": False, "tasks": tasks, **workflow}
    return compile_workflow(
        doc, file="barrier.yaml", known_tools=[*builtin_tools().names(), "work"]
    )


def _needs(names: list[str]) -> dict[str, Any]:
    return {name: {"tool": "work", "with": {"name": name}} for name in names}


# --------------------------------------------------------------------------- the decider


class Driver:
    """A run driven by hand: inputs are sealed, applied and decided on like the
    controller does, at times the test chooses (one second apart by default)."""

    def __init__(self, plan: Plan) -> None:
        self.clock = T0
        started = run_started(plan)
        first = seal("R", 1, Draft(EventType.RUN_STARTED, self._at(), started), "0" * 64)
        self.events: list[Event] = [first]
        self.state = RunState.start(first)
        self.decider = Decider(self.state, self._emit)
        self.decider.react(first)

    def _at(self) -> str:
        return format_time(self.clock)

    def _emit(self, draft: Draft) -> Event:
        event = seal("R", self.state.seq + 1, draft, self.state.last_hash)
        self.state.apply(event)
        self.events.append(event)
        return event

    def input(self, kind: EventType, data: dict[str, Any], *, after: float = 1.0) -> None:
        self.clock += timedelta(seconds=after)
        self.decider.react(self._emit(Draft(kind, self._at(), data)))

    def finish(self, task: str, ok: bool = True, *, after: float = 1.0) -> None:
        attempt = self.state.tasks[task].attempts
        data: dict[str, Any] = {"task": task, "attempt": attempt}
        if ok:
            data["output"] = {"name": task}
        else:
            data["error"] = {"kind": "validation", "message": f"{task} broke", "retryable": False}
        self.input(EventType.ATTEMPT_FINISHED, data, after=after)

    def time_out(self, task: str) -> None:
        self.input(EventType.BARRIER_TIMED_OUT, {"task": task}, after=0)

    def status(self, task: str) -> TaskStatus:
        return self.state.tasks[task].status

    def of(self, kind: EventType, task: str) -> list[Event]:
        return [e for e in self.events if e.type is kind and e.data.get("task") == task]


def test_needs_any_starts_on_the_first_success_while_the_others_run_on() -> None:
    plan = _plan({**_needs(["a", "b", "c"]), "m": {"tool": "noop", "needs_any": ["a", "b", "c"]}})
    run = Driver(plan)
    assert [run.status(t) for t in "abc"] == [TaskStatus.RUNNING] * 3
    run.finish("b", ok=False)
    assert run.status("m") is TaskStatus.PENDING, "a failed need alone does not settle it"
    run.finish("c")
    assert run.status("m") is TaskStatus.RUNNING, "one success is enough"
    assert run.status("a") is TaskStatus.RUNNING, "the others keep running"
    run.finish("m")
    run.finish("a")
    assert run.state.status.terminal
    assert str(run.state.status) == "failed", "a failed need still fails the run"
    assert run.status("m") is TaskStatus.SUCCEEDED


def test_needs_any_is_skipped_when_none_succeeds_naming_them() -> None:
    plan = _plan({**_needs(["a", "b"]), "m": {"tool": "noop", "needs_any": ["a", "b"]}})
    run = Driver(plan)
    run.finish("a", ok=False)
    run.finish("b", ok=False)
    assert run.status("m") is TaskStatus.SKIPPED
    (skipped,) = run.of(EventType.TASK_SKIPPED, "m")
    assert skipped.data["reason"] == (
        "quorum cannot be reached: 1 of 2 (a, b) must succeed and 2 did not: a, b"
    )


def test_a_quorum_starts_at_its_count_and_is_skipped_once_out_of_reach() -> None:
    names = ["a", "b", "c", "d", "e"]
    tasks = {**_needs(names), "q": {"tool": "noop", "needs": names, "quorum": "3 of 5"}}
    run = Driver(_plan(tasks))
    run.finish("a")
    run.finish("b", ok=False)
    run.finish("c")
    assert run.status("q") is TaskStatus.PENDING
    run.finish("d")
    assert run.status("q") is TaskStatus.RUNNING
    # the same quorum, out of reach: three of five failed
    run = Driver(_plan(tasks))
    for name in ["a", "b", "c"]:
        run.finish(name, ok=False)
    assert run.status("q") is TaskStatus.SKIPPED
    assert (
        run.of(EventType.TASK_SKIPPED, "q")[0]
        .data["reason"]
        .startswith("quorum cannot be reached: 3 of 5 (a, b, c, d, e) must succeed and 3 did not")
    )


def test_needs_beside_needs_any_must_all_succeed() -> None:
    tasks = {
        **_needs(["setup", "a", "b"]),
        "m": {"tool": "noop", "needs": ["setup"], "needs_any": ["a", "b"]},
    }
    run = Driver(_plan(tasks))
    run.finish("a")
    assert run.status("m") is TaskStatus.PENDING, "setup has not succeeded yet"
    run.finish("setup")
    assert run.status("m") is TaskStatus.RUNNING
    run = Driver(_plan(tasks))
    run.finish("a")
    run.finish("setup", ok=False)
    assert run.status("m") is TaskStatus.SKIPPED
    assert run.of(EventType.TASK_SKIPPED, "m")[0].data["reason"] == (
        "dependency did not succeed: setup"
    )


def test_a_foreach_behind_a_barrier_expands_once_it_is_met_and_its_items_run() -> None:
    tasks = {
        **_needs(["a", "b"]),
        "m": {
            "tool": "noop",
            "needs_any": ["a", "b"],
            "foreach": [1, 2],
            "with": {"n": "{{ item }}"},
        },
    }
    run = Driver(_plan(tasks))
    run.finish("b")
    assert run.status("m") is TaskStatus.EXPANDED
    assert [run.status(c) for c in ("m[0]", "m[1]")] == [TaskStatus.RUNNING] * 2
    run.finish("m[0]")
    run.finish("m[1]")
    assert run.status("m") is TaskStatus.SUCCEEDED


def test_a_condition_behind_a_barrier_reads_the_needs_that_ended() -> None:
    tasks = {
        **_needs(["a", "b"]),
        "m": {"tool": "noop", "needs_any": ["a", "b"], "when": "{{ 'a' in tasks }}"},
    }
    run = Driver(_plan(tasks))
    run.finish("b")
    assert run.status("m") is TaskStatus.SKIPPED
    assert run.of(EventType.TASK_SKIPPED, "m")[0].data["reason"].startswith("condition is false")
    run = Driver(_plan(tasks))
    run.finish("a")
    assert run.status("m") is TaskStatus.RUNNING


def test_a_loop_behind_a_met_barrier_iterates_without_waiting_again() -> None:
    tasks = {
        **_needs(["a", "b"]),
        "m": {
            "tool": "noop",
            "needs_any": ["a", "b"],
            "with": {"n": "{{ loop.iteration }}"},
            "loop": {"until": "{{ loop.output.n >= 2 }}", "max_iterations": 3},
        },
    }
    run = Driver(_plan(tasks))
    run.finish("a")
    assert run.status("m") is TaskStatus.RUNNING
    run.input(EventType.ATTEMPT_FINISHED, {"task": "m", "attempt": 1, "output": {"n": 1}})
    assert run.status("m") is TaskStatus.RUNNING, "iteration 2 starts while b still runs"
    run.input(EventType.ATTEMPT_FINISHED, {"task": "m", "attempt": 2, "output": {"n": 2}})
    assert run.status("m") is TaskStatus.SUCCEEDED


def _waiting(on_timeout: str, **extra: Any) -> Plan:
    return _plan(
        {
            **_needs(["a", "b", "c"]),
            "m": {
                "tool": "noop",
                "needs": ["a", "b", "c"],
                "wait": {"timeout": "30s", "on_timeout": on_timeout},
                "with": {"text": "{{ tasks | list | sort | join(',') }}"},
                **extra,
            },
        }
    )


def test_the_wait_is_armed_when_the_first_need_ends() -> None:
    run = Driver(_waiting("fail"))
    assert not run.of(EventType.BARRIER_ARMED, "m"), "nothing ended yet: no deadline"
    run.finish("b", after=5)
    (armed,) = run.of(EventType.BARRIER_ARMED, "m")
    assert BarrierArmed.of(armed.data) == BarrierArmed(
        task="m", timeout_ms=30_000, deadline=format_time(T0 + timedelta(seconds=35))
    )
    assert armed.at == format_time(T0 + timedelta(seconds=5)), "the time of the need's end"
    run.finish("a")
    assert len(run.of(EventType.BARRIER_ARMED, "m")) == 1, "armed once"
    assert run.state.tasks["m"].barrier_deadline == armed.data["deadline"]


def test_on_timeout_fail_fails_the_task_naming_the_needs_still_open() -> None:
    run = Driver(_waiting("fail"))
    run.finish("a")
    run.time_out("m")
    assert run.status("m") is TaskStatus.FAILED
    (failed,) = run.of(EventType.TASK_FAILED, "m")
    assert failed.data["error"] == {
        "kind": "timeout",
        "message": "barrier wait of 30 s ended before its needs were met: still open: b, c "
        "(3 of a, b, c needed; succeeded: a)",
        "retryable": False,
        "details": {"succeeded": ["a"], "unsuccessful": [], "open": ["b", "c"], "quorum": 3},
    }


def test_on_timeout_continue_starts_with_the_needs_that_succeeded() -> None:
    run = Driver(_waiting("continue"))
    run.finish("a")
    run.finish("c", ok=False)
    run.time_out("m")
    assert run.status("m") is TaskStatus.RUNNING
    (started,) = run.of(EventType.ATTEMPT_STARTED, "m")
    # its templates see the needs that ended, as ever: b is still running
    assert AttemptStarted.of(started.data).args == {"text": "a,c"}
    run.finish("m")
    run.finish("b")
    assert run.status("m") is TaskStatus.SUCCEEDED


def test_on_timeout_continue_with_no_need_succeeded_skips_the_task() -> None:
    run = Driver(_waiting("continue"))
    run.finish("a", ok=False)
    run.time_out("m")
    assert run.status("m") is TaskStatus.SKIPPED
    assert run.of(EventType.TASK_SKIPPED, "m")[0].data["reason"] == (
        "barrier wait of 30 s ended with no need succeeded (still open: b, c)"
    )


def test_a_failed_need_fails_a_wait_that_fails_at_once() -> None:
    run = Driver(_waiting("fail"))
    run.finish("a", ok=False)
    assert run.status("m") is TaskStatus.SKIPPED, "all three must succeed: they cannot"


def test_a_wait_that_continues_goes_on_once_every_need_ended_without_the_quorum() -> None:
    run = Driver(_waiting("continue"))
    run.finish("a", ok=False)
    run.finish("b")
    assert run.status("m") is TaskStatus.PENDING, "c may still succeed before the deadline"
    run.finish("c")
    assert run.status("m") is TaskStatus.RUNNING, "nothing left to wait for: best effort"
    assert not run.of(EventType.BARRIER_TIMED_OUT, "m")
    run = Driver(_waiting("continue"))
    for name in "abc":
        run.finish(name, ok=False)
    assert run.status("m") is TaskStatus.SKIPPED
    assert run.of(EventType.TASK_SKIPPED, "m")[0].data["reason"] == "no need succeeded: a, b, c"


def test_the_fold_refuses_a_timeout_of_a_barrier_not_armed() -> None:
    run = Driver(_waiting("fail"))
    bad = seal(
        "R",
        run.state.seq + 1,
        Draft(EventType.BARRIER_TIMED_OUT, run._at(), {"task": "m"}),
        run.state.last_hash,
    )
    with pytest.raises(IntegrityError, match="not a pending task waiting on an armed barrier"):
        run.state.apply(bad)
    run.finish("a")
    armed = {"task": "m", "timeout_ms": 1, "deadline": run._at()}
    again = seal(
        "R",
        run.state.seq + 1,
        Draft(EventType.BARRIER_ARMED, run._at(), armed),
        run.state.last_hash,
    )
    with pytest.raises(IntegrityError, match="with a barrier wait not armed yet"):
        run.state.apply(again)


# --------------------------------------------------------------------------- property


@st.composite
def barriers(draw: st.DrawFn) -> dict[str, Any]:
    """A barrier over 1-6 needs (needs_any, a quorum, or all, with or without a
    wait), random outcomes, a random order, and the deadline passing at a random point."""
    count = draw(st.integers(1, 6))
    names = [f"n{i}" for i in range(count)]
    mode = draw(st.sampled_from(["any", "quorum", "all"]))
    required = draw(st.integers(0, 2)) if mode == "any" else 0
    counted = names[required:] if mode == "any" else names
    if not counted:
        counted, required = names, 0
    quorum = {"any": 1, "all": len(counted)}.get(mode) or draw(st.integers(1, len(counted)))
    wait = draw(st.sampled_from([None, "fail", "continue"]))
    return {
        "names": names,
        "required": names[:required],
        "counted": counted,
        "quorum": quorum,
        "mode": mode,
        "wait": wait,
        "outcomes": draw(st.lists(st.booleans(), min_size=count, max_size=count)),
        "order": draw(st.permutations(names)),
        "deadline_after": draw(st.integers(1, count)),
    }


def _barrier_plan(case: dict[str, Any]) -> Plan:
    spec: dict[str, Any] = {"tool": "noop"}
    if case["mode"] == "any":
        spec["needs_any"] = case["counted"]
        if case["required"]:
            spec["needs"] = case["required"]
    else:
        spec["needs"] = case["names"]
        if case["mode"] == "quorum":
            spec["quorum"] = f"{case['quorum']} of {len(case['counted'])}"
    if case["wait"] is not None:
        spec["wait"] = {"timeout": 10, "on_timeout": case["wait"]}
    return _plan({**_needs(case["names"]), "m": spec})


def _reference(case: dict[str, Any]) -> tuple[str, int]:
    """What the barrier does, and after how many needs ended: ``started``, ``skipped``
    or ``failed``; the deadline passes (if there is a wait) after ``deadline_after``."""
    outcome = dict(zip(case["names"], case["outcomes"], strict=True))
    if case["mode"] == "all" and case["wait"] is None:  # plain needs: no barrier at all
        return ("started" if all(case["outcomes"]) else "skipped"), len(case["names"])
    ended: list[str] = []
    for step, name in enumerate(case["order"], start=1):
        ended.append(name)
        ok = {n for n in ended if outcome[n]}
        bad = {n for n in ended if not outcome[n]}
        if bad & set(case["required"]):
            return "skipped", step
        counted = case["counted"]
        best_effort = case["wait"] == "continue"
        if len(counted) - len(bad & set(counted)) < case["quorum"]:
            if not best_effort:
                return "skipped", step
            if len(ended) == len(case["names"]):
                return ("started" if ok else "skipped"), step
        elif set(case["required"]) <= ok and len(ok & set(counted)) >= case["quorum"]:
            return "started", step
        if case["wait"] is not None and step == case["deadline_after"]:
            if case["wait"] == "fail":
                return "failed", step
            return ("started" if ok else "skipped"), step
    raise AssertionError("every need ended and the barrier is still undecided")


@settings(max_examples=300, deadline=None)
@given(case=barriers())
def test_random_barriers_start_exactly_when_a_reference_predicts(case: dict[str, Any]) -> None:
    run = Driver(_barrier_plan(case))
    outcome = dict(zip(case["names"], case["outcomes"], strict=True))
    expected, at_step = _reference(case)
    decided: tuple[str, int] | None = None
    for step, name in enumerate(case["order"], start=1):
        run.finish(name, ok=outcome[name])
        deadline = case["wait"] is not None and step == case["deadline_after"]
        if deadline and run.status("m") is TaskStatus.PENDING:
            assert run.state.tasks["m"].barrier_deadline is not None, "armed by now"
            run.time_out("m")
        status = run.status("m")
        if decided is None and status is not TaskStatus.PENDING:
            kinds = {
                TaskStatus.RUNNING: "started",
                TaskStatus.SKIPPED: "skipped",
                TaskStatus.FAILED: "failed",
            }
            decided = (kinds[status], step)
    assert decided == (expected, at_step)
    if expected == "started":
        run.finish("m")
    assert run.state.status.terminal, "every run ends"
    folded = RunState.fold(run.events)
    assert {t: s.to_dict() for t, s in folded.tasks.items()} == {
        t: s.to_dict() for t, s in run.state.tasks.items()
    }, "the fold of the log is the live state"
    armed = run.of(EventType.BARRIER_ARMED, "m")
    assert len(armed) <= 1
    if case["wait"] is None:
        assert not armed


# --------------------------------------------------------------------------- the engine


class Work:
    """The ``work`` tool: each call notes its name; ``slow`` ones wait for ``release``
    (or ``hang`` seconds), ``broken`` ones fail."""

    def __init__(self, slow: frozenset[str] = frozenset(), broken: frozenset[str] = frozenset()):
        self.slow = slow
        self.broken = broken
        self.calls: list[str] = []
        self.release: asyncio.Event | None = None
        self.hang = 5.0

    def tools(self) -> ToolRegistry:
        tools = builtin_tools()
        tools.add(FunctionTool("work", self.work))
        return tools

    async def work(self, name: str) -> dict[str, Any]:
        self.calls.append(name)
        if name in self.slow:
            if self.release is None:
                self.release = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), self.hang)
        if name in self.broken:
            raise ToolFailed(f"{name} broke")
        if name == "merge" and self.release is not None:
            self.release.set()  # the barrier passed: the slow ones may end now
        return {"name": name}


def _engine_plan(barrier: dict[str, Any]) -> Plan:
    return _plan(
        {
            **_needs(["fast", "slow"]),
            "merge": {
                "tool": "work",
                "needs": ["fast", "slow"],
                "with": {"name": "merge"},
                **barrier,
            },
            "report": {
                "tool": "noop",
                "needs": ["merge"],
                "with": {"text": "{{ tasks.merge.output.name }}"},
            },
        }
    )


def _types(events: list[Event], task: str) -> list[str]:
    return [str(e.type) for e in events if e.data.get("task") == task]


def test_a_quorum_of_one_runs_before_the_slow_need_ends(tmp_path: Path) -> None:
    work = Work(slow=frozenset({"slow"}))
    db = tmp_path / "nexus.db"
    plan = _engine_plan({"quorum": 1})
    result, events = asyncio.run(run_plan(db, plan, work.tools()))
    assert result.status == "succeeded"
    assert work.calls.index("merge") > work.calls.index("slow")
    finished = [e.data["task"] for e in events if e.type is EventType.ATTEMPT_FINISHED]
    assert finished.index("merge") < finished.index("slow"), "merge did not wait for slow"
    assert RunResult.of(RunState.fold(events)) == result
    asyncio.run(check_replay(db, result.run_id, Work().tools()))


def test_a_wait_that_continues_runs_with_what_succeeded_and_replays(tmp_path: Path) -> None:
    work = Work(slow=frozenset({"slow"}))
    db = tmp_path / "nexus.db"
    plan = _engine_plan({"wait": {"timeout": "200ms", "on_timeout": "continue"}})
    result, events = asyncio.run(run_plan(db, plan, work.tools()))
    assert result.status == "succeeded"
    assert _types(events, "merge")[:3] == ["barrier.armed", "barrier.timed_out", "attempt.started"]
    timed_out = next(e for e in events if e.type is EventType.BARRIER_TIMED_OUT)
    armed = next(e for e in events if e.type is EventType.BARRIER_ARMED)
    assert timed_out.at >= armed.data["deadline"]
    assert RunResult.of(RunState.fold(events)) == result
    asyncio.run(check_replay(db, result.run_id, Work().tools()))


def test_a_wait_that_fails_fails_the_task_and_the_run(tmp_path: Path) -> None:
    work = Work(slow=frozenset({"slow"}))
    work.hang = 0.5
    db = tmp_path / "nexus.db"
    plan = _engine_plan({"wait": {"timeout": "100ms"}})
    result, events = asyncio.run(run_plan(db, plan, work.tools()))
    assert result.status == "failed"
    assert result.tasks["merge"]["status"] == "failed"
    assert result.tasks["slow"]["status"] == "succeeded", "the slow need ran to its end"
    assert result.tasks["report"]["status"] == "skipped"
    assert "merge" not in work.calls
    failed = next(e for e in events if e.type is EventType.TASK_FAILED)
    assert failed.data["error"]["message"].startswith(
        "barrier wait of 0.1 s ended before its needs were met: still open: slow"
    )
    asyncio.run(check_replay(db, result.run_id, Work().tools()))


def test_a_run_resumed_while_a_barrier_waits_keeps_its_deadline(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"
    work = Work(slow=frozenset({"slow"}))
    work.hang = 60
    plan = _engine_plan({"wait": {"timeout": "1s", "on_timeout": "continue"}})

    run_id = asyncio.run(
        crash(
            db,
            plan,
            work.tools(),
            until=lambda events: any(e.type is EventType.BARRIER_ARMED for e in events),
            waiting="the barrier was never armed",
        )
    )
    assert work.calls == ["fast", "slow"] or work.calls == ["slow", "fast"]
    work.calls.clear()
    work.release = None
    work.hang = 10  # the slow need, run again after the resume, ends once merge ran
    before = RunState.fold(asyncio.run(load(db, run_id)))
    assert before.tasks["merge"].barrier_deadline is not None

    result, events = asyncio.run(resume(db, run_id, work.tools()))
    assert result.status == "succeeded"
    assert "fast" not in work.calls, "a need recorded complete does not run again"
    armed = [e for e in events if e.type is EventType.BARRIER_ARMED]
    assert len(armed) == 1, "the deadline the first process set is kept, not armed again"
    timed_out = [e for e in events if e.type is EventType.BARRIER_TIMED_OUT]
    assert len(timed_out) == 1
    assert timed_out[0].at >= armed[0].data["deadline"]
    asyncio.run(check_replay(db, run_id, Work().tools()))


def test_barriers_show_in_events(tmp_path: Path) -> None:
    from nexus.cli.summaries import summary

    work = Work(slow=frozenset({"slow"}))
    plan = _engine_plan({"wait": {"timeout": "100ms", "on_timeout": "continue"}})
    _, events = asyncio.run(run_plan(tmp_path / "nexus.db", plan, work.tools()))
    lines = [summary(e) for e in events if e.data.get("task") == "merge"]
    armed = next(e for e in events if e.type is EventType.BARRIER_ARMED)
    assert f"merge waits for its needs until {armed.data['deadline']}" in lines
    assert "merge: the barrier wait is over" in lines


def test_inspect_shows_what_a_barrier_started_with_and_a_hint_when_it_ran_out(
    tmp_path: Path,
) -> None:
    from nexus.cli.inspection import hint_for, view_task

    work = Work(slow=frozenset({"slow"}))
    plan = _engine_plan({"wait": {"timeout": "100ms", "on_timeout": "continue"}})
    _, events = asyncio.run(run_plan(tmp_path / "continue.db", plan, work.tools()))
    doc = view_task(RunState.fold(events), events, "merge")
    assert doc["barrier"] == {
        "quorum": 2,
        "of": ["fast", "slow"],
        "succeeded": ["fast"],
        "unsuccessful": [],
        "open": ["slow"],
        "timeout": 0.1,
        "on_timeout": "continue",
        "deadline": next(e for e in events if e.type is EventType.BARRIER_ARMED).data["deadline"],
        "timed_out": True,
    }, "what it started with, not what ended since"
    work = Work(slow=frozenset({"slow"}))
    work.hang = 0.3
    plan = _engine_plan({"wait": {"timeout": "100ms"}})
    _, events = asyncio.run(run_plan(tmp_path / "fail.db", plan, work.tools()))
    doc = view_task(RunState.fold(events), events, "merge")
    hint = hint_for(doc["error"], "R", 0)
    assert hint is not None
    assert "raise `wait.timeout`" in hint


def test_a_barrier_added_by_a_plan_extension_is_judged_on_the_needs_already_ended(
    tmp_path: Path,
) -> None:
    added = {
        "slow": {"tool": "work", "with": {"name": "slow"}},
        "merge": {"tool": "work", "needs_any": ["setup", "slow"], "with": {"name": "merge"}},
    }
    plan = _plan(
        {
            "setup": {"tool": "work", "with": {"name": "setup"}},
            "grow": {"tool": "noop", "needs": ["setup"], "extend": True, "with": {"tasks": added}},
        }
    )
    work = Work(slow=frozenset({"slow"}))
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, plan, work.tools()))
    assert result.status == "succeeded"
    finished = [e.data["task"] for e in events if e.type is EventType.ATTEMPT_FINISHED]
    assert finished.index("merge") < finished.index("slow"), "setup had succeeded: no wait"
    assert RunResult.of(RunState.fold(events)) == result
    asyncio.run(check_replay(db, result.run_id, Work().tools()))
