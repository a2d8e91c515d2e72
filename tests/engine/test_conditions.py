"""Conditions: ``when:`` skips a task whose condition is false, recorded and replayed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from _runs import check_replay, run_plan
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.domain.events import Event, EventType
from nexus.domain.payloads import TaskEndedUnrun
from nexus.domain.plan import Plan, TaskSpec, plan_hash
from nexus.domain.state import RunState
from nexus.engine.conditions import truthy
from nexus.engine.facade import RunResult
from nexus.planning.workflow import compile_workflow
from nexus.tools.builtins import builtin_tools


def _skips(events: list[Event]) -> dict[str, TaskEndedUnrun]:
    return {
        e.data["task"]: TaskEndedUnrun.of(e.data)
        for e in events
        if e.type is EventType.TASK_SKIPPED
    }


def _flow(ok: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "conditions",
        "fail_fast": False,
        "tasks": {
            "check": {"tool": "noop", "with": {"ok": ok}},
            "deploy": {
                "tool": "noop",
                "with": {"what": "deploy"},
                "needs": ["check"],
                "when": "{{ tasks.check.output.ok }}",
            },
            "announce": {"tool": "noop", "with": {"what": "announce"}, "needs": ["deploy"]},
            "always": {"tool": "noop", "with": {"what": "always"}, "needs": ["check"]},
        },
    }


# --------------------------------------------------------------------------- truthiness


@pytest.mark.parametrize(
    "value",
    [False, None, 0, 0.0, "", "  ", "false", "False", "FALSE", "no", "off", "0", "null", [], {}],
)
def test_falsy_values(value: Any) -> None:
    assert truthy(value) is False


@pytest.mark.parametrize(
    "value", [True, 1, -1, 0.5, "true", "yes", "ok", "nothing", "00", [0], {"a": None}]
)
def test_truthy_values(value: Any) -> None:
    assert truthy(value) is True


# --------------------------------------------------------------------------- when: in a run


def test_false_condition_skips_the_task_and_its_dependents(tmp_path: Path) -> None:
    plan = compile_workflow(_flow(False), file="flow.yaml")
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, plan, builtin_tools()))
    assert result.status == "succeeded", "a false condition is not a failure"
    statuses = {tid: t["status"] for tid, t in result.tasks.items()}
    assert statuses == {
        "check": "succeeded",
        "deploy": "skipped",
        "announce": "skipped",
        "always": "succeeded",
    }
    skips = _skips(events)
    deploy = skips["deploy"]
    assert deploy.reason == "condition is false: {{ tasks.check.output.ok }} gave false"
    assert deploy.condition == "{{ tasks.check.output.ok }}"
    assert deploy.value is False
    assert skips["announce"].reason == "dependency did not succeed: deploy"
    assert skips["announce"].to_data() == {
        "task": "announce",
        "reason": "dependency did not succeed: deploy",
    }, "a skip that is not a condition's keeps its recorded shape"
    assert not [
        e for e in events if e.type is EventType.ATTEMPT_STARTED and e.data["task"] == "deploy"
    ]
    asyncio.run(check_replay(db, result.run_id, builtin_tools()))


def test_true_condition_runs_the_task(tmp_path: Path) -> None:
    plan = compile_workflow(_flow("yes"), file="flow.yaml")
    db = tmp_path / "nexus.db"
    result, events = asyncio.run(run_plan(db, plan, builtin_tools()))
    assert result.status == "succeeded"
    assert not _skips(events)
    asyncio.run(check_replay(db, result.run_id, builtin_tools()))


def test_string_false_is_false(tmp_path: Path) -> None:
    plan = compile_workflow(_flow("false"), file="flow.yaml")
    result, events = asyncio.run(run_plan(tmp_path / "nexus.db", plan, builtin_tools()))
    assert result.tasks["deploy"]["status"] == "skipped"
    assert _skips(events)["deploy"].value == "false"


def test_condition_that_cannot_render_fails_the_task(tmp_path: Path) -> None:
    doc = _flow(True)
    doc["tasks"]["deploy"]["when"] = "{{ tasks.check.output.missing }}"
    plan = compile_workflow(doc, file="flow.yaml")
    result, events = asyncio.run(run_plan(tmp_path / "nexus.db", plan, builtin_tools()))
    assert result.tasks["deploy"]["status"] == "failed"
    failed = next(e for e in events if e.type is EventType.TASK_FAILED)
    assert failed.data["task"] == "deploy"
    assert "field 'when'" in failed.data["error"]["message"]


def test_when_on_foreach_applies_to_the_whole_task(tmp_path: Path) -> None:
    doc = _flow(False)
    doc["tasks"]["deploy"]["foreach"] = [1, 2, 3]
    plan = compile_workflow(doc, file="flow.yaml")
    result, events = asyncio.run(run_plan(tmp_path / "nexus.db", plan, builtin_tools()))
    assert result.tasks["deploy"]["status"] == "skipped"
    assert not [e for e in events if e.type is EventType.TASK_EXPANDED]


# --------------------------------------------------------------------------- the plan


def test_when_is_in_the_plan_only_when_set() -> None:
    with_when = compile_workflow(_flow(True), file="flow.yaml")
    assert with_when.tasks["deploy"].when == "{{ tasks.check.output.ok }}"
    assert with_when.to_dict()["tasks"]["deploy"]["when"] == "{{ tasks.check.output.ok }}"
    assert "when" not in with_when.to_dict()["tasks"]["check"]
    assert Plan.from_dict(with_when.to_dict()) == with_when
    bare = Plan(name="p", tasks={"a": TaskSpec(id="a", tool="noop")})
    assert "when" not in bare.to_dict()["tasks"]["a"]
    # a known hash: plans that do not use `when` keep theirs
    assert plan_hash(bare) == plan_hash(Plan.from_dict(bare.to_dict()))


# --------------------------------------------------------------------------- property


@st.composite
def conditional_plans(draw: st.DrawFn) -> tuple[Plan, dict[str, bool]]:
    """A random DAG whose tasks each carry a random outcome; some have `when` on a need."""
    n = draw(st.integers(1, 7))
    names = [f"t{i}" for i in range(n)]
    tasks: dict[str, TaskSpec] = {}
    for i, tid in enumerate(names):
        needs = tuple(sorted(draw(st.sets(st.sampled_from(names[:i]), max_size=3)))) if i else ()
        flag = draw(st.sampled_from([True, False, 0, 1, "", "false", "yes", None, [], [1]]))
        when = None
        if needs and draw(st.booleans()):
            when = "{{ tasks.%s.output.flag }}" % draw(st.sampled_from(needs))  # noqa: UP031
        tasks[tid] = TaskSpec(id=tid, needs=needs, tool="noop", args={"flag": flag}, when=when)
    plan = Plan(name="cond", tasks=tasks, fail_fast=draw(st.booleans()))
    return plan, {tid: truthy(spec.args["flag"]) for tid, spec in tasks.items()}


def _expected(plan: Plan, flags: dict[str, bool]) -> dict[str, str]:
    """The reference: a task runs when its needs succeeded and its condition holds."""
    status: dict[str, str] = {}
    order = list(plan.tasks)  # names were drawn in dependency order
    for tid in order:
        spec = plan.tasks[tid]
        if any(status[d] != "succeeded" for d in spec.needs):
            status[tid] = "skipped"
        elif spec.when is not None:
            source = spec.when.split(".")[1]
            status[tid] = "succeeded" if flags[source] else "skipped"
        else:
            status[tid] = "succeeded"
    return status


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=conditional_plans())
def test_random_conditions_fold_to_live_state_and_replay(
    case: tuple[Plan, dict[str, bool]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    plan, flags = case
    db = tmp_path_factory.mktemp("cond") / "nexus.db"
    result, events = asyncio.run(run_plan(db, plan, builtin_tools()))
    folded = RunState.fold(events)
    assert RunResult.of(folded) == result, "the fold of the log is the live state"
    assert {tid: t["status"] for tid, t in result.tasks.items()} == _expected(plan, flags)
    assert result.status == "succeeded", "skips from conditions do not fail a run"
    for tid, skip in _skips(events).items():
        if skip.condition is not None:
            assert plan.tasks[tid].when == skip.condition
            assert truthy(skip.value) is False
    asyncio.run(check_replay(db, result.run_id, builtin_tools()))
