"""Writes: two tasks whose declared ``writes`` overlap never run at the same time.

Checked in the live run (the tool itself sees who else is in flight) and in the
log (walking the events, no two overlapping attempts are ever running at
once); every task still runs, the fold of the log is the live state, and a
replay reproduces the run with no tool call.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from _runs import check_replay, run_plan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.domain.events import Event, EventType
from nexus.domain.plan import Plan
from nexus.domain.state import RunState
from nexus.domain.writes import overlap
from nexus.engine.facade import RunResult
from nexus.planning.workflow import compile_workflow
from nexus.tools.base import FunctionTool, ToolRegistry
from nexus.tools.builtins import builtin_tools


class Work:
    """The ``work`` tool: notes each call, and any overlapping call in flight with it."""

    def __init__(self) -> None:
        self.in_flight: dict[str, tuple[str, ...]] = {}
        self.calls: list[str] = []
        self.clashes: list[tuple[str, str]] = []
        self.peak = 0

    def tools(self) -> ToolRegistry:
        tools = builtin_tools()
        tools.add(FunctionTool("work", self.work))
        return tools

    async def work(self, me: str, writes: list[str] | None = None) -> dict[str, Any]:
        mine = tuple(writes or ())
        for other, theirs in self.in_flight.items():
            if any(overlap(a, b) for a in mine for b in theirs):
                self.clashes.append((me, other))
        self.in_flight[me] = mine
        self.calls.append(me)
        self.peak = max(self.peak, len(self.in_flight))
        try:
            await asyncio.sleep(0.002)
        finally:
            del self.in_flight[me]
        return {"me": me}


def _plan(tasks: dict[str, dict[str, Any]], **top: Any) -> Plan:
    doc: dict[str, Any] = {"version": 1, "name": "writes", "tasks": {}, **top}
    for tid, spec in tasks.items():
        me = "{{ item }}" if "foreach" in spec else tid
        writes = spec.get("writes", [])
        doc["tasks"][tid] = {"tool": "work", "with": {"me": me, "writes": writes}, **spec}
    return compile_workflow(doc, file="writes.yaml", known_tools=[*builtin_tools().names(), "work"])


def overlapping_running(events: list[Event], plan: Plan) -> list[tuple[str, str]]:
    """Pairs of tasks whose declared writes overlap and that were running at once, per the log.

    The writes are read from the plan (a literal entry) or the attempt's record (a templated
    one), so an attempt that forgot to record its writes is caught too.
    """
    running: dict[str, tuple[str, ...]] = {}
    found = []
    for event in events:
        data = event.data
        if event.type is EventType.ATTEMPT_STARTED:
            tid = data["task"]
            spec = plan.tasks[tid.split("[", 1)[0]]
            writes = tuple(data.get("writes", ()))
            if not any("{{" in w for w in spec.writes):
                assert writes == spec.writes, f"{tid} started without holding its writes"
            for other, theirs in running.items():
                if any(overlap(a, b) for a in writes for b in theirs):
                    found.append((tid, other))
            running[tid] = writes
        elif event.type in _ENDS_ATTEMPT and data.get("task") in running:
            del running[data["task"]]
    return found


_ENDS_ATTEMPT = {
    EventType.TASK_SUCCEEDED,
    EventType.TASK_FAILED,
    EventType.RETRY_SCHEDULED,
    EventType.TASK_CANCELLED,
    EventType.TASK_PAUSED,
    EventType.TASK_ITERATED,
}


def _order(events: list[Event], *kinds: EventType) -> list[tuple[str, str]]:
    return [(str(e.type), e.data["task"]) for e in events if e.type in kinds]


# --------------------------------------------------------------------------- serialize


def test_overlapping_writes_run_one_at_a_time_and_the_rest_alongside(tmp_path: Path) -> None:
    plan = _plan(
        {
            "report": {"writes": ["out/report.md"]},
            "all_out": {"writes": ["out"]},
            "notes": {"writes": ["out/notes.md"]},
            "db": {"writes": ["key:db"]},
            "free": {},
        }
    )
    work = Work()
    result, events = asyncio.run(run_plan(tmp_path / "nexus.db", plan, work.tools()))
    assert result.status == "succeeded"
    assert sorted(work.calls) == ["all_out", "db", "free", "notes", "report"]
    assert work.clashes == []
    assert overlapping_running(events, plan) == []
    # all_out goes first (schedule order); report and notes wait for it, then run together
    started = _order(events, EventType.ATTEMPT_STARTED, EventType.TASK_SUCCEEDED)
    first_end = next(i for i, (kind, _) in enumerate(started) if kind == "task.succeeded")
    assert {t for _, t in started[:first_end]} == {"all_out", "db", "free"}
    after = started.index(("task.succeeded", "all_out"))
    both = [started.index(("attempt.started", t)) for t in ("report", "notes")]
    assert all(i > after for i in both)
    assert max(both) < started.index(("task.succeeded", "report"))
    assert work.peak == 3
    held = [e.data.get("writes") for e in events if e.type is EventType.ATTEMPT_STARTED]
    assert ["out"] in held
    assert ["key:db"] in held
    assert None in held
    assert RunResult.of(RunState.fold(events)) == result, "the fold of the log is the live state"
    asyncio.run(check_replay(tmp_path / "nexus.db", result.run_id, Work().tools()))


def test_foreach_items_share_literal_writes_and_split_templated_ones(tmp_path: Path) -> None:
    plan = _plan(
        {
            "shared": {"foreach": ["s1", "s2", "s3"], "writes": ["out/shared.md"]},
            "split": {"foreach": ["p1", "p2", "p3"], "writes": ["parts/{{ item }}.md"]},
        }
    )
    work = Work()
    result, events = asyncio.run(run_plan(tmp_path / "nexus.db", plan, work.tools()))
    assert result.status == "succeeded"
    assert work.clashes == []
    assert overlapping_running(events, plan) == []
    kinds = (EventType.ATTEMPT_STARTED, EventType.TASK_SUCCEEDED)
    shared = [k for k, t in _order(events, *kinds) if t.startswith("shared[")]
    assert shared == ["attempt.started", "task.succeeded"] * 3  # one item at a time
    split = [k for k, t in _order(events, *kinds) if t.startswith("split[")]
    assert split[:3] == ["attempt.started"] * 3  # each item its own file: all at once
    held = [
        e.data["writes"]
        for e in events
        if e.data.get("task", "").startswith("split[") and e.type is EventType.ATTEMPT_STARTED
    ]
    assert held == [["parts/p1.md"], ["parts/p2.md"], ["parts/p3.md"]]
    asyncio.run(check_replay(tmp_path / "nexus.db", result.run_id, Work().tools()))


def test_a_templated_entry_outside_the_workspace_fails_its_task(tmp_path: Path) -> None:
    plan = _plan(
        {"escape": {"writes": ["{{ inputs.where }}/x"]}, "after": {"needs": ["escape"]}},
        inputs={"where": "../.."},
        fail_fast=False,
    )
    work = Work()
    result, _events = asyncio.run(run_plan(tmp_path / "nexus.db", plan, work.tools()))
    assert result.status == "failed"
    assert work.calls == []
    error = result.task("escape").error
    assert error is not None
    assert "task 'escape', field 'writes[0]' gave '../../x'" in error.message
    assert "leaves the workspace" in error.message
    assert result.tasks["after"]["status"] == "skipped"


def test_max_parallel_and_waiting_writes_do_not_stall(tmp_path: Path) -> None:
    """Tasks waiting on writes hold no slot: a free task starts past them."""
    tasks: dict[str, dict[str, Any]] = {f"w{i}": {"writes": ["key:one"]} for i in range(4)}
    tasks["free"] = {"priority": -1}
    plan = _plan(tasks, max_parallel=2)
    work = Work()
    result, events = asyncio.run(run_plan(tmp_path / "nexus.db", plan, work.tools()))
    assert result.status == "succeeded"
    assert work.clashes == []
    started = [t for _, t in _order(events, EventType.ATTEMPT_STARTED)]
    assert started[:2] == ["w0", "free"]


# --------------------------------------------------------------------------- property

_RESOURCES = ["out", "out/a.md", "out/b.md", "src", "src/app.py", "key:db", "key:cache", "."]


@st.composite
def dags(draw: st.DrawFn) -> tuple[dict[str, dict[str, Any]], int]:
    """A random DAG of tasks, each writing a random set of resources (some none, some
    a foreach whose items share them), run with a random ``max_parallel``."""
    count = draw(st.integers(2, 8))
    tasks: dict[str, dict[str, Any]] = {}
    for index in range(count):
        tid = f"t{index}"
        earlier = [f"t{i}" for i in range(index)]
        spec: dict[str, Any] = {}
        needs = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=2)) if earlier else []
        if needs:
            spec["needs"] = needs
        writes = draw(st.lists(st.sampled_from(_RESOURCES), unique=True, max_size=2))
        if writes:
            spec["writes"] = writes
        if draw(st.integers(0, 4)) == 0:
            spec["foreach"] = [f"{tid}-a", f"{tid}-b"]
        spec["priority"] = draw(st.integers(0, 2))
        tasks[tid] = spec
    return tasks, draw(st.integers(1, 8))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=dags())
def test_random_dags_never_run_overlapping_writes_at_once_and_run_every_task(
    case: tuple[dict[str, dict[str, Any]], int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    tasks, parallel = case
    plan = _plan(tasks, max_parallel=parallel)
    db = tmp_path_factory.mktemp("writes") / "nexus.db"
    work = Work()
    result, events = asyncio.run(run_plan(db, plan, work.tools()))
    assert result.status == "succeeded", result.tasks
    assert work.clashes == []
    assert overlapping_running(events, plan) == []
    expected = sum(len(s["foreach"]) if "foreach" in s else 1 for s in tasks.values())
    assert len(work.calls) == expected, "every task ran, once"
    assert RunResult.of(RunState.fold(events)) == result, "the fold of the log is the live state"
    asyncio.run(check_replay(db, result.run_id, Work().tools()))


# --------------------------------------------------------------------------- detection


def _file_plan(workspace: Path, tasks: dict[str, dict[str, Any]]) -> Plan:
    doc: dict[str, Any] = {
        "version": 1,
        "name": "files",
        "workspace": str(workspace),
        "tasks": {tid: {"tool": "file.write", **spec} for tid, spec in tasks.items()},
    }
    return compile_workflow(doc, file="files.yaml", known_tools=builtin_tools().names())


def test_an_undeclared_concurrent_write_through_file_tools_is_detected(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    plan = _file_plan(
        workspace,
        {
            "one": {"with": {"path": "out/./shared.md", "text": "one\n"}},
            "two": {"with": {"path": f"{workspace}/out/shared.md", "text": "two\n"}},
            "other": {"with": {"path": "out/other.md", "text": "x\n"}},
            "later": {"needs": ["one", "two"], "with": {"path": "out/shared.md", "text": "3\n"}},
        },
    )
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, plan, builtin_tools()))
    assert result.status == "succeeded"  # recorded, the run goes on
    wrote = {
        e.data["task"]: e.data.get("wrote") for e in events if e.type is EventType.EFFECT_RECORDED
    }
    assert wrote == {
        "one": ["out/shared.md"],
        "two": ["out/shared.md"],
        "other": ["out/other.md"],
        "later": ["out/shared.md"],
    }
    (conflict,) = [e for e in events if e.type is EventType.CONFLICT_DETECTED]
    assert conflict.data["path"] == "out/shared.md"
    assert {conflict.data["task"], conflict.data["other"]} == {"one", "two"}
    assert conflict.data["attempt"] == conflict.data["other_attempt"] == 1
    # it follows the write that revealed it, and takes its time
    effect = next(e for e in events if e.data.get("key") == conflict.data["effect"])
    assert effect.seq == conflict.seq - 1
    assert effect.data["task"] == conflict.data["task"]
    state = RunState.fold(events)
    assert state.conflicts == {("out/shared.md", "one", "two")}
    assert RunResult.of(state) == result, "the fold of the log is the live state"
    asyncio.run(check_replay(db, result.run_id, builtin_tools()))


def test_declared_writes_leave_nothing_to_detect(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    plan = _file_plan(
        workspace,
        {
            tid: {"with": {"path": "out/shared.md", "text": f"{tid}\n"}, "writes": ["out"]}
            for tid in ("one", "two", "three")
        },
    )
    result, events = asyncio.run(run_plan(tmp_path / "nexus.db", plan, builtin_tools()))
    assert result.status == "succeeded"
    assert [e for e in events if e.type is EventType.CONFLICT_DETECTED] == []
    assert overlapping_running(events, plan) == []


def test_conflicts_show_in_events_and_inspect(tmp_path: Path) -> None:
    from nexus.cli.inspection import view_run
    from nexus.cli.summaries import summary

    workspace = tmp_path / "ws"
    workspace.mkdir()
    plan = _file_plan(
        workspace,
        {tid: {"with": {"path": "a.md", "text": tid}} for tid in ("one", "two")},
    )
    result, events = asyncio.run(run_plan(tmp_path / "nexus.db", plan, builtin_tools()))
    (conflict,) = [e for e in events if e.type is EventType.CONFLICT_DETECTED]
    line = summary(conflict)
    assert line.startswith("a.md written by ")
    assert "attempt 1 at the same time" in line
    doc = view_run({"run_id": result.run_id}, RunState.fold(events), events)
    assert [c["path"] for c in doc["conflicts"]] == ["a.md"]
