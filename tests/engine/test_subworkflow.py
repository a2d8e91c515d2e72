"""Sub-workflows run: their templates read their own inputs and tasks (nested ones too),
their task ends with their ``outputs:``, their budget is a scope of its own, and a
crashed run resumes and replays them like any task.

The runs are real (the SQLite store, the engine, tools that count their calls); a
replay must be byte-identical and call no tool.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from nexus.domain.budget import Limits, Scope
from nexus.domain.events import Event, EventType
from nexus.domain.plan import Plan
from nexus.domain.state import RunState
from nexus.engine.facade import Engine, RunResult
from nexus.planning.workflow import load_workflow
from nexus.store.base import Lease
from nexus.store.sqlite import SQLiteStore
from nexus.tools.base import FunctionTool, ToolFailed, ToolRegistry
from nexus.tools.builtins import builtin_tools

RUN_TIMEOUT = 30.0


class Work:
    """The ``work`` tool: notes each call's name; ``slow`` names wait ``hang`` seconds,
    ``broken`` ones fail."""

    def __init__(self, slow: frozenset[str] = frozenset(), broken: frozenset[str] = frozenset()):
        self.slow = slow
        self.broken = broken
        self.calls: list[str] = []
        self.hang = 5.0

    def tools(self) -> ToolRegistry:
        tools = builtin_tools()
        tools.add(FunctionTool("work", self.work))
        return tools

    async def work(self, name: str, value: Any = None) -> dict[str, Any]:
        self.calls.append(name)
        if name in self.slow:
            await asyncio.sleep(self.hang)
        if name in self.broken:
            raise ToolFailed(f"{name} broke")
        return {"name": name, "value": value}


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def work(name: str, value: Any = None, **more: Any) -> dict[str, Any]:
    return {"tool": "work", "with": {"name": name, "value": value}, **more}


def nested(tmp_path: Path, **build: Any) -> Plan:
    """parent -> build (sub/build.yaml) -> lint (sub/lint.yaml); ``step`` in all three."""
    write(
        tmp_path / "sub" / "lint.yaml",
        {
            "version": 1,
            "name": "lint",
            "inputs": {"target": "none"},
            "outputs": {"verdict": "{{ tasks.step.output.value }}"},
            "tasks": {"step": work("lint-step", "clean {{ inputs.target }}")},
        },
    )
    write(
        tmp_path / "sub" / "build.yaml",
        {
            "version": 1,
            "name": "build",
            "inputs": {"version": "1.0", "files": []},
            "outputs": {
                "summary": "{{ tasks.step.output.value }}; {{ tasks.lint.output.verdict }}",
                "count": "{{ tasks.step.output.value | length }}",
            },
            "tasks": {
                "step": work("build-step", "{{ inputs.files | join(',') }} @ {{ inputs.version }}"),
                "never": work("never", when="{{ inputs.version == 'old' }}"),
                "lint": {
                    "needs": "step",
                    "workflow": "lint.yaml",
                    "with": {"target": "{{ tasks.step.output.name }}"},
                },
            },
        },
    )
    return load_workflow(
        write(
            tmp_path / "workflow.yaml",
            {
                "version": 1,
                "name": "parent",
                "inputs": {"version": "2.0"},
                "tasks": {
                    "step": work("top-step", ["a", "b"]),
                    "build": {
                        "needs": "step",
                        "workflow": "sub/build.yaml",
                        "with": {
                            "version": "{{ inputs.version }}",
                            "files": "{{ tasks.step.output.value }}",
                        },
                        **build,
                    },
                    "report": work("report", "{{ tasks.build.output }}", needs="build"),
                },
            },
        ),
        known_tools=["work"],
    )


async def _run(db: Path, plan: Plan, tools: ToolRegistry) -> tuple[RunResult, list[Event]]:
    store = SQLiteStore.open(db)
    try:
        result = await asyncio.wait_for(Engine(store, tools=tools).start(plan), RUN_TIMEOUT)
        return result, await store.load(result.run_id)
    finally:
        await store.close()


async def _replay(db: Path, run_id: str) -> None:
    store = SQLiteStore.open(db)
    try:
        before = await store.load(run_id)
        engine = Engine(store, tools=Work().tools())
        report = await asyncio.wait_for(engine.replay(run_id), RUN_TIMEOUT)
        assert report.identical, report.first_divergence
        assert report.complete
        assert report.tools_executed == 0
        assert await store.load(run_id) == before
    finally:
        await store.close()


def test_nested_sub_workflows_read_their_own_inputs_and_tasks(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"
    tools = Work()
    result, events = asyncio.run(_run(db, nested(tmp_path), tools.tools()))
    assert result.status == "succeeded", result.tasks
    outputs = {tid: r.output for tid, r in result.task_results.items()}
    # each `step` read its own workflow's inputs, though all three have the same id
    assert outputs["step"]["value"] == ["a", "b"]
    assert outputs["build/step"]["value"] == "a,b @ 2.0"
    assert outputs["build/lint/step"]["value"] == "clean build-step"
    assert outputs["build/lint"] == {"verdict": "clean build-step"}
    assert outputs["build"] == {"summary": "a,b @ 2.0; clean build-step", "count": 9}
    assert outputs["report"]["value"] == outputs["build"]
    assert result.tasks["build/never"]["status"] == "skipped", "a skipped task inside is fine"
    assert sorted(tools.calls) == ["build-step", "lint-step", "report", "top-step"]
    assert RunResult.of(RunState.fold(events)) == result
    asyncio.run(_replay(db, result.run_id))


def test_a_failure_inside_fails_the_sub_workflow_and_the_run(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"
    tools = Work(broken=frozenset({"lint-step"}))
    result, _ = asyncio.run(_run(db, nested(tmp_path), tools.tools()))
    assert result.status == "failed"
    assert result.tasks["build/lint/step"]["status"] == "failed"
    for tid in ("build/lint", "build", "report"):
        assert result.tasks[tid]["status"] == "skipped", tid
    assert "report" not in tools.calls
    asyncio.run(_replay(db, result.run_id))


def test_a_with_value_that_cannot_render_fails_the_task_that_reads_it(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"
    plan = nested(tmp_path, **{"with": {"files": "{{ tasks.step.output.missing }}"}})
    result, events = asyncio.run(_run(db, plan, Work().tools()))
    assert result.status == "failed"
    failed = next(e for e in events if e.type is EventType.TASK_FAILED)
    assert failed.data["task"] == "build/step"
    message = failed.data["error"]["message"]
    assert "input 'files' of sub-workflow 'build'" in message
    assert "missing" in message
    asyncio.run(_replay(db, result.run_id))


def test_a_switch_that_does_not_pick_a_sub_workflow_skips_all_of_it(tmp_path: Path) -> None:
    write(tmp_path / "s.yaml", {"version": 1, "name": "s", "tasks": {"a": work("inside")}})
    doc = {
        "version": 1,
        "name": "p",
        "tasks": {
            "pick": {
                "switch": "{{ 'other' }}",
                "cases": {"run": ["sub"], "other": ["plain"], "default": []},
            },
            "sub": {"needs": "pick", "workflow": "s.yaml"},
            "plain": work("plain", needs="pick"),
        },
    }
    plan = load_workflow(write(tmp_path / "p.yaml", doc), known_tools=["work"])
    tools = Work()
    result, _ = asyncio.run(_run(tmp_path / "db", plan, tools.tools()))
    assert result.status == "succeeded"
    assert tools.calls == ["plain"]
    assert result.tasks["sub/a"]["status"] == "skipped"
    assert result.tasks["sub"]["status"] == "skipped"


def test_the_sub_workflows_budget_is_a_scope_of_its_own(tmp_path: Path) -> None:
    write(
        tmp_path / "s.yaml",
        {
            "version": 1,
            "name": "s",
            "budget": {"tool_calls": 2},
            "tasks": {
                "one": work("one"),
                "two": work("two", needs="one"),
                "three": work("three", needs="two"),
            },
        },
    )
    doc = {
        "version": 1,
        "name": "p",
        "tasks": {"outside": work("outside"), "sub": {"workflow": "s.yaml"}},
    }
    plan = load_workflow(write(tmp_path / "p.yaml", doc), known_tools=["work"])
    db = tmp_path / "db"
    tools = Work()

    async def main() -> tuple[RunResult, RunResult, list[Event]]:
        store = SQLiteStore.open(db)
        try:
            engine = Engine(store, tools=tools.tools())
            paused = await asyncio.wait_for(engine.start(plan), RUN_TIMEOUT)
            more = {Scope("task", "sub"): Limits(tool_calls=10)}
            resumed = await asyncio.wait_for(
                Engine(store, tools=tools.tools()).resume(paused.run_id, budget=more),
                RUN_TIMEOUT,
            )
            return paused, resumed, await store.load(paused.run_id)
        finally:
            await store.close()

    paused, resumed, events = asyncio.run(main())
    assert paused.status == "paused", paused.tasks
    assert "outside" in tools.calls, "the run's other tasks do not count against it"
    exceeded = [e.data for e in events if e.type is EventType.BUDGET_EXCEEDED]
    assert exceeded
    assert (exceeded[0]["scope"], exceeded[0]["key"]) == ("task", "sub")
    assert exceeded[0]["dimension"] == "tool_calls"
    assert paused.tasks["sub/three"]["status"] == "paused"
    assert resumed.status == "succeeded"
    assert sorted(tools.calls) == ["one", "outside", "three", "two"], "nothing ran twice"
    asyncio.run(_replay(db, paused.run_id))


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_run_that_crashed_inside_a_sub_workflow_resumes_and_replays(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"
    plan = nested(tmp_path)
    tools = Work(slow=frozenset({"lint-step"}))
    tools.hang = 60

    async def crash() -> str:
        store = SQLiteStore.open(db)
        try:
            driver = asyncio.create_task(Engine(store, tools=tools.tools()).start(plan))
            deadline = time.monotonic() + 10
            while "lint-step" not in tools.calls:
                assert time.monotonic() < deadline, "the sub-workflow never started"
                await asyncio.sleep(0.02)
            driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driver
            (record,) = await store.list_runs()
            dead = Lease(
                owner="crashed", host=socket.gethostname(), pid=_dead_pid(), heartbeat=time.time()
            )
            assert await store.swap_lease(record.run_id, dead, None)
            return record.run_id
        finally:
            await store.close()

    run_id = asyncio.run(crash())
    assert sorted(tools.calls) == ["build-step", "lint-step", "top-step"]
    tools.calls.clear()
    tools.slow = frozenset()

    async def resume() -> RunResult:
        store = SQLiteStore.open(db)
        try:
            engine = Engine(store, tools=tools.tools())
            return await asyncio.wait_for(engine.resume(run_id), RUN_TIMEOUT)
        finally:
            await store.close()

    result = asyncio.run(resume())
    assert result.status == "succeeded", result.tasks
    assert sorted(tools.calls) == ["lint-step", "report"], "what succeeded does not run again"
    assert result.task_results["build"].output == {
        "summary": "a,b @ 2.0; clean build-step",
        "count": 9,
    }
    asyncio.run(_replay(db, run_id))


def test_a_budget_on_the_task_narrows_the_sub_workflows(tmp_path: Path) -> None:
    plan = nested(tmp_path, budget={"tool_calls": 1})
    assert plan.tasks["build"].budget == {"tool_calls": 1}
    result, _ = asyncio.run(_run(tmp_path / "db", plan, Work().tools()))
    assert result.status == "paused"
    assert any(spent.scope == Scope("task", "build") for spent in result.paused_by)


def test_switches_fan_outs_and_barriers_inside_keep_to_the_sub_workflow(tmp_path: Path) -> None:
    write(
        tmp_path / "s.yaml",
        {
            "version": 1,
            "name": "s",
            "inputs": {"kind": "bug", "items": []},
            "outputs": {"each": "{{ tasks.each.output | map(attribute='value') | list }}"},
            "tasks": {
                "pick": {"switch": "{{ inputs.kind }}", "cases": {"bug": ["fix"], "default": []}},
                "fix": work("fix", needs="pick"),
                "each": {
                    "needs": "fix",
                    "foreach": "{{ inputs.items }}",
                    "tool": "work",
                    "with": {"name": "each", "value": "{{ item }}-{{ inputs.kind }}"},
                },
                "slow": work("slow"),
                "first": {"needs_any": ["each", "slow"], **work("first")},
            },
        },
    )
    doc = {
        "version": 1,
        "name": "p",
        "tasks": {
            "bug": {"workflow": "s.yaml", "with": {"items": ["a", "b"]}},
            "chore": {"workflow": "s.yaml", "with": {"kind": "chore"}},
        },
    }
    plan = load_workflow(write(tmp_path / "p.yaml", doc), known_tools=["work"])
    assert plan.tasks["bug/first"].barrier is not None
    assert plan.tasks["bug/first"].barrier.of == ("bug/each", "bug/slow")
    db = tmp_path / "db"
    tools = Work(slow=frozenset({"slow"}))
    tools.hang = 0.3
    result, _ = asyncio.run(_run(db, plan, tools.tools()))
    assert result.status == "succeeded", result.tasks
    assert result.task_results["bug"].output == {"each": ["a-bug", "b-bug"]}
    assert result.tasks["chore/fix"]["status"] == "skipped", "its own switch picked no case"
    assert result.tasks["chore/each"]["status"] == "skipped"
    assert result.tasks["chore/first"]["status"] == "succeeded", "its barrier took slow"
    assert result.task_results["chore"].output == {"each": []}
    assert tools.calls.count("fix") == 1
    asyncio.run(_replay(db, result.run_id))
