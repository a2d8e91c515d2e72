"""Hostile templates at run time: the task fails on the limit, the run goes on, cancel works.

Every test has a timeout, so a regression fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from nexus.domain.events import Event, EventType
from nexus.domain.plan import Plan, TaskSpec
from nexus.domain.state import RunState
from nexus.engine.facade import Engine, RunResult
from nexus.store.sqlite import SQLiteStore
from nexus.tools.builtins import builtin_tools

E = EventType
#: about 0.1-0.3 s of work before it hits the work limit (400,000 loop iterations)
SLOW_BOMB = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def engine(store: SQLiteStore) -> Engine:
    return Engine(store, tools=builtin_tools())


def plan_of(ws: Path, *tasks: TaskSpec, **kwargs: object) -> Plan:
    return Plan(name="t", tasks={t.id: t for t in tasks}, workspace=str(ws), **kwargs)  # type: ignore[arg-type]


async def replays(store: SQLiteStore, run_id: str) -> None:
    events = await store.load(run_id)
    report = await asyncio.wait_for(engine(store).replay(run_id), 60)
    assert report.identical, report.first_divergence
    assert report.replayed_events == len(events)


@pytest.mark.timeout(60)
def test_a_template_bomb_fails_its_task_and_the_run_goes_on(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        TaskSpec(id="bomb", tool="noop", args={"x": {"y": ["{{ (10 ** (10 ** 8)) % 7 }}"]}}),
        TaskSpec(id="strings", tool="noop", args={"x": "{{ 'x' * 10 ** 9 }}"}),
        TaskSpec(id="ok", tool="noop", args={"x": "{{ 2 ** 10 }}"}),
        TaskSpec(id="after", tool="noop", needs=("bomb",)),
        TaskSpec(id="items", tool="noop", foreach="{{ range(10 ** 9) | list }}"),
        fail_fast=False,
    )

    async def go() -> tuple[RunResult, list[Event], float]:
        store = SQLiteStore.open(tmp_path / "db.sqlite")
        try:
            started = time.process_time()  # CPU: the bombs compute, a load does not count
            result = await asyncio.wait_for(engine(store).start(plan), 30)
            elapsed = time.process_time() - started
            events = await store.load(result.run_id)
            await replays(store, result.run_id)
            return result, events, elapsed
        finally:
            await store.close()

    result, events, elapsed = asyncio.run(go())
    assert elapsed < 5, f"{elapsed:.1f} CPU seconds"
    assert result.status == "failed"
    state = RunState.fold(events)
    assert state.tasks["ok"].status == "succeeded"
    assert state.tasks["ok"].output == {"x": 1024}
    assert state.tasks["after"].status == "skipped"
    for tid, field in (("bomb", "with.x.y[0]"), ("strings", "with.x"), ("items", "foreach")):
        task = state.tasks[tid]
        assert task.status == "failed"
        assert task.attempts == 0
        assert task.error is not None
        assert task.error["kind"] == "validation"
        assert task.error["retryable"] is False
        message = task.error["message"]
        assert f"task '{tid}', field '{field}'" in message
        assert "limit" in message


@pytest.mark.timeout(120)
def test_cancel_stops_a_run_that_renders_hostile_templates(tmp_path: Path) -> None:
    items = list(range(300))  # 300 x ~0.2 s of rendering: a minute without a way out
    plan = plan_of(
        tmp_path,
        TaskSpec(id="each", tool="noop", foreach=items, args={"x": SLOW_BOMB}),
        fail_fast=False,
        max_parallel=300,
    )

    async def go() -> tuple[str, RunResult, float, list[Event]]:
        store = SQLiteStore.open(tmp_path / "db.sqlite")
        try:
            driver = asyncio.create_task(engine(store).start(plan))
            run_id = ""
            deadline = time.monotonic() + 30
            while not run_id:  # the first items have failed on the limit
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
                for record in await store.list_runs():
                    if any(e.type is E.TASK_FAILED for e in await store.load(record.run_id)):
                        run_id = record.run_id
            # CPU seconds: the items left would render for a minute; a load does not count
            began = time.process_time()
            outcome = await engine(store).cancel(run_id, reason="enough")
            result = await asyncio.wait_for(driver, 60)
            elapsed = time.process_time() - began
            events = await store.load(run_id)
            await replays(store, run_id)
            return outcome, result, elapsed, events
        finally:
            await store.close()

    outcome, result, elapsed, events = asyncio.run(go())
    assert outcome == "requested"
    assert result.status == "cancelled"
    assert elapsed < 10, f"the cancel took {elapsed:.1f} CPU seconds"
    state = RunState.fold(events)
    failed = [t for t in state.tasks.values() if t.parent and t.status == "failed"]
    skipped = [t for t in state.tasks.values() if t.parent and t.status == "skipped"]
    assert failed, "some items failed on the limit before the cancel"
    assert len(skipped) > 100, "most items never rendered: the cancel came first"
    assert state.tasks["each"].status == "cancelled"
    continued = [e for e in events if e.type is E.RUN_CONTINUED]
    assert continued, "the decider yielded between batches of failing renders"
