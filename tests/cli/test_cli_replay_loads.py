"""``nexus replay`` loads what a run's workers need, or says at once what is missing.

A replay re-executes a run's agents against its recorded effects. Two things
they need live outside the log: the code of Python function agents, and the
cassette files ``cassette:`` models name. A function agent defined in an
importable module is recorded in the plan as ``module:function`` and imported
by ``nexus replay``; one that is not (defined in a script's ``__main__``) stops
the replay at once with exit 2, naming the agent and what to do. A cassette is
found next to the recorded workflow file, wherever the replay is started; a
missing one stops it at once naming the file. No replay waits out a timeout.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_support import Out, cli_env, nexus

#: a replay that waits for a worker that will never report takes 30 s; these take < 1 s
QUICK = 15.0

AGENT_MODULE = """\
import nexus

wf = nexus.Workflow("reviewed")


async def check(prompt: str) -> str:
    return "looks right" if "9" in prompt else "wrong"


@wf.function_agent(capabilities=["review"])
async def reviewer(call: nexus.AgentCall, ctx: nexus.AgentContext) -> dict:
    verdict = await ctx.effect("review", {"prompt": call.prompt}, lambda: check(call.prompt))
    return {"verdict": verdict}


wf.task("review", capability="review", prompt="is 9 right?")
"""

RUN_IMPORTED = """\
import sys

from reviewed_flow import wf

print(wf.run_sync(home=sys.argv[1]).run_id)
"""

RUN_SCRIPT = (
    AGENT_MODULE
    + """
import sys

print(wf.run_sync(home=sys.argv[1]).run_id)
"""
)


def python(folder: Path, home: Path, script: str) -> str:
    """Run ``script`` with this interpreter in ``folder``; the run id it prints."""
    (folder / "run_it.py").write_text(script, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "run_it.py", str(home)],
        cwd=folder,
        capture_output=True,
        text=True,
        env=cli_env(home),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.split()[-1]


def timed_replay(home: Path, run_id: str) -> tuple[Out, float]:
    began = time.monotonic()
    out = nexus(home, "replay", run_id)
    return out, time.monotonic() - began


def plan_agent(home: Path, run_id: str, name: str) -> dict[str, object]:
    events = nexus(home, "events", run_id, "--json")
    assert events.code == 0, events.text
    started = next(e for e in events.json() if e["type"] == "run.started")
    agent: dict[str, object] = started["data"]["plan"]["agents"][name]
    return agent


# -- function agents -------------------------------------------------------------------------


def test_a_function_agent_from_an_importable_module_is_recorded_and_replayed(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    (tmp_path / "reviewed_flow.py").write_text(AGENT_MODULE, encoding="utf-8")
    run_id = python(tmp_path, home, RUN_IMPORTED)
    assert plan_agent(home, run_id, "reviewer")["entrypoint"] == "reviewed_flow:reviewer"

    out, took = timed_replay(home, run_id)  # started in tmp_path, where the module is
    assert out.code == 0, out.text
    assert out.stdout.startswith("identical"), out.text
    assert took < QUICK


def test_a_function_agent_defined_in_a_script_stops_the_replay_at_once_saying_why(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    run_id = python(tmp_path, home, RUN_SCRIPT)
    assert "entrypoint" not in plan_agent(home, run_id, "reviewer")  # __main__ is no module

    out, took = timed_replay(home, run_id)
    assert took < QUICK
    assert out.code == 2, out.text
    assert "diverged" not in out.text
    assert "timed out" not in out.text
    (line,) = [x for x in out.stderr.splitlines() if x.startswith("error:")]
    assert f"cannot replay run {run_id}" in line
    assert "agent 'reviewer'" in line
    assert "__main__" in line
    assert "function_agents=" in line  # what to do: replay it from Python


def test_a_module_that_is_gone_stops_the_replay_at_once_naming_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "reviewed_flow.py").write_text(AGENT_MODULE, encoding="utf-8")
    run_id = python(tmp_path, home, RUN_IMPORTED)
    (tmp_path / "reviewed_flow.py").unlink()

    out, took = timed_replay(home, run_id)
    assert took < QUICK
    assert out.code == 2, out.text
    assert "agent 'reviewer'" in out.stderr
    assert "reviewed_flow:reviewer" in out.stderr
    assert "No module named 'reviewed_flow'" in out.stderr


# -- cassettes -----------------------------------------------------------------------------

RECORDED = """\
version: 1
name: recorded
agents:
  writer: {model: "scripted:writer", scripted: ["def add(a, b): return a + b"]}
tasks:
  draft: {agent: writer, prompt: "Write add()."}
"""

ANSWERED = """\
version: 1
name: answered
agents:
  writer: {model: "cassette:cas.yaml"}
tasks:
  draft: {agent: writer, prompt: "Write add()."}
"""


def cassette_run(tmp_path: Path) -> tuple[Path, str]:
    """A run answered from ``flows/cas.yaml``, started in ``tmp_path``; home and run id."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "recorded.yaml").write_text(RECORDED, encoding="utf-8")
    (flows / "answered.yaml").write_text(ANSWERED, encoding="utf-8")
    (tmp_path / "nexus.toml").write_text("", encoding="utf-8")
    home = tmp_path / "home"
    recorded = nexus(home, "run", "flows/recorded.yaml", "--record", "flows/cas.yaml")
    assert recorded.code == 0, recorded.text
    answered = nexus(home, "run", "flows/answered.yaml", "--json")
    assert answered.code == 0, answered.text
    return home, str(answered.json()["run_id"])


def test_a_cassette_run_replays_from_another_directory(tmp_path: Path) -> None:
    home, run_id = cassette_run(tmp_path)
    # nexus() runs in tmp_path, not flows/: cas.yaml is found next to the workflow
    out, took = timed_replay(home, run_id)
    assert out.code == 0, out.text
    assert out.stdout.startswith("identical"), out.text
    assert took < QUICK


def test_a_missing_cassette_stops_the_replay_at_once_naming_the_file(tmp_path: Path) -> None:
    home, run_id = cassette_run(tmp_path)
    (tmp_path / "flows" / "cas.yaml").unlink()
    out, took = timed_replay(home, run_id)
    assert took < QUICK
    assert out.code == 2, out.text
    assert "timed out" not in out.text
    assert f"cassette {tmp_path / 'flows' / 'cas.yaml'} does not exist" in out.stderr
    assert f"cannot replay run {run_id}" in out.stderr


def test_the_working_directory_is_searched_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a file there named like a module of the standard library or an installed
    # package (json.py, yaml.py) must not take its place
    from nexus.cli.wiring import import_from_here

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    import_from_here()
    import_from_here()
    assert sys.path[-1] == str(tmp_path)
    assert sys.path.count(str(tmp_path)) == 1
