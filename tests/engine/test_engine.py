"""The engine end to end over SQLite: scheduling, retries, failures, timeouts,
foreach, templates, routing, replay, cancel and resume."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from nexus.agents.base import AgentCall, AgentContext, FunctionAgent
from nexus.domain.canonical import GENESIS_HASH, chain_hash
from nexus.domain.errors import ConflictError, NexusError, NotFoundError
from nexus.domain.events import Event, EventType, event_body, parse_time
from nexus.domain.plan import AgentSpec, Plan, RetryPolicy, TaskSpec
from nexus.domain.state import RunState
from nexus.engine.effects import ReplayEffects
from nexus.engine.facade import Engine, RunResult
from nexus.engine.retry import backoff_ms
from nexus.store.audit import verify_chain
from nexus.store.base import Lease
from nexus.store.sqlite import SQLiteStore
from nexus.tools.base import FunctionTool, Tool, ToolFailed
from nexus.tools.builtins import builtin_tools

T = TypeVar("T")
E = EventType
RUN_TIMEOUT = 30.0


# -- helpers ---------------------------------------------------------------------


def with_store(db: Path, fn: Callable[[SQLiteStore], Awaitable[T]]) -> T:
    """Run ``fn(store)`` in a fresh event loop and close the store afterwards."""

    async def main() -> T:
        store = SQLiteStore.open(db)
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(main())


def make_engine(
    store: SQLiteStore,
    tools: Iterable[Tool] = (),
    agents: Iterable[FunctionAgent] = (),
) -> Engine:
    registry = builtin_tools()
    for t in tools:
        registry.add(t)
    return Engine(store, tools=registry, function_agents=list(agents))


async def start(engine: Engine, plan: Plan, **kwargs: Any) -> RunResult:
    return await asyncio.wait_for(engine.start(plan, **kwargs), RUN_TIMEOUT)


async def events_of(store: SQLiteStore, run_id: str, *types: EventType) -> list[Event]:
    events = await store.load(run_id)
    return [e for e in events if not types or e.type in types]


def fast_retry(retries: int) -> RetryPolicy:
    return RetryPolicy(retries=retries, initial=0.001, multiplier=1.0, maximum=0.002)


def plan_of(ws: Path, *tasks: TaskSpec, **kwargs: Any) -> Plan:
    return Plan(name="test", tasks={t.id: t for t in tasks}, workspace=str(ws), **kwargs)


def marker_alive(marker: str) -> list[int]:
    """Host pids of live processes whose command line contains ``marker``.

    Shell commands run in the sandbox's own PID namespace, where ``$$`` names
    nothing on the host: tests give each long command a unique argument.
    """
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and _alive(int(entry)):
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            return fh.read().rsplit(") ", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_marker_gone(marker: str, within: float = 3.0) -> list[int]:
    deadline = time.monotonic() + within
    while (alive := marker_alive(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def assert_replays(db: Path, run_id: str, tools: Iterable[Tool] = ()) -> None:
    """Replay ``run_id`` from a fresh engine: identical, complete, the log untouched."""

    async def go(store: SQLiteStore) -> None:
        events = await store.load(run_id)
        report = await asyncio.wait_for(make_engine(store, tools).replay(run_id), RUN_TIMEOUT)
        assert report.identical, report.first_divergence
        assert report.complete
        assert report.replayed_events == len(events)
        assert await store.load(run_id) == events

    with_store(db, go)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "nexus.db"


# -- retries ------------------------------------------------------------------------


def test_retry_with_backoff_then_success(ws: Path, db: Path) -> None:
    calls: list[float] = []

    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ToolFailed(f"failure {len(calls)}")
        return "ok"

    policy = RetryPolicy(retries=3, initial=0.04, multiplier=4.0, maximum=5.0)
    plan = plan_of(ws, TaskSpec(id="t", tool="flaky", retry=policy))

    async def go(store: SQLiteStore) -> tuple[RunResult, list[Event]]:
        result = await start(make_engine(store, [FunctionTool("flaky", flaky)]), plan)
        return result, await store.load(result.run_id)

    result, events = with_store(db, go)
    assert result.status == "succeeded"
    assert result.tasks["t"] == {"status": "succeeded", "attempts": 3}
    state = RunState.fold(events)
    assert state.tasks["t"].output == "ok"

    retries = [e for e in events if e.type is E.RETRY_SCHEDULED]
    assert [e.data["attempt"] for e in retries] == [1, 2]
    delays = [e.data["delay_ms"] for e in retries]
    assert delays[0] < delays[1], "backoff grows"
    # the delays are the deterministic backoff of the policy, within its bounds
    for failures, delay in enumerate(delays, start=1):
        assert delay == backoff_ms(policy, result.run_id, "t", failures)
        base = policy.initial * policy.multiplier ** (failures - 1)
        assert base / 2 * 1000 - 1 <= delay <= base * 1000
    for event in retries:
        gap = parse_time(event.data["not_before"]) - parse_time(event.at)
        assert round(gap.total_seconds() * 1000) == event.data["delay_ms"]
        assert event.data["error"]["kind"] == "transient"
        assert event.data["error"]["retryable"] is True
    # and the engine really waited before each retry
    assert calls[1] - calls[0] >= delays[0] / 1000 * 0.9
    assert calls[2] - calls[1] >= delays[1] / 1000 * 0.9
    # three attempts, three effects, two timers
    assert len([e for e in events if e.type is E.ATTEMPT_STARTED]) == 3
    assert len([e for e in events if e.type is E.EFFECT_RECORDED]) == 3
    assert len([e for e in events if e.type is E.TIMER_FIRED]) == 2


def test_retries_exhausted_fails_task_and_run(ws: Path, db: Path) -> None:
    calls = []

    def always() -> None:
        calls.append(1)
        raise ToolFailed("still broken", details={"code": 7})

    plan = plan_of(
        ws,
        TaskSpec(id="bad", tool="always", retry=fast_retry(2)),
        TaskSpec(id="after", tool="noop", needs=("bad",)),
    )

    async def go(store: SQLiteStore) -> tuple[RunResult, list[Event]]:
        result = await start(make_engine(store, [FunctionTool("always", always)]), plan)
        return result, await store.load(result.run_id)

    result, events = with_store(db, go)
    assert len(calls) == 3
    assert result.status == "failed"
    assert result.tasks["bad"] == {"status": "failed", "attempts": 3}
    assert result.tasks["after"]["status"] == "skipped"
    failed = [e for e in events if e.type is E.TASK_FAILED]
    assert len(failed) == 1
    assert failed[0].data["attempts"] == 3
    assert failed[0].data["error"]["message"] == "still broken"
    assert failed[0].data["error"]["details"] == {"code": 7}
    assert len([e for e in events if e.type is E.RETRY_SCHEDULED]) == 2
    assert events[-1].type is E.RUN_FAILED
    assert events[-1].data["tasks"] == {"failed": 1, "skipped": 1}


def test_non_retryable_error_is_not_retried(ws: Path, db: Path) -> None:
    calls = []

    def fatal() -> None:
        calls.append(1)
        raise NexusError("bad input", retryable=False)

    def crash() -> None:
        raise RuntimeError("a bug in the tool")

    plan = plan_of(
        ws,
        TaskSpec(id="fatal", tool="fatal", retry=fast_retry(5)),
        TaskSpec(id="crash", tool="crash", retry=fast_retry(5)),
        fail_fast=False,
    )
    tools = [FunctionTool("fatal", fatal), FunctionTool("crash", crash)]

    async def go(store: SQLiteStore) -> tuple[RunResult, RunState]:
        result = await start(make_engine(store, tools), plan)
        return result, RunState.fold(await store.load(result.run_id))

    result, state = with_store(db, go)
    assert calls == [1]
    assert result.tasks["fatal"] == {"status": "failed", "attempts": 1}
    assert result.tasks["crash"] == {"status": "failed", "attempts": 1}
    assert state.tasks["crash"].error is not None
    assert state.tasks["crash"].error["kind"] == "internal"
    assert "RuntimeError: a bug in the tool" in state.tasks["crash"].error["message"]


# -- fail-fast -------------------------------------------------------------------------


def _wait_for_file(path: Path, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not path.exists() or not path.read_text().strip():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)


@pytest.mark.timeout(25)
def test_fail_fast_cancels_running_and_skips_the_rest(ws: Path, db: Path) -> None:
    pidfile = ws / "slow.pid"

    async def bad() -> None:
        # fail only once the slow command really runs, so there is something to cancel
        await asyncio.to_thread(_wait_for_file, pidfile)
        raise NexusError("boom", retryable=False)

    plan = plan_of(
        ws,
        TaskSpec(id="bad", tool="bad", priority=2),
        TaskSpec(
            id="slow",
            tool="shell",
            args={"cmd": "echo started > slow.pid; sleep 30.1111"},
            priority=1,
        ),
        TaskSpec(id="indep", tool="noop", priority=0),
        TaskSpec(id="after", tool="noop", needs=("slow",)),
        max_parallel=2,
        fail_fast=True,
    )

    async def go(store: SQLiteStore) -> tuple[RunResult, list[Event]]:
        result = await start(make_engine(store, [FunctionTool("bad", bad)]), plan)
        return result, await store.load(result.run_id)

    # the command sleeps 30 s: the timeout marker bounds a fail-fast that waits for it
    result, events = with_store(db, go)
    assert result.status == "failed"
    assert {tid: t["status"] for tid, t in result.tasks.items()} == {
        "bad": "failed",
        "slow": "cancelled",
        "indep": "skipped",
        "after": "skipped",
    }
    cancelled = next(e for e in events if e.type is E.TASK_CANCELLED)
    assert cancelled.data["reason"] == "fail-fast: task 'bad' failed"
    assert not [e for e in events if e.type is E.ATTEMPT_STARTED and e.data["task"] == "indep"]
    assert pidfile.read_text() == "started\n"
    assert wait_marker_gone("30.1111") == []


def test_without_fail_fast_independent_tasks_continue(ws: Path, db: Path) -> None:
    def bad() -> None:
        raise NexusError("boom", retryable=False)

    plan = plan_of(
        ws,
        TaskSpec(id="bad", tool="bad", priority=5),
        TaskSpec(id="after_bad", tool="noop", needs=("bad",)),
        TaskSpec(id="deep", tool="noop", needs=("after_bad",)),
        TaskSpec(id="indep", tool="shell", args={"cmd": "echo hi"}),
        TaskSpec(id="after_indep", tool="noop", needs=("indep",), args={"x": 1}),
        max_parallel=1,
        fail_fast=False,
    )

    async def go(store: SQLiteStore) -> tuple[RunResult, list[Event]]:
        result = await start(make_engine(store, [FunctionTool("bad", bad)]), plan)
        return result, await store.load(result.run_id)

    result, events = with_store(db, go)
    assert result.status == "failed"
    assert {tid: t["status"] for tid, t in result.tasks.items()} == {
        "bad": "failed",
        "after_bad": "skipped",
        "deep": "skipped",
        "indep": "succeeded",
        "after_indep": "succeeded",
    }
    skipped = {e.data["task"]: e.data["reason"] for e in events if e.type is E.TASK_SKIPPED}
    assert skipped == {
        "after_bad": "dependency did not succeed: bad",
        "deep": "dependency did not succeed: after_bad",
    }
    assert not [e for e in events if e.type is E.TASK_CANCELLED]


# -- timeouts ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(25)
def test_shell_timeout_kills_the_process_group(ws: Path, db: Path) -> None:
    plan = plan_of(
        ws,
        TaskSpec(
            id="sleepy",
            tool="shell",
            args={"cmd": "echo started > sleepy.pid; sleep 30.2222 & sleep 30.2222"},
            timeout=0.5,
        ),
    )

    async def go(store: SQLiteStore) -> tuple[RunResult, RunState]:
        result = await start(make_engine(store), plan)
        return result, RunState.fold(await store.load(result.run_id))

    # the commands sleep 30 s: the timeout marker bounds a kill that waits for them
    result, state = with_store(db, go)
    assert result.status == "failed"
    task = state.tasks["sleepy"]
    assert task.attempts == 1
    assert task.error is not None
    assert task.error["kind"] == "timeout"
    assert task.error["retryable"] is True
    assert (ws / "sleepy.pid").read_text() == "started\n"
    assert wait_marker_gone("30.2222") == [], "processes of the timed-out command survived"
    (ws / "sleepy.pid").unlink()
    assert_replays(db, result.run_id)
    assert not (ws / "sleepy.pid").exists(), "replay ran the command again"


def test_timeout_is_retried_like_a_transient_error(ws: Path, db: Path) -> None:
    async def slow_then_fast(n: int) -> str:
        await asyncio.sleep(10 if n == 0 else 0)
        return "done"

    attempts: list[int] = []

    async def tool(**_: Any) -> str:
        attempts.append(1)
        return await slow_then_fast(len(attempts) - 1)

    plan = plan_of(ws, TaskSpec(id="t", tool="t", timeout=0.2, retry=fast_retry(1)))

    async def go(store: SQLiteStore) -> tuple[RunResult, list[Event]]:
        result = await start(make_engine(store, [FunctionTool("t", tool)]), plan)
        return result, await store.load(result.run_id)

    result, events = with_store(db, go)
    assert result.tasks["t"] == {"status": "succeeded", "attempts": 2}
    started = [e for e in events if e.type is E.ATTEMPT_STARTED]
    assert all(e.data["timeout_ms"] == 200 for e in started)
    retry = next(e for e in events if e.type is E.RETRY_SCHEDULED)
    assert retry.data["error"]["kind"] == "timeout"


# -- foreach and templates ---------------------------------------------------------------


def test_foreach_output_is_the_list_of_item_outputs(ws: Path, db: Path) -> None:
    plan = plan_of(
        ws,
        TaskSpec(id="src", tool="noop", args={"items": ["a", "b", "c"]}),
        TaskSpec(
            id="each",
            tool="noop",
            needs=("src",),
            foreach="{{ tasks.src.output['items'] }}",
            args={"item": "{{ item }}", "index": "{{ index }}", "label": "#{{ index }}={{ item }}"},
        ),
        TaskSpec(id="lit", tool="noop", foreach=[3, 1, 2], args={"n": "{{ item * 10 }}"}),
        TaskSpec(
            id="sum",
            tool="noop",
            needs=("each", "lit"),
            args={
                "count": "{{ tasks.each.output | length }}",
                "first": "{{ tasks.lit.output[0] }}",
            },
        ),
        TaskSpec(id="empty", tool="noop", foreach=[]),
        TaskSpec(
            id="after_empty", tool="noop", needs=("empty",), args={"e": "{{ tasks.empty.output }}"}
        ),
    )

    async def go(store: SQLiteStore) -> tuple[RunResult, RunState]:
        result = await start(make_engine(store), plan)
        return result, RunState.fold(await store.load(result.run_id))

    result, state = with_store(db, go)
    assert result.status == "succeeded"
    assert state.tasks["each"].output == [
        {"item": "a", "index": 0, "label": "#0=a"},
        {"item": "b", "index": 1, "label": "#1=b"},
        {"item": "c", "index": 2, "label": "#2=c"},
    ]
    assert state.tasks["each"].children == ["each[0]", "each[1]", "each[2]"]
    assert state.tasks["lit"].output == [{"n": 30}, {"n": 10}, {"n": 20}]
    assert state.tasks["sum"].output == {"count": 3, "first": {"n": 30}}
    assert state.tasks["empty"].output == []
    assert state.tasks["after_empty"].output == {"e": []}


def test_foreach_item_failure_fails_the_parent_and_skips_dependents(ws: Path, db: Path) -> None:
    def check(n: int) -> int:
        if n == 2:
            raise NexusError("two is bad", retryable=False)
        return n

    plan = plan_of(
        ws,
        TaskSpec(id="each", tool="check", foreach=[1, 2, 3], args={"n": "{{ item }}"}),
        TaskSpec(id="after", tool="noop", needs=("each",)),
        TaskSpec(id="other", tool="noop"),
        fail_fast=False,
    )

    async def go(store: SQLiteStore) -> tuple[RunResult, RunState]:
        result = await start(make_engine(store, [FunctionTool("check", check)]), plan)
        return result, RunState.fold(await store.load(result.run_id))

    result, state = with_store(db, go)
    assert result.status == "failed"
    statuses = {tid: t["status"] for tid, t in result.tasks.items()}
    assert statuses == {
        "each": "failed",
        "each[0]": "succeeded",
        "each[1]": "failed",
        "each[2]": "succeeded",
        "after": "skipped",
        "other": "succeeded",
    }
    assert state.tasks["each"].error is not None
    assert state.tasks["each"].error["message"] == "1 of 3 items did not succeed: each[1]"


def test_templates_render_upstream_outputs_and_inputs(ws: Path, db: Path) -> None:
    plan = plan_of(
        ws,
        TaskSpec(id="a", tool="noop", args={"x": 21, "name": "world"}),
        TaskSpec(
            id="b",
            tool="shell",
            needs=("a",),
            args={"cmd": "echo 'hello {{ tasks.a.output.name }} {{ tasks.a.output.x * 2 }}'"},
        ),
        TaskSpec(
            id="c",
            tool="noop",
            needs=("b",),
            args={
                "said": "{{ tasks.b.output.stdout | trim }}",
                "status": "{{ tasks.b.status }}",
                "who": "{{ inputs.who }}",
                "run": "{{ run.name }}",
            },
        ),
        inputs={"who": "tester"},
    )

    async def go(store: SQLiteStore) -> tuple[RunResult, list[Event]]:
        result = await start(make_engine(store), plan)
        return result, await store.load(result.run_id)

    result, events = with_store(db, go)
    assert result.status == "succeeded"
    state = RunState.fold(events)
    assert state.tasks["b"].output["stdout"] == "hello world 42\n"
    assert state.tasks["c"].output == {
        "said": "hello world 42",
        "status": "succeeded",
        "who": "tester",
        "run": "test",
    }
    # the rendered arguments are recorded in the decision
    started_b = next(e for e in events if e.type is E.ATTEMPT_STARTED and e.data["task"] == "b")
    assert started_b.data["args"] == {"cmd": "echo 'hello world 42'"}


def test_template_error_at_runtime_fails_the_task_not_the_engine(ws: Path, db: Path) -> None:
    plan = plan_of(
        ws,
        TaskSpec(id="a", tool="noop", args={"x": 1}),
        TaskSpec(
            id="b",
            tool="noop",
            needs=("a",),
            args={"y": "{{ tasks.a.output.missing }}"},
            retry=fast_retry(3),
        ),
        TaskSpec(id="c", tool="noop", needs=("a",), foreach="{{ tasks.a.output.x }}"),
        TaskSpec(id="d", tool="noop", needs=("b",)),
        fail_fast=False,
    )

    async def go(store: SQLiteStore) -> tuple[RunResult, list[Event]]:
        result = await start(make_engine(store), plan)
        return result, await store.load(result.run_id)

    result, events = with_store(db, go)
    assert result.status == "failed"
    state = RunState.fold(events)
    b = state.tasks["b"]
    assert b.status == "failed"
    assert b.attempts == 0, "no attempt starts when its arguments cannot be rendered"
    assert b.error is not None
    assert b.error["kind"] == "validation"
    assert b.error["retryable"] is False
    assert "missing" in b.error["message"]
    c = state.tasks["c"]
    assert c.status == "failed"
    assert c.error is not None
    assert c.error["kind"] == "validation"
    assert "foreach must give a list" in c.error["message"]
    assert state.tasks["d"].status == "skipped"
    assert not [e for e in events if e.type is E.ATTEMPT_STARTED and e.data["task"] == "b"]


# -- agents and routing ---------------------------------------------------------------------


def _writer(name: str, seen: list[tuple[str, str]], delay: float = 0.05) -> FunctionAgent:
    async def work(call: AgentCall, ctx: AgentContext) -> dict[str, Any]:
        seen.append((call.agent, ctx.task))
        await asyncio.sleep(delay)
        return {"by": call.agent, "prompt": call.prompt}

    return FunctionAgent(name=name, fn=work, capabilities=("write",))


def test_capability_routing_least_loaded_with_name_tie_break(ws: Path, db: Path) -> None:
    seen: list[tuple[str, str]] = []
    agents = [_writer("zeta", seen), _writer("alpha", seen)]  # not in name order
    plan = plan_of(
        ws,
        *(
            TaskSpec(id=f"w{i}", capability="write", prompt=f"part {i} of {{{{ run.name }}}}")
            for i in range(1, 5)
        ),
        agents={a.name: a.spec() for a in agents},
    )

    async def go(store: SQLiteStore) -> tuple[RunResult, list[Event]]:
        result = await start(make_engine(store, agents=agents), plan)
        return result, await store.load(result.run_id)

    result, events = with_store(db, go)
    assert result.status == "succeeded"
    started = {e.data["task"]: e.data for e in events if e.type is E.ATTEMPT_STARTED}
    assert {tid: d["agent"] for tid, d in started.items()} == {
        "w1": "alpha",
        "w2": "zeta",
        "w3": "alpha",
        "w4": "zeta",
    }
    for tid, data in started.items():
        assert data["route"]["candidates"] == ["alpha", "zeta"]
        assert data["route"]["why"].startswith("capability 'write'; least loaded of 2")
        assert data["prompt"] == f"part {tid[1]} of test"
        assert data["model"] == f"function:{data['agent']}"
    assert started["w1"]["route"]["why"].endswith("(0 running)")
    assert started["w3"]["route"]["why"].endswith("(1 running)")
    state = RunState.fold(events)
    assert state.tasks["w2"].output == {"by": "zeta", "prompt": "part 2 of test"}
    assert sorted(seen) == sorted((d["agent"], tid) for tid, d in started.items())


def test_named_agent_and_busy_agent_routing(ws: Path, db: Path) -> None:
    seen: list[tuple[str, str]] = []
    agents = [_writer("alpha", seen, delay=0.2), _writer("beta", seen)]
    plan = plan_of(
        ws,
        TaskSpec(id="long", agent="alpha", prompt="long one", priority=1),
        TaskSpec(id="w", capability="write", prompt="short"),
        agents={a.name: a.spec() for a in agents},
    )

    async def go(store: SQLiteStore) -> list[Event]:
        result = await start(make_engine(store, agents=agents), plan)
        assert result.status == "succeeded"
        return await store.load(result.run_id)

    events = with_store(db, go)
    started = {e.data["task"]: e.data for e in events if e.type is E.ATTEMPT_STARTED}
    assert started["long"]["agent"] == "alpha"
    assert started["long"]["route"]["why"].startswith("named agent 'alpha'")
    assert started["long"]["route"]["candidates"] == ["alpha"]
    # alpha is busy with 'long', so the capability task goes to beta
    assert started["w"]["agent"] == "beta"
    assert started["w"]["route"]["why"].endswith("(0 running)")


def test_agent_max_concurrency_is_respected(ws: Path, db: Path) -> None:
    in_flight = 0
    peak = 0

    async def work(call: AgentCall, ctx: AgentContext) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.03)
        in_flight -= 1
        return ctx.task

    solo = FunctionAgent(name="solo", fn=work, capabilities=("x",))
    spec = AgentSpec(name="solo", model="function:solo", capabilities=("x",), max_concurrency=2)
    plan = plan_of(
        ws,
        *(TaskSpec(id=f"t{i}", capability="x", prompt="go") for i in range(6)),
        agents={"solo": spec},
        max_parallel=10,
    )

    async def go(store: SQLiteStore) -> tuple[RunResult, list[Event]]:
        result = await start(make_engine(store, agents=[solo]), plan)
        return result, await store.load(result.run_id)

    result, events = with_store(db, go)
    assert result.status == "succeeded"
    assert peak == 2
    running = 0
    max_running = 0
    for event in events:
        if event.type is E.ATTEMPT_STARTED:
            running += 1
        elif event.type is E.TASK_SUCCEEDED:
            running -= 1
        max_running = max(max_running, running)
    assert max_running == 2


def test_scripted_provider_answers_in_order(ws: Path, db: Path) -> None:
    bot = AgentSpec(
        name="bot",
        model="scripted:test-model",
        capabilities=("chat",),
        scripted=("first", "second after {{ tasks.t1.output.text }}", "third"),
        instructions="be brief",
    )
    plan = plan_of(
        ws,
        TaskSpec(id="t1", agent="bot", prompt="one"),
        TaskSpec(id="t2", agent="bot", prompt="two words", needs=("t1",)),
        TaskSpec(id="t3", capability="chat", prompt="three", needs=("t2",)),
        TaskSpec(id="t4", agent="bot", prompt="four", needs=("t3",)),
        agents={"bot": bot},
    )

    async def go(store: SQLiteStore) -> tuple[RunResult, list[Event]]:
        result = await start(make_engine(store), plan)
        return result, await store.load(result.run_id)

    result, events = with_store(db, go)
    assert result.status == "succeeded"
    state = RunState.fold(events)
    texts = [state.tasks[f"t{i}"].output["text"] for i in range(1, 5)]
    assert texts == ["first", "second after first", "third", "third"]
    assert state.tasks["t2"].output["model"] == "scripted:test-model"
    # usage counts words: system "be brief" (2) + prompt "two words" (2)
    assert state.tasks["t2"].output["usage"] == {"prompt_tokens": 4, "completion_tokens": 3}
    turns = [e.data["turn"] for e in events if e.type is E.ATTEMPT_STARTED]
    assert turns == [0, 1, 2, 3]
    models = [e for e in events if e.type is E.EFFECT_RECORDED]
    assert [m.data["kind"] for m in models] == ["model"] * 4
    assert models[0].data["request"]["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "one"},
    ]


# -- replay --------------------------------------------------------------------------------


class Counters:
    def __init__(self) -> None:
        self.tool = 0
        self.agent_effects = 0


def _replay_case(kind: str, ws: Path, counters: Counters) -> tuple[Plan, list[Any], list[Any]]:
    log = "echo {{ task }} >> log.txt"

    def counted(**args: Any) -> Any:
        counters.tool += 1
        return {"seen": args}

    async def agent_fn(call: AgentCall, ctx: AgentContext) -> Any:
        async def effect() -> str:
            counters.agent_effects += 1
            with (ws / "log.txt").open("a") as fh:
                fh.write(f"agent {ctx.task}\n")
            return f"{call.agent} did {call.prompt}"

        first = await ctx.effect("write", {"prompt": call.prompt}, effect)
        return {"first": first, "turn": call.turn}

    tools: list[Any] = [FunctionTool("counted", counted)]
    agents: list[Any] = []

    def shell(tid: str, extra: str = "", **kw: Any) -> TaskSpec:
        return TaskSpec(
            id=tid, tool="shell", args={"cmd": log.replace("{{ task }}", tid) + extra}, **kw
        )

    if kind == "success":
        tasks = [
            shell("a"),
            shell("b", needs=("a",)),
            TaskSpec(
                id="c", tool="counted", args={"x": "{{ tasks.b.output.exit_code }}"}, needs=("b",)
            ),
            TaskSpec(id="d", tool="noop", args={"y": 1}),
        ]
        return plan_of(ws, *tasks, max_parallel=2), tools, agents
    if kind == "retries":
        # fails until the log has three lines, so attempt 3 succeeds
        cmd = "; test $(wc -l < log.txt) -ge 3"
        tasks = [shell("r", cmd, retry=fast_retry(3)), shell("s", needs=("r",))]
        return plan_of(ws, *tasks), tools, agents
    if kind == "failure":
        tasks = [
            shell("bad", "; exit 3", retry=fast_retry(1)),
            shell("skipped", needs=("bad",)),
            shell("fine"),
            TaskSpec(id="counted", tool="counted", args={"n": 1}),
        ]
        return plan_of(ws, *tasks, fail_fast=False), tools, agents
    if kind == "foreach":
        tasks = [
            TaskSpec(id="src", tool="counted", args={"items": [1, 2, 3]}),
            TaskSpec(
                id="each",
                tool="shell",
                needs=("src",),
                foreach="{{ tasks.src.output.seen['items'] }}",
                args={"cmd": "echo item {{ item }} >> log.txt"},
            ),
            TaskSpec(
                id="n", tool="noop", needs=("each",), args={"n": "{{ tasks.each.output | length }}"}
            ),
        ]
        return plan_of(ws, *tasks, max_parallel=3), tools, agents
    if kind == "agents":
        fa = FunctionAgent(name="helper", fn=agent_fn, capabilities=("help",))
        bot = AgentSpec(name="bot", model="scripted:m", scripted=("hi {{ inputs.who }}", "bye"))
        tasks = [
            TaskSpec(id="h1", capability="help", prompt="one"),
            TaskSpec(
                id="h2", capability="help", prompt="two {{ tasks.h1.output.first }}", needs=("h1",)
            ),
            TaskSpec(id="b1", agent="bot", prompt="hello"),
            TaskSpec(id="b2", agent="bot", prompt="again", needs=("b1",)),
            shell("after", needs=("h2", "b2")),
        ]
        plan = plan_of(ws, *tasks, agents={"helper": fa.spec(), "bot": bot}, inputs={"who": "you"})
        return plan, tools, [fa]
    if kind == "fail_fast":
        tasks = [
            shell("bad", "; exit 1", priority=1),
            shell("slow", "; sleep 0.3"),
            shell("later", needs=("slow",)),
        ]
        return plan_of(ws, *tasks, fail_fast=True), tools, agents
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("success", "succeeded"),
        ("retries", "succeeded"),
        ("failure", "failed"),
        ("foreach", "succeeded"),
        ("agents", "succeeded"),
        ("fail_fast", "failed"),
    ],
)
def test_replay_is_identical_and_executes_nothing(
    kind: str, status: str, ws: Path, db: Path
) -> None:
    counters = Counters()
    plan, tools, agents = _replay_case(kind, ws, counters)
    logfile = ws / "log.txt"

    async def go(store: SQLiteStore) -> None:
        engine = make_engine(store, tools, agents)
        result = await start(engine, plan)
        assert result.status == status
        events = await store.load(result.run_id)
        before = logfile.read_text() if logfile.exists() else None
        tool_calls, agent_effects = counters.tool, counters.agent_effects

        # replay from a fresh engine (as `nexus replay` would)
        report = await asyncio.wait_for(make_engine(store, tools, agents).replay(result.run_id), 30)
        assert report.identical, report.first_divergence
        assert report.first_divergence is None
        assert report.complete
        assert report.original_events == report.replayed_events == len(events)
        effects = [e for e in events if e.type is E.EFFECT_RECORDED]
        assert report.effects_served == len(effects)
        assert report.tools_executed == 0
        # nothing ran again: no shell appended, no function tool or agent effect called
        assert (logfile.read_text() if logfile.exists() else None) == before
        assert (counters.tool, counters.agent_effects) == (tool_calls, agent_effects)
        # replay does not write to the log
        assert await store.load(result.run_id) == events

    with_store(db, go)


def _rewrite(
    db: Path, run_id: str, seq: int, edit: Callable[[dict[str, Any]], None], rechain: bool
) -> None:
    """Edit one event's data in the SQLite file; optionally re-seal the whole chain."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT seq, body FROM events WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
        prev = GENESIS_HASH
        for row_seq, body in rows:
            doc = json.loads(body)
            if row_seq == seq:
                edit(doc["data"])
                body = event_body(run_id, row_seq, doc["type"], doc["at"], doc["data"])
                conn.execute(
                    "UPDATE events SET body = ? WHERE run_id = ? AND seq = ?",
                    (body, run_id, row_seq),
                )
            if rechain:
                new_hash = chain_hash(prev, body)
                conn.execute(
                    "UPDATE events SET prev_hash = ?, hash = ? WHERE run_id = ? AND seq = ?",
                    (prev, new_hash, run_id, row_seq),
                )
                prev = new_hash
        conn.commit()


@pytest.mark.parametrize("rechain", [False, True], ids=["raw-edit", "resealed-chain"])
def test_replay_detects_an_altered_effect(ws: Path, db: Path, rechain: bool) -> None:
    def source() -> str:
        return "original"

    plan = plan_of(
        ws,
        TaskSpec(id="a", tool="source"),
        TaskSpec(id="b", tool="noop", needs=("a",), args={"got": "{{ tasks.a.output }}"}),
    )
    tools = [FunctionTool("source", source)]

    async def run(store: SQLiteStore) -> list[Event]:
        result = await start(make_engine(store, tools), plan)
        assert result.status == "succeeded"
        return await store.load(result.run_id)

    events = with_store(db, run)
    run_id = events[0].run_id
    effect = next(e for e in events if e.type is E.EFFECT_RECORDED and e.data["task"] == "a")
    finished = next(e for e in events if e.type is E.ATTEMPT_FINISHED and e.data["task"] == "a")

    def forge(data: dict[str, Any]) -> None:
        data["response"] = "forged"

    _rewrite(db, run_id, effect.seq, forge, rechain)

    async def replay(store: SQLiteStore) -> Any:
        audit = verify_chain(store.chain(run_id))
        report = await asyncio.wait_for(make_engine(store, tools).replay(run_id), 30)
        return audit, report

    audit, report = with_store(db, replay)
    assert not report.identical
    divergence = report.first_divergence
    assert divergence is not None
    if rechain:
        # the audit chain was rebuilt so it verifies, but the forged response
        # makes the replayed attempt end differently from the recorded one
        assert audit.ok
        assert divergence["seq"] == finished.seq
        assert divergence["expected"]["data"]["output"] == "original"
        assert divergence["actual"]["data"]["output"] == "forged"
    else:
        assert not audit.ok
        assert audit.first_bad == {
            "run_id": run_id,
            "seq": effect.seq,
            "reason": "hash does not match the event's content (the event was altered)",
        }
        assert divergence["seq"] == effect.seq


def test_replay_detects_a_changed_request(ws: Path, db: Path) -> None:
    plan = plan_of(ws, TaskSpec(id="a", tool="noop", args={"x": 1}))

    async def run(store: SQLiteStore) -> str:
        result = await start(make_engine(store), plan)
        return result.run_id

    run_id = with_store(db, run)
    events = with_store(db, lambda s: s.load(run_id))
    effect = next(e for e in events if e.type is E.EFFECT_RECORDED)

    def forge(data: dict[str, Any]) -> None:
        data["request"]["args"]["x"] = 2

    _rewrite(db, run_id, effect.seq, forge, rechain=True)
    report = with_store(db, lambda s: make_engine(s).replay(run_id))
    assert not report.identical
    assert report.first_divergence is not None
    assert report.first_divergence["seq"] >= effect.seq


def test_replay_counts_the_tools_it_ran(
    ws: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ``tools_executed`` is measured where a tool runs, not a constant: a replay whose
    # effect boundary ran the effects instead of serving them shows up in it
    calls: list[str] = []
    tool = FunctionTool("counted", lambda: calls.append("x") or len(calls))
    plan = plan_of(
        ws,
        TaskSpec(id="a", tool="counted"),
        TaskSpec(id="b", tool="counted", needs=("a",)),
    )
    run_id = with_store(db, lambda s: start(make_engine(s, [tool]), plan)).run_id
    assert calls == ["x", "x"]

    async def run_it(self: Any, call: Any, fn: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        record = dict(self._recorded[call.key])
        await fn()  # the leak: the effect is executed again
        self.served += 1
        return record

    monkeypatch.setattr(ReplayEffects, "perform", run_it)
    report = with_store(db, lambda s: make_engine(s, [tool]).replay(run_id))
    assert calls == ["x", "x", "x", "x"]
    assert report.tools_executed == 2
    assert report.to_dict()["tools_executed"] == 2


def test_replay_of_unknown_run_is_not_found(db: Path) -> None:
    with pytest.raises(NotFoundError):
        with_store(db, lambda s: make_engine(s).replay("01UNKNOWNRUN0000000000000A"))


# -- cancel ------------------------------------------------------------------------------------


async def _started(store: SQLiteStore, task: str, within: float = 10.0) -> str:
    """Wait until some run has started an attempt of ``task``; return the run id."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for record in await store.list_runs():
            for event in await store.load(record.run_id):
                if event.type is E.ATTEMPT_STARTED and event.data["task"] == task:
                    return record.run_id
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {task} never started")


def _slow_is_sleeping(ws: Path, marker: str = "slow") -> Callable[[], bool]:
    """True once the shell of ``_slow_plan`` has written its log line.

    The log line is the command's last write before it sleeps: waiting for the ``.pid`` file
    (its first write) and then asserting on the log raced a cancel that came in between.
    """
    log = ws / f"{marker}.log"
    return lambda: log.exists() and log.read_text() == "run\n"


async def _until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition never became true")
        await asyncio.sleep(0.02)


def _slow_plan(ws: Path, marker: str = "slow") -> Plan:
    return plan_of(
        ws,
        TaskSpec(id="first", tool="counted"),
        TaskSpec(
            id="slow",
            tool="shell",
            needs=("first",),
            args={
                "cmd": (
                    f"echo started > {marker}.pid; echo run >> {marker}.log; "
                    "test -f go || sleep 30.3333"
                )
            },
        ),
        TaskSpec(id="last", tool="counted", needs=("slow",)),
        TaskSpec(id="other", tool="noop", needs=("first",), priority=-1),
        max_parallel=1,
    )


def test_cancel_of_a_run_nobody_drives(ws: Path, db: Path) -> None:
    calls: list[str] = []
    tool = FunctionTool("counted", lambda: calls.append("x") or len(calls))
    plan = _slow_plan(ws)

    async def go(store: SQLiteStore) -> tuple[str, RunState, str]:
        engine = make_engine(store, [tool])
        driver = asyncio.create_task(engine.start(plan))
        run_id = await _started(store, "slow")
        await _until(_slow_is_sleeping(ws))
        driver.cancel()  # the driving process goes away
        with pytest.raises(asyncio.CancelledError):
            await driver
        assert (await store.get_run(run_id)).status == "running"  # type: ignore[union-attr]
        # make the lease look like a crashed process on this host
        assert await store.get_lease(run_id) is None
        dead = Lease(
            owner="dead-owner", host=socket.gethostname(), pid=dead_pid(), heartbeat=time.time()
        )
        assert await store.swap_lease(run_id, dead, None)

        outcome = await make_engine(store, [tool]).cancel(run_id, reason="no longer needed")
        state = RunState.fold(await store.load(run_id))
        again = await make_engine(store, [tool]).cancel(run_id)
        return outcome, state, again

    outcome, state, again = with_store(db, go)
    assert outcome == "cancelled"
    assert again == "finished"
    assert state.status == "cancelled"
    assert state.cancel_requested
    assert {tid: str(t.status) for tid, t in state.tasks.items()} == {
        "first": "succeeded",
        "slow": "cancelled",
        "last": "skipped",
        "other": "skipped",
    }
    assert calls == ["x"]
    assert wait_marker_gone("30.3333") == []
    assert_replays(db, state.run_id, [tool])
    assert calls == ["x"]
    assert (ws / "slow.log").read_text() == "run\n"


def test_cancel_of_a_live_run_is_requested_and_honoured(ws: Path, db: Path) -> None:
    tool = FunctionTool("counted", lambda: 1)
    plan = _slow_plan(ws)

    async def go(store: SQLiteStore) -> tuple[str, RunResult]:
        engine = make_engine(store, [tool])
        driver = asyncio.create_task(engine.start(plan))
        run_id = await _started(store, "slow")
        await _until(_slow_is_sleeping(ws))
        outcome = await make_engine(store, [tool]).cancel(run_id)
        # the command sleeps 30 s: a cancel that is not honoured runs into this bound
        result = await asyncio.wait_for(driver, 10)
        return outcome, result

    outcome, result = with_store(db, go)
    assert outcome == "requested"
    assert result.status == "cancelled"
    assert result.tasks["slow"]["status"] == "cancelled"
    assert result.tasks["last"]["status"] == "skipped"
    assert wait_marker_gone("30.3333") == []
    assert_replays(db, result.run_id, [tool])
    assert (ws / "slow.log").read_text() == "run\n"


# -- resume -------------------------------------------------------------------------------------


def test_resume_after_a_crash_finishes_without_rerunning_completed_tasks(
    ws: Path, db: Path
) -> None:
    calls: list[str] = []

    def counted() -> int:
        calls.append("x")
        return len(calls)

    tool = FunctionTool("counted", counted)
    plan = _slow_plan(ws)

    async def crash(store: SQLiteStore) -> str:
        engine = make_engine(store, [tool])
        driver = asyncio.create_task(engine.start(plan))
        run_id = await _started(store, "slow")
        await _until(_slow_is_sleeping(ws))
        driver.cancel()
        with pytest.raises(asyncio.CancelledError):
            await driver
        # the process "died" holding its lease
        dead = Lease(
            owner="crashed", host=socket.gethostname(), pid=dead_pid(), heartbeat=time.time()
        )
        assert await store.swap_lease(run_id, dead, None)
        return run_id

    run_id = with_store(db, crash)
    assert calls == ["x"]
    assert wait_marker_gone("30.3333") == []
    (ws / "go").write_text("")

    async def resume(store: SQLiteStore) -> tuple[RunResult, list[Event]]:
        before = RunState.fold(await store.load(run_id))
        assert before.status == "running"
        assert before.tasks["slow"].status == "running"
        assert before.tasks["first"].status == "succeeded"
        result = await asyncio.wait_for(make_engine(store, [tool]).resume(run_id), RUN_TIMEOUT)
        return result, await store.load(run_id)

    result, events = with_store(db, resume)
    assert result.status == "succeeded"
    assert calls == ["x", "x"], "'first' ran once, 'last' once"
    assert (ws / "slow.log").read_text() == "run\nrun\n"
    assert result.tasks["slow"] == {"status": "succeeded", "attempts": 2}
    assert result.tasks["first"]["attempts"] == 1
    resumed = next(e for e in events if e.type is E.RUN_RESUMED)
    assert resumed.data["interrupted"] == ["slow"]
    interrupted = [e for e in events if e.type is E.ATTEMPT_INTERRUPTED]
    assert [(e.data["task"], e.data["attempt"]) for e in interrupted] == [("slow", 1)]
    assert interrupted[0].data["error"]["kind"] == "interrupted"
    assert interrupted[0].seq == resumed.seq + 1
    retry = next(e for e in events if e.type is E.RETRY_SCHEDULED)
    assert retry.data["delay_ms"] == 0
    assert retry.data["error"]["interrupts"] == 1
    # the resumed run replays identically, interrupted attempt included
    report = with_store(db, lambda s: make_engine(s, [tool]).replay(run_id))
    assert report.identical, report.first_divergence
    assert calls == ["x", "x"]
    assert verify_chain(with_store(db, _chain_rows(run_id))).ok


def _chain_rows(run_id: str) -> Callable[[SQLiteStore], Awaitable[list[Any]]]:
    async def rows(store: SQLiteStore) -> list[Any]:
        return list(store.chain(run_id))

    return rows


def test_resume_refuses_a_run_driven_by_a_live_process(ws: Path, db: Path) -> None:
    tool = FunctionTool("counted", lambda: 1)
    plan = _slow_plan(ws)

    async def go(store: SQLiteStore) -> None:
        engine = make_engine(store, [tool])
        driver = asyncio.create_task(engine.start(plan))
        run_id = await _started(store, "slow")
        with pytest.raises(ConflictError, match="being driven by pid"):
            await make_engine(store, [tool]).resume(run_id)
        driver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await driver
        with pytest.raises(NotFoundError):
            await make_engine(store, [tool]).resume("01UNKNOWNRUN0000000000000A")

    with_store(db, go)


def test_resume_of_a_finished_run_changes_nothing(ws: Path, db: Path) -> None:
    plan = plan_of(ws, TaskSpec(id="a", tool="noop"))

    async def go(store: SQLiteStore) -> tuple[RunResult, int, int]:
        engine = make_engine(store)
        result = await start(engine, plan)
        before = len(await store.load(result.run_id))
        again = await make_engine(store).resume(result.run_id)
        assert again.status == result.status
        return again, before, len(await store.load(result.run_id))

    result, before, after = with_store(db, go)
    assert result.status == "succeeded"
    assert before == after


# -- observers and the run record ------------------------------------------------------------------


def test_observers_see_every_event_once_in_order(ws: Path, db: Path) -> None:
    seen: list[Event] = []

    def observe(batch: Sequence[Event], _state: RunState) -> None:
        seen.extend(batch)

    plan = plan_of(
        ws,
        TaskSpec(id="a", tool="noop"),
        TaskSpec(id="b", tool="shell", args={"cmd": "true"}, needs=("a",)),
    )

    async def go(store: SQLiteStore) -> tuple[list[Event], Any]:
        result = await start(make_engine(store), plan, observers=[observe])
        return await store.load(result.run_id), await store.get_run(result.run_id)

    events, record = with_store(db, go)
    assert [e.seq for e in seen] == list(range(1, len(events) + 1))
    assert [e.hash for e in seen] == [e.hash for e in events]
    assert record.status == "succeeded"
    assert record.events == len(events)
    assert record.name == "test"
    assert record.workspace == str(ws)
