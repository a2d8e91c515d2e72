"""``RunResult`` tells each task's output, status and error, and what the run cost."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

import nexus
from nexus import RunCost, TaskResult, Workflow
from nexus.budget.report import cost_report
from nexus.domain.state import TaskStatus
from nexus.store.sqlite import SQLiteStore

#: prices for the offline model, so that its calls cost something (per million tokens)
PRICED = '[pricing]\n"scripted:*" = { input = "1.25", output = "10" }\n'


@nexus.tool
def square(n: int) -> int:
    return n * n


def _workflow(workspace: Path) -> Workflow:
    wf = Workflow("results", inputs={"n": 3}, workspace=workspace)
    wf.agent(
        "writer",
        model="scripted:writer",
        capabilities=["write"],
        scripted=["The square is {{ tasks.square.output }}."],
    )
    wf.agent("critic", model="scripted:critic", capabilities=["judge"], scripted=["fine"])
    sq = wf.task("square", tool=square, args={"n": "{{ inputs.n }}"})
    draft = wf.task("draft", needs=[sq], capability="write", prompt="{{ tasks.square.output }}")
    wf.task("judge", needs=[draft], capability="judge", prompt="{{ tasks.draft.output.text }}")
    wf.task("each", needs=[sq], foreach=["a", "b"], tool="noop", args={"item": "{{ item }}"})
    return wf


def _run(tmp_path: Path, wf: Workflow, toml: str = PRICED) -> nexus.RunResult:
    (tmp_path / "nexus.toml").write_text(toml, encoding="utf-8")
    return wf.run_sync(home=tmp_path / "home", config=tmp_path / "nexus.toml")


def test_each_tasks_output_status_and_attempts(tmp_path: Path) -> None:
    result = _run(tmp_path, _workflow(tmp_path))
    assert result.status == "succeeded"
    assert result.outputs["square"] == 9
    assert result.outputs["draft"]["text"] == "The square is 9."
    assert result.outputs["each"] == [{"item": "a"}, {"item": "b"}]
    assert result.outputs["each[1]"] == {"item": "b"}
    draft = result.task("draft")
    assert isinstance(draft, TaskResult)
    assert (draft.status, draft.attempts, draft.agent, draft.error) == (
        TaskStatus.SUCCEEDED,
        1,
        "writer",
        None,
    )
    assert draft.succeeded
    assert draft.output == result.outputs["draft"]
    assert set(result.task_results) == {"square", "draft", "judge", "each", "each[0]", "each[1]"}
    # the summary the CLI prints is as it was
    assert result.to_dict()["tasks"]["draft"] == {"status": "succeeded", "attempts": 1}


def test_a_failed_task_has_its_error_and_no_output(tmp_path: Path) -> None:
    wf = Workflow("fails", workspace=tmp_path, fail_fast=False)
    boom = wf.task("boom", tool="shell", args={"cmd": "echo half; exit 3"}, retries=1)
    wf.task("after", needs=[boom], tool="noop")
    wf.task("fine", tool="noop", args={"x": 1})
    result = _run(tmp_path, wf)
    assert result.status == "failed"
    failed = result.task("boom")
    assert failed.status == "failed"
    assert not failed.succeeded
    assert failed.attempts == 2
    assert failed.output is None
    assert failed.error is not None
    assert failed.error.kind == nexus.ErrorKind.TRANSIENT
    assert "3" in failed.error.message
    assert failed.error.retryable is True
    assert failed.error.record["details"]["exit_code"] == 3
    assert result.task("after").status == TaskStatus.SKIPPED
    assert result.task("after").error is None
    assert "boom" not in result.outputs
    assert "after" not in result.outputs
    assert result.outputs == {"fine": {"x": 1}}


def test_an_unknown_task_is_a_key_error_naming_the_tasks(tmp_path: Path) -> None:
    result = _run(tmp_path, _workflow(tmp_path))
    with pytest.raises(KeyError, match=r"no task 'drat' in run .*; tasks: draft, each, "):
        result.task("drat")


def test_the_cost_is_what_nexus_cost_reports(tmp_path: Path) -> None:
    result = _run(tmp_path, _workflow(tmp_path))
    cost = result.cost
    assert isinstance(cost, RunCost)

    async def log() -> list[nexus.domain.events.Event]:
        store = SQLiteStore.open(tmp_path / "home" / "nexus.db")
        try:
            return await store.load(result.run_id)
        finally:
            await store.close()

    report = cost_report(asyncio.run(log()))
    assert cost.total == Decimal(report["total"]["usd"])
    assert cost.total > 0
    assert isinstance(cost.total, Decimal)
    assert cost.calls == 2
    assert cost.tool_calls == report["tool_calls"]
    assert cost.tokens == report["total"]["tokens"] > 0
    assert set(cost.by_task) == {"draft", "judge"}
    assert set(cost.by_model) == {"scripted:writer", "scripted:critic"}
    assert set(cost.by_agent) == {"writer", "critic"}
    assert sum(line.usd for line in cost.by_task.values()) == cost.total
    assert sum(line.usd for line in cost.by_model.values()) == cost.total
    assert cost.by_task["draft"].calls == 1
    assert cost.by_task["draft"].usd == Decimal(report["by_task"]["draft"]["usd"])
    assert cost.unpriced_models == ()


def test_a_free_model_costs_nothing(tmp_path: Path) -> None:
    wf = Workflow("unpriced", workspace=tmp_path)
    wf.agent("writer", model="scripted:writer", capabilities=["write"], scripted=["hi"])
    wf.task("draft", capability="write", prompt="hello")
    result = _run(tmp_path, wf, toml="")
    assert result.cost is not None
    assert result.cost.total == Decimal(0)
    assert result.cost.calls == 1


def test_an_engine_result_reads_its_cost_from_the_log(tmp_path: Path) -> None:
    plan = _workflow(tmp_path).compile()

    async def main() -> tuple[nexus.RunResult, RunCost]:
        store = SQLiteStore.open(tmp_path / "nexus.db")
        try:
            engine = nexus.Engine(store, tools=_workflow(tmp_path).tools())
            result = await engine.start(plan)
            return result, RunCost.of(await store.load(result.run_id))
        finally:
            await store.close()

    result, cost = asyncio.run(main())
    assert result.status == "succeeded"
    assert result.cost is None  # the engine reads no log back: RunCost.of does
    assert result.outputs["square"] == 9
    assert cost.calls == 2
    assert set(cost.by_task) == {"draft", "judge"}
