"""The ``http`` tool from a workflow: ``nexus.toml`` allows destinations, a profile grants them.

``[tools.http] network = [...]`` in ``nexus.toml`` is the most any workflow may
grant the tool; a task's (or agent's) ``profile: {network: [...]}`` grants
some of it to its calls. A wider request is a validation problem naming the
field and what ``nexus.toml`` allows; a call to a destination the grant does
not hold is refused at run time with ``policy_denied``. Through the real
engine, against a loopback server.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nexus.app import Project
from nexus.domain.errors import PolicyDenied, UserError, WorkflowError
from nexus.tools.base import ToolContext
from nexus.tools.builtins import HttpTool
from nexus.tools.profile import ExecProfile, ToolAllowance


@pytest.fixture
def server() -> Iterator[str]:
    """``127.0.0.1:PORT`` of a server answering ``{"hello": <path>}`` to every GET."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"hello": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _project(tmp_path: Path, toml: str) -> Project:
    config = tmp_path / "nexus.toml"
    config.write_text(toml, encoding="utf-8")
    return Project.load(config, home=tmp_path / ".nexus")


def _flow(tmp_path: Path, url: str, profile: str | None) -> Path:
    flow = tmp_path / "flow.yaml"
    lines = ["version: 1", "name: fetch", "tasks:", "  fetch:", "    tool: http"]
    lines.append(f"    with: {{url: {json.dumps(url)}}}")
    if profile is not None:
        lines.append(f"    profile: {profile}")
    flow.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return flow


def _run(project: Project, flow: Path) -> tuple[str, dict[str, Any]]:
    """The run's status and the task's output (or its error), through the real engine."""
    from nexus.planning.workflow import load_workflow

    plan = load_workflow(flow, context=project.workflow_context())

    async def go() -> tuple[str, dict[str, Any]]:
        async with (
            project.open_store() as store,
            project.engine(store, plan=plan) as engine,
        ):
            result = await engine.start(plan)
            state, _ = await engine.load_state(result.run_id)
        task = state.tasks["fetch"]
        return result.status, (task.output if task.output is not None else task.error or {})

    return asyncio.run(go())


def test_a_workflow_reaches_a_host_nexus_toml_allows(tmp_path: Path, server: str) -> None:
    project = _project(tmp_path, f'[tools.http]\nnetwork = ["{server}"]\n')
    flow = _flow(tmp_path, f"http://{server}/hi", f"{{network: [{json.dumps(server)}]}}")
    status, output = _run(project, flow)
    assert status == "succeeded", output
    assert output["status"] == 200
    assert output["json"] == {"hello": "/hi"}


def test_a_grant_is_needed_besides_nexus_toml(tmp_path: Path, server: str) -> None:
    project = _project(tmp_path, f'[tools.http]\nnetwork = ["{server}"]\n')
    status, error = _run(project, _flow(tmp_path, f"http://{server}/hi", None))
    assert status == "failed"
    assert error["kind"] == "policy_denied"
    assert f"{server} is not in the network allow-list (none)" in error["message"]
    # the refusal says how to get it: nexus.toml already allows it
    assert f"grant it with profile: {{network: ['{server}']}}" in error["message"]


def test_a_host_outside_the_grant_is_refused_at_run_time(tmp_path: Path, server: str) -> None:
    other = "127.0.0.1:9"  # allowed and granted is only the server
    project = _project(tmp_path, f'[tools.http]\nnetwork = ["{server}"]\n')
    flow = _flow(tmp_path, f"http://{other}/x", f"{{network: [{json.dumps(server)}]}}")
    status, error = _run(project, flow)
    assert status == "failed"
    assert error["kind"] == "policy_denied"
    assert f"{other} is not in the network allow-list ({server})" in error["message"]
    assert "[tools.http] network" in error["message"]  # nexus.toml does not allow it either


def test_a_grant_wider_than_nexus_toml_is_a_validation_problem(tmp_path: Path, server: str) -> None:
    from nexus.planning.workflow import load_workflow

    project = _project(tmp_path, f'[tools.http]\nnetwork = ["{server}"]\n')
    flow = _flow(tmp_path, "https://api.github.com/", '{network: ["api.github.com:443"]}')
    with pytest.raises(WorkflowError) as info:
        load_workflow(flow, context=project.workflow_context())
    error = info.value
    assert (error.task, error.field) == ("fetch", "profile.network")
    assert "'api.github.com:443' is more than nexus.toml allows tool 'http'" in str(error)
    assert f"(allowed: {server})" in str(error)


def test_without_nexus_toml_no_network_may_be_granted(tmp_path: Path) -> None:
    from nexus.planning.workflow import load_workflow

    project = _project(tmp_path, "")
    flow = _flow(tmp_path, "https://api.github.com/", '{network: ["api.github.com:443"]}')
    with pytest.raises(WorkflowError) as info:
        load_workflow(flow, context=project.workflow_context())
    assert "nexus.toml allows tool 'http' no network" in str(info.value)
    assert '[tools.http] network = ["api.github.com:443"]' in str(info.value)


def test_an_agent_profile_is_held_to_what_its_tools_are_allowed(
    tmp_path: Path, server: str
) -> None:
    from nexus.planning.workflow import load_workflow

    project = _project(tmp_path, f'[tools.http]\nnetwork = ["{server}"]\n')
    flow = tmp_path / "agent.yaml"
    flow.write_text(
        "version: 1\nname: a\nagents:\n  w:\n    model: scripted:w\n    capabilities: [x]\n"
        f"    tools: [http, shell]\n    profile: {{network: [{json.dumps(server)}, 'evil:443']}}\n"
        "tasks:\n  t: {capability: x, prompt: go}\n",
        encoding="utf-8",
    )
    with pytest.raises(WorkflowError) as info:
        load_workflow(flow, context=project.workflow_context())
    assert info.value.field == "agents.w.profile.network"
    assert "'evil:443' is more than nexus.toml allows any of agent 'w''s tools" in str(info.value)


# --------------------------------------------------------------------------- nexus.toml


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ("[tools.http]\nnetwork = ['pypi.org']\n", "tools.http.network"),
        ("[tools.http]\nnetwork = 'all'\n", "tools.http.network"),
        ("[tools.http]\nnetwrok = []\n", "did you mean 'network'?"),
        ("[tools.hammer]\nnetwork = []\n", "tools.hammer: no built-in tool 'hammer'"),
        ("[tools.noop]\nnetwork = []\n", "tools.noop: no built-in tool 'noop'"),
        ("[tools.shell]\nread_paths = ['relative']\n", "tools.shell.read_paths"),
        ("[tools.shell]\nsandbox = 'none'\n", "tools.shell.sandbox"),
        ("[tools]\nhttp = 5\n", "tools.http: expected a table"),
    ],
)
def test_bad_tools_tables_name_the_key(tmp_path: Path, toml: str, problem: str) -> None:
    with pytest.raises(UserError) as info:
        _project(tmp_path, toml)
    assert str(tmp_path / "nexus.toml") in str(info.value)
    assert problem in str(info.value)


def test_the_tools_table_reaches_the_registry(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        '[tools.http]\nnetwork = ["api.github.com:443"]\n'
        '[tools."file.read"]\nread_paths = ["/srv/data"]\n'
        '[tools.shell]\nsandbox = "rlimits"\n',
    )
    tools = project.tools()
    http = tools.get("http")
    assert isinstance(http, HttpTool)
    assert http.profile.network == "none"  # nothing without a grant
    assert http.allowed is not None
    assert http.allowed.network == ("api.github.com:443",)
    assert tools.get("file.read").allowed.read_paths == ("/srv/data",)  # type: ignore[attr-defined]
    assert tools.get("shell").profile.sandbox == "rlimits"  # type: ignore[attr-defined]
    assert project.config.to_dict()["tools"]["http"] == {"network": ["api.github.com:443"]}


# --------------------------------------------------------------------------- the tool itself


def test_an_allowance_lets_a_grant_widen_the_tool_and_no_further(tmp_path: Path) -> None:
    allowance = ToolAllowance.from_dict({"network": ["allowed.test:443"]}, "tools.http")
    tool = allowance.apply(HttpTool())
    assert isinstance(tool, HttpTool)

    def ctx(grant: dict[str, Any] | None = None, profile: ExecProfile | None = None) -> ToolContext:
        return ToolContext("r", "t", 1, tmp_path, grant=grant, profile=profile)

    def call(url: str, context: ToolContext) -> Any:
        return asyncio.run(tool({"url": url}, context))

    with pytest.raises(PolicyDenied, match=r"allow-list \(none\)"):
        call("https://allowed.test/", ctx())
    with pytest.raises(PolicyDenied, match=r"allow-list \(none\)"):
        call("https://other.test/", ctx({"network": ["other.test:443"]}))
    python_grant = ExecProfile(network=("allowed.test:443", "other.test:443"))
    with pytest.raises(PolicyDenied, match=r"allow-list \(allowed.test:443\)"):
        call("https://other.test/", ctx(profile=python_grant))


# --------------------------------------------------------------------------- [tools] sandbox


def test_the_missing_sandbox_says_where_the_weaker_fallback_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nexus.tools import sandbox
    from nexus.tools.profile import SHELL_PROFILE

    monkeypatch.setattr(sandbox, "BWRAP", "nexus-test-no-such-bwrap")
    with pytest.raises(PolicyDenied) as info:
        asyncio.run(
            sandbox.run_sandboxed(["/bin/true"], profile=SHELL_PROFILE, workspace=tmp_path, env={})
        )
    message = str(info.value)
    assert "'nexus-test-no-such-bwrap' is not installed" in message
    assert '[tools.shell] sandbox = "rlimits" in nexus.toml' in message
    assert "weaker" in message
    assert "no file-system or process isolation, no network allow-list" in message


def test_a_workflow_may_not_choose_the_weaker_sandbox_itself(tmp_path: Path) -> None:
    from nexus.planning.workflow import load_workflow

    flow = tmp_path / "weak.yaml"
    flow.write_text(
        "version: 1\nname: weak\ntasks:\n"
        "  t: {tool: shell, with: {cmd: 'true'}, profile: {sandbox: rlimits}}\n",
        encoding="utf-8",
    )
    with pytest.raises(WorkflowError) as info:
        load_workflow(flow, context=_project(tmp_path, "").workflow_context())
    assert info.value.field == "profile.sandbox"
    assert '[tools.shell] sandbox = "rlimits"' in str(info.value)
    allowed = _project(tmp_path, '[tools.shell]\nsandbox = "rlimits"\n')
    assert load_workflow(flow, context=allowed.workflow_context()).tasks["t"].profile == {
        "sandbox": "rlimits"
    }


# --------------------------------------------------------------------------- read paths


def test_read_paths_need_both_keys_too(tmp_path: Path) -> None:
    from nexus.tools.builtins import FileRead

    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("hello", encoding="utf-8")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    allowance = ToolAllowance.from_dict({"read_paths": [str(data)]}, 'tools."file.read"')
    tool = allowance.apply(FileRead())
    args = {"path": str(data / "notes.txt")}

    def read(grant: dict[str, Any] | None) -> Any:
        return asyncio.run(tool(args, ToolContext("r", "t", 1, workspace, grant=grant)))

    with pytest.raises(PolicyDenied):
        read(None)  # nexus.toml alone grants nothing
    assert read({"read_paths": [str(data)]})["text"] == "hello"
    # a wider grant gets what is allowed of it (validate refuses to compile it anyway)
    (tmp_path / "secret.txt").write_text("no", encoding="utf-8")
    wide = {"read_paths": [str(tmp_path)]}
    assert read(wide)["text"] == "hello"
    with pytest.raises(PolicyDenied):
        asyncio.run(
            tool(
                {"path": str(tmp_path / "secret.txt")},
                ToolContext("r", "t", 1, workspace, grant=wide),
            )
        )
