"""MCP servers start only when a run uses them (nexus.engine.toolset.used_servers).

A server declared in ``nexus.toml`` or a workflow is started when a task's
``tool`` or an agent's ``tools`` names one of its tools, decided from the plan
before the run; one nobody names is never started. The fixture server appends
its pid to the file ``FILES_MARKER`` names as it starts, so each test counts
the starts of each server.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_out import Out
from nexus.app import Project
from nexus.domain.plan import AgentSpec, Plan, TaskSpec
from nexus.engine import RunResult
from nexus.engine.toolset import used_servers
from nexus.tools.discovery import server_status
from nexus.tools.pins import PinStore

FILES_SERVER = Path(__file__).parent / "mcp_fixtures" / "files_server.py"
NEXUS = Path(sys.executable).parent / "nexus"


def nexus(home: Path, *args: str | Path) -> Out:
    """The real ``nexus`` script, run in the project directory (``home``'s parent)."""
    env = {**os.environ, "NEXUS_HOME": str(home), "NO_COLOR": "1"}
    proc = subprocess.run(
        [str(NEXUS), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=home.parent,
        timeout=240,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return Out(proc.returncode, proc.stdout, proc.stderr)


def starts(marker: Path) -> int:
    """How many times the server writing ``marker`` was started."""
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def plan(tasks: dict[str, TaskSpec], servers: dict[str, object], **agents: AgentSpec) -> Plan:
    return Plan(name="p", tasks=tasks, agents=dict(agents), mcp_servers=dict(servers))


def test_a_server_is_used_when_a_task_or_an_agent_names_one_of_its_tools() -> None:
    servers = {name: {"command": "x"} for name in ("git", "time", "files", "spare")}
    tasks = {
        "log": TaskSpec(id="log", tool="git.git_log"),
        "shell": TaskSpec(id="shell", tool="shell"),
        "ask": TaskSpec(id="ask", agent="helper", prompt="what time is it?"),
    }
    helper = AgentSpec(name="helper", model="scripted", tools=("time.get_current_time", "noop"))
    reader = AgentSpec(name="reader", model="scripted", tools=("files.read_file",))
    assert used_servers(plan(tasks, servers, helper=helper, reader=reader)) == [
        "git",
        "time",
        "files",
    ]
    # built-ins with a dot (file.read) name no server unless one is called "file"
    builtin = {"read": TaskSpec(id="read", tool="file.read")}
    assert used_servers(plan(builtin, servers)) == []
    assert used_servers(plan(builtin, {"file": {"command": "x"}})) == ["file"]
    assert used_servers(plan(tasks, {})) == []


def test_declared_but_unused_servers_do_not_even_load_the_sdk(tmp_path: Path) -> None:
    """Reading nexus.toml's [mcp_servers] and running a plan that uses none of them
    imports no module of the MCP SDK (it costs a second or more to load)."""
    _toml(tmp_path, {"a": tmp_path / "a.started", "b": tmp_path / "b.started"})
    (tmp_path / "flow.yaml").write_text("version: 1\nname: flow\ntasks:\n  t: {tool: noop}\n")
    script = (
        "import asyncio, sys\n"
        "from nexus.app import Project\n"
        "from nexus.planning.workflow import load_workflow\n"
        "project = Project.load('nexus.toml', home='home')\n"
        "assert set(project.config.mcp_servers) == {'a', 'b'}\n"
        "plan = load_workflow('flow.yaml', known_tools=project.tools().names())\n"
        "async def run():\n"
        "    async with project.open_store() as store, project.engine(store, plan=plan) as e:\n"
        "        return await e.start(plan)\n"
        "print(asyncio.run(run()).status)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["succeeded", "[]"]
    assert not (tmp_path / "a.started").exists()
    assert not (tmp_path / "b.started").exists()


def _declare(marker: Path) -> dict[str, object]:
    """A files server whose starts are counted in ``marker``."""
    return {
        "command": sys.executable,
        "args": [str(FILES_SERVER)],
        "env": {"FILES_MARKER": str(marker)},
        "connect_timeout": 60,
    }


def _toml(tmp_path: Path, markers: dict[str, Path]) -> Path:
    lines = []
    for name, marker in markers.items():
        entry = _declare(marker)
        lines += [
            f"[mcp_servers.{name}]",
            f"command = {json.dumps(entry['command'])}",
            f"args = {json.dumps(entry['args'])}",
            f"env = {{ FILES_MARKER = {json.dumps(str(marker))} }}",
            "connect_timeout = 60",
        ]
    path = tmp_path / "nexus.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _approve_commands(home: Path, *args: str | Path) -> None:
    """Approve every listed server's command, as an operator would after `nexus tools`."""
    listing = nexus(home, "tools", *args, "--json").json()
    for server in listing["mcp_servers"]:
        if server["command_status"] != "approved":
            pin = server["command_pin"]
            assert nexus(home, "tools", "approve", f"mcp:{server['name']}", "--pin", pin).code == 0


@pytest.mark.slow
def test_a_run_starts_only_the_servers_it_uses_and_a_replay_none(tmp_path: Path) -> None:
    home = tmp_path / "home"
    markers = {name: tmp_path / f"{name}.started" for name in ("a", "b", "c")}
    _toml(tmp_path, {"a": markers["a"], "b": markers["b"]})
    unused = tmp_path / "unused.yaml"
    unused.write_text("version: 1\nname: unused\ntasks:\n  t: {tool: noop}\n")
    uses = tmp_path / "uses.yaml"
    c = json.dumps(_declare(markers["c"]))
    uses.write_text(
        "version: 1\nname: uses\n"
        f"mcp_servers:\n  c: {c}\n"
        "tasks:\n"
        "  t:\n"
        "    tool: c.read_dir\n"
        "    with: {path: docs}\n"
        "    retries: 0\n"
        "    profile: {mcp_tools: [c.read_dir]}\n"
    )
    _approve_commands(home, "--workflow", uses)
    assert nexus(home, "tools", "approve", "c.read_dir", "--workflow", uses, "--yes").code == 0
    for marker in markers.values():
        marker.unlink(missing_ok=True)

    # two servers declared in nexus.toml, neither used: neither is started
    first = nexus(home, "run", unused, "--json")
    assert first.code == 0, first.text
    assert {name: starts(m) for name, m in markers.items()} == {"a": 0, "b": 0, "c": 0}

    # a run that uses the workflow's server starts it, and only it
    ran = nexus(home, "run", uses, "--json")
    assert ran.code == 0, ran.text
    run_id = ran.json()["run_id"]
    output = nexus(home, "inspect", run_id, "--task", "t", "--json").json()["output"]
    assert output["structured"] == {"result": ["docs"]}
    assert {name: starts(m) for name, m in markers.items()} == {"a": 0, "b": 0, "c": 1}

    # a replay executes no tool: it starts nothing
    replayed = nexus(home, "replay", run_id, "--json")
    assert replayed.code == 0, replayed.text
    assert replayed.json()["identical"] is True
    assert {name: starts(m) for name, m in markers.items()} == {"a": 0, "b": 0, "c": 1}


@pytest.mark.slow
def test_a_plan_naming_a_nexus_toml_servers_tool_starts_that_server_alone(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    markers = {name: tmp_path / f"{name}.started" for name in ("a", "b")}
    config = _toml(tmp_path, markers)
    _approve_commands(home, "--config", config)
    project = Project.load(config, home=home)
    pins = PinStore.at_home(home)

    async def approve_read_dir() -> None:
        listed = await server_status("a", project.config.mcp_servers, home=home)
        (read_dir,) = [t for t in listed.tools if t.tool == "read_dir"]
        pins.approve("a", "read_dir", read_dir.pin, descriptor=read_dir.descriptor)

    asyncio.run(approve_read_dir())
    for marker in markers.values():
        marker.unlink(missing_ok=True)

    task = TaskSpec(
        id="t", tool="a.read_dir", args={"path": "src"}, profile={"mcp_tools": ["a.read_dir"]}
    )
    run_plan = Plan(name="toml-server", tasks={"t": task}, workspace=str(tmp_path))

    async def drive() -> RunResult:
        async with (
            project.open_store() as store,
            project.engine(store, plan=run_plan) as engine,
        ):
            return await engine.start(run_plan)

    result = asyncio.run(drive())
    assert result.status == "succeeded", result
    assert {name: starts(m) for name, m in markers.items()} == {"a": 1, "b": 0}
