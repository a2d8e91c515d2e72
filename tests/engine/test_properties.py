"""Properties of the engine over random plans: dependency order, bounded
parallelism, and exact replay."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.domain.errors import NexusError
from nexus.domain.events import EventType
from nexus.domain.plan import Plan, RetryPolicy, TaskSpec
from nexus.domain.state import RunState, TaskStatus
from nexus.engine.facade import Engine
from nexus.store.audit import verify_chain
from nexus.store.sqlite import SQLiteStore
from nexus.tools.base import FunctionTool, ToolContext, ToolFailed
from nexus.tools.builtins import builtin_tools

RUN_TIMEOUT = 30.0
PROPERTY = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 10) -> dict[str, tuple[str, ...]]:
    """A random DAG over shuffled names (name order is not dependency order)."""
    n = draw(st.integers(1, max_nodes))
    names = draw(st.permutations([f"n{i}" for i in range(n)]))
    needs: dict[str, tuple[str, ...]] = {}
    for i, name in enumerate(names):
        deps = draw(st.sets(st.sampled_from(names[:i]), max_size=3)) if i else set()
        needs[name] = tuple(sorted(deps))
    return needs


class Recorder:
    """Tools that log when each task starts and ends, and how many run at once."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.in_flight = 0
        self.peak = 0

    async def record(self, name: str, hops: int) -> str:
        self.log.append(("start", name))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        for _ in range(hops):
            await asyncio.sleep(0)
        self.in_flight -= 1
        self.log.append(("end", name))
        return name

    def tools(self) -> list[FunctionTool]:
        return [
            FunctionTool("rec", self.record),
            FunctionTool("rec_pure", self.record, pure=True),
        ]


@PROPERTY
@given(
    needs=dags(),
    data=st.data(),
    max_parallel=st.integers(1, 4),
)
def test_random_dags_run_in_dependency_order(
    needs: dict[str, tuple[str, ...]],
    data: st.DataObject,
    max_parallel: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    recorder = Recorder()
    tasks = {
        tid: TaskSpec(
            id=tid,
            needs=deps,
            tool=data.draw(st.sampled_from(["rec", "rec_pure"]), label=f"{tid} tool"),
            args={"name": tid, "hops": data.draw(st.integers(0, 3), label=f"{tid} hops")},
            priority=data.draw(st.integers(0, 2), label=f"{tid} priority"),
        )
        for tid, deps in needs.items()
    }
    plan = Plan(name="dag", tasks=tasks, max_parallel=max_parallel)
    db = tmp_path_factory.mktemp("dag") / "nexus.db"

    async def go() -> RunState:
        store = SQLiteStore.open(db)
        try:
            registry = builtin_tools()
            for t in recorder.tools():
                registry.add(t)
            result = await asyncio.wait_for(Engine(store, tools=registry).start(plan), RUN_TIMEOUT)
            assert result.status == "succeeded"
            return RunState.fold(await store.load(result.run_id))
        finally:
            await store.close()

    state = asyncio.run(go())
    starts = {name: i for i, (what, name) in enumerate(recorder.log) if what == "start"}
    ends = {name: i for i, (what, name) in enumerate(recorder.log) if what == "end"}
    assert len(recorder.log) == 2 * len(needs), "every task ran exactly once"
    assert set(starts) == set(needs)
    for tid, deps in needs.items():
        for dep in deps:
            assert ends[dep] < starts[tid], f"{tid} started before its need {dep} ended"
    assert recorder.peak <= max_parallel
    for tid in needs:
        assert state.tasks[tid].output == tid
        assert state.tasks[tid].attempts == 1


class Flaky:
    """Fails ``fail`` times (retryable), or for good when ``fatal``."""

    name = "flaky"
    pure = False

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        self.calls += 1
        if args.get("fatal"):
            raise NexusError("fatal", retryable=False)
        if ctx.attempt <= int(args.get("fail", 0)):
            raise ToolFailed(f"attempt {ctx.attempt} fails")
        return {"value": args.get("value"), "attempt": ctx.attempt}


@st.composite
def random_plans(draw: st.DrawFn) -> Plan:
    needs = draw(dags(max_nodes=7))
    tasks: dict[str, TaskSpec] = {}
    for tid, deps in needs.items():
        foreach = draw(st.one_of(st.none(), st.lists(st.integers(0, 9), max_size=3)))
        upstream = deps[0] if deps else None
        value: Any = "{{ item }}" if foreach is not None else tid
        if upstream is not None and draw(st.booleans()):
            value = "{{ tasks.%s.status }}" % upstream  # noqa: UP031 - a Jinja2 template
        tasks[tid] = TaskSpec(
            id=tid,
            needs=deps,
            tool=draw(st.sampled_from(["flaky", "noop"])),
            args={
                "fail": draw(st.integers(0, 2)),
                "fatal": draw(st.integers(0, 6)) == 0,
                "value": value,
            },
            foreach=foreach,
            retry=RetryPolicy(
                retries=draw(st.integers(0, 2)), initial=0.001, multiplier=1.0, maximum=0.002
            ),
        )
    return Plan(
        name="random",
        tasks=tasks,
        fail_fast=draw(st.booleans()),
        max_parallel=draw(st.integers(1, 4)),
    )


@PROPERTY
@given(plan=random_plans())
def test_random_runs_replay_identically_without_executing(
    plan: Plan, tmp_path_factory: pytest.TempPathFactory
) -> None:
    db = tmp_path_factory.mktemp("replay") / "nexus.db"
    flaky = Flaky()

    async def go() -> None:
        store = SQLiteStore.open(db)
        try:
            registry = builtin_tools()
            registry.add(flaky)
            engine = Engine(store, tools=registry)
            result = await asyncio.wait_for(engine.start(plan), RUN_TIMEOUT)
            events = await store.load(result.run_id)
            state = RunState.fold(events)
            assert state.status.terminal
            assert all(t.status.terminal for t in state.tasks.values())
            assert all(
                t.status is not TaskStatus.CANCELLED or plan.fail_fast for t in state.tasks.values()
            )
            assert verify_chain(store.chain(result.run_id), {result.run_id: len(events)}).ok
            calls = flaky.calls

            report = await asyncio.wait_for(
                Engine(store, tools=registry).replay(result.run_id), RUN_TIMEOUT
            )
            assert report.identical, report.first_divergence
            assert report.replayed_events == len(events)
            assert report.effects_served == sum(
                1 for e in events if e.type is EventType.EFFECT_RECORDED
            )
            assert flaky.calls == calls, "replay ran a tool"
        finally:
            await store.close()

    asyncio.run(go())
