"""``nexus inspect``: what a user needs to understand a run, read from its events (issue 11).

Errors read as kind, message, what the tool reported and a hint -- never a
Python dict; each attempt shows its duration, what it ran (tool arguments, or
agent, model and rendered prompt) and every call it made (a model call: who
answered and the fallback route); ``--conversation`` rebuilds an agent's
messages, tool calls and results; a task awaiting approval shows what
approving it will run; a skipped task says why.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import NEXUS, WORKFLOWS, cli_env, nexus

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from fakeserver import FakeServer, openai_error

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KEY = "sk-inspect-test-Zr41-never-shown-0097"

GATED = """\
version: 1
name: gated
inputs: {target: staging}
agents:
  w: {model: "scripted:w", capabilities: [write], scripted: ["notes"]}
tasks:
  build: {tool: shell, with: {cmd: "echo built"}}
  deploy:
    needs: [build]
    tool: shell
    with: {cmd: "echo deploying {{ inputs.target }} after {{ tasks.build.output.stdout }}"}
    approval: required
  announce:
    needs: [build]
    capability: write
    prompt: "Announce {{ inputs.target }}"
    approval: required
"""
FALLBACK = """\
version: 1
name: fallback
agents:
  w:
    model: openai:gpt-4.1-mini
    fallbacks: ["scripted:b"]
    scripted: ["the fallback answers"]
tasks:
  t: {agent: w, prompt: "hi"}
"""


def only(home: Path) -> str:
    (record,) = nexus(home, "runs", "--json").json()
    return str(record["run_id"])


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("failed")
    shutil.copy(WORKFLOWS / "failing.yaml", root / "failing.yaml")
    home = root / "home"
    assert nexus(home, "run", "failing.yaml", "-q").code == 1
    return home, only(home)


def test_an_error_reads_as_kind_message_details_and_hint(failed: tuple[Path, str]) -> None:
    home, run_id = failed
    shown = nexus(home, "inspect", run_id, "--task", "boom")
    assert shown.code == 0, shown.text
    lines = [line.rstrip() for line in shown.stdout.splitlines()]
    assert "  error    transient: command exited with 7" in lines
    assert "           exit code 7" in lines
    assert "           stderr: oops" in lines
    assert any(line.startswith("  hint     a retry may succeed") for line in lines)
    assert "{'" not in shown.stdout, "an error is not a Python dict"
    # the attempt: how long, what it ran
    assert any(line.startswith("  attempt 1  failed  ") for line in lines), shown.stdout
    assert '    tool     shell {"cmd": "echo oops >&2; exit 7"}' in lines

    doc = nexus(home, "inspect", run_id, "--task", "boom", "--json").json()
    (attempt,) = doc["history"]
    assert attempt["tool"] == "shell"
    assert attempt["args"] == {"cmd": "echo oops >&2; exit 7"}
    assert attempt["outcome"] == "failed"
    assert attempt["duration_s"] > 0
    (call,) = attempt["calls"]
    assert (call["kind"], call["tool"]) == ("tool", "shell")
    assert call["error"]["kind"] == "transient"


def test_a_skipped_task_says_why(failed: tuple[Path, str]) -> None:
    home, run_id = failed
    table = nexus(home, "inspect", run_id)
    row = next(line for line in table.stdout.splitlines() if line.split()[:1] == ["never"])
    assert "skipped" in row
    assert "boom" in row  # the task whose failure skipped it
    one = nexus(home, "inspect", run_id, "--task", "never")
    assert one.code == 0, one.text
    assert any(line.startswith("  why") and "boom" in line for line in one.stdout.splitlines()), (
        one.stdout
    )
    assert "boom" in nexus(home, "inspect", run_id, "--json").json()["tasks"]["never"]["why"]


def test_an_agent_attempt_shows_its_model_prompt_calls_and_conversation(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "review" / "workflow.yaml", tmp_path / "review.yaml")
    home = tmp_path / "home"
    assert nexus(home, "run", "review.yaml", "-q").code == 0
    run_id = only(home)

    shown = nexus(home, "inspect", run_id, "--task", "review", "--conversation")
    assert shown.code == 0, shown.text
    text = shown.stdout
    assert "    model    scripted:reviewer" in text
    assert "    prompt   Review these notes against the files here: Release 1.0" in text
    assert '      2.  tool file.list {"path": "."}' in text
    assert "[tool result: file.list call_0_0]" in text
    assert '      calls file.list {"path": "."}  (call_0_0)' in text

    doc = nexus(home, "inspect", run_id, "--task", "review", "--conversation", "--json").json()
    (attempt,) = doc["history"]
    assert attempt["agent"] == "reviewer"
    assert attempt["model"] == "scripted:reviewer"
    assert [c["kind"] for c in attempt["calls"]] == ["model", "tool", "model"]
    assert attempt["calls"][0]["answered_by"] == "scripted:reviewer"
    (talk,) = doc["conversation"]
    roles = [m["role"] for m in talk["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert talk["messages"][-1]["content"].startswith('{"approved": true')

    alone = nexus(home, "inspect", run_id, "--conversation")
    assert alone.code == 2
    assert "--task" in alone.stderr


@pytest.mark.slow
def test_a_pending_approval_shows_what_approving_it_runs(tmp_path: Path) -> None:
    (tmp_path / "gated.yaml").write_text(GATED, encoding="utf-8")
    home = tmp_path / "home"
    with subprocess.Popen(
        [str(NEXUS), "run", "gated.yaml", "-q"],
        cwd=tmp_path,
        env=cli_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as proc:
        run_id = _waiting(home, ("deploy", "announce"))
        try:
            deploy = nexus(home, "inspect", run_id, "--task", "deploy")
            assert deploy.code == 0, deploy.text
            assert f"nexus approve {run_id} deploy" in deploy.stdout
            assert (
                '  will run tool shell with {"cmd": "echo deploying staging after built\\n"}'
                in deploy.stdout
            )
            announce = nexus(home, "inspect", run_id, "--task", "announce", "--json").json()
            action: dict[str, Any] = announce["pending"]["action"]
            assert action == {"capability": "write", "agents": ["w"], "prompt": "Announce staging"}
            row = next(
                line
                for line in nexus(home, "inspect", run_id).stdout.splitlines()
                if line.split()[:1] == ["deploy"]
            )
            assert "awaits approval" in row
        finally:
            nexus(home, "cancel", run_id)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _waiting(home: Path, tasks: tuple[str, ...]) -> str:
    """The run of ``home``, once all of ``tasks`` await approval."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = nexus(home, "runs", "--json").json() if (home / "nexus.db").exists() else []
        if runs:
            state = nexus(home, "status", runs[0]["run_id"], "--json").json()["tasks"]
            if all(state[t]["status"] == "awaiting_approval" for t in tasks):
                return str(runs[0]["run_id"])
        time.sleep(0.2)
    raise AssertionError("no approval was asked for")


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as running:
        yield running


@pytest.mark.slow
def test_a_model_call_shows_who_answered_and_the_route(tmp_path: Path, server: FakeServer) -> None:
    (tmp_path / "fallback.yaml").write_text(FALLBACK, encoding="utf-8")
    (tmp_path / "nexus.toml").write_text(
        f'[providers.openai]\nbase_url = "{server.url}/v1"\napi_key = "{KEY}"\n'
        "[providers.resilience]\nmax_attempts = 1\n",
        encoding="utf-8",
    )
    server.enqueue(openai_error(503, "overloaded"))
    home = tmp_path / "home"
    ran = nexus(home, "run", "fallback.yaml", "-q")
    assert ran.code == 0, ran.text
    run_id = only(home)

    doc = nexus(home, "inspect", run_id, "--task", "t", "--json").json()
    (call,) = doc["history"][0]["calls"]
    assert call["model"] == "openai:gpt-4.1-mini"
    assert call["answered_by"] == "scripted:b"
    assert [(s["model"], s["outcome"]) for s in call["route"]] == [
        ("openai:gpt-4.1-mini", "failed"),
        ("scripted:b", "answered"),
    ]
    text = nexus(home, "inspect", run_id, "--task", "t").stdout
    assert "      1.  model scripted:b" in text
    route = next(line for line in text.splitlines() if "route:" in line)
    assert "openai:gpt-4.1-mini failed" in route
    assert "scripted:b answered" in route
    assert KEY not in text
