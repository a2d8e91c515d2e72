"""Behaviour trees: a ``bt`` task ticks its tree from recorded outcomes, each action an
attempt, each node that decides the flow a ``bt.ticked`` event; resumed without running
a finished action again, replayed with no tool or model call."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _runs import check_replay, crash, forge, resume, run_plan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.domain.bt import BtNode, BtSpec
from nexus.domain.errors import IntegrityError
from nexus.domain.events import Event, EventType
from nexus.domain.payloads import AttemptStarted, BtTicked
from nexus.domain.plan import Plan, TaskSpec
from nexus.domain.state import RunState
from nexus.engine.facade import RunResult
from nexus.planning.workflow import compile_workflow
from nexus.testing import TestModel
from nexus.tools.base import FunctionTool, ToolFailed, ToolRegistry
from nexus.tools.builtins import builtin_tools


class Acts:
    """The ``act`` tool: the ``n``-th call for a node fails when its script says so.

    ``script[node]`` is a list of booleans, read round (true: success); a node
    without a script succeeds. Every call is noted; a node in ``hang`` never returns.
    """

    def __init__(self, script: dict[str, list[bool]] | None = None) -> None:
        self.script = script or {}
        self.calls: list[str] = []
        self.hang: set[str] = set()

    def tools(self) -> ToolRegistry:
        tools = builtin_tools()
        tools.add(FunctionTool("act", self.act))
        return tools

    async def act(self, node: str, seen: Any = None) -> dict[str, Any]:
        n = self.calls.count(node)
        self.calls.append(node)
        if node in self.hang:
            await asyncio.sleep(60)
        outcomes = self.script.get(node) or [True]
        if not outcomes[n % len(outcomes)]:
            raise ToolFailed(f"{node} fails (call {n + 1})")
        return {"node": node, "call": n + 1, "seen": seen}


def _act(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "action": {"tool": "act", "with": {"node": name, **extra}}}


def _workflow(root: dict[str, Any], max_steps: int = 20, **bt: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "trees",
        "fail_fast": False,
        "inputs": {"cond": {"default": {}}, "go": {"default": True}},
        "tasks": {
            "tree": {"bt": {"max_steps": max_steps, "root": root, **bt}},
            "after": {
                "tool": "noop",
                "needs": ["tree"],
                "with": {"got": "{{ tasks.tree.output }}"},
            },
        },
    }


def _compile(doc: dict[str, Any], inputs: dict[str, Any] | None = None) -> Plan:
    return compile_workflow(
        doc, file="trees.yaml", inputs=inputs, known_tools=[*builtin_tools().names(), "act"]
    )


def _ticks(events: list[Event]) -> list[tuple[str, str]]:
    return [
        (BtTicked.of(e.data).node, BtTicked.of(e.data).status)
        for e in events
        if e.type is EventType.BT_TICKED
    ]


def _failed(events: list[Event], task: str = "tree") -> dict[str, Any]:
    (event,) = [e for e in events if e.type is EventType.TASK_FAILED and e.data["task"] == task]
    error: dict[str, Any] = event.data["error"]
    return error


# --------------------------------------------------------------------------- semantics


def test_a_sequence_runs_its_actions_in_order_and_gives_the_last_output(tmp_path: Path) -> None:
    acts = Acts()
    root = {"sequence": [_act("a"), _act("b", seen="{{ bt.outputs.a.call }}")]}
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, _compile(_workflow(root)), acts.tools()))
    assert result.status == "succeeded"
    assert acts.calls == ["a", "b"]
    started = [AttemptStarted.of(e.data) for e in events if e.type is EventType.ATTEMPT_STARTED]
    tree_started = [s for s in started if s.task == "tree"]
    assert [(s.attempt, s.node, s.args) for s in tree_started] == [
        (1, "a", {"node": "a"}),
        (2, "b", {"node": "b", "seen": 1}),
    ], "each action is an attempt; a later one reads bt.outputs of an earlier one"
    assert _ticks(events) == [("a", "success"), ("b", "success"), ("root", "success")]
    state = RunState.fold(events)
    assert state.tasks["tree"].output == {"node": "b", "call": 1, "seen": 1}
    assert state.tasks["after"].output == {"got": {"node": "b", "call": 1, "seen": 1}}
    assert RunResult.of(state) == result
    asyncio.run(check_replay(db, result.run_id, Acts().tools()))


def test_a_selector_falls_back_and_a_failed_root_names_the_node(tmp_path: Path) -> None:
    acts = Acts({"a": [False], "b": [False]})
    root = {"selector": [_act("a"), _act("b")]}
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, _compile(_workflow(root)), acts.tools()))
    assert acts.calls == ["a", "b"]
    assert result.tasks["tree"]["status"] == "failed"
    assert result.tasks["after"]["status"] == "skipped"
    assert _ticks(events) == [("a", "failure"), ("b", "failure"), ("root", "failure")]
    error = _failed(events)
    assert error["message"] == (
        "behaviour tree failed at node 'b' (action tool act): transient: b fails (call 1)"
    )
    assert error["details"] == {"node": "b", "steps": 2}
    asyncio.run(check_replay(db, result.run_id, Acts().tools()))


def test_the_declared_output_is_rendered_when_the_root_succeeds(tmp_path: Path) -> None:
    root = {"sequence": [_act("a"), _act("b")]}
    doc = _workflow(root, output="{{ [bt.outputs.a.node, bt.outputs.b.node, bt.step] }}")
    result, events = asyncio.run(run_plan(tmp_path / "nexus.db", _compile(doc), Acts().tools()))
    assert result.status == "succeeded"
    assert RunState.fold(events).tasks["tree"].output == ["a", "b", 2]


def test_conditions_are_judged_without_an_attempt(tmp_path: Path) -> None:
    acts = Acts()
    root = {
        "selector": [
            {"sequence": [{"name": "go", "condition": "{{ inputs.go }}"}, _act("a")]},
            _act("b"),
        ]
    }
    db = tmp_path / "nexus.db"
    plan = _compile(_workflow(root), inputs={"go": False})
    result, events = asyncio.run(run_plan(db, plan, acts.tools()))
    assert result.status == "succeeded"
    assert acts.calls == ["b"]
    assert _ticks(events) == [
        ("go", "failure"),
        ("root/0", "failure"),
        ("b", "success"),
        ("root", "success"),
    ]
    (judged,) = [
        BtTicked.of(e.data)
        for e in events
        if e.type is EventType.BT_TICKED and e.data["node"] == "go"
    ]
    assert (judged.value, judged.step, judged.attempt) == (False, 1, None)
    assert judged.reason == "{{ inputs.go }} gave false"
    asyncio.run(check_replay(db, result.run_id, Acts().tools()))


def test_parallel_thresholds_stop_ticking_once_decided(tmp_path: Path) -> None:
    acts = Acts({"a": [False], "c": [False]})
    children = [_act("a"), _act("b"), _act("c"), _act("d")]
    root = {"parallel": {"success": 2, "failure": 2, "children": children}}
    result, events = asyncio.run(
        run_plan(tmp_path / "n.db", _compile(_workflow(root)), acts.tools())
    )
    assert acts.calls == ["a", "b", "c"], "two failures decide it: d is not ticked"
    assert result.tasks["tree"]["status"] == "failed"
    (root_tick,) = [e.data for e in events if e.data.get("node") == "root"]
    assert root_tick["reason"] == "2 of 4 children failed (success needs 2, failure at 2)"


def test_retry_ticks_its_child_again_and_retries_are_per_action(tmp_path: Path) -> None:
    # the action fails twice as a node, then succeeds; its task retries (an attempt
    # failing retryably) are counted afresh for each run of the node
    acts = Acts({"a": [False, False, True]})
    root = {"retry": {"times": 3, "child": _act("a")}}
    doc = _workflow(root)
    result, events = asyncio.run(run_plan(tmp_path / "n.db", _compile(doc), acts.tools()))
    assert result.status == "succeeded"
    assert acts.calls == ["a", "a", "a"]
    assert _ticks(events) == [
        ("a", "failure"),
        ("a", "failure"),
        ("a", "success"),
        ("root", "success"),
    ]
    doc["tasks"]["tree"]["retries"] = 1
    doc["tasks"]["tree"]["backoff"] = {"initial": 0.001, "multiplier": 1, "maximum": 0.002}
    acts = Acts({"a": [False, True]})
    result, events = asyncio.run(run_plan(tmp_path / "m.db", _compile(doc), acts.tools()))
    assert result.status == "succeeded"
    assert acts.calls == ["a", "a"], "the task's own retry cured it: the node succeeded once"
    assert _ticks(events) == [("a", "success"), ("root", "success")]


def test_max_steps_bounds_the_leaves_ticked(tmp_path: Path) -> None:
    acts = Acts({"a": [False]})
    root = {"retry": {"times": 100, "child": _act("a")}}
    result, events = asyncio.run(
        run_plan(tmp_path / "n.db", _compile(_workflow(root, max_steps=3)), acts.tools())
    )
    assert acts.calls == ["a", "a", "a"]
    error = _failed(events)
    assert error["message"] == (
        "behaviour tree reached max_steps (3) before its root ended; the next leaf was 'a' "
        "(action tool act)"
    )
    assert result.status == "failed"


def test_a_timeout_fails_its_subtree_once_its_deadline_passes(tmp_path: Path) -> None:
    acts = Acts()
    acts.hang = {"slow"}
    root = {
        "selector": [
            {"name": "limit", "timeout": {"seconds": 0.3, "child": _act("slow")}},
            _act("rescue"),
        ]
    }
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, _compile(_workflow(root)), acts.tools()))
    assert result.status == "succeeded"
    assert acts.calls == ["slow", "rescue"]
    started = [AttemptStarted.of(e.data) for e in events if e.type is EventType.ATTEMPT_STARTED]
    slow = next(s for s in started if s.node == "slow")
    assert slow.timeout_ms is not None
    assert 0 < slow.timeout_ms <= 300, "capped by the deadline"
    ticks = [BtTicked.of(e.data) for e in events if e.type is EventType.BT_TICKED]
    assert [(t.node, t.status) for t in ticks][:3] == [
        ("limit", "running"),
        ("slow", "failure"),
        ("limit", "failure"),
    ]
    assert ticks[0].deadline is not None
    asyncio.run(check_replay(db, result.run_id, Acts().tools()))


def test_an_agent_action_asks_the_model_once_and_replays_with_none(tmp_path: Path) -> None:
    doc = {
        "version": 1,
        "name": "agents",
        "agents": {"writer": {"model": "test:writer", "capabilities": ["write"]}},
        "tasks": {
            "tree": {
                "bt": {
                    "max_steps": 5,
                    "root": {
                        "sequence": [
                            {"name": "draft", "action": {"capability": "write", "prompt": "Draft"}},
                            {
                                "name": "check",
                                "condition": "{{ 'ok' in bt.outputs.draft.text }}",
                            },
                        ]
                    },
                }
            }
        },
    }
    plan = compile_workflow(doc, file="agents.yaml")
    model = TestModel("looks ok")
    db = tmp_path / "nexus.db"

    result, events = asyncio.run(run_plan(db, plan, builtin_tools(), providers=model.registry()))
    assert result.status == "succeeded"
    assert len(model.requests) == 1
    assert _ticks(events) == [("draft", "success"), ("check", "success"), ("root", "success")]
    idle = TestModel()
    asyncio.run(check_replay(db, result.run_id, builtin_tools(), providers=idle.registry()))
    assert idle.requests == [], "a replay asks no model"


# --------------------------------------------------------------------------- resume


def test_a_resumed_tree_runs_no_finished_action_again(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"
    acts = Acts({"a": [False]})
    acts.hang = {"c"}  # the process "dies" while c runs
    root = {"sequence": [{"selector": [_act("a"), _act("b")]}, _act("c"), _act("d")]}
    plan = _compile(_workflow(root))

    run_id = asyncio.run(
        crash(db, plan, acts.tools(), until=lambda _: "c" in acts.calls, waiting="c never started")
    )
    assert acts.calls == ["a", "b", "c"]
    acts.hang = set()

    result, events = asyncio.run(resume(db, run_id, acts.tools()))
    assert result.status == "succeeded"
    assert acts.calls == ["a", "b", "c", "c", "d"], "a and b ran once; c again, interrupted"
    assert _ticks(events) == [
        ("a", "failure"),
        ("b", "success"),
        ("root/0", "success"),
        ("c", "success"),
        ("d", "success"),
        ("root", "success"),
    ]
    assert RunResult.of(RunState.fold(events)) == result
    asyncio.run(check_replay(db, run_id, Acts().tools()))
    assert acts.calls == ["a", "b", "c", "c", "d"]


# --------------------------------------------------------------------------- the fold


def _bt_plan() -> Plan:
    root = BtNode(
        id="root",
        kind="sequence",
        children=(BtNode(id="a", kind="action", tool="noop", args={}),),
    )
    return Plan(
        name="p",
        tasks={
            "t": TaskSpec(id="t", bt=BtSpec(root=root, max_steps=3)),
            "plain": TaskSpec(id="plain", tool="noop"),
        },
    )


def test_the_fold_refuses_ticks_a_tree_cannot_make() -> None:
    plan = _bt_plan()
    tick = {"task": "plain", "node": "a", "kind": "action", "status": "success", "step": 1}
    with pytest.raises(IntegrityError, match="not a bt task"):
        RunState.fold(forge(plan, (EventType.BT_TICKED, {**tick, "attempt": 1})))
    # an action's outcome with no attempt running
    with pytest.raises(IntegrityError, match="attempt 1 was not running"):
        RunState.fold(forge(plan, (EventType.BT_TICKED, {**tick, "task": "t", "attempt": 1})))
    # a step that skips one
    started = {"task": "t", "attempt": 1, "tool": "noop", "args": {}, "node": "a"}
    with pytest.raises(IntegrityError, match="out of step"):
        RunState.fold(
            forge(
                plan,
                (EventType.ATTEMPT_STARTED, started),
                (EventType.ATTEMPT_FINISHED, {"task": "t", "attempt": 1, "output": {}}),
                (EventType.BT_TICKED, {**tick, "task": "t", "attempt": 1, "step": 2}),
            )
        )
    # the task succeeds although its root did not
    with pytest.raises(IntegrityError, match="its tree's root did not"):
        RunState.fold(
            forge(
                plan,
                (EventType.ATTEMPT_STARTED, started),
                (EventType.ATTEMPT_FINISHED, {"task": "t", "attempt": 1, "output": {}}),
                (EventType.BT_TICKED, {**tick, "task": "t", "attempt": 1}),
                (EventType.TASK_SUCCEEDED, {"task": "t"}),
            )
        )


# --------------------------------------------------------------------------- property


def _leaf(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"action": {"tool": "act", "with": {"node": "?"}}}
    return {"condition": "?"}


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    """A random tree in workflow-file form (nodes named later)."""
    if depth >= 3 or draw(st.integers(0, 3)) == 0:
        return _leaf(draw)
    kind = draw(st.sampled_from(["sequence", "selector", "parallel", "retry", "timeout"]))
    if kind in ("retry", "timeout"):
        child = draw(trees(depth + 1))
        if kind == "retry":
            return {"retry": {"times": draw(st.integers(1, 2)), "child": child}}
        return {"timeout": {"seconds": 3600, "child": child}}
    children = draw(st.lists(trees(depth + 1), min_size=1, max_size=3))
    if kind != "parallel":
        return {kind: children}
    total = len(children)
    table: dict[str, Any] = {"children": children}
    if draw(st.booleans()):
        table["success"] = draw(st.integers(1, total))
    if draw(st.booleans()):
        table["failure"] = draw(st.integers(1, total))
    return {"parallel": table}


def _name_all(node: dict[str, Any], names: Iterator[int]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Name every node n0, n1, ... depth first; fill the leaves' templates with their names."""
    name = f"n{next(names)}"
    node["name"] = name
    yield name, node
    if "action" in node:
        node["action"]["with"]["node"] = name
    elif "condition" in node:
        node["condition"] = f"{{{{ inputs.cond.{name}[bt.step] }}}}"
    for kind in ("sequence", "selector"):
        for child in node.get(kind, ()):
            yield from _name_all(child, names)
    if "parallel" in node:
        for child in node["parallel"]["children"]:
            yield from _name_all(child, names)
    for kind in ("retry", "timeout"):
        if kind in node:
            yield from _name_all(node[kind]["child"], names)


class _Cap(Exception):
    pass


class Reference:
    """The semantics of docs/workflows.md, written plainly: the ticks a tree makes."""

    def __init__(self, conds: dict[str, list[bool]], acts: dict[str, list[bool]], cap: int):
        self.conds = conds
        self.acts = acts
        self.cap = cap
        self.steps = 0
        self.ticks: list[tuple[str, str]] = []
        self.calls: list[str] = []

    def run(self, root: dict[str, Any]) -> str:
        try:
            return self.tick(root)
        except _Cap:
            return "max_steps"

    def end(self, node: dict[str, Any], status: str) -> str:
        self.ticks.append((node["name"], status))
        return status

    def tick(self, node: dict[str, Any]) -> str:
        name = node["name"]
        if "action" in node or "condition" in node:
            if self.steps >= self.cap:
                raise _Cap
            if "condition" in node:
                ok = self.conds[name][self.steps]
            else:
                script = self.acts.get(name) or [True]
                ok = script[self.calls.count(name) % len(script)]
                self.calls.append(name)
            self.steps += 1
            return self.end(node, "success" if ok else "failure")
        if "sequence" in node or "selector" in node:
            stop = "failure" if "sequence" in node else "success"
            children = node.get("sequence") or node["selector"]
            for child in children:
                if self.tick(child) == stop:
                    return self.end(node, stop)
            return self.end(node, "success" if stop == "failure" else "failure")
        if "parallel" in node:
            table = node["parallel"]
            total = len(table["children"])
            need = table.get("success", total)
            limit = table.get("failure", total - need + 1)
            ok = bad = 0
            for child in table["children"]:
                if self.tick(child) == "success":
                    ok += 1
                else:
                    bad += 1
                if ok >= need:
                    return self.end(node, "success")
                if bad >= limit or bad > total - need:
                    return self.end(node, "failure")
            raise AssertionError("undecided")
        if "retry" in node:
            for _ in range(node["retry"]["times"] + 1):
                if self.tick(node["retry"]["child"]) == "success":
                    return self.end(node, "success")
            return self.end(node, "failure")
        self.ticks.append((name, "running"))
        return self.end(node, self.tick(node["timeout"]["child"]))


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, list[bool]], dict[str, Any], int]:
    root = draw(trees())
    named = dict(_name_all(root, iter(range(1000))))
    cap = draw(st.integers(1, 12))
    acts = {
        name: draw(st.lists(st.booleans(), min_size=1, max_size=3))
        for name, node in named.items()
        if "action" in node
    }
    conds = {
        name: draw(st.lists(st.booleans(), min_size=cap, max_size=cap))
        for name, node in named.items()
        if "condition" in node
    }
    return root, acts, conds, cap


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=cases())
def test_random_trees_tick_the_nodes_a_reference_predicts(
    case: tuple[dict[str, Any], dict[str, list[bool]], dict[str, Any], int],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root, script, conds, cap = case
    expected = Reference(conds, script, cap)
    ending = expected.run(root)
    plan = _compile(_workflow(root, max_steps=cap), inputs={"cond": conds})
    acts = Acts(script)
    db = tmp_path_factory.mktemp("bt") / "nexus.db"
    result, events = asyncio.run(run_plan(db, plan, acts.tools()))
    assert acts.calls == expected.calls
    assert _ticks(events) == expected.ticks
    status = "succeeded" if ending == "success" else "failed"
    assert result.tasks["tree"]["status"] == status
    if ending == "max_steps":
        assert "max_steps" in _failed(events)["message"]
    assert RunResult.of(RunState.fold(events)) == result, "the fold of the log is the live state"
    asyncio.run(check_replay(db, result.run_id, Acts().tools()))


def test_the_path_shows_in_events_and_inspect(tmp_path: Path) -> None:
    from nexus.cli.inspection import view_task
    from nexus.cli.summaries import summary

    acts = Acts({"a": [False]})
    root = {"selector": [_act("a"), _act("b")]}
    result, events = asyncio.run(
        run_plan(tmp_path / "n.db", _compile(_workflow(root)), acts.tools())
    )
    assert result.status == "succeeded"
    lines = [summary(e) for e in events if e.data.get("task") == "tree"]
    assert "tree attempt 2 (node b) tool act" in lines
    assert "tree node a (action, attempt 1) failure at step 1: transient: a fails (call 1)" in lines
    assert "tree node root (selector) success at step 2" in lines
    doc = view_task(RunState.fold(events), events, "tree")
    assert doc["kind"] == "bt"
    assert [(t["node"], t["status"], t["step"]) for t in doc["tree"]] == [
        ("a", "failure", 1),
        ("b", "success", 2),
        ("root", "success", 2),
    ]
    assert [(a["attempt"], a["node"], a["outcome"]) for a in doc["history"]] == [
        (1, "a", "failed"),
        (2, "b", "succeeded"),
    ]


def test_each_item_of_a_foreach_ticks_its_own_tree(tmp_path: Path) -> None:
    acts = Acts({"first": [False, True]})  # the first item's first call fails
    doc = _workflow({"selector": [_act("first", seen="{{ item }}"), _act("second")]})
    doc["tasks"]["tree"]["foreach"] = ["x", "y"]
    nodes = "{{ tasks.tree.output | map(attribute='node') | list }}"
    doc["tasks"]["after"]["with"] = {"got": nodes}
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, _compile(doc), acts.tools()))
    assert result.status == "succeeded"
    assert sorted(acts.calls) == ["first", "first", "second"]
    state = RunState.fold(events)
    outputs = [state.tasks[c].output["node"] for c in ("tree[0]", "tree[1]")]
    assert sorted(outputs) == ["first", "second"]
    assert RunResult.of(state) == result
    asyncio.run(check_replay(db, result.run_id, Acts().tools()))
