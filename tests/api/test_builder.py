"""The Python API builds and runs the same plans workflow files do."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import nexus
from nexus import Workflow, WorkflowError, tool
from nexus.agents.base import AgentCall, AgentContext
from nexus.store.sqlite import SQLiteStore


@tool
def greet(who: str) -> str:
    return f"hello {who}"


def _workflow(workspace: Path) -> Workflow:
    wf = Workflow("api-demo", inputs={"who": "world"}, workspace=workspace)
    first = wf.task("greet", tool=greet, args={"who": "{{ inputs.who }}"})

    @wf.function_agent(capabilities=["shout"])
    async def shouter(call: AgentCall, ctx: AgentContext) -> dict[str, Any]:
        return {"text": call.prompt.upper()}

    second = wf.task("shout", needs=[first], capability="shout", prompt="{{ tasks.greet.output }}")
    wf.task(
        "echo",
        needs=[second],
        tool="shell",
        args={"cmd": "echo {{ tasks.shout.output.text }} >> out.txt"},
    )
    return wf


def test_builder_runs_function_tools_agents_and_shell(tmp_path: Path) -> None:
    wf = _workflow(tmp_path)
    result = wf.run_sync(home=tmp_path / "home", inputs={"who": "nexus"})
    assert result.status == "succeeded"
    assert {t["status"] for t in result.tasks.values()} == {"succeeded"}
    assert (tmp_path / "out.txt").read_text() == "HELLO NEXUS\n"


def test_builder_plan_equals_the_yaml_plan(tmp_path: Path) -> None:
    wf = Workflow("same", inputs={"v": "1"}, workspace=tmp_path, retries=2, timeout=60)
    a = wf.task("a", tool="shell", args={"cmd": "echo {{ inputs.v }}"})
    wf.task("b", needs=[a], tool="noop", args={"x": "{{ tasks.a.output.stdout }}"})
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nname: same\ninputs: {v: '1'}\n"
        "defaults: {retries: 2, timeout: 60}\n"
        "tasks:\n"
        "  a: {tool: shell, with: {cmd: 'echo {{ inputs.v }}'}}\n"
        "  b: {needs: [a], tool: noop, with: {x: '{{ tasks.a.output.stdout }}'}}\n"
    )
    from_file = nexus.load_workflow(tmp_path / "wf.yaml")
    assert nexus.plan_hash(wf.compile()) == nexus.plan_hash(from_file)


def test_builder_errors_name_the_task(tmp_path: Path) -> None:
    wf = Workflow("broken", workspace=tmp_path)
    wf.task("a", tool="noop", needs=["missing"])
    with pytest.raises(WorkflowError) as info:
        wf.compile()
    assert "task 'a'" in str(info.value)
    assert "missing" in str(info.value)


def test_replay_of_a_function_tool_run_needs_no_tool(tmp_path: Path) -> None:
    wf = _workflow(tmp_path)
    result = wf.run_sync(home=tmp_path / "home")

    async def replay() -> nexus.ReplayReport:
        store = SQLiteStore.open(tmp_path / "home" / "nexus.db")
        try:
            # the function agent's code must be present; the function tool need not be
            agents = [
                nexus.FunctionAgent(
                    name="shouter",
                    fn=lambda call, ctx: {"text": call.prompt.upper()},
                    capabilities=("shout",),
                )
            ]
            return await nexus.Engine(store, function_agents=agents).replay(result.run_id)
        finally:
            await store.close()

    report = asyncio.run(replay())
    assert report.identical, report.first_divergence
    assert (tmp_path / "out.txt").read_text() == "HELLO WORLD\n"


def test_run_checks_the_workflow_as_nexus_run_checks_a_file(tmp_path: Path) -> None:
    """The project's checks apply: tool arguments, model providers, MCP grants."""
    wf = Workflow("checked", workspace=tmp_path)
    time = wf.mcp_server("time", command="mcp-server-time")
    wf.agent("w", model="opnai:gpt-4.1", capabilities=["w"])
    wf.task("now", tool=time.tool("get_current_time"))
    wf.task("say", tool="shell", args={"command": "echo hi"})
    wf.task("write", capability="w", prompt="hi")
    wf.compile()  # without a project's context: the names only
    with pytest.raises(WorkflowError) as info:
        wf.run_sync(home=tmp_path / "home")
    message = str(info.value)
    assert "did you mean 'openai'" in message
    assert "task 'say'" in message
    assert "cmd" in message
    assert "MCP tool 'time.get_current_time' is not granted" in message


def test_run_knows_the_workflows_function_tools_and_agents(tmp_path: Path) -> None:
    wf = Workflow("mine", workspace=tmp_path)

    @wf.function_agent(capabilities=["echo"])
    async def echo(call: AgentCall, ctx: AgentContext) -> dict[str, Any]:
        return {"text": call.prompt}

    first = wf.task("greet", tool=greet, args={"who": "you"})
    wf.task("echo", needs=[first], capability="echo", prompt="{{ tasks.greet.output }}")
    bad = Workflow("bad", workspace=tmp_path)
    bad.task("greet", tool=greet, args={"whom": "you"})
    with pytest.raises(WorkflowError, match="'who'"):
        bad.run_sync(home=tmp_path / "home")
    result = wf.run_sync(home=tmp_path / "home")
    assert result.status == "succeeded"
