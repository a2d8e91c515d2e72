"""What one run redacts stays that run's: personal data in run.started, secrets scoped per run.

Both attack what a run records in a long-lived process (the Python API, a
server): ``run.started`` must not hold the personal data the rest of a
``pii`` run hides, and one run's secret must neither be redacted from another
run's ordinary data nor stay registered after its run ends.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from nexus.domain.events import EventType
from nexus.engine.facade import Engine
from nexus.planning.workflow import compile_workflow
from nexus.redaction import default_redactor
from nexus.store.sqlite import SQLiteStore

EMAIL, CARD = "ann@example.org", "4111-1111-1111-1111"


def _pii_plan(tmp_path: Path, approval: bool = False) -> Any:
    tasks: dict[str, Any] = {
        "greet": {"tool": "noop", "with": {"to": "{{ inputs.contact }}", "card": CARD}},
    }
    if approval:
        tasks["wait"] = {"needs": ["greet"], "tool": "noop", "approval": "required"}
        tasks["after"] = {"needs": ["wait"], "tool": "noop", "with": {"to": "{{ inputs.contact }}"}}
    doc = {
        "version": 1,
        "name": "pii",
        "description": f"write to {EMAIL}",
        "inputs": {"contact": EMAIL},
        "workspace": str(tmp_path),
        "tasks": tasks,
    }
    return compile_workflow(doc)


async def _wait_for_approval(store: SQLiteStore) -> str:
    async with asyncio.timeout(10):
        while True:
            runs = await store.list_runs(1)
            if runs and any(
                e.type is EventType.APPROVAL_REQUESTED for e in await store.load(runs[0].run_id)
            ):
                return runs[0].run_id
            await asyncio.sleep(0.05)


def _assert_no_pii(text: str) -> None:
    assert EMAIL not in text
    assert CARD not in text


def test_run_started_of_a_pii_run_holds_no_personal_data_and_replays(tmp_path: Path) -> None:
    async def go() -> None:
        store = SQLiteStore.open(tmp_path / "n.db")
        try:
            result = await Engine(store, pii=True).start(_pii_plan(tmp_path))
            assert result.status == "succeeded"
            events = await store.load(result.run_id)
            assert events[0].type is EventType.RUN_STARTED
            _assert_no_pii(events[0].body)
            _assert_no_pii("".join(e.body for e in events))
            assert events[0].data["inputs"]["contact"] == "[email]"
            runs = await store.list_runs(5)
            _assert_no_pii(repr(runs))
            report = await Engine(store).replay(result.run_id)
            assert report.identical, report.first_divergence
        finally:
            await store.close()

    asyncio.run(go())


def test_a_resumed_pii_run_acts_on_what_it_recorded(tmp_path: Path) -> None:
    async def go() -> None:
        store = SQLiteStore.open(tmp_path / "n.db")
        try:
            engine = Engine(store, pii=True)
            running = asyncio.create_task(engine.start(_pii_plan(tmp_path, approval=True)))
            rid = await _wait_for_approval(store)
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
            outcome, final = await Engine(store).answer_approval(rid, "wait", granted=True, by="me")
            assert outcome == "continued"
            assert final is not None
            assert final.status == "succeeded"
            events = await store.load(rid)
            _assert_no_pii("".join(e.body for e in events))
            report = await Engine(store).replay(rid)
            assert report.identical, report.first_divergence
        finally:
            await store.close()

    asyncio.run(go())


def test_a_run_without_pii_records_its_plan_as_written(tmp_path: Path) -> None:
    async def go() -> str:
        store = SQLiteStore.open(tmp_path / "n.db")
        try:
            result = await Engine(store).start(_pii_plan(tmp_path))
            return (await store.load(result.run_id))[0].body
        finally:
            await store.close()

    body = asyncio.run(go())
    assert EMAIL in body
    assert CARD in body


SECRET = "run-one-s3cret-value"


def test_one_runs_secret_is_not_redacted_in_another_runs_records(tmp_path: Path) -> None:
    first = compile_workflow(
        {
            "version": 1,
            "name": "one",
            "inputs": {"db_password": SECRET},
            "workspace": str(tmp_path),
            "tasks": {"use": {"tool": "noop", "with": {"cmd": "login {{ inputs.db_password }}"}}},
        }
    )
    # run 2 holds run 1's secret text as ordinary data: it is not a secret there
    second = compile_workflow(
        {
            "version": 1,
            "name": "two",
            "inputs": {"note": SECRET},
            "workspace": str(tmp_path),
            "tasks": {"show": {"tool": "noop", "with": {"text": "note {{ inputs.note }}"}}},
        }
    )
    registered_before = default_redactor().secret_count

    async def go() -> tuple[str, str]:
        store = SQLiteStore.open(tmp_path / "n.db")
        try:
            engine = Engine(store)
            one = await engine.start(first)
            # released when its run ended: nothing of run 1 is left in the process
            assert default_redactor().secret_count == registered_before
            two = await engine.start(second)
            assert one.status == two.status == "succeeded"
            bodies = ["".join(e.body for e in await store.load(r.run_id)) for r in (one, two)]
            return bodies[0], bodies[1]
        finally:
            await store.close()

    body_one, body_two = asyncio.run(go())
    assert SECRET not in body_one
    assert f"note {SECRET}" in body_two


def test_concurrent_runs_keep_their_secrets_apart(tmp_path: Path) -> None:
    def plan(name: str, secret: str, other: str) -> Any:
        return compile_workflow(
            {
                "version": 1,
                "name": name,
                "inputs": {"api_token": secret, "note": other},
                "workspace": str(tmp_path),
                "tasks": {
                    "use": {
                        "tool": "noop",
                        "with": {"mine": "{{ inputs.api_token }}", "theirs": "{{ inputs.note }}"},
                    }
                },
            }
        )

    a_secret, b_secret = "alpha-secret-value-1", "bravo-secret-value-2"

    async def go() -> tuple[str, str]:
        store = SQLiteStore.open(tmp_path / "n.db")
        try:
            engine = Engine(store)
            a, b = await asyncio.gather(
                engine.start(plan("a", a_secret, b_secret)),
                engine.start(plan("b", b_secret, a_secret)),
            )
            return (
                "".join(e.body for e in await store.load(a.run_id)),
                "".join(e.body for e in await store.load(b.run_id)),
            )
        finally:
            await store.close()

    body_a, body_b = asyncio.run(go())
    assert a_secret not in body_a
    assert b_secret in body_a
    assert b_secret not in body_b
    assert a_secret in body_b


def test_a_secrets_scope_reaches_its_tasks_and_threads_only() -> None:
    from nexus.redaction import REDACTED, Redactor, redact_values, secrets_scope

    scoped = Redactor(["scoped-secret-value"], builtin=False)
    text = "x scoped-secret-value"

    async def go() -> tuple[Any, Any, Any, Any]:
        outside = asyncio.create_task(asyncio.sleep(0.01, result=None))
        with secrets_scope(scoped):
            in_task = await asyncio.create_task(asyncio.sleep(0, result=redact_values(text)))
            in_thread = await asyncio.to_thread(redact_values, text)
            other = asyncio.get_running_loop().run_in_executor(None, redact_values, text)
        await outside
        return in_task, in_thread, await other, redact_values(text)

    in_task, in_thread, executor, after = asyncio.run(go())
    assert in_task == in_thread == f"x {REDACTED}"
    assert executor == text  # run_in_executor does not carry the context: not the run's
    assert after == text
