"""Tasks that wait for a person: approve, reject, time out, escalate, take over."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nexus.domain.events import EventType
from nexus.domain.plan import ApprovalPolicy, Plan, TaskSpec
from nexus.domain.state import RunState, TaskStatus
from nexus.engine.facade import Engine
from nexus.store.sqlite import SQLiteStore


def _plan(tmp_path: Path, approval: ApprovalPolicy) -> Plan:
    return Plan(
        name="approvals",
        tasks={
            "build": TaskSpec(id="build", tool="noop", args={"x": 1}),
            "deploy": TaskSpec(
                id="deploy",
                needs=("build",),
                tool="shell",
                args={"cmd": "echo deployed >> deployed.txt"},
                approval=approval,
            ),
        },
        workspace=str(tmp_path),
    )


async def _wait_for(store: SQLiteStore, type_: EventType, within: float = 10) -> str:
    async with asyncio.timeout(within):
        while True:
            runs = await store.list_runs(1)
            if runs:
                events = await store.load(runs[0].run_id)
                if any(e.type is type_ for e in events):
                    return runs[0].run_id
            await asyncio.sleep(0.05)


async def _types(store: SQLiteStore, run_id: str) -> list[EventType]:
    return [e.type for e in await store.load(run_id)]


def test_a_live_run_waits_for_approval_then_continues(tmp_path: Path) -> None:
    async def go() -> None:
        store = SQLiteStore.open(tmp_path / "nexus.db")
        other = SQLiteStore.open(tmp_path / "nexus.db")
        try:
            running = asyncio.create_task(Engine(store).start(_plan(tmp_path, ApprovalPolicy())))
            run_id = await _wait_for(other, EventType.APPROVAL_REQUESTED)
            state = RunState.fold(await other.load(run_id))
            assert state.tasks["deploy"].status is TaskStatus.AWAITING_APPROVAL
            assert not (tmp_path / "deployed.txt").exists()
            outcome, result = await Engine(other).answer_approval(
                run_id, "deploy", granted=True, by="ana", reason="looks good"
            )
            assert (outcome, result) == ("requested", None)
            final = await asyncio.wait_for(running, 10)
            assert final.status == "succeeded"
            assert (tmp_path / "deployed.txt").read_text() == "deployed\n"
            granted = [e for e in await other.load(run_id) if e.type is EventType.APPROVAL_GRANTED]
            assert granted[0].data == {"task": "deploy", "by": "ana", "reason": "looks good"}
            report = await Engine(other).replay(run_id)
            assert report.identical, report.first_divergence
        finally:
            await store.close()
            await other.close()

    asyncio.run(go())


def test_rejection_fails_the_task_with_policy_denied(tmp_path: Path) -> None:
    async def go() -> None:
        store = SQLiteStore.open(tmp_path / "nexus.db")
        other = SQLiteStore.open(tmp_path / "nexus.db")
        try:
            running = asyncio.create_task(Engine(store).start(_plan(tmp_path, ApprovalPolicy())))
            run_id = await _wait_for(other, EventType.APPROVAL_REQUESTED)
            await Engine(other).answer_approval(
                run_id, "deploy", granted=False, by="bo", reason="not on a Friday"
            )
            final = await asyncio.wait_for(running, 10)
            assert final.status == "failed"
            assert final.tasks["deploy"]["status"] == "failed"
            state = RunState.fold(await other.load(run_id))
            error = state.tasks["deploy"].error
            assert error is not None
            assert error["kind"] == "policy_denied"
            assert "bo" in error["message"]
            assert "not on a Friday" in error["message"]
            assert not (tmp_path / "deployed.txt").exists()
        finally:
            await store.close()
            await other.close()

    asyncio.run(go())


def test_an_unanswered_approval_times_out_and_fails(tmp_path: Path) -> None:
    async def go() -> None:
        store = SQLiteStore.open(tmp_path / "nexus.db")
        try:
            plan = _plan(tmp_path, ApprovalPolicy(timeout=0.2))
            result = await asyncio.wait_for(Engine(store).start(plan), 10)
            assert result.status == "failed"
            state = RunState.fold(await store.load(result.run_id))
            assert state.tasks["deploy"].error is not None
            assert state.tasks["deploy"].error["kind"] == "timeout"
            assert EventType.APPROVAL_TIMED_OUT in await _types(store, result.run_id)
            report = await Engine(store).replay(result.run_id)
            assert report.identical, report.first_divergence
        finally:
            await store.close()

    asyncio.run(go())


def test_escalation_records_and_keeps_waiting(tmp_path: Path) -> None:
    async def go() -> None:
        store = SQLiteStore.open(tmp_path / "nexus.db")
        other = SQLiteStore.open(tmp_path / "nexus.db")
        try:
            plan = _plan(tmp_path, ApprovalPolicy(timeout=0.1, on_timeout="escalate"))
            running = asyncio.create_task(Engine(store).start(plan))
            run_id = await _wait_for(other, EventType.APPROVAL_ESCALATED)
            assert not running.done()
            await Engine(other).answer_approval(run_id, "deploy", granted=True, by="lead")
            assert (await asyncio.wait_for(running, 10)).status == "succeeded"
        finally:
            await store.close()
            await other.close()

    asyncio.run(go())


def test_answering_a_run_no_process_drives_takes_it_over(tmp_path: Path) -> None:
    async def go() -> None:
        store = SQLiteStore.open(tmp_path / "nexus.db")
        try:
            running = asyncio.create_task(Engine(store).start(_plan(tmp_path, ApprovalPolicy())))
            run_id = await _wait_for(store, EventType.APPROVAL_REQUESTED)
            running.cancel()  # the process that drove it stops (its lease is released)
            with pytest.raises(asyncio.CancelledError):
                await running
            outcome, result = await Engine(store).answer_approval(
                run_id, "deploy", granted=True, by="ops"
            )
            assert outcome == "continued"
            assert result is not None
            assert result.status == "succeeded"
            assert (tmp_path / "deployed.txt").read_text() == "deployed\n"
            report = await Engine(store).replay(run_id)
            assert report.identical, report.first_divergence
        finally:
            await store.close()

    asyncio.run(go())


def test_answers_to_tasks_not_waiting_are_refused(tmp_path: Path) -> None:
    from nexus.domain.errors import ConflictError, NotFoundError

    async def go() -> None:
        store = SQLiteStore.open(tmp_path / "nexus.db")
        try:
            plan = _plan(tmp_path, ApprovalPolicy(timeout=0.1))
            result = await Engine(store).start(plan)
            with pytest.raises(ConflictError, match="not awaiting approval"):
                await Engine(store).answer_approval(result.run_id, "build", granted=True, by="x")
            with pytest.raises(NotFoundError, match="no task 'nope'"):
                await Engine(store).answer_approval(result.run_id, "nope", granted=True, by="x")
        finally:
            await store.close()

    asyncio.run(go())
