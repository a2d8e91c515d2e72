"""Run control: a person pauses a run (``Engine.pause``), with or without a process driving
it, answers approvals while it is paused, and resumes it; every step is an event that
replays byte for byte and keeps the audit chain."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from test_engine import (
    RUN_TIMEOUT,
    _started,
    _until,
    dead_pid,
    events_of,
    make_engine,
    marker_alive,
    plan_of,
    with_store,
)

from nexus.domain.errors import NotFoundError
from nexus.domain.events import Event, EventType
from nexus.domain.plan import ApprovalPolicy, Plan, RetryPolicy, TaskSpec
from nexus.domain.state import RunState, TaskStatus
from nexus.engine.facade import Engine, RunResult
from nexus.store.audit import verify_chain
from nexus.store.base import Lease
from nexus.store.sqlite import SQLiteStore
from nexus.tools.base import FunctionTool, ToolFailed

E = EventType


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "nexus.db"


def _counted(calls: list[str]) -> FunctionTool:
    return FunctionTool("counted", lambda: calls.append("x") or len(calls))


def _held_plan(ws: Path) -> Plan:
    """``slow`` runs until the file ``go`` exists; ``after`` needs it; ``other`` waits its turn."""
    return plan_of(
        ws,
        TaskSpec(
            id="slow",
            tool="shell",
            args={"cmd": "echo run >> slow.log; until test -f go; do sleep 0.05; done; echo 47.5"},
        ),
        TaskSpec(id="after", tool="counted", needs=("slow",)),
        TaskSpec(id="other", tool="counted", priority=-1),
        max_parallel=1,
    )


async def _recorded(store: SQLiteStore, run_id: str, type_: EventType, within: float = 10) -> Event:
    async with asyncio.timeout(within):
        while True:
            for event in await store.load(run_id):
                if event.type is type_:
                    return event
            await asyncio.sleep(0.02)


def _slow_runs(ws: Path) -> bool:
    return (ws / "slow.log").exists()


def _replays(db: Path, run_id: str, calls: list[str]) -> None:
    """A fresh engine replays the run identically and calls no tool."""
    before = list(calls)

    async def go(store: SQLiteStore) -> None:
        events = await store.load(run_id)
        report = await make_engine(store, [_counted(calls)]).replay(run_id)
        assert report.identical, report.first_divergence
        assert report.replayed_events == len(events)
        assert report.tools_executed == 0
        assert verify_chain(list(store.chain(run_id))).ok

    with_store(db, go)
    assert calls == before


def test_a_live_run_finishes_its_running_attempt_then_pauses_and_resumes(
    ws: Path, db: Path
) -> None:
    calls: list[str] = []
    tool = _counted(calls)

    async def go(store: SQLiteStore) -> tuple[str, str, RunResult, str]:
        driver = asyncio.create_task(make_engine(store, [tool]).start(_held_plan(ws)))
        run_id = await _started(store, "slow")
        await _until(lambda: _slow_runs(ws))
        outcome = await make_engine(store, [tool]).pause(
            run_id, reason="checking slow's output", by="alice"
        )
        await _recorded(store, run_id, E.PAUSE_REQUESTED)
        pausing = RunState.fold(await store.load(run_id)).pause_summary()
        assert pausing is not None
        assert (pausing["kind"], pausing["state"], pausing["by"]) == ("user", "pausing", "alice")
        again = await make_engine(store, [tool]).pause(run_id, by="bob")
        assert not driver.done(), "the running attempt is not stopped"
        (ws / "go").write_text("")
        result = await asyncio.wait_for(driver, RUN_TIMEOUT)
        record = await store.get_run(run_id)
        assert record is not None
        assert await store.get_lease(run_id) is None, "the process let the run go"
        return outcome, again, result, record.status

    outcome, again, result, stored = with_store(db, go)
    assert (outcome, again) == ("requested", "already")
    assert result.status == "paused" == stored
    assert result.tasks == {
        "slow": {"status": "succeeded", "attempts": 1},
        "after": {"status": "pending", "attempts": 0},
        "other": {"status": "pending", "attempts": 0},
    }
    assert result.pause is not None
    assert {k: result.pause[k] for k in ("kind", "by", "reason")} == {
        "kind": "user",
        "by": "alice",
        "reason": "checking slow's output",
    }
    assert calls == []
    events = with_store(db, lambda s: events_of(s, result.run_id))
    (request,) = [e for e in events if e.type is E.PAUSE_REQUESTED]
    assert request.data == {"by": "alice", "reason": "checking slow's output"}
    assert [e.data["task"] for e in events if e.type is E.ATTEMPT_STARTED] == ["slow"]
    (paused,) = [e for e in events if e.type is E.RUN_PAUSED]
    assert paused.data["reason"] == "user"
    assert paused.data["by"] == "alice"
    assert paused.data["why"] == "checking slow's output"
    assert paused.data["hint"] == f"`nexus resume {result.run_id}` continues it"
    assert paused.seq > request.seq
    _replays(db, result.run_id, calls)

    resumed = with_store(
        db, lambda s: asyncio.wait_for(make_engine(s, [tool]).resume(result.run_id), RUN_TIMEOUT)
    )
    assert resumed.status == "succeeded"
    assert resumed.pause is None
    assert calls == ["x", "x"], "after and other ran once each, slow not again"
    assert resumed.tasks["slow"]["attempts"] == 1
    assert (ws / "slow.log").read_text() == "run\n"
    _replays(db, result.run_id, calls)


async def _crash_while_slow_runs(store: SQLiteStore, ws: Path, tool: FunctionTool) -> str:
    """Start the held plan and leave it as a killed process would: slow running, lease stale."""
    driver = asyncio.create_task(make_engine(store, [tool]).start(_held_plan(ws)))
    run_id = await _started(store, "slow")
    await _until(lambda: _slow_runs(ws))
    driver.cancel()
    with pytest.raises(asyncio.CancelledError):
        await driver
    dead = Lease(
        owner="dead-owner", host=socket.gethostname(), pid=dead_pid(), heartbeat=time.time()
    )
    assert await store.swap_lease(run_id, dead, None)
    return run_id


def test_a_run_nobody_drives_pauses_at_once_and_resume_retries_the_orphaned_attempt(
    ws: Path, db: Path
) -> None:
    calls: list[str] = []
    tool = _counted(calls)

    async def go(store: SQLiteStore) -> tuple[str, RunState, str]:
        run_id = await _crash_while_slow_runs(store, ws, tool)
        outcome = await make_engine(store, [tool]).pause(run_id, reason="after the crash")
        state = RunState.fold(await store.load(run_id))
        record = await store.get_run(run_id)
        assert record is not None
        assert await store.get_lease(run_id) is None
        return outcome, state, record.status

    outcome, state, stored = with_store(db, go)
    assert outcome == "paused"
    assert str(state.status) == "paused" == stored
    # the dead process's attempt is left as it was recorded: the resume interrupts it
    assert state.tasks["slow"].status is TaskStatus.RUNNING
    summary = state.pause_summary()
    assert summary is not None
    assert summary["kind"] == "user"
    assert summary["reason"] == "after the crash"
    assert summary["by"], "who paused it defaults to the OS user"
    events = list(state_events(db, state.run_id))
    (request,) = [e for e in events if e.type is E.PAUSE_REQUESTED]
    assert request.data["orphaned"] == ["slow"]
    assert events[-1].type is E.RUN_PAUSED

    (ws / "go").write_text("")
    resumed = with_store(
        db, lambda s: asyncio.wait_for(make_engine(s, [tool]).resume(state.run_id), RUN_TIMEOUT)
    )
    assert resumed.status == "succeeded"
    assert resumed.tasks["slow"] == {"status": "succeeded", "attempts": 2}
    assert calls == ["x", "x"]
    after = list(state_events(db, state.run_id))
    (resume,) = [e for e in after if e.type is E.RUN_RESUMED]
    assert resume.data["interrupted"] == ["slow"]
    _replays(db, state.run_id, calls)


def state_events(db: Path, run_id: str) -> list[Event]:
    return with_store(db, lambda s: events_of(s, run_id))


def test_pause_of_an_ended_or_unknown_run(ws: Path, db: Path) -> None:
    plan = plan_of(ws, TaskSpec(id="a", tool="noop"))

    async def go(store: SQLiteStore) -> tuple[str, list[Event], list[Event]]:
        result = await make_engine(store).start(plan)
        before = await store.load(result.run_id)
        outcome = await make_engine(store).pause(result.run_id)
        with pytest.raises(NotFoundError, match="no run with id"):
            await make_engine(store).pause("01UNKNOWNRUN0000000000000A")
        return outcome, before, await store.load(result.run_id)

    outcome, before, after = with_store(db, go)
    assert outcome == "finished"
    assert after == before, "nothing recorded on a run that ended"


def test_a_retry_wait_does_not_hold_the_pause_and_its_timer_is_rearmed_on_resume(
    ws: Path, db: Path
) -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ToolFailed("not yet")
        return "ok"

    tool = FunctionTool("flaky", flaky)
    policy = RetryPolicy(retries=2, initial=1.5, multiplier=1.0, maximum=1.5)
    plan = plan_of(ws, TaskSpec(id="t", tool="flaky", retry=policy))

    async def go(store: SQLiteStore) -> tuple[str, RunResult]:
        driver = asyncio.create_task(make_engine(store, [tool]).start(plan))
        runs: list[str] = []
        while not runs:
            runs = [r.run_id for r in await store.list_runs(1)]
            await asyncio.sleep(0.01)
        await _recorded(store, runs[0], E.RETRY_SCHEDULED)
        outcome = await make_engine(store, [tool]).pause(runs[0], reason="wait")
        # nothing runs: the run pauses as soon as its process takes the command
        return outcome, await asyncio.wait_for(driver, 1.2)

    outcome, result = with_store(db, go)
    assert outcome == "requested"
    assert result.status == "paused"
    assert result.tasks["t"] == {"status": "retry_wait", "attempts": 1}
    assert len(attempts) == 1
    resumed = with_store(
        db,
        lambda s: asyncio.wait_for(make_engine(s, [tool]).resume(result.run_id), RUN_TIMEOUT),
    )
    assert resumed.status == "succeeded"
    assert resumed.tasks["t"] == {"status": "succeeded", "attempts": 2}
    assert len(attempts) == 2


def _approval_plan(ws: Path) -> Plan:
    return Plan(
        name="approvals",
        tasks={
            "deploy": TaskSpec(
                id="deploy",
                tool="shell",
                args={"cmd": "echo deployed >> deployed.txt"},
                approval=ApprovalPolicy(),
            ),
        },
        workspace=str(ws),
    )


async def _paused_awaiting_approval(store: SQLiteStore, ws: Path) -> str:
    driver = asyncio.create_task(Engine(store).start(_approval_plan(ws)))
    runs: list[str] = []
    while not runs:
        runs = [r.run_id for r in await store.list_runs() if r.name == "approvals"]
        await asyncio.sleep(0.01)
    await _recorded(store, runs[0], E.APPROVAL_REQUESTED)
    assert await Engine(store).pause(runs[0], reason="freeze", by="ops") == "requested"
    result = await asyncio.wait_for(driver, RUN_TIMEOUT)
    assert result.status == "paused"
    return runs[0]


def test_an_approval_given_while_paused_is_recorded_and_the_run_stays_paused(
    ws: Path, db: Path
) -> None:
    async def go(store: SQLiteStore) -> tuple[str, RunState, RunResult]:
        run_id = await _paused_awaiting_approval(store, ws)
        outcome, result = await Engine(store).answer_approval(
            run_id, "deploy", granted=True, by="ana", reason="ok"
        )
        assert result is None
        state = RunState.fold(await store.load(run_id))
        assert not (ws / "deployed.txt").exists()
        resumed = await asyncio.wait_for(Engine(store).resume(run_id), RUN_TIMEOUT)
        return outcome, state, resumed

    outcome, state, resumed = with_store(db, go)
    assert outcome == "recorded"
    assert str(state.status) == "paused"
    assert state.tasks["deploy"].status is TaskStatus.PENDING
    assert state.tasks["deploy"].approved
    assert resumed.status == "succeeded"
    assert (ws / "deployed.txt").read_text() == "deployed\n"
    _replays(db, resumed.run_id, [])


def test_a_rejection_while_paused_fails_the_task_and_ends_a_run_with_nothing_left(
    ws: Path, db: Path
) -> None:
    async def go(store: SQLiteStore) -> tuple[str, RunState]:
        run_id = await _paused_awaiting_approval(store, ws)
        outcome, _ = await Engine(store).answer_approval(
            run_id, "deploy", granted=False, by="ana", reason="not today"
        )
        return outcome, RunState.fold(await store.load(run_id))

    outcome, state = with_store(db, go)
    assert outcome == "recorded"
    assert str(state.status) == "failed"
    assert state.tasks["deploy"].status is TaskStatus.FAILED
    _replays(db, state.run_id, [])


def test_status_tells_a_budget_pause_from_a_user_pause(ws: Path, db: Path) -> None:
    calls: list[str] = []
    tool = _counted(calls)
    plan = plan_of(
        ws,
        TaskSpec(id="a", tool="counted"),
        TaskSpec(id="b", tool="counted", needs=("a",)),
        budget={"tool_calls": 1},
    )

    async def go(store: SQLiteStore) -> RunResult:
        return await make_engine(store, [tool]).start(plan, force=True)

    result = with_store(db, go)
    assert result.status == "paused"
    assert result.pause == {"kind": "budget"}
    state = RunState.fold(state_events(db, result.run_id))
    assert state.pause_summary() == {"kind": "budget"}


# -- the emergency stop ----------------------------------------------------------------


def _sleeper(ws: Path, marker: str) -> Plan:
    return plan_of(ws, TaskSpec(id="sleep", tool="shell", args={"cmd": f"sleep {marker}"}))


def test_stop_all_cancels_every_live_run_and_records_who_and_why(ws: Path, db: Path) -> None:
    markers = [f"8641{i}.25" for i in range(2)]

    async def go(store: SQLiteStore) -> tuple[Any, list[str], str, str]:
        drivers = [asyncio.create_task(make_engine(store).start(_sleeper(ws, m))) for m in markers]
        await _until(lambda: all(marker_alive(m) for m in markers))
        live = [r.run_id for r in await store.list_runs()]
        # a run whose process died, and one a person paused: neither runs anything
        orphan = await _crash_while_slow_runs(store, ws, _counted([]))
        await make_engine(store).start(plan_of(ws, TaskSpec(id="a", tool="noop")))  # ended
        held = await _paused_awaiting_approval(store, ws)
        report = await make_engine(store).stop_all(reason="runaway agents", by="ops", within=10)
        for driver in drivers:
            assert (await asyncio.wait_for(driver, 1)).status == "cancelled"
        return report, live, orphan, held

    report, live, orphan, held = with_store(db, go)
    outcomes = {run.run_id: (run.outcome, run.status) for run in report.runs}
    assert outcomes == {
        live[0]: ("requested", "cancelled"),
        live[1]: ("requested", "cancelled"),
        orphan: ("cancelled", "cancelled"),
    }
    assert report.stopped
    assert [m for m in markers if marker_alive(m)] == [], "no sandboxed process outlives it"
    for run_id in outcomes:
        events = state_events(db, run_id)
        (cancel,) = [e for e in events if e.type is E.CANCEL_REQUESTED]
        assert cancel.data == {"reason": "emergency stop: runaway agents", "by": "ops"}
        assert events[-1].type is E.RUN_CANCELLED
        _replays(db, run_id, [])
    assert RunState.fold(state_events(db, held)).status == "paused", "a paused run is left"


def test_stop_all_with_nothing_live_and_a_default_reason(ws: Path, db: Path) -> None:
    async def go(store: SQLiteStore) -> tuple[Any, Any]:
        await make_engine(store).start(plan_of(ws, TaskSpec(id="a", tool="noop")))
        empty = await make_engine(store).stop_all()
        orphan = await _crash_while_slow_runs(store, ws, _counted([]))
        return empty, (orphan, await make_engine(store).stop_all())

    empty, (orphan, report) = with_store(db, go)
    assert empty.runs == ()
    assert empty.stopped
    (cancel,) = [e for e in state_events(db, orphan) if e.type is E.CANCEL_REQUESTED]
    assert cancel.data["reason"] == "emergency stop"
    assert cancel.data["by"], "who stopped it defaults to the OS user"
    assert [(r.run_id, r.outcome) for r in report.runs] == [(orphan, "cancelled")]


# -- the run's failure threshold -----------------------------------------------------------


def _flip_plan(ws: Path, count: int, **limits: Any) -> Plan:
    """``count`` independent tasks, one at a time; task ``tNN`` fails when ``fails(NN)``."""
    tasks = [TaskSpec(id=f"t{i:02d}", tool="flip", args={"n": i}) for i in range(count)]
    return plan_of(ws, *tasks, max_parallel=1, fail_fast=False, **limits)


def _flip(ran: list[int], fails: Any) -> FunctionTool:
    def flip(n: int) -> int:
        ran.append(n)
        if fails(n):
            raise ToolFailed(f"task {n} fails")
        return n

    return FunctionTool("flip", flip)


def test_max_failures_ends_a_run_that_goes_badly(ws: Path, db: Path) -> None:
    ran: list[int] = []
    tool = _flip(ran, lambda n: n in (1, 3, 4))
    plan = _flip_plan(ws, 8, max_failures=2)

    result = with_store(db, lambda s: make_engine(s, [tool]).start(plan))
    assert result.status == "failed"
    assert ran == [0, 1, 2, 3], "the second failure stops it: no further task starts"
    statuses = {tid: t["status"] for tid, t in result.tasks.items()}
    assert statuses == {
        "t00": "succeeded",
        "t01": "failed",
        "t02": "succeeded",
        "t03": "failed",
        **{f"t{i:02d}": "skipped" for i in range(4, 8)},
    }
    events = state_events(db, result.run_id)
    reasons = {e.data["reason"] for e in events if e.type is E.TASK_SKIPPED}
    assert reasons == {"max_failures: 2 tasks failed (limit 2)"}
    assert events[-1].type is E.RUN_FAILED
    _replays(db, result.run_id, [])


def test_max_failures_cancels_the_running_and_waiting_tasks(ws: Path, db: Path) -> None:
    plan = plan_of(
        ws,
        TaskSpec(
            id="bad",
            tool="shell",
            args={"cmd": "until test -f slow.log; do sleep 0.02; done; exit 3"},
        ),
        TaskSpec(id="slow", tool="shell", args={"cmd": "echo run > slow.log; sleep 86471.5"}),
        TaskSpec(id="later", tool="noop", needs=("slow",)),
        fail_fast=False,
        max_failures=1,
    )
    result = with_store(db, lambda s: asyncio.wait_for(make_engine(s).start(plan), RUN_TIMEOUT))
    assert result.status == "failed"
    assert {tid: t["status"] for tid, t in result.tasks.items()} == {
        "bad": "failed",
        "slow": "cancelled",
        "later": "skipped",
    }
    assert marker_alive("86471.5") == []
    cancelled = [e for e in state_events(db, result.run_id) if e.type is E.TASK_CANCELLED]
    assert [e.data["reason"] for e in cancelled] == ["max_failures: 1 task failed (limit 1)"]


def test_max_failure_rate_is_judged_once_ten_tasks_have_ended(ws: Path, db: Path) -> None:
    ran: list[int] = []
    tool = _flip(ran, lambda n: n % 2 == 0)  # t00 fails first: 1 of 1, not judged yet
    plan = _flip_plan(ws, 30, max_failure_rate=0.5)

    result = with_store(db, lambda s: make_engine(s, [tool]).start(plan))
    assert result.status == "failed"
    # after t09, 5 of 10 failed: no failure to judge on; t10's makes it 6 of 11
    assert ran == list(range(11))
    events = state_events(db, result.run_id)
    skipped = [e for e in events if e.type is E.TASK_SKIPPED]
    assert len(skipped) == 19
    assert {e.data["reason"] for e in skipped} == {
        "max_failure_rate: 6 of 11 ended tasks failed (55%, limit 50%)"
    }
    _replays(db, result.run_id, [])


def test_a_run_under_its_thresholds_runs_to_the_end(ws: Path, db: Path) -> None:
    ran: list[int] = []
    tool = _flip(ran, lambda n: n in (2, 7))
    plan = _flip_plan(ws, 12, max_failures=3, max_failure_rate=0.25)

    result = with_store(db, lambda s: make_engine(s, [tool]).start(plan))
    assert result.status == "failed"  # two tasks failed; the rest ran
    assert ran == list(range(12))
    events = state_events(db, result.run_id)
    assert not [e for e in events if e.type in (E.TASK_SKIPPED, E.TASK_CANCELLED)]


def test_foreach_items_count_and_their_parent_does_not(ws: Path, db: Path) -> None:
    ran: list[int] = []
    tool = _flip(ran, lambda n: n >= 1)
    plan = plan_of(
        ws,
        TaskSpec(id="each", tool="flip", foreach=[0, 1, 2, 3, 4], args={"n": "{{ item }}"}),
        TaskSpec(id="after", tool="noop", needs=("each",)),
        max_parallel=1,
        fail_fast=False,
        max_failures=3,
    )
    result = with_store(db, lambda s: make_engine(s, [tool]).start(plan))
    assert ran == [0, 1, 2, 3], "items 1, 2 and 3 failed: the third failure stops the run"
    assert result.tasks["each[4]"]["status"] == "skipped"
    assert result.tasks["each"]["status"] == "failed"
    assert result.tasks["after"]["status"] == "skipped"
    state = RunState.fold(state_events(db, result.run_id))
    assert (state.failed_tasks, state.succeeded_tasks) == (3, 1)
