"""Plans that grow: a task's output adds tasks to the running plan, checked like a
workflow file's, recorded as one ``plan.extended``, resumed and replayed like the rest."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from _runs import RUN_TIMEOUT, check_replay, of, run_plan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.domain.errors import IntegrityError, WorkflowError
from nexus.domain.events import Draft, Event, EventType, seal
from nexus.domain.payloads import PlanExtended
from nexus.domain.plan import Plan
from nexus.domain.state import RunState, TaskStatus
from nexus.engine.facade import Engine, RunResult
from nexus.planning.workflow import Extension, compile_extension, compile_workflow
from nexus.store.sqlite import SQLiteStore
from nexus.tools.base import FunctionTool, ToolRegistry
from nexus.tools.builtins import builtin_tools


class Planner:
    """The ``propose`` tool: answers each call with the next extension of ``script``."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls = 0
        self.echoed: list[Any] = []

    def tools(self) -> ToolRegistry:
        tools = builtin_tools()
        tools.add(FunctionTool("propose", self.propose))
        tools.add(FunctionTool("echo", self.echo))
        return tools

    async def propose(self, goal: str = "") -> Any:
        answer = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return answer

    async def echo(self, value: Any = None) -> Any:
        self.echoed.append(value)
        return value


def _plan(extend: Any = True, retries: int = 0, on_failure: Any = None, **workflow: Any) -> Plan:
    doc: dict[str, Any] = {
        "version": 1,
        "name": "grows",
        "fail_fast": False,
        "tasks": {
            "setup": {"tool": "echo", "with": {"value": "ready"}},
            "plan": {
                "tool": "propose",
                "with": {"goal": "ship it"},
                "extend": extend,
                "retries": retries,
                "backoff": {"initial": 0.001, "multiplier": 1, "maximum": 0.002},
                **({} if on_failure is None else {"on_failure": on_failure}),
            },
            "report": {
                "tool": "echo",
                "needs": ["plan"],
                "with": {"value": "{{ tasks.plan.output.summary }}"},
            },
            "aside": {"tool": "echo", "with": {"value": "independent"}},
        },
        **workflow,
    }
    names = [*builtin_tools().names(), "propose", "echo"]
    return compile_workflow(doc, file="grows.yaml", known_tools=names)


GOOD = {
    "summary": "three steps",
    "tasks": {
        "build": {"tool": "echo", "needs": ["setup"], "with": {"value": "built"}},
        "test": {
            "tool": "echo",
            "needs": ["build"],
            "with": {"value": "{{ tasks.build.output }} and tested"},
        },
        "docs": {"tool": "echo", "with": {"value": "{{ tasks.setup.output }}"}, "needs": "setup"},
    },
}


def _position(events: list[Event], kind: EventType, task: str) -> int:
    return next(e.seq for e in events if e.type is kind and e.data.get("task") == task)


# --------------------------------------------------------------------------- growing


def test_an_extension_adds_tasks_that_run_and_the_task_waits_for_them(tmp_path: Path) -> None:
    planner = Planner(GOOD)
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, _plan(), planner.tools()))
    assert result.status == "succeeded", result.tasks
    extended = [PlanExtended.of(e.data) for e in of(events, EventType.PLAN_EXTENDED)]
    assert len(extended) == 1
    assert (extended[0].task, extended[0].attempt, extended[0].depth) == ("plan", 1, 1)
    assert [t["id"] for t in extended[0].tasks] == ["build", "docs", "test"]
    state = RunState.fold(events)
    assert state.tasks["test"].output == "built and tested", "an added task reads another"
    assert state.tasks["docs"].output == "ready", "an added task reads a task of the run"
    assert state.tasks["plan"].output == GOOD, "the extending task keeps its own output"
    assert state.tasks["report"].output == "three steps"
    # the tasks that need the extending task wait for everything it added
    succeeded = _position(events, EventType.TASK_SUCCEEDED, "plan")
    for added in ("build", "test", "docs"):
        assert _position(events, EventType.TASK_SUCCEEDED, added) < succeeded
    assert _position(events, EventType.ATTEMPT_STARTED, "report") > succeeded
    assert state.tasks["build"].extended_by == "plan"
    assert state.tasks["build"].depth == 1
    assert RunResult.of(state) == result
    assert set(result.task_results) == {"setup", "plan", "report", "aside", "build", "test", "docs"}
    asyncio.run(check_replay(db, result.run_id, Planner(GOOD).tools()))


def test_a_list_of_tasks_and_json_text_are_read_alike(tmp_path: Path) -> None:
    as_list = {
        "summary": "two",
        "tasks": [
            {"id": "one", "tool": "echo", "with": {"value": 1}},
            {"id": "two", "tool": "echo", "needs": ["one"], "with": {"value": 2}},
        ],
    }
    for name, answer in (("list", as_list), ("text", json.dumps(as_list))):
        planner = Planner(answer)
        result, events = asyncio.run(run_plan(tmp_path / f"{name}.db", _plan(), planner.tools()))
        assert result.task("plan").status == "succeeded"
        assert result.task("two").output == 2
        assert _position(events, EventType.TASK_SUCCEEDED, "one") < _position(
            events, EventType.ATTEMPT_STARTED, "two"
        )


def test_an_empty_extension_just_ends_the_task(tmp_path: Path) -> None:
    empty = {"summary": "nothing to do", "tasks": {}}
    result, events = asyncio.run(run_plan(tmp_path / "n.db", _plan(), Planner(empty).tools()))
    assert result.status == "succeeded"
    assert not of(events, EventType.PLAN_EXTENDED)


def test_a_failed_added_task_fails_the_extending_task_and_its_dependents(tmp_path: Path) -> None:
    bad = {"summary": "", "tasks": {"boom": {"tool": "shell", "with": {"cmd": "exit 3"}}}}
    names = [*builtin_tools().names(), "propose", "echo"]
    assert "shell" in names
    result, _ = asyncio.run(run_plan(tmp_path / "n.db", _plan(), Planner(bad).tools()))
    assert result.status == "failed"
    assert result.task("boom").status == "failed"
    assert result.task("plan").status == "failed"
    error = result.task("plan").error
    assert error is not None
    assert error.message == "1 of 1 added tasks did not succeed: boom"
    assert result.task("report").status == "skipped"
    assert result.task("aside").status == "succeeded", "the rest of the run goes on"


# --------------------------------------------------------------------------- bad extensions


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("not json", "is text that is not JSON"),
        ({"steps": []}, "must be a mapping with `tasks`"),
        ({"tasks": {"x": {"tool": "nope"}}}, "unknown tool 'nope'"),
        ({"tasks": {"x": {"tool": "echo", "needs": ["ghost"]}}}, "needs unknown task 'ghost'"),
        (
            {
                "tasks": {
                    "a": {"tool": "echo", "needs": ["b"]},
                    "b": {"tool": "echo", "needs": ["a"]},
                }
            },
            "dependency cycle",
        ),
        ({"tasks": {"setup": {"tool": "echo"}}}, "already has a task 'setup'"),
        ({"tasks": {"x": {"tool": "echo", "wiht": {}}}}, "wiht"),
        (
            {"tasks": {"x": {"tool": "echo", "with": {"value": "{{ tasks.aside.output }}"}}}},
            "add it to needs",
        ),
        (
            {"tasks": [{"id": "a", "tool": "echo"}, {"id": "a", "tool": "echo"}]},
            "repeats the id 'a'",
        ),
        ({"tasks": {"bad id!": {"tool": "echo"}}}, "invalid task id"),
        ({"tasks": {"x": {"tool": "echo", "extend": True}}}, "past extensions.max_depth (1)"),
    ],
)
def test_a_bad_extension_fails_its_task_naming_the_problem(
    tmp_path: Path, answer: Any, expected: str
) -> None:
    result, events = asyncio.run(run_plan(tmp_path / "n.db", _plan(), Planner(answer).tools()))
    assert result.status == "failed"
    plan = result.task("plan")
    assert plan.status == "failed"
    assert plan.error is not None
    assert plan.error.kind == "validation"
    assert plan.error.retryable is False
    assert expected in plan.error.message, plan.error.message
    assert "the plan extension of task 'plan'" in plan.error.message
    assert not of(events, EventType.PLAN_EXTENDED), "nothing of a bad extension is added"
    assert result.task("aside").status == "succeeded", "the rest of the run goes on"
    assert result.task("report").status == "skipped"


def test_a_bad_extension_is_retried_while_retries_last(tmp_path: Path) -> None:
    planner = Planner({"tasks": {"x": {"tool": "nope"}}}, GOOD)
    db = tmp_path / "n.db"
    result, events = asyncio.run(run_plan(db, _plan(retries=1), planner.tools()))
    assert result.status == "succeeded"
    assert planner.calls == 2
    retry = of(events, EventType.RETRY_SCHEDULED)[0].data
    assert retry["error"]["kind"] == "validation"
    assert "unknown tool 'nope'" in retry["error"]["message"]
    assert retry["error"]["details"]["problems"]
    asyncio.run(
        check_replay(db, result.run_id, Planner({"tasks": {"x": {"tool": "nope"}}}, GOOD).tools())
    )


def test_limits_bound_what_extensions_add(tmp_path: Path) -> None:
    many = {"tasks": {f"t{i}": {"tool": "echo"} for i in range(4)}}
    result, _ = asyncio.run(
        run_plan(tmp_path / "a.db", _plan({"max_tasks": 3}), Planner(many).tools())
    )
    assert "it adds 4 tasks; its extend.max_tasks is 3" in result.task("plan").error.message
    plan = _plan(True, extensions={"max_tasks": 2})
    result, _ = asyncio.run(run_plan(tmp_path / "b.db", plan, Planner(many).tools()))
    assert (
        "it adds 4 tasks; extensions.max_tasks lets the run add 2 and it has added 0"
        in result.task("plan").error.message
    )


def test_an_added_task_may_extend_again_within_max_depth(tmp_path: Path) -> None:
    nested = {
        "summary": "nested",
        "tasks": {
            "inner": {"tool": "propose", "with": {"goal": "more"}, "extend": True},
        },
    }
    leaf = {"tasks": {"leaf": {"tool": "echo", "with": {"value": "deep"}}}}
    planner = Planner(nested, leaf)
    db = tmp_path / "n.db"
    result, events = asyncio.run(run_plan(db, _plan(extensions={"max_depth": 2}), planner.tools()))
    assert result.status == "succeeded", result.tasks
    depths = [PlanExtended.of(e.data).depth for e in of(events, EventType.PLAN_EXTENDED)]
    assert depths == [1, 2]
    state = RunState.fold(events)
    assert state.tasks["leaf"].depth == 2
    assert state.tasks["leaf"].extended_by == "inner"
    asyncio.run(check_replay(db, result.run_id, Planner(nested, leaf).tools()))


# --------------------------------------------------------------------------- the file


def test_the_workflow_file_checks_extend() -> None:
    doc = {
        "version": 1,
        "name": "x",
        "extensions": {"max_tasks": 0},
        "tasks": {
            "a": {"tool": "noop", "extend": True, "foreach": [1, 2]},
            "b": {"tool": "noop", "extend": {"max_task": 3}},
        },
    }
    with pytest.raises(WorkflowError) as caught:
        compile_workflow(doc, file="wf.yaml")
    message = str(caught.value)
    assert "extensions.max_tasks" in message
    assert "'max_task'" in message
    doc["extensions"] = {"max_tasks": 5, "max_depth": 2}
    del doc["tasks"]["b"]  # type: ignore[attr-defined]
    with pytest.raises(WorkflowError) as caught:
        compile_workflow(doc, file="wf.yaml")
    assert "cannot have `foreach`" in str(caught.value)
    assert "task 'a', field 'extend'" in str(caught.value)


def test_the_plan_records_extend_only_when_set() -> None:
    plain = _plan().to_dict()
    assert "extensions" not in plain
    assert "extend" not in plain["tasks"]["setup"], "old plans keep their hashes"
    assert plain["tasks"]["plan"]["extend"] == {"max_tasks": None}
    assert Plan.from_dict(plain).to_dict() == plain
    limited = _plan(extensions={"max_tasks": 7, "max_depth": 2}).to_dict()
    assert limited["extensions"] == {"max_tasks": 7, "max_depth": 2}
    assert Plan.from_dict(limited).to_dict() == limited


# --------------------------------------------------------------------------- the fold


def _tamper(events: list[Event], seq: int, data: dict[str, Any]) -> list[Event]:
    """The log with event ``seq``'s data replaced (and the chain resealed after it)."""
    out = list(events[: seq - 1])
    for event in events[seq - 1 :]:
        body = data if event.seq == seq else event.data
        prev = out[-1].hash
        out.append(seal(event.run_id, event.seq, Draft(event.type, event.at, body), prev))
    return out


def test_the_fold_refuses_an_extension_it_cannot_apply(tmp_path: Path) -> None:
    _, events = asyncio.run(run_plan(tmp_path / "n.db", _plan(), Planner(GOOD).tools()))
    ext = of(events, EventType.PLAN_EXTENDED)[0]
    tasks = ext.data["tasks"]
    cases = {
        "repeats": [*tasks, tasks[0]],
        "existing": [{**tasks[0], "id": "setup"}],
        "unknown need": [{**tasks[0], "needs": ["ghost"]}],
        "cycle": [{**tasks[0], "needs": ["test"]}, tasks[1]],
    }
    for changed in cases.values():
        bad = _tamper(events, ext.seq, {**ext.data, "tasks": changed})
        with pytest.raises(IntegrityError, match=r"plan extension|needs unknown|cycle"):
            RunState.fold(bad)
    with pytest.raises(IntegrityError):
        RunState.fold(_tamper(events, ext.seq, {**ext.data, "depth": 2}))
    with pytest.raises(IntegrityError):
        RunState.fold(_tamper(events, ext.seq, {**ext.data, "task": "setup"}))


# --------------------------------------------------------------------------- property


@st.composite
def _extensions(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Two rounds of extension: random tasks with random needs, some of them invalid."""
    rounds: list[dict[str, Any]] = []
    for round_ in range(2):
        count = draw(st.integers(0, 6))
        ids = [f"r{round_}t{i}" for i in range(count)]
        tasks: dict[str, Any] = {}
        for i, tid in enumerate(ids):
            pool = ["setup", "aside", *ids]  # a need may point forward: a cycle, maybe
            needs = draw(st.lists(st.sampled_from(pool), max_size=3, unique=True))
            fails = draw(st.integers(0, 9)) == 0  # one task in ten fails
            body: dict[str, Any] = {"needs": needs}
            if fails:
                body.update(tool="shell", **{"with": {"cmd": "exit 1"}})
            else:
                body.update(tool="echo", **{"with": {"value": tid}})
            if round_ == 0 and i == 0 and draw(st.booleans()):
                body = {"tool": "propose", "needs": needs, "extend": True}
            tasks[tid] = body
        rounds.append({"tasks": tasks})
    return rounds


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=_extensions())
def test_extensions_never_run_a_task_before_its_needs(tmp_path: Path, script: Any) -> None:
    db = tmp_path / f"p{abs(hash(json.dumps(script, sort_keys=True)))}.db"
    plan = _plan(extensions={"max_depth": 2})
    result, events = asyncio.run(run_plan(db, plan, Planner(*script).tools()))
    state = RunState.fold(events)
    assert RunResult.of(state) == result
    assert state.open_tasks == 0
    ended: dict[str, str] = {}
    for event in events:
        task = event.data.get("task")
        if event.type is EventType.ATTEMPT_STARTED:
            for need in state.tasks[task].spec.needs:
                assert ended.get(need) == "succeeded", f"{task} started before {need}"
        elif event.type is EventType.TASK_SUCCEEDED:
            ended[task] = "succeeded"
        elif event.type in (EventType.TASK_FAILED, EventType.TASK_SKIPPED):
            ended[task] = "other"
    # no cycle made it in: every added task ended
    for extended in of(events, EventType.PLAN_EXTENDED):
        for spec in extended.data["tasks"]:
            assert state.tasks[spec["id"]].status in (
                TaskStatus.SUCCEEDED,
                TaskStatus.FAILED,
                TaskStatus.SKIPPED,
            )
    asyncio.run(check_replay(db, result.run_id, Planner(*script).tools()))


# --------------------------------------------------------------------------- review


async def _wait_for(store: SQLiteStore, type_: EventType, within: float = 15) -> str:
    async with asyncio.timeout(within):
        while True:
            runs = await store.list_runs(1)
            if runs:
                events = await store.load(runs[0].run_id)
                if any(e.type is type_ for e in events):
                    return runs[0].run_id
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("granted", [True, False])
def test_a_reviewed_extension_waits_for_a_person(tmp_path: Path, granted: bool) -> None:
    planner = Planner(GOOD)

    async def go() -> None:
        db = tmp_path / "nexus.db"
        store, other = SQLiteStore.open(db), SQLiteStore.open(db)
        try:
            plan = _plan({"review": True})
            running = asyncio.create_task(Engine(store, tools=planner.tools()).start(plan))
            run_id = await _wait_for(other, EventType.APPROVAL_REQUESTED)
            await asyncio.sleep(0.3)  # nothing it added starts meanwhile
            state = RunState.fold(await other.load(run_id))
            assert state.tasks["plan"].status is TaskStatus.AWAITING_APPROVAL
            assert state.tasks["plan"].reviewing
            for added in ("build", "test", "docs"):
                assert state.tasks[added].status is TaskStatus.PENDING
            assert "built" not in planner.echoed, "no added task ran before the review"
            await Engine(other).answer_approval(
                run_id, "plan", granted=granted, by="ana", reason="too risky"
            )
            final = await asyncio.wait_for(running, RUN_TIMEOUT)
            events = await other.load(run_id)
            if granted:
                assert final.status == "succeeded"
                assert final.task("test").output == "built and tested"
            else:
                assert final.status == "failed"
                for added in ("build", "test", "docs"):
                    task = final.task(added)
                    assert task.status == "skipped"
                    assert task.attempts == 0
                error = final.task("plan").error
                assert error is not None
                assert error.kind == "policy_denied"
                assert "ana" in error.message
                assert "too risky" in error.message
                assert final.task("report").status == "skipped"
                skipped = [e for e in events if e.type is EventType.TASK_SKIPPED]
                assert (
                    "the plan extension of 'plan' was rejected by ana"
                    in (skipped[0].data["reason"])
                )
            assert RunResult.of(RunState.fold(events)) == final
            report = await Engine(other, tools=Planner(GOOD).tools()).replay(run_id)
            assert report.identical, report.first_divergence
            assert report.tools_executed == 0
        finally:
            await store.close()
            await other.close()

    asyncio.run(go())


# --------------------------------------------------------------------------- hostile answers


def _nested(depth: int) -> dict[str, Any]:
    top: dict[str, Any] = {}
    cur = top
    for _ in range(depth):
        cur["x"] = {}
        cur = cur["x"]
    return top


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ({"tasks": {"t": {"tool": "echo", "with": _nested(5000)}}}, "nested too deeply"),
        ({"tasks": {"t": {"tool": "echo", "with": {"s": "x" * 2_000_000}}}}, "more than an"),
        ({"tasks": [{"id": f"t{i}", "tool": "echo"} for i in range(50_000)]}, "adds 50000 tasks"),
        ({"tasks": {"t": {"tool": "echo", "needs": ["setup"] * 10_000}}}, "lists 'setup' twice"),
        ({"tasks": {"tâche": {"tool": "echo"}}}, "invalid task id"),
        ({"tasks": {1: {"tool": "echo"}}}, "invalid task id 1"),
        ({"tasks": {"t": "echo"}}, "valid dictionary"),
    ],
    ids=["deep-text", "deep-args", "huge-args", "too-many", "many-needs", "unicode", "int", "str"],
)
def test_a_hostile_answer_is_refused_quickly_and_clearly(answer: Any, expected: str) -> None:
    plan = _plan()
    existing = dict(plan.tasks)
    extension = Extension(by="plan", existing=existing, depth=1, room=100, why_room="limit")
    with pytest.raises(WorkflowError) as caught:
        compile_extension(plan, answer, extension)
    assert expected in str(caught.value)
    assert str(caught.value).startswith("the plan extension of task 'plan'")


# --------------------------------------------------------------------------- re-planning

BROKEN = {
    "summary": "first try",
    "tasks": {
        "build": {"tool": "echo", "needs": ["setup"], "with": {"value": "built"}},
        "deploy": {"tool": "shell", "needs": ["build"], "with": {"cmd": "exit 4"}},
        "announce": {"tool": "echo", "needs": ["deploy"], "with": {"value": "out"}},
    },
}
REPAIRED = {
    "summary": "second try",
    "tasks": {
        "deploy2": {
            "tool": "echo",
            "needs": ["build"],
            "with": {"value": "deployed after {{ tasks.build.output }}"},
        },
    },
}


def test_a_failed_plan_is_repaired_by_re_planning(tmp_path: Path) -> None:
    planner = Planner(BROKEN, REPAIRED)
    db = tmp_path / "n.db"
    result, events = asyncio.run(run_plan(db, _plan({"replan": 2}), planner.tools()))
    assert result.status == "succeeded", result.tasks
    assert planner.calls == 2
    replanning = of(events, EventType.PLAN_REPLANNING)
    assert len(replanning) == 1
    data = replanning[0].data
    assert (data["task"], data["round"], data["failed"]) == ("plan", 1, ["deploy"])
    assert data["feedback"]["kind"] == "replan"
    assert "deploy: " in data["feedback"]["message"]
    assert data["feedback"]["details"]["succeeded"] == ["build"]
    state = RunState.fold(events)
    assert state.tasks["deploy"].status is TaskStatus.FAILED
    assert state.tasks["deploy"].superseded
    assert state.tasks["announce"].status is TaskStatus.SKIPPED
    assert state.tasks["deploy2"].output == "deployed after built"
    assert state.tasks["plan"].output["summary"] == "second try"
    assert state.tasks["plan"].added == ["announce", "build", "deploy", "deploy2"]
    assert result.task("report").output == "second try"
    assert [e.data["attempt"] for e in of(events, EventType.PLAN_EXTENDED)] == [1, 2]
    assert RunResult.of(state) == result
    asyncio.run(check_replay(db, result.run_id, Planner(BROKEN, REPAIRED).tools()))


def test_re_planning_stops_at_its_limit(tmp_path: Path) -> None:
    planner = Planner(BROKEN, {"tasks": {"again": {"tool": "shell", "with": {"cmd": "exit 5"}}}})
    result, events = asyncio.run(run_plan(tmp_path / "n.db", _plan({"replan": 1}), planner.tools()))
    assert result.status == "failed"
    assert planner.calls == 2
    assert len(of(events, EventType.PLAN_REPLANNING)) == 1
    error = result.task("plan").error
    assert error is not None
    assert error.message == "1 of 4 added tasks did not succeed: again"


@pytest.mark.parametrize("on_failure", ["replan", {"replan": 2}])
def test_on_failure_replan_re_plans_as_extend_replan_does(on_failure: Any, tmp_path: Path) -> None:
    planner = Planner(BROKEN, REPAIRED)
    db = tmp_path / "n.db"
    plan = _plan(True, on_failure=on_failure)
    result, events = asyncio.run(run_plan(db, plan, planner.tools()))
    assert result.status == "succeeded", result.tasks
    assert planner.calls == 2
    [replanning] = of(events, EventType.PLAN_REPLANNING)
    assert (replanning.data["task"], replanning.data["round"]) == ("plan", 1)
    assert result.task("report").output == "second try"
    asyncio.run(check_replay(db, result.run_id, Planner(BROKEN, REPAIRED).tools()))


def test_on_failure_replan_once_then_the_task_fails(tmp_path: Path) -> None:
    again = {"tasks": {"again": {"tool": "shell", "with": {"cmd": "exit 5"}}}}
    planner = Planner(BROKEN, again, again)
    plan = _plan(True, on_failure="replan")
    result, events = asyncio.run(run_plan(tmp_path / "n.db", plan, planner.tools()))
    assert result.status == "failed"
    assert planner.calls == 2, "replan alone asks once"
    assert len(of(events, EventType.PLAN_REPLANNING)) == 1


def test_the_fold_refuses_a_replan_it_cannot_make(tmp_path: Path) -> None:
    _, events = asyncio.run(
        run_plan(tmp_path / "n.db", _plan({"replan": 2}), Planner(BROKEN, REPAIRED).tools())
    )
    event = of(events, EventType.PLAN_REPLANNING)[0]
    for changed in ({"round": 2}, {"failed": ["build"]}, {"failed": []}, {"task": "setup"}):
        with pytest.raises(IntegrityError):
            RunState.fold(_tamper(events, event.seq, {**event.data, **changed}))
