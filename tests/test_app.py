"""One engine builder for the CLI and the Python API (:mod:`nexus.app`).

What the CLI does with ``nexus.toml``, Python does too: the same residency,
providers and tools. Each command reads the configuration once, and ``--config``
travels as a value (the environment is left alone).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent / "gateway"))
from fakeserver import FakeServer

import nexus.config._file
from nexus import Workflow
from nexus.cli.app import app
from nexus.domain.events import EventType
from nexus.domain.state import RunState
from nexus.store.sqlite import SQLiteStore

KEY = "sk-app-test-never-printed-7731"


@pytest.fixture(scope="module")
def model_server() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


def _toml(server: FakeServer, *, strict: bool) -> str:
    text = f'[providers.openai]\nbase_url = "{server.url}/v1"\napi_key = "{KEY}"\n'
    if strict:
        text += '[residency]\nstrict = true\nproviders = ["scripted"]\n'
    return text


def _poem(workspace: Path) -> Workflow:
    wf = Workflow("poem", workspace=workspace)
    poet = wf.agent("poet", model="openai:gpt-4.1-mini")
    wf.task("haiku", agent=poet, prompt="A haiku about tides.")
    return wf


async def _events(home: Path, run_id: str) -> list[Any]:
    store = SQLiteStore.open(home / "nexus.db")
    try:
        return await store.load(run_id)
    finally:
        await store.close()


def _failure(home: Path, run_id: str) -> dict[str, Any]:
    import asyncio

    events = asyncio.run(_events(home, run_id))
    state = RunState.fold(events)
    error = state.tasks["haiku"].error
    assert error is not None
    assert not [e for e in events if e.type is EventType.EFFECT_RECORDED], "no model call"
    assert events[0].data["residency"]["strict"] is True, "the policy is recorded with the run"
    return dict(error)


# -- residency through the Python API -------------------------------------------------------


def test_run_sync_holds_to_the_strict_residency_of_nexus_toml(
    tmp_path: Path, model_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Strict residency that blocks a provider from the CLI blocks it from Python too."""
    model_server.reset()
    (tmp_path / "nexus.toml").write_text(_toml(model_server, strict=True), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEXUS_CONFIG", raising=False)

    result = _poem(tmp_path).run_sync(home=tmp_path / "home")

    assert result.status == "failed"
    error = _failure(tmp_path / "home", result.run_id)
    assert error["kind"] == "policy_denied"
    assert "openai:gpt-4.1-mini" in error["message"]
    assert model_server.requests == [], "the denied provider was never asked"


def test_run_sync_takes_the_config_file_as_a_value(
    tmp_path: Path, model_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_server.reset()
    strict = tmp_path / "conf" / "strict.toml"
    strict.parent.mkdir()
    strict.write_text(_toml(model_server, strict=True), encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # no ./nexus.toml here
    monkeypatch.delenv("NEXUS_CONFIG", raising=False)

    result = _poem(tmp_path).run_sync(home=tmp_path / "home", config=strict)

    assert result.status == "failed"
    assert _failure(tmp_path / "home", result.run_id)["kind"] == "policy_denied"
    assert model_server.requests == []
    assert "NEXUS_CONFIG" not in os.environ


def test_run_sync_uses_the_providers_of_nexus_toml(
    tmp_path: Path, model_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_server.reset()
    (tmp_path / "nexus.toml").write_text(_toml(model_server, strict=False), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEXUS_CONFIG", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    result = _poem(tmp_path).run_sync(home=tmp_path / "home")

    assert result.status == "succeeded", result
    (request,) = model_server.requests
    assert request.headers["authorization"] == f"Bearer {KEY}"


# -- the configuration is read once per command -------------------------------------------

WORKFLOW = """\
version: 1
name: counted
agents:
  a: {model: "scripted:a", scripted: ["one", "two"]}
tasks:
  t1: {agent: a, prompt: "first"}
  t2: {needs: [t1], agent: a, prompt: "second"}
"""


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every time a configuration file is read."""
    seen: list[Path] = []
    real = nexus.config._file._read

    def counting(file: Path) -> dict[str, Any]:
        seen.append(file)
        return real(file)

    monkeypatch.setattr(nexus.config._file, "_read", counting)
    return seen


def _cli(home: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, list(args), env={"NEXUS_HOME": str(home), "NO_COLOR": "1"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_each_command_reads_the_config_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: list[Path]
) -> None:
    conf = tmp_path / "elsewhere.toml"
    conf.write_text('tenant = "counted"\n', encoding="utf-8")
    (tmp_path / "wf.yaml").write_text(WORKFLOW, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEXUS_CONFIG", raising=False)
    home = tmp_path / "home"

    ran = _cli(home, "--config", str(conf), "run", "wf.yaml", "--json")
    assert ran.exit_code == 0, ran.output
    assert reads == [conf], "nexus run"
    assert "NEXUS_CONFIG" not in os.environ, "--config is a value, not an environment variable"
    run_id = ran.stdout[ran.stdout.index('"run_id": "') + 11 :][:26]

    for command in (
        ["plan", "wf.yaml", "--estimate", "--json"],
        ["validate", "wf.yaml"],
        ["replay", run_id, "--json"],
        ["resume", run_id, "--json"],
        ["cost", run_id, "--json"],
    ):
        reads.clear()
        out = _cli(home, "--config", str(conf), *command)
        assert out.exit_code == 0, (command, out.output)
        assert reads == [conf], command
        assert "NEXUS_CONFIG" not in os.environ


def test_config_env_still_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: list[Path]
) -> None:
    conf = tmp_path / "env.toml"
    conf.write_text('tenant = "from-env"\n', encoding="utf-8")
    (tmp_path / "wf.yaml").write_text(WORKFLOW, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEXUS_CONFIG", str(conf))

    ran = _cli(tmp_path / "home", "run", "wf.yaml", "--json")
    assert ran.exit_code == 0, ran.output
    assert reads == [conf]
    run_id = ran.stdout[ran.stdout.index('"run_id": "') + 11 :][:26]
    import asyncio

    first = asyncio.run(_events(tmp_path / "home", run_id))[0]
    assert first.data["tenant"] == "from-env"


def test_a_missing_config_value_is_a_clear_error(tmp_path: Path) -> None:
    out = _cli(tmp_path / "home", "--config", str(tmp_path / "absent.toml"), "runs")
    assert out.exit_code == 4
    assert f"--config {tmp_path / 'absent.toml'}: no such file" in out.output


# -- the project's own files are off limits to tasks ---------------------------------------


@pytest.mark.parametrize("target", ["project.toml", "state/nexus.db"])
def test_a_task_cannot_write_the_config_or_home_named_by_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    """The config and home given as values (not in the environment) are protected too."""
    work = tmp_path / "work"
    work.mkdir()
    conf = work / "project.toml"
    conf.write_text('tenant = "guarded"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEXUS_CONFIG", raising=False)
    monkeypatch.delenv("NEXUS_HOME", raising=False)
    wf = Workflow("attack", workspace=work)
    wf.task("overwrite", tool="file.write", args={"path": target, "text": "pwned"})

    result = wf.run_sync(home=work / "state", config=conf)

    assert result.status == "failed"
    assert conf.read_text(encoding="utf-8") == 'tenant = "guarded"\n'
    assert (work / "state" / "nexus.db").read_bytes()[:6] == b"SQLite"
    import asyncio

    events = asyncio.run(_events(work / "state", result.run_id))
    error = RunState.fold(events).tasks["overwrite"].error
    assert error is not None
    assert error["kind"] == "policy_denied", error
