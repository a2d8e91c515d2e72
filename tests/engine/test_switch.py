"""Switch: a routing task's value picks one of its cases; the other cases' tasks are
skipped, recorded, resumed and replayed like every other decision."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from _runs import check_replay, run_plan, run_started
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.domain.errors import IntegrityError
from nexus.domain.events import Draft, Event, EventType, seal
from nexus.domain.payloads import TaskEndedUnrun, TaskSucceeded
from nexus.domain.plan import DEFAULT_CASE, Plan, TaskSpec, case_name
from nexus.domain.state import RunState
from nexus.engine.facade import RunResult
from nexus.planning.workflow import compile_workflow
from nexus.tools.base import FunctionTool, ToolRegistry
from nexus.tools.builtins import builtin_tools


def _tools(calls: list[str] | None = None) -> ToolRegistry:
    """The built-ins, and ``work``: a tool that notes each call (the task it ran for)."""
    tools = builtin_tools()

    def work(what: str) -> str:
        if calls is not None:
            calls.append(what)
        return what

    tools.add(FunctionTool("work", work))
    return tools


async def _run(
    db: Path, plan: Plan, calls: list[str] | None = None
) -> tuple[RunResult, list[Event]]:
    return await run_plan(db, plan, _tools(calls))


async def _replay(db: Path, run_id: str, calls: list[str]) -> None:
    done = len(calls)
    await check_replay(db, run_id, _tools(calls))
    assert len(calls) == done, "a replay runs no tool"


def _flow(kind: Any, **route: Any) -> dict[str, Any]:
    def work(needs: str) -> dict[str, Any]:
        return {"tool": "work", "with": {"what": "{{ run.name }}"}, "needs": [needs]}

    return {
        "version": 1,
        "name": "triage",
        "inputs": {"kind": kind},
        "tasks": {
            "classify": {"tool": "noop", "with": {"kind": "{{ inputs.kind }}"}},
            "route": {
                "needs": ["classify"],
                "switch": "{{ tasks.classify.output.kind }}",
                "cases": {"bug": ["fix"], "feature": ["design"], DEFAULT_CASE: ["triage"]},
                **route,
            },
            "fix": {**work("route"), "with": {"what": "fix"}},
            "design": {**work("route"), "with": {"what": "design"}},
            "triage": {**work("route"), "with": {"what": "triage"}},
            "close": {
                "tool": "noop",
                "needs": ["route"],
                "with": {"case": "{{ tasks.route.output.case }}"},
            },
            "after_fix": {**work("fix"), "with": {"what": "after_fix"}},
        },
    }


def _statuses(result: RunResult) -> dict[str, str]:
    return {tid: str(t["status"]) for tid, t in result.tasks.items()}


def _skips(events: list[Event]) -> dict[str, TaskEndedUnrun]:
    return {
        e.data["task"]: TaskEndedUnrun.of(e.data)
        for e in events
        if e.type is EventType.TASK_SKIPPED
    }


# --------------------------------------------------------------------------- picking


@pytest.mark.parametrize(
    ("kind", "picked", "runs"),
    [
        ("bug", "bug", ["fix", "after_fix"]),
        ("feature", "feature", ["design"]),
        ("question", DEFAULT_CASE, ["triage"]),
        ("  bug\n", "bug", ["fix", "after_fix"]),  # a value is trimmed
        ("Bug", DEFAULT_CASE, ["triage"]),  # and compared as written
    ],
)
def test_the_value_picks_one_case_and_the_others_are_skipped(
    kind: str, picked: str, runs: list[str], tmp_path: Path
) -> None:
    calls: list[str] = []
    plan = compile_workflow(_flow(kind), file="flow.yaml")
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(_run(db, plan, calls))
    assert result.status == "succeeded", "skipped cases do not fail the run"
    assert sorted(calls) == sorted(runs), "only the picked case's tasks ran"
    statuses = _statuses(result)
    for tid in ("fix", "design", "triage", "after_fix"):
        assert statuses[tid] == ("succeeded" if tid in runs else "skipped"), tid
    assert statuses["route"] == statuses["close"] == "succeeded"

    routed = next(
        TaskSucceeded.of(e.data)
        for e in events
        if e.type is EventType.TASK_SUCCEEDED and e.data["task"] == "route"
    )
    assert routed.case == picked
    assert routed.value == kind
    assert routed.attempt is None
    assert not [
        e for e in events if e.type is EventType.ATTEMPT_STARTED and e.data["task"] == "route"
    ]
    state = RunState.fold(events)
    assert state.tasks["route"].output == {"case": picked, "value": kind}
    assert state.tasks["close"].output == {"case": picked}, "dependents read the pick"

    skips = _skips(events)
    for tid in ("fix", "design", "triage"):
        if tid in runs:
            continue
        skip = skips[tid]
        assert skip.switch == "route"
        assert skip.case == picked
        assert skip.value == kind
        assert skip.condition is None
        assert skip.reason.startswith("not picked by switch 'route': ")
        assert f"case '{picked}' runs " in skip.reason
    if "fix" not in runs:
        assert skips["after_fix"].to_data() == {
            "task": "after_fix",
            "reason": "dependency did not succeed: fix",
        }
    asyncio.run(_replay(db, result.run_id, calls))


def test_values_that_are_not_text_name_their_case(tmp_path: Path) -> None:
    doc = _flow(True)
    doc["tasks"]["route"]["cases"] = {True: ["fix"], False: ["design"], DEFAULT_CASE: []}
    plan = compile_workflow(doc, file="flow.yaml")
    assert plan.tasks["route"].cases == {"true": ("fix",), "false": ("design",), "default": ()}
    calls: list[str] = []
    result, events = asyncio.run(_run(tmp_path / "nexus.db", plan, calls))
    # triage is in no case here: it only needs the switch, so it runs
    assert sorted(calls) == ["after_fix", "fix", "triage"]
    assert _skips(events)["design"].case == "true"

    doc = _flow(3)
    doc["tasks"]["route"]["cases"] = {3: ["fix"], 4: ["design"], DEFAULT_CASE: ["triage"]}
    calls.clear()
    result, events = asyncio.run(
        _run(tmp_path / "n2.db", compile_workflow(doc, file="flow.yaml"), calls)
    )
    assert sorted(calls) == ["after_fix", "fix"]
    assert _skips(events)["triage"].case == "3"
    assert result.status == "succeeded"


def test_an_empty_default_runs_none_of_the_cases(tmp_path: Path) -> None:
    doc = _flow("question")
    doc["tasks"]["route"]["cases"] = {
        "bug": ["fix"],
        "feature": ["design", "triage"],
        DEFAULT_CASE: [],
    }
    calls: list[str] = []
    result, events = asyncio.run(
        _run(tmp_path / "nexus.db", compile_workflow(doc, file="flow.yaml"), calls)
    )
    assert calls == []
    assert result.status == "succeeded"
    assert _skips(events)["triage"].reason.endswith("case 'default' runs nothing")


def test_no_case_and_no_default_fails_the_switch(tmp_path: Path) -> None:
    # a compiled workflow always has a default here; a plan made in code may not
    plan = compile_workflow(_flow("question"), file="flow.yaml")
    route = plan.tasks["route"]
    cases = {k: v for k, v in (route.cases or {}).items() if k != DEFAULT_CASE}
    tasks = dict(plan.tasks)
    tasks["route"] = TaskSpec(id="route", needs=route.needs, switch=route.switch, cases=cases)
    plan = Plan(name=plan.name, tasks=tasks, inputs=plan.inputs, fail_fast=False)
    calls: list[str] = []
    result, events = asyncio.run(_run(tmp_path / "nexus.db", plan, calls))
    assert result.status == "failed"
    assert calls == []
    failed = next(e for e in events if e.type is EventType.TASK_FAILED)
    assert failed.data["task"] == "route"
    assert failed.data["error"]["kind"] == "validation"
    assert failed.data["error"]["message"] == (
        'switch: {{ tasks.classify.output.kind }} gave "question", which no case names '
        "(cases: bug, feature) and there is no default"
    )
    assert _statuses(result)["triage"] == "skipped"


def test_a_switch_that_cannot_render_fails_naming_the_field(tmp_path: Path) -> None:
    doc = _flow("bug")
    doc["tasks"]["route"]["switch"] = "{{ tasks.classify.output.missing }}"
    plan = compile_workflow(doc, file="flow.yaml")
    result, events = asyncio.run(_run(tmp_path / "nexus.db", plan))
    assert _statuses(result)["route"] == "failed"
    failed = next(e for e in events if e.type is EventType.TASK_FAILED)
    assert "task 'route', field 'switch'" in failed.data["error"]["message"]
    assert {_statuses(result)[t] for t in ("fix", "design", "triage", "close")} == {"skipped"}


def test_a_switch_whose_condition_is_false_skips_every_case(tmp_path: Path) -> None:
    plan = compile_workflow(
        _flow("bug", when="{{ tasks.classify.output.kind == 'never' }}"), file="flow.yaml"
    )
    calls: list[str] = []
    result, events = asyncio.run(_run(tmp_path / "nexus.db", plan, calls))
    assert calls == []
    assert result.status == "succeeded"
    assert _skips(events)["route"].condition is not None
    assert _skips(events)["fix"].reason == "dependency did not succeed: route"


def test_a_task_two_switches_route_to_runs_only_when_both_pick_it(tmp_path: Path) -> None:
    tasks = {
        "a": TaskSpec(id="a", tool="noop", args={"v": "x"}),
        "s1": TaskSpec(
            id="s1",
            needs=("a",),
            switch="{{ tasks.a.output.v }}",
            cases={"x": ("both", "one"), "default": ()},
        ),
        "s2": TaskSpec(
            id="s2",
            needs=("a",),
            switch="{{ tasks.a.output.v }}",
            cases={"y": ("both",), "default": ("other",)},
        ),
        "both": TaskSpec(id="both", needs=("s1", "s2"), tool="work", args={"what": "both"}),
        "one": TaskSpec(id="one", needs=("s1",), tool="work", args={"what": "one"}),
        "other": TaskSpec(id="other", needs=("s2",), tool="work", args={"what": "other"}),
    }
    calls: list[str] = []
    _, events = asyncio.run(_run(tmp_path / "nexus.db", Plan(name="two", tasks=tasks), calls))
    assert sorted(calls) == ["one", "other"]
    skip = _skips(events)["both"]
    assert (skip.switch, skip.case) == ("s2", "default")


# --------------------------------------------------------------------------- the fold


def test_the_fold_refuses_a_pick_by_a_task_that_has_no_switch() -> None:
    plan = Plan(name="p", tasks={"a": TaskSpec(id="a", tool="noop")})
    at = "2026-01-01T00:00:00.000000Z"
    first = seal("R", 1, Draft(EventType.RUN_STARTED, at, run_started(plan)), "0" * 64)
    state = RunState.start(first)
    picked = seal(
        "R",
        2,
        Draft(EventType.TASK_SUCCEEDED, at, {"task": "a", "case": "x", "value": 1}),
        first.hash,
    )
    with pytest.raises(IntegrityError, match="no switch"):
        state.apply(picked)


# --------------------------------------------------------------------------- property

VALUES = ["bug", "feature", " bug ", "other", True, False, 0, 3, None, [1], {"k": 1}]


@st.composite
def routed_plans(draw: st.DrawFn) -> tuple[Plan, Any]:
    """One switch over a random value, random cases (maybe a default), random targets."""
    value = draw(st.sampled_from(VALUES))
    names = draw(
        st.lists(
            st.sampled_from(["bug", "feature", "true", "0", "3", "null", "x"]),
            unique=True,
            max_size=4,
        )
    )
    if draw(st.booleans()) or not names:
        names.append(DEFAULT_CASE)
    targets = [f"t{i}" for i in range(draw(st.integers(1, 6)))]
    cases: dict[str, list[str]] = {name: [] for name in names}
    for target in targets:
        home = draw(st.sampled_from([*names, None]))  # None: not in any case
        if home is not None:
            cases[home].append(target)
    tasks = {
        "source": TaskSpec(id="source", tool="noop", args={"v": value}),
        "route": TaskSpec(
            id="route",
            needs=("source",),
            switch="{{ tasks.source.output.v }}",
            cases={name: tuple(sorted(ts)) for name, ts in cases.items()},
        ),
    }
    for target in targets:
        tasks[target] = TaskSpec(id=target, needs=("route",), tool="work", args={"what": target})
    return Plan(name="routed", tasks=tasks, fail_fast=draw(st.booleans())), value


def _reference(plan: Plan, value: Any) -> dict[str, str]:
    """Which tasks run, worked out from the cases alone."""
    cases = plan.tasks["route"].cases or {}
    name = case_name(value)
    picked = name if name in cases else (DEFAULT_CASE if DEFAULT_CASE in cases else None)
    listed = {t for ts in cases.values() for t in ts}
    expected = {"source": "succeeded", "route": "succeeded" if picked else "failed"}
    for tid in plan.tasks:
        if tid in expected:
            continue
        if picked is None:
            expected[tid] = "skipped"
        elif tid in cases[picked] or tid not in listed:
            expected[tid] = "succeeded"
        else:
            expected[tid] = "skipped"
    return expected


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=routed_plans())
def test_random_switch_values_run_exactly_the_picked_case(
    case: tuple[Plan, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    plan, value = case
    db = tmp_path_factory.mktemp("switch") / "nexus.db"
    calls: list[str] = []
    result, events = asyncio.run(_run(db, plan, calls))
    expected = _reference(plan, value)
    assert _statuses(result) == expected
    assert sorted(calls) == sorted(
        t for t, s in expected.items() if s == "succeeded" and t.startswith("t")
    )
    assert RunResult.of(RunState.fold(events)) == result, "the fold of the log is the live state"
    asyncio.run(_replay(db, result.run_id, calls))


def test_inspect_and_events_say_what_the_switch_picked(tmp_path: Path) -> None:
    from nexus.cli.inspection import view_task
    from nexus.cli.summaries import summary

    plan = compile_workflow(_flow("feature"), file="flow.yaml")
    _, events = asyncio.run(_run(tmp_path / "nexus.db", plan))
    doc = view_task(RunState.fold(events), events, "route")
    assert doc["kind"] == "switch"
    assert doc["history"] == [], "a switch makes no attempt"
    assert doc["output"] == {"case": "feature", "value": "feature"}
    picked = next(
        e for e in events if e.type is EventType.TASK_SUCCEEDED and e.data["task"] == "route"
    )
    assert summary(picked) == 'route: case feature ("feature")'
    assert view_task(RunState.fold(events), events, "fix")["why"].startswith(
        "not picked by switch 'route'"
    )
