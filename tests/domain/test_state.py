"""The run and task state machines, and the fold that rebuilds state from events."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from nexus.domain.canonical import GENESIS_HASH
from nexus.domain.errors import IntegrityError, NexusError
from nexus.domain.events import Draft, Event, EventType, seal
from nexus.domain.payloads import PAYLOADS
from nexus.domain.plan import AgentSpec, Plan, RetryPolicy, TaskSpec, plan_hash
from nexus.domain.state import RunState, RunStatus, TaskStatus
from nexus.engine.facade import Engine
from nexus.store.sqlite import SQLiteStore
from nexus.tools.base import ToolContext, ToolFailed, ToolRegistry

AT = "2026-01-01T00:00:00.000000Z"
E = EventType
S = TaskStatus


def started_event(plan: Plan, run_id: str = "RUN") -> Event:
    data = {
        "name": plan.name,
        "plan": plan.to_dict(),
        "plan_hash": plan_hash(plan),
        "inputs": plan.inputs,
        "workspace": "/nonexistent",
        "source": None,
    }
    return seal(run_id, 1, Draft(E.RUN_STARTED, AT, data), GENESIS_HASH)


#: what a hand-written event leaves out of a field its payload model requires
_FILLERS: dict[str, Any] = {
    "attempt": 1,
    "attempts": 1,
    "reason": "test",
    "delay_ms": 0,
    "not_before": AT,
    "error": {"kind": "transient", "message": "boom", "retryable": True},
    "key": "RUN/a/1/0",
    "kind": "clock",
    "task": "a",
    "request": {},
    "response": None,
    "result_hash": None,
    "started": AT,
    "ended": AT,
    "by": None,
    "status": "x",
    "tasks": {},
    "interrupted": [],
    "pid": 1,
}


def complete(type_: EventType, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with every field its payload model requires (the fold reads them strictly)."""
    out = dict(data)
    for f in fields(PAYLOADS[type_]):  # type: ignore[arg-type]
        if f.name not in out and f.default is MISSING:
            out[f.name] = _FILLERS[f.name]
    return out


class Log:
    """Builds a valid chain of events by hand."""

    def __init__(self, plan: Plan) -> None:
        self.events = [started_event(plan)]

    def next(self, type_: EventType, **data: Any) -> Event:
        last = self.events[-1]
        draft = Draft(type_, AT, complete(type_, data))
        return seal(last.run_id, last.seq + 1, draft, last.hash)

    def add(self, type_: EventType, **data: Any) -> Event:
        event = self.next(type_, **data)
        self.events.append(event)
        return event


def two_task_plan() -> Plan:
    return Plan(
        name="two",
        tasks={
            "a": TaskSpec(id="a", tool="noop"),
            "b": TaskSpec(id="b", tool="noop", needs=("a",)),
        },
    )


def _error(retryable: bool = True) -> dict[str, Any]:
    return {"kind": "transient", "message": "boom", "retryable": retryable}


# -- fold of hand-written logs ---------------------------------------------------


def test_fold_of_a_successful_log() -> None:
    log = Log(two_task_plan())
    state = RunState.fold(log.events)
    assert state.status is RunStatus.RUNNING
    assert state.open_tasks == 2
    assert state.tasks["b"].waiting_on == 1
    assert state.pop_ready() is state.tasks["a"]
    assert state.pop_ready() is None  # b still waits for a

    log.add(E.ATTEMPT_STARTED, task="a", attempt=1, tool="noop", args={})
    log.add(E.EFFECT_RECORDED, key="RUN/a/1/0", task="a", attempt=1)
    log.add(E.ATTEMPT_FINISHED, task="a", attempt=1, output={"x": 1})
    log.add(E.TASK_SUCCEEDED, task="a", attempt=1)
    log.add(E.ATTEMPT_STARTED, task="b", attempt=1, tool="noop", args={})
    log.add(E.ATTEMPT_FINISHED, task="b", attempt=1, error=_error())
    log.add(E.RETRY_SCHEDULED, task="b", attempt=1, error=_error(), delay_ms=5, not_before=AT)
    log.add(E.TIMER_FIRED, task="b")
    log.add(E.ATTEMPT_STARTED, task="b", attempt=2, tool="noop", args={})
    log.add(E.ATTEMPT_FINISHED, task="b", attempt=2, output="done")
    log.add(E.TASK_SUCCEEDED, task="b", attempt=2)
    log.add(E.RUN_SUCCEEDED, status="succeeded", tasks={"succeeded": 2})

    state = RunState.fold(log.events)
    assert state.status is RunStatus.SUCCEEDED
    assert state.seq == len(log.events)
    assert state.last_hash == log.events[-1].hash
    assert state.effects == 1
    assert state.open_tasks == 0
    assert state.running == 0
    a, b = state.tasks["a"], state.tasks["b"]
    assert (a.status, a.attempts, a.output, a.error) == (S.SUCCEEDED, 1, {"x": 1}, None)
    assert (b.status, b.attempts, b.output, b.error) == (S.SUCCEEDED, 2, "done", None)
    assert state.outputs() == {
        "a": {"output": {"x": 1}, "status": "succeeded"},
        "b": {"output": "done", "status": "succeeded"},
    }


def test_fold_of_foreach_collects_item_outputs_in_order() -> None:
    plan = Plan(name="fe", tasks={"f": TaskSpec(id="f", tool="noop", foreach=[3, 1, 2])})
    log = Log(plan)
    log.add(E.TASK_EXPANDED, task="f", items=[3, 1, 2])
    # finish the items out of order
    for index in (2, 0, 1):
        cid = f"f[{index}]"
        log.add(E.ATTEMPT_STARTED, task=cid, attempt=1, tool="noop", args={})
        log.add(E.ATTEMPT_FINISHED, task=cid, attempt=1, output=index * 10)
        log.add(E.TASK_SUCCEEDED, task=cid, attempt=1)
    state = RunState.fold(log.events)
    parent = state.pop_parent_done()
    assert parent is not None
    assert parent.id == "f"
    log.add(E.TASK_SUCCEEDED, task="f")
    state = RunState.fold(log.events)
    assert state.tasks["f"].status is S.SUCCEEDED
    assert state.tasks["f"].output == [0, 10, 20]
    assert state.tasks["f[1]"].item == 1
    assert state.tasks["f[1]"].parent == "f"
    assert state.open_tasks == 0
    assert list(state.outputs()) == ["f"]  # items are not visible to templates


def test_agent_load_and_turns_follow_attempts() -> None:
    plan = Plan(
        name="ag",
        tasks={"c": TaskSpec(id="c", capability="x", prompt="hi")},
        agents={"x1": AgentSpec(name="x1", capabilities=("x",), model="scripted:m")},
    )
    log = Log(plan)
    log.add(E.ATTEMPT_STARTED, task="c", attempt=1, agent="x1")
    state = RunState.fold(log.events)
    assert state.agent_load == {"x1": 1}
    assert state.agent_turns == {"x1": 1}
    assert state.running == 1
    log.add(E.ATTEMPT_FINISHED, task="c", attempt=1, output="ok")
    log.add(E.TASK_SUCCEEDED, task="c", attempt=1)
    state = RunState.fold(log.events)
    assert state.agent_load == {"x1": 0}
    assert state.running == 0


# -- illegal transitions ------------------------------------------------------------


def _rejects(events: Sequence[Event], bad: Event, match: str) -> None:
    state = RunState.fold(list(events))
    with pytest.raises(IntegrityError, match=match):
        state.apply(bad)
    with pytest.raises(IntegrityError, match=match):
        RunState.fold([*events, bad])


def test_attempt_finished_for_a_task_that_is_not_running() -> None:
    log = Log(two_task_plan())
    _rejects(log.events, log.next(E.ATTEMPT_FINISHED, task="a", attempt=1, output=1), "not running")
    log.add(E.ATTEMPT_STARTED, task="a", attempt=1)
    # wrong attempt number
    _rejects(log.events, log.next(E.ATTEMPT_FINISHED, task="a", attempt=2, output=1), "not running")
    log.add(E.ATTEMPT_FINISHED, task="a", attempt=1, output=1)
    log.add(E.TASK_SUCCEEDED, task="a", attempt=1)
    # after the task ended
    _rejects(log.events, log.next(E.ATTEMPT_FINISHED, task="a", attempt=1, output=1), "not running")


def test_seq_gap_and_repeated_seq_are_rejected() -> None:
    log = Log(two_task_plan())
    log.add(E.RUN_RESUMED)
    last = log.events[-1]
    resumed = complete(E.RUN_RESUMED, {})
    gap = seal("RUN", last.seq + 2, Draft(E.RUN_RESUMED, AT, resumed), last.hash)
    _rejects(log.events, gap, "expected seq 3, got 4")
    repeat = seal("RUN", last.seq, Draft(E.RUN_RESUMED, AT, resumed), last.hash)
    _rejects(log.events, repeat, "expected seq 3, got 2")


def test_event_after_the_run_ended_is_rejected() -> None:
    log = Log(two_task_plan())
    log.add(E.CANCEL_REQUESTED, reason="x")
    log.add(E.TASK_SKIPPED, task="a", reason="x")
    log.add(E.TASK_SKIPPED, task="b", reason="x")
    log.add(E.RUN_CANCELLED, status="cancelled", tasks={"skipped": 2})
    _rejects(log.events, log.next(E.RUN_RESUMED), "after the run ended")
    _rejects(log.events, log.next(E.RUN_SUCCEEDED, status="succeeded"), "after the run ended")
    # a late effect record is the one input still accepted: the effect did happen
    late = log.add(E.EFFECT_RECORDED, key="k", task="a", attempt=1)
    state = RunState.fold(log.events)
    assert state.status is RunStatus.CANCELLED
    assert state.seq == late.seq
    assert state.effects == 1


def test_first_event_must_be_run_started() -> None:
    with pytest.raises(IntegrityError, match="empty"):
        RunState.fold([])
    log = Log(two_task_plan())
    second = log.add(E.RUN_RESUMED)
    with pytest.raises(IntegrityError, match=r"first event must be run\.started"):
        RunState.fold([second])
    wrong_seq = seal("RUN", 2, Draft(E.RUN_STARTED, AT, log.events[0].data), GENESIS_HASH)
    with pytest.raises(IntegrityError, match=r"first event must be run\.started"):
        RunState.start(wrong_seq)


@pytest.mark.parametrize(
    ("setup", "bad", "match"),
    [
        ([], (E.TASK_SUCCEEDED, {"task": "a"}), "from pending to succeeded"),
        ([], (E.TIMER_FIRED, {"task": "a"}), "from pending to pending"),
        (
            [],
            (E.RETRY_SCHEDULED, {"task": "a", "error": {}, "not_before": AT}),
            "from pending to retry_wait",
        ),
        ([], (E.ATTEMPT_INTERRUPTED, {"task": "a", "error": {}}), "interrupted but not running"),
        ([(E.ATTEMPT_STARTED, {"task": "a", "attempt": 1})], (E.TASK_SKIPPED, {"task": "a"}), ""),
        (
            [(E.ATTEMPT_STARTED, {"task": "a", "attempt": 1})],
            (E.ATTEMPT_STARTED, {"task": "a", "attempt": 2}),
            "from running to running",
        ),
        (
            [(E.ATTEMPT_STARTED, {"task": "a", "attempt": 1})],
            (E.TIMER_FIRED, {"task": "a"}),
            "from running to pending",
        ),
        (
            [(E.ATTEMPT_STARTED, {"task": "a", "attempt": 1})],
            (E.TASK_EXPANDED, {"task": "a", "items": [1]}),
            "from running to expanded",
        ),
        (
            [(E.TASK_SKIPPED, {"task": "a"})],
            (E.TASK_CANCELLED, {"task": "a"}),
            "from skipped to cancelled",
        ),
        (
            [(E.TASK_FAILED, {"task": "a", "error": {}})],
            (E.ATTEMPT_STARTED, {"task": "a", "attempt": 1}),
            "from failed to running",
        ),
        ([], (E.ATTEMPT_STARTED, {"task": "zz", "attempt": 1}), "unknown task 'zz'"),
    ],
)
def test_illegal_task_transitions_raise(
    setup: list[tuple[EventType, dict[str, Any]]],
    bad: tuple[EventType, dict[str, Any]],
    match: str,
) -> None:
    log = Log(two_task_plan())
    for kind, data in setup:
        log.add(kind, **data)
    _rejects(log.events, log.next(bad[0], **bad[1]), match or "illegal transition")


# -- random event sequences against an independent model -----------------------------

#: The legal task transitions, written out from the state diagram.
LEGAL = {
    (S.PENDING, S.RUNNING),
    (S.PENDING, S.EXPANDED),
    (S.PENDING, S.SKIPPED),
    (S.PENDING, S.CANCELLED),
    (S.PENDING, S.FAILED),
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.RETRY_WAIT),
    (S.RUNNING, S.CANCELLED),
    (S.RETRY_WAIT, S.PENDING),
    (S.RETRY_WAIT, S.CANCELLED),
    (S.RETRY_WAIT, S.FAILED),
    (S.EXPANDED, S.SUCCEEDED),
    (S.EXPANDED, S.FAILED),
    (S.EXPANDED, S.CANCELLED),
}
TERMINAL = {S.SUCCEEDED, S.FAILED, S.SKIPPED, S.CANCELLED}
TARGET = {
    E.ATTEMPT_STARTED: S.RUNNING,
    E.TASK_EXPANDED: S.EXPANDED,
    E.RETRY_SCHEDULED: S.RETRY_WAIT,
    E.TIMER_FIRED: S.PENDING,
    E.TASK_SUCCEEDED: S.SUCCEEDED,
    E.TASK_FAILED: S.FAILED,
    E.TASK_SKIPPED: S.SKIPPED,
    E.TASK_CANCELLED: S.CANCELLED,
}
#: Event kinds to offer, weighted towards progress (ending a task is easy to reach).
KINDS = [
    *[E.ATTEMPT_STARTED] * 4,
    *[E.RETRY_SCHEDULED] * 2,
    *[E.TIMER_FIRED] * 2,
    *[E.TASK_SUCCEEDED] * 3,
    E.TASK_EXPANDED,
    E.TASK_FAILED,
    E.TASK_SKIPPED,
    E.TASK_CANCELLED,
]
RANDOM_PLAN = Plan(
    name="random",
    tasks={
        "a": TaskSpec(id="a", tool="noop"),
        "b": TaskSpec(id="b", tool="noop", needs=("a",)),
        "c": TaskSpec(id="c", capability="x", prompt="p"),
        "d": TaskSpec(id="d", tool="noop", needs=("a",), foreach=[1, 2]),
        "e": TaskSpec(id="e", tool="noop", needs=("b", "c")),
    },
    agents={
        "x1": AgentSpec(name="x1", capabilities=("x",), model="scripted:m"),
        "x2": AgentSpec(name="x2", capabilities=("x",), model="scripted:m"),
    },
)


class TaskModel:
    def __init__(self, parent: str | None = None) -> None:
        self.status = S.PENDING
        self.attempts = 0
        self.agent: str | None = None
        self.last_output: Any = None
        self.output: Any = None
        self.children: list[str] = []
        self.parent = parent


class RunMachine(RuleBasedStateMachine):
    """Applies random (often illegal) events; the state must agree with a simple model."""

    def __init__(self) -> None:
        super().__init__()
        self.log = Log(RANDOM_PLAN)
        self.state = RunState.fold(self.log.events)
        self.model = {tid: TaskModel() for tid in RANDOM_PLAN.tasks}
        self.ended = False
        self.rejected = 0

    def _deps_ended(self, tid: str) -> bool:
        if self.model[tid].parent is not None:
            return True  # an item exists only once its parent could start
        return all(self.model[d].status in TERMINAL for d in RANDOM_PLAN.tasks[tid].needs)

    def _offer(self, kind: EventType, data: dict[str, Any], legal: bool) -> None:
        event = self.log.next(kind, **data)
        if self.ended and kind is not E.EFFECT_RECORDED:
            legal = False
        try:
            self.state.apply(event)
        except IntegrityError:
            assert not legal, f"legal {kind} {data} was rejected"
            self.rejected += 1
            # a rejected event may have touched the state: rebuild it from the log
            self.state = RunState.fold(self.log.events)
            return
        assert legal, f"illegal {kind} {data} was accepted"
        self.log.events.append(event)
        self._model_apply(kind, data)

    def _model_apply(self, kind: EventType, data: dict[str, Any]) -> None:
        if kind in (E.RUN_SUCCEEDED, E.RUN_FAILED, E.RUN_CANCELLED):
            self.ended = True
            return
        if kind not in TARGET and kind is not E.ATTEMPT_FINISHED:
            return
        task = self.model[data["task"]]
        if kind is E.ATTEMPT_FINISHED:
            task.last_output = data.get("output")
            return
        if kind is E.ATTEMPT_STARTED:
            task.attempts = data["attempt"]
            task.agent = data.get("agent")
            task.last_output = None
        if kind is E.TASK_EXPANDED:
            for index in range(len(data["items"])):
                cid = f"{data['task']}[{index}]"
                self.model[cid] = TaskModel(parent=data["task"])
                task.children.append(cid)
        if kind is E.TASK_SUCCEEDED:
            task.output = (
                [self.model[c].output for c in task.children]
                if task.status is S.EXPANDED
                else task.last_output
            )
        task.status = TARGET[kind]

    def _pick(self, data: st.DataObject, good: list[str]) -> str:
        """A task id: mostly one for which the event is legal, sometimes any."""
        if good and data.draw(st.integers(0, 3), label="aim") > 0:
            return data.draw(st.sampled_from(good), label="task")
        return data.draw(st.sampled_from(sorted(self.model)), label="task")

    @rule(data=st.data())
    def task_event(self, data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(KINDS), label="kind")
        good = [
            tid
            for tid, t in sorted(self.model.items())
            if (t.status, TARGET[kind]) in LEGAL and self._deps_ended(tid)
        ]
        tid = self._pick(data, good)
        task = self.model[tid]
        if kind in (E.ATTEMPT_STARTED, E.TASK_EXPANDED) and not self._deps_ended(tid):
            return  # the decider never starts a task before its needs ended
        payload: dict[str, Any] = {"task": tid}
        if kind is E.ATTEMPT_STARTED:
            payload["attempt"] = task.attempts + 1
            if RANDOM_PLAN.tasks[task.parent or tid].capability is not None:
                payload["agent"] = data.draw(st.sampled_from(["x1", "x2"]), label="agent")
        elif kind is E.TASK_EXPANDED:
            if task.parent is not None:
                return  # items are not expanded again
            payload["items"] = data.draw(st.lists(st.integers(0, 9), max_size=3), label="items")
        elif kind is E.RETRY_SCHEDULED:
            payload.update(error=_error(), not_before=AT, delay_ms=1, attempt=task.attempts)
        elif kind is E.TASK_FAILED:
            payload["error"] = _error(False)
        legal = (task.status, TARGET[kind]) in LEGAL
        self._offer(kind, payload, legal)

    @rule(data=st.data())
    def attempt_finished(self, data: st.DataObject) -> None:
        tid = self._pick(data, [t for t, m in sorted(self.model.items()) if m.status is S.RUNNING])
        task = self.model[tid]
        attempt = data.draw(st.sampled_from([task.attempts, task.attempts + 1]), label="attempt")
        output = data.draw(st.integers(0, 99), label="output")
        legal = task.status is S.RUNNING and attempt == task.attempts
        self._offer(E.ATTEMPT_FINISHED, {"task": tid, "attempt": attempt, "output": output}, legal)

    @rule(data=st.data())
    def interrupted(self, data: st.DataObject) -> None:
        tid = self._pick(data, [t for t, m in sorted(self.model.items()) if m.status is S.RUNNING])
        legal = self.model[tid].status is S.RUNNING
        self._offer(E.ATTEMPT_INTERRUPTED, {"task": tid, "error": _error()}, legal)

    @rule(kind=st.sampled_from([E.EFFECT_RECORDED, E.CANCEL_REQUESTED, E.RUN_RESUMED]))
    def run_input(self, kind: EventType) -> None:
        self._offer(kind, {}, True)

    @precondition(lambda self: all(t.status in TERMINAL for t in self.model.values()))
    @rule(kind=st.sampled_from([E.RUN_SUCCEEDED, E.RUN_FAILED, E.RUN_CANCELLED]))
    def run_end(self, kind: EventType) -> None:
        self._offer(kind, {"status": "x"}, True)

    @invariant()
    def agrees_with_model(self) -> None:
        state = self.state
        assert set(state.tasks) == set(self.model)
        for tid, task in self.model.items():
            real = state.tasks[tid]
            assert real.status is task.status, tid
            assert real.attempts == task.attempts, tid
            assert real.parent == task.parent, tid
            if task.status is S.SUCCEEDED:
                assert real.output == task.output, tid
        running = [t for t in state.tasks.values() if t.status is S.RUNNING]
        assert state.running == len(running)
        for agent in ("x1", "x2"):
            expected = sum(1 for t in running if t.agent == agent)
            assert state.agent_load.get(agent, 0) == expected
        assert state.open_tasks == sum(1 for t in self.model.values() if t.status not in TERMINAL)
        for task in state.tasks.values():
            if task.status is S.EXPANDED:
                open_children = [c for c in task.children if state.tasks[c].status not in TERMINAL]
                assert task.waiting_on == len(open_children)
            assert (task.ended_at is not None) == (task.status in TERMINAL)
        assert state.seq == len(self.log.events)
        assert state.last_hash == self.log.events[-1].hash

    def teardown(self) -> None:
        # folding the accepted log from scratch gives the same state
        refolded = RunState.fold(self.log.events)
        assert {t: v.to_dict() for t, v in refolded.tasks.items()} == {
            t: v.to_dict() for t, v in self.state.tasks.items()
        }
        assert refolded.status is self.state.status


TestRunMachine = RunMachine.TestCase
TestRunMachine.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=[]
)


# -- live engine vs fold of its log ---------------------------------------------------


class FlakyTool:
    """Fails ``fail`` times (retryable), or always when ``fatal``; returns its value."""

    def __init__(self, name: str, pure: bool) -> None:
        self.name = name
        self.pure = pure

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        if args.get("fatal"):
            raise NexusError("fatal", retryable=False)
        if ctx.attempt <= int(args.get("fail", 0)):
            raise ToolFailed(f"attempt {ctx.attempt} fails")
        return {"value": args.get("value"), "attempt": ctx.attempt, "task": ctx.task}


@st.composite
def random_plans(draw: st.DrawFn) -> Plan:
    n = draw(st.integers(1, 7))
    ids = [f"t{i}" for i in range(n)]
    tasks: dict[str, TaskSpec] = {}
    for i, tid in enumerate(ids):
        needs = tuple(sorted(draw(st.sets(st.sampled_from(ids[:i]), max_size=2)))) if i else ()
        fail = draw(st.integers(0, 3))
        retries = draw(st.integers(0, 2))
        fatal = draw(st.integers(0, 5)) == 0
        tool = draw(st.sampled_from(["flaky", "flaky_pure"]))
        foreach = draw(st.one_of(st.none(), st.lists(st.integers(0, 9), max_size=3)))
        value: Any = "{{ item }}" if foreach is not None else i
        tasks[tid] = TaskSpec(
            id=tid,
            needs=needs,
            tool=tool,
            args={"fail": fail, "fatal": fatal, "value": value},
            foreach=foreach,
            retry=RetryPolicy(retries=retries, initial=0.001, multiplier=1.0, maximum=0.002),
            priority=draw(st.integers(0, 2)),
        )
    return Plan(
        name="random",
        tasks=tasks,
        fail_fast=draw(st.booleans()),
        max_parallel=draw(st.integers(1, 4)),
    )


async def _run_and_fold(plan: Plan, db: Path) -> tuple[RunState, RunState]:
    store = SQLiteStore.open(db)
    try:
        tools = ToolRegistry([FlakyTool("flaky", False), FlakyTool("flaky_pure", True)])
        engine = Engine(store, tools=tools)
        seen: list[RunState] = []
        observe = [lambda _batch, state: seen.append(state)]
        result = await asyncio.wait_for(engine.start(plan, observers=observe), timeout=30)
        live = seen[-1]
        assert result.status == str(live.status)
        folded = RunState.fold(await store.load(result.run_id))
        record = await store.get_run(result.run_id)
        assert record is not None
        assert record.events == folded.seq
        assert record.status == str(folded.status)
        return live, folded
    finally:
        await store.close()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(plan=random_plans())
def test_live_state_equals_fold_of_stored_log(
    plan: Plan, tmp_path_factory: pytest.TempPathFactory
) -> None:
    db = tmp_path_factory.mktemp("fold") / "nexus.db"
    live, folded = asyncio.run(_run_and_fold(plan, db))
    assert live.status.terminal
    assert folded.status is live.status
    assert folded.seq == live.seq
    assert folded.last_hash == live.last_hash
    assert set(folded.tasks) == set(live.tasks)
    for tid, task in live.tasks.items():
        other = folded.tasks[tid]
        assert other.status is task.status, tid
        assert task.status.terminal, tid
        assert other.attempts == task.attempts, tid
        assert other.output == task.output, tid
        assert other.error == task.error, tid
        assert other.agent == task.agent, tid
    assert folded.running == live.running == 0
    assert folded.open_tasks == live.open_tasks == 0
    # the run's outcome follows from its tasks
    if live.status is RunStatus.SUCCEEDED:
        assert all(t.status is S.SUCCEEDED for t in live.tasks.values())
    else:
        assert live.status is RunStatus.FAILED
        assert any(t.status is S.FAILED for t in live.tasks.values())
