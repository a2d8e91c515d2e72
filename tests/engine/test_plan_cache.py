"""The plan cache (``cache: plans``): a goal mission's planner re-uses the plan an
earlier run of the same goal, agents and inputs made -- recorded as ``plan.cached``
instead of a model call, checked like any answer, replayed byte for byte -- and
never a plan it should not (another goal, model, tenant; a plan that failed or had to
be re-planned; secret inputs)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from nexus.budget.report import cost_report
from nexus.domain.errors import IntegrityError
from nexus.domain.events import Draft, Event, EventType, seal
from nexus.domain.plan import Plan
from nexus.domain.state import RunState
from nexus.engine.facade import Engine, RunResult
from nexus.engine.plan_cache import cacheable_tasks, plan_key
from nexus.planning.goal import goal_workflow
from nexus.planning.workflow import compile_workflow
from nexus.store.sqlite import SQLiteStore
from nexus.tools.base import FunctionTool, ToolRegistry
from nexus.tools.builtins import builtin_tools

RUN_TIMEOUT = 30.0
PLAN = {
    "summary": "two steps",
    "tasks": [
        {"id": "notes", "tool": "jot", "with": {"text": "notes"}},
        {"id": "draft", "needs": ["notes"], "capability": "write", "prompt": "Draft it."},
    ],
}


def _tools(*, jot: bool = True) -> ToolRegistry:
    tools = builtin_tools()
    if jot:

        async def write_down(text: str) -> str:
            return text

        tools.add(FunctionTool("jot", write_down))
    return tools


def _plan(
    goal: str = "Write the notes",
    *,
    answers: list[Any] | None = None,
    model: str = "scripted:lead",
    cache: bool = True,
    **extra: Any,
) -> Plan:
    agents = {
        "agents": {
            "lead": {
                "role": "planner",
                "model": model,
                "scripted": [json.dumps(a) for a in (answers or [PLAN])],
            },
            "writer": {"model": "scripted:writer", "capabilities": ["write"], "scripted": ["ok"]},
        }
    }
    doc = goal_workflow(goal, agents, file="agents.yaml", cache=["plans"] if cache else ())
    doc["tasks"]["plan"]["output_schema"]["properties"]["tasks"]["items"]["properties"]["tool"] = {
        "type": "string",
        "enum": ["jot", "shell"],
    }
    doc["tasks"]["plan"]["output_schema"]["properties"]["tasks"]["items"]["properties"]["with"] = {
        "type": "object"
    }
    doc.update(extra)
    names = [*builtin_tools().names(), "jot"]
    return compile_workflow(doc, file="goal.yaml", known_tools=names)


async def _start(db: Path, plan: Plan, tools: ToolRegistry, **engine: Any) -> list[Event]:
    store = SQLiteStore.open(db)
    try:
        result = await asyncio.wait_for(
            Engine(store, tools=tools, **engine).start(plan), RUN_TIMEOUT
        )
        return await store.load(result.run_id)
    finally:
        await store.close()


def _run(db: Path, plan: Plan, tools: ToolRegistry | None = None, **engine: Any) -> list[Event]:
    return asyncio.run(_start(db, plan, tools or _tools(), **engine))


def _of(events: list[Event], kind: EventType) -> list[Event]:
    return [e for e in events if e.type is kind]


def _planner_calls(events: list[Event]) -> int:
    return sum(
        1
        for e in _of(events, EventType.EFFECT_RECORDED)
        if e.data["task"] == "plan" and e.data["kind"] == "model"
    )


def test_the_same_goal_takes_the_recorded_plan_instead_of_a_model_call(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"
    first = _run(db, _plan())
    assert _planner_calls(first) == 1
    assert not _of(first, EventType.PLAN_CACHED), "nothing to re-use yet"
    second = _run(db, _plan())
    assert _planner_calls(second) == 0, "the cache answered: no model call"
    [hit] = _of(second, EventType.PLAN_CACHED)
    assert hit.data["task"] == "plan"
    assert hit.data["attempt"] == 1
    assert hit.data["source_run"] == first[0].run_id
    assert hit.data["key"] == plan_key(first[0].data["plan"], "plan")
    # what planning cost where the plan was made
    effect = next(e for e in _of(first, EventType.EFFECT_RECORDED) if e.data["task"] == "plan")
    assert hit.data["saved"] == {
        "usd": "0",
        "tokens": effect.data["spend"]["tokens"],
        "calls": 1,
    }
    # the cached answer finishes the attempt and extends the plan as the first did
    finished = [e for e in _of(second, EventType.ATTEMPT_FINISHED) if e.data["task"] == "plan"]
    assert finished[0].seq == hit.seq + 1
    first_extended = _of(first, EventType.PLAN_EXTENDED)[0].data["tasks"]
    assert _of(second, EventType.PLAN_EXTENDED)[0].data["tasks"] == first_extended
    assert RunState.fold(second).status == "succeeded"
    # a run from a run that was itself a hit records the original cost
    third = _run(db, _plan())
    [again] = _of(third, EventType.PLAN_CACHED)
    assert again.data["source_run"] == second[0].run_id
    assert again.data["saved"] == hit.data["saved"]


def test_a_cache_hit_replays_byte_for_byte_with_no_call(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"
    _run(db, _plan())
    second = _run(db, _plan())
    run_id = second[0].run_id

    async def replay() -> None:
        store = SQLiteStore.open(db)
        try:
            report = await Engine(store, tools=_tools()).replay(run_id)
            assert report.identical, report.first_divergence
            assert report.complete
            assert report.tools_executed == 0
            assert await store.load(run_id) == second
        finally:
            await store.close()

    asyncio.run(replay())
    assert RunResult.of(RunState.fold(second)).status == "succeeded"


def test_the_saving_shows_in_the_cost_report(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"
    first = _run(db, _plan())
    report = cost_report(_run(db, _plan()))
    tokens = next(e for e in first if e.type is EventType.EFFECT_RECORDED).data["spend"]["tokens"]
    assert report["plan_cache"] == {
        "hits": [
            {
                "task": "plan",
                "attempt": 1,
                "source_run": first[0].run_id,
                "usd": "0",
                "tokens": tokens,
                "calls": 1,
            }
        ],
        "saved": {"usd": "0", "tokens": tokens, "calls": 1},
    }
    assert "plan" not in report["by_task"], "no model call was made for it"
    assert "plan_cache" not in cost_report(first), "a run without hits keeps its shape"


@pytest.mark.parametrize(
    ("second", "why"),
    [
        (lambda: _plan("Write other notes"), "another goal"),
        (lambda: _plan(model="scripted:other"), "another planner model"),
        (lambda: _plan(max_parallel=3), "another plan setting"),
        (lambda: _plan(cache=False), "the cache off"),
    ],
)
def test_a_different_plan_or_the_cache_off_calls_the_planner(
    second: Any, why: str, tmp_path: Path
) -> None:
    db = tmp_path / "nexus.db"
    _run(db, _plan())
    events = _run(db, second())
    assert not _of(events, EventType.PLAN_CACHED), why
    assert _planner_calls(events) == 1, why


def test_a_plan_made_with_the_cache_off_is_reused_when_it_is_on(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"
    first = _run(db, _plan(cache=False))
    [hit] = _of(_run(db, _plan()), EventType.PLAN_CACHED)
    assert hit.data["source_run"] == first[0].run_id


def test_a_plan_that_failed_or_was_re_planned_is_not_reused(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"
    broken = {"tasks": [{"id": "boom", "tool": "shell", "with": {"cmd": "exit 3"}}]}
    repaired = {"tasks": [{"id": "fixed", "tool": "jot", "with": {"text": "ok"}}]}
    # the first plan failed and was re-planned: the run succeeded, its plan did not
    replanned = _run(db, _plan(answers=[broken, repaired]))
    assert _of(replanned, EventType.PLAN_REPLANNING)
    assert RunState.fold(replanned).status == "succeeded"
    assert _planner_calls(_run(db, _plan(answers=[broken, repaired]))) == 2


def test_only_the_runs_own_tenant_plans_are_read(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"
    _run(db, _plan(), tenant="acme")
    events = _run(db, _plan(), tenant="globex")
    assert not _of(events, EventType.PLAN_CACHED)
    [hit] = _of(_run(db, _plan(), tenant="acme"), EventType.PLAN_CACHED)
    assert hit.data["source_run"] != events[0].run_id


def test_a_plan_with_secret_inputs_is_never_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTES_TOKEN", "s3cret")
    plan = _plan(inputs={"goal": "g", "token": {"secret": True, "env": "NOTES_TOKEN"}})
    assert plan.secret_inputs
    assert cacheable_tasks(plan) == []
    assert cacheable_tasks(_plan()) == ["plan"]


def test_a_cached_plan_is_checked_like_any_answer(tmp_path: Path) -> None:
    """The recorded plan names a tool this run's registry lacks: the extension is
    refused as a model's would be, and the retry asks the planner."""
    db = tmp_path / "nexus.db"
    _run(db, _plan())
    events = _run(db, _plan(), _tools(jot=False))
    [hit] = _of(events, EventType.PLAN_CACHED)
    retry = _of(events, EventType.RETRY_SCHEDULED)[0]
    assert retry.data["task"] == "plan"
    assert "jot" in retry.data["error"]["message"]
    # the retries (the scripted planner answers the same plan) called the model
    calls = [e.data["attempt"] for e in _of(events, EventType.EFFECT_RECORDED)]
    assert calls == [2, 3]
    assert len(_of(events, EventType.PLAN_CACHED)) == 1, "only a first attempt is cached"
    assert hit.seq < retry.seq
    assert RunState.fold(events).tasks["plan"].status == "failed"


def test_the_fold_refuses_a_plan_cached_it_cannot_take(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"
    _run(db, _plan())
    events = _run(db, _plan())
    hit = _of(events, EventType.PLAN_CACHED)[0]
    for changed in ({"attempt": 2}, {"task": "nope"}):
        forged = _tamper(events, hit.seq, {**hit.data, **changed})
        with pytest.raises(IntegrityError):
            RunState.fold(forged)


def _tamper(events: list[Event], seq: int, data: dict[str, Any]) -> list[Event]:
    out: list[Event] = []
    for event in events:
        body = data if event.seq == seq else event.data
        prev = out[-1].hash if out else event.prev_hash
        out.append(seal(event.run_id, event.seq, Draft(event.type, event.at, body), prev))
    return out


def test_a_crash_between_the_hit_and_its_answer_resumes_safely(tmp_path: Path) -> None:
    """The process died after ``plan.cached`` was committed and before the answer:
    the resumed run retries the attempt (asking the planner, as any retry does) and
    extends the plan once."""
    from nexus.domain.payloads import RunStarted
    from nexus.store.base import RunRecord

    db = tmp_path / "nexus.db"
    _run(db, _plan())
    events = _run(db, _plan())
    hit = _of(events, EventType.PLAN_CACHED)[0]
    crashed = events[: hit.seq]
    run_id = crashed[0].run_id

    async def resume() -> list[Event]:
        store = SQLiteStore.open(tmp_path / "other.db")
        try:
            started = RunStarted.of(crashed[0].data)
            record = RunRecord(
                run_id=run_id,
                name=started.name,
                plan_hash=started.plan_hash,
                status="running",
                created_at=crashed[0].at,
                updated_at=crashed[0].at,
                source=None,
                workspace=started.workspace,
                events=1,
            )
            await store.create_run(record, crashed[0])
            await store.append(run_id, crashed[1:], "running")
            result = await asyncio.wait_for(
                Engine(store, tools=_tools()).resume(run_id), RUN_TIMEOUT
            )
            assert result.status == "succeeded"
            return await store.load(run_id)
        finally:
            await store.close()

    after = asyncio.run(resume())
    assert after[: hit.seq] == crashed
    assert len(_of(after, EventType.PLAN_EXTENDED)) == 1
    assert [e.data["attempt"] for e in _of(after, EventType.PLAN_EXTENDED)] == [2]
    assert _planner_calls(after) == 1
