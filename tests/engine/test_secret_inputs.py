"""Secret workflow inputs: declarations, the name rule, digests, resume and replay.

The end-to-end check (every byte written or printed) is ``tests/cli/test_cli_secrets.py``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from nexus.config import load_config
from nexus.domain.errors import UserError, WorkflowError
from nexus.domain.events import EventType
from nexus.domain.plan import Plan, TaskSpec, plan_hash
from nexus.engine.facade import Engine
from nexus.engine.secret_inputs import SCRYPT_N, SecretDigests, check_secret_value
from nexus.planning.workflow import compile_workflow
from nexus.redaction import REDACTED, is_secret_name
from nexus.store.sqlite import SQLiteStore


def _engine_plan(tmp_path: Path, **inputs: Any) -> Plan:
    doc = {
        "version": 1,
        "name": "p",
        "inputs": {"db_password": "default-pass", "n": 1},
        "workspace": str(tmp_path),
        "tasks": {
            "show": {"tool": "noop", "with": {"cmd": "psql -W {{ inputs.db_password }}"}},
            "wait": {"needs": ["show"], "tool": "noop", "approval": "required"},
            "echo": {"needs": ["wait"], "tool": "noop", "with": {"pw": "{{ inputs.db_password }}"}},
        },
    }
    return compile_workflow(doc, inputs=inputs)


async def _wait_for_approval(store: SQLiteStore) -> str:
    async with asyncio.timeout(10):
        while True:
            runs = await store.list_runs(1)
            if runs:
                events = await store.load(runs[0].run_id)
                if any(e.type is EventType.APPROVAL_REQUESTED for e in events):
                    return runs[0].run_id
            await asyncio.sleep(0.05)


def test_resume_needs_the_secret_again_and_checks_it(tmp_path: Path) -> None:
    plan = _engine_plan(tmp_path, db_password="s3cret-value")
    assert plan.secret_inputs == {"db_password": None}

    async def go() -> None:
        store = SQLiteStore.open(tmp_path / "n.db")
        try:
            engine = Engine(store)
            running = asyncio.create_task(engine.start(plan))
            rid = await _wait_for_approval(store)
            running.cancel()  # the process that drove it stops
            with pytest.raises(asyncio.CancelledError):
                await running
            with pytest.raises(UserError, match="secret input 'db_password'") as missing:
                await engine.answer_approval(rid, "wait", granted=True, by="me")
            assert f"nexus approve {rid} wait -i db_password=" in missing.value.message
            with pytest.raises(UserError, match="is not the value run"):
                await engine.answer_approval(
                    rid, "wait", granted=True, by="me", secrets={"db_password": "guess-1234"}
                )
            outcome, final = await engine.answer_approval(
                rid, "wait", granted=True, by="me", secrets={"db_password": "s3cret-value"}
            )
            assert outcome == "continued"
            assert final is not None
            assert final.status == "succeeded"
            events = await store.load(rid)
            bodies = "".join(e.body for e in events)
            assert "s3cret-value" not in bodies
            echo = next(
                e
                for e in events
                if e.type is EventType.EFFECT_RECORDED and e.data["task"] == "echo"
            )
            assert echo.data["request"]["args"] == {"pw": REDACTED}
            assert (await engine.replay(rid)).identical
            assert (await engine.replay(rid, secrets={"db_password": "s3cret-value"})).identical
            other = await engine.replay(rid, secrets={"db_password": "s3cret-valuf"})
            assert not other.identical
            assert other.first_divergence is not None
            assert other.first_divergence["seq"] == 1
        finally:
            await store.close()

    asyncio.run(go())


def test_a_missing_secret_stops_the_run_before_it_starts(tmp_path: Path) -> None:
    doc = {
        "version": 1,
        "name": "p",
        "inputs": {"token": {"secret": True, "env": "NEXUS_TEST_UNSET_TOKEN"}},
        "tasks": {"a": {"tool": "noop", "with": {"t": "{{ inputs.token }}"}}},
    }
    plan = compile_workflow(doc)

    async def go() -> None:
        store = SQLiteStore.open(tmp_path / "n.db")
        try:
            with pytest.raises(UserError, match=r"secret input 'token'.*NEXUS_TEST_UNSET_TOKEN"):
                await Engine(store).start(plan)
            assert await store.list_runs() == []
        finally:
            await store.close()

    asyncio.run(go())


def test_the_plan_hash_and_record_hold_no_secret(tmp_path: Path) -> None:
    one = _engine_plan(tmp_path, db_password="first-secret")
    two = _engine_plan(tmp_path, db_password="other-secret")
    assert plan_hash(one) == plan_hash(two)  # not an unsalted hash of the value
    assert "first-secret" not in json.dumps(one.to_dict())
    assert "first-secret" not in repr(one)
    assert Plan.from_dict(one.to_dict()).secret_inputs == {"db_password": None}


# -- declarations ---------------------------------------------------------------------


def _inputs(inputs: dict[str, Any]) -> Plan:
    return compile_workflow(
        {"version": 1, "name": "p", "inputs": inputs, "tasks": {"a": {"tool": "noop"}}}
    )


def test_declarations_and_name_rules() -> None:
    plan = _inputs(
        {
            "password": "x",
            "PGPASSWORD": "x",
            "GITHUB_TOKEN": "x",
            "SSH_KEY": "x",
            "db_pass": "x",
            "api_key": "x",
            "label": {"secret": True, "default": "x"},
            "token": {"secret": False, "default": "public"},
            "cfg": {"secret": "shh", "level": 2},  # not a declaration: a default value
            "max_tokens": 5,
            "key": "k",
        }
    )
    assert set(plan.secret_inputs) == {
        "password",
        "PGPASSWORD",
        "GITHUB_TOKEN",
        "SSH_KEY",
        "db_pass",
        "api_key",
        "label",
    }
    assert plan.inputs["token"] == "public"
    assert plan.inputs["cfg"] == {"secret": "shh", "level": 2}


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("passwd", True),
        ("pass", True),
        ("pwd", True),
        ("secret", True),
        ("client_secret", True),
        ("token", True),
        ("API_KEY", True),
        ("apikey", True),
        ("access_key", True),
        ("private-key", True),
        ("credentials", True),
        ("auth", True),
        ("PGPASSWORD", True),
        ("AWS_SECRET", True),
        ("SIGNING_KEY", True),
        ("max_tokens", False),
        ("token_count", False),
        ("author", False),
        ("keyboard", False),
        ("compass", False),
        ("key", False),
        ("user", False),
    ],
)
def test_secret_name_rule(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_bad_declarations_name_the_field() -> None:
    with pytest.raises(WorkflowError, match="true or false") as err:
        _inputs({"pw": {"secret": "yes"}})
    assert err.value.field == "inputs.pw.secret"
    with pytest.raises(WorkflowError, match="environment variable") as err:
        _inputs({"token": {"secret": True, "env": "not a name"}})
    assert err.value.field == "inputs.token.env"
    with pytest.raises(WorkflowError, match="secret: false"):
        _inputs({"token": {"secret": False, "env": "X"}})


def test_unusable_secret_values_are_refused_without_showing_them() -> None:
    with pytest.raises(UserError, match="too short") as short:
        check_secret_value("pin", "abc")
    assert "abc" not in short.value.message
    with pytest.raises(UserError, match="must be a string"):
        check_secret_value("pin", [1, 2])
    assert check_secret_value("pin", 12345678) == "12345678"
    assert check_secret_value("pin", "") == ""


def test_digests_are_salted_per_run_and_per_name() -> None:
    one = SecretDigests.create({"a": "hunter2", "b": "hunter2"})
    two = SecretDigests.create({"a": "hunter2"})
    assert one.n == SCRYPT_N
    assert one.digests["a"] != one.digests["b"]  # same value, different names
    assert one.digests["a"] != two.digests["a"]  # same value, different runs
    assert one.matches("a", "hunter2")
    assert not one.matches("a", "hunter3")
    again = SecretDigests.from_dict(json.loads(json.dumps(one.to_dict())), "r")
    assert again.matches("b", "hunter2")


# -- personal data -----------------------------------------------------------------------


def test_personal_data_is_redacted_from_what_a_run_records_and_it_replays(tmp_path: Path) -> None:
    # built at run time: the plan holds no address, the output does
    cmd = "printf 'mail ann@%s, card 4111-1111-%s-1111\\n' example.org 1111"
    plan = Plan(
        name="pii",
        tasks={
            "a": TaskSpec(id="a", tool="shell", args={"cmd": cmd}),
            "b": TaskSpec(
                id="b", needs=("a",), tool="noop", args={"got": "{{ tasks.a.output.stdout }}"}
            ),
        },
        workspace=str(tmp_path),
    )

    async def go(pii: bool) -> tuple[str, bool]:
        store = SQLiteStore.open(tmp_path / f"{pii}.db")
        try:
            result = await Engine(store, pii=pii).start(plan)
            assert result.status == "succeeded"
            events = await store.load(result.run_id)
            assert (events[0].data.get("redaction") == {"pii": True}) is pii
            report = await Engine(store).replay(result.run_id)  # pii comes from the record
            return "".join(e.body for e in events), report.identical
        finally:
            await store.close()

    bodies, identical = asyncio.run(go(True))
    assert "ann@example.org" not in bodies
    assert "4111-1111-1111-1111" not in bodies
    assert "mail [email], card [card]" in bodies
    assert identical
    bodies, identical = asyncio.run(go(False))
    assert "ann@example.org" in bodies
    assert identical


def test_the_redaction_table_in_nexus_toml(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    file = tmp_path / "project" / "nexus.toml"
    file.write_text("[redaction]\npii = true\n")
    assert load_config(file, environ={}).redaction_pii
    # found upward from a directory inside the project, as git finds .git
    assert load_config(environ={}, cwd=tmp_path / "project" / "sub").redaction_pii
    assert not load_config(environ={}, cwd=tmp_path / "none").redaction_pii
    file.write_text("[redaction]\npii = 'yes'\n")
    with pytest.raises(UserError, match=r"redaction\.pii"):
        load_config(file, environ={})
    file.write_text("[redaction]\nemails = true\n")
    with pytest.raises(UserError, match="emails"):
        load_config(file, environ={})
