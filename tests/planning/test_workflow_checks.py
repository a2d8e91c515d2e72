"""What ``nexus validate`` checks beyond the shape of a file, and that it reports every problem.

Tool arguments against each tool's schema, the names templates read, model
providers, agent instructions, MCP grants: each problem names the file, the
task (or agent) and the field, and one compilation reports them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nexus.domain.errors import NotFoundError, WorkflowError
from nexus.planning.workflow import (
    ToolInfo,
    WorkflowContext,
    compile_workflow,
    tool_infos,
    validate_workflow,
)
from nexus.tools.builtins import builtin_tools

PROVIDERS = ("anthropic", "cassette", "ollama", "openai", "openai_compatible", "replay", "scripted")
CONTEXT = WorkflowContext(tools=tool_infos(builtin_tools()), providers=PROVIDERS)


def minimal(tasks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"version": 1, "name": "wf", "tasks": tasks, **extra}


def problems(doc: Any, context: WorkflowContext | None = CONTEXT) -> list[WorkflowError]:
    """Every problem compiling ``doc`` reports, in order (none: it compiled)."""
    try:
        compile_workflow(doc, file="flow.yaml", context=context)
    except WorkflowError as exc:
        lines = str(exc).splitlines()
        assert all(line.startswith("flow.yaml") for line in lines), lines
        found = list(exc.problems)
        assert [str(p) for p in found] == lines
        return found
    return []


def only(doc: Any, context: WorkflowContext | None = CONTEXT) -> WorkflowError:
    found = problems(doc, context)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


# --------------------------------------------------------------------------- tool arguments


@pytest.mark.parametrize(
    ("task", "message", "field"),
    [
        ({"tool": "shell"}, "missing argument 'cmd' (tool 'shell' takes: cmd)", "with"),
        ({"tool": "shell", "with": {}}, "missing argument 'cmd'", "with"),
        (
            {"tool": "shell", "with": {"cmd": ["ls", "-l"]}},
            "argument 'cmd' must be a string, not a list",
            "with.cmd",
        ),
        (
            {"tool": "shell", "with": {"cmd": "ls", "timeout": 5}},
            "unknown argument 'timeout' (tool 'shell' takes: cmd)",
            "with.timeout",
        ),
        (
            {"tool": "python", "with": {"code": "1", "inptu": 3}},
            "unknown argument 'inptu' (did you mean 'input'?)",
            "with.inptu",
        ),
        (
            {"tool": "file.read", "with": {"path": "a", "max_bytes": "many"}},
            "argument 'max_bytes' must be an integer, not a string",
            "with.max_bytes",
        ),
        (
            {"tool": "file.read", "with": {"path": "a", "max_bytes": "about {{ inputs.n }}"}},
            "argument 'max_bytes' must be an integer; this template renders to text",
            "with.max_bytes",
        ),
        ({"tool": "http", "with": {"method": "GET"}}, "missing argument 'url'", "with"),
    ],
)
def test_tool_arguments_are_checked_against_the_tool_schema(
    task: dict[str, Any], message: str, field: str
) -> None:
    error = only(minimal({"t": task}, inputs={"n": 3}))
    assert message in str(error)
    assert error.task == "t"
    assert error.field == field


@pytest.mark.parametrize(
    "args",
    [
        {"cmd": "{{ inputs.cmd }}"},  # a string where a string goes
        {"cmd": "echo {{ inputs.cmd }}"},
    ],
)
def test_templated_arguments_pass_where_a_string_goes(args: dict[str, Any]) -> None:
    assert problems(minimal({"t": {"tool": "shell", "with": args}}, inputs={"cmd": "ls"})) == []


def test_a_single_expression_may_stand_for_any_type() -> None:
    doc = minimal(
        {"t": {"tool": "file.read", "with": {"path": "a", "max_bytes": "{{ inputs.n }}"}}},
        inputs={"n": 3},
    )
    assert problems(doc) == []


def test_foreach_arguments_are_checked_per_task() -> None:
    doc = minimal({"t": {"tool": "shell", "foreach": [1, 2], "with": {"command": "{{ item }}"}}})
    found = problems(doc)
    assert [p.field for p in found] == ["with", "with.command"]
    assert "missing argument 'cmd'" in str(found[0])
    assert "unknown argument 'command' (did you mean 'cmd'?)" in str(found[1])


def test_tools_without_a_known_schema_are_not_checked() -> None:
    context = WorkflowContext(tools={"mine": ToolInfo()}, providers=PROVIDERS)
    doc = minimal({"t": {"tool": "mine", "with": {"anything": [1, {"goes": True}]}}})
    assert problems(doc, context) == []
    # a name list alone (the Python API's) checks names, not arguments
    plan = compile_workflow(minimal({"t": {"tool": "shell"}}), known_tools=["shell"])
    assert plan.tasks["t"].tool == "shell"


def test_mcp_tools_are_checked_when_their_schema_is_known_without_starting_them() -> None:
    schema = {"type": "object", "properties": {"timezone": {"type": "string"}}}
    seen: list[str] = []

    def mcp_schema(name: str) -> dict[str, Any] | None:
        seen.append(name)
        return {**schema, "required": ["timezone"]} if name == "time.now" else None

    context = WorkflowContext(tools=CONTEXT.tools, providers=PROVIDERS, mcp_schema=mcp_schema)
    grant = {"mcp_tools": ["time.*"]}
    doc = minimal(
        {
            "a": {"tool": "time.now", "with": {"tz": "UTC"}, "profile": grant},
            "b": {"tool": "time.other", "with": {"tz": "UTC"}, "profile": grant},
        },
        mcp_servers={"time": {"command": "mcp-server-time"}},
    )
    error = only(doc, context)  # the schema allows other keys: only the missing one counts
    assert (error.task, error.field) == ("a", "with")
    assert "missing argument 'timezone'" in str(error)
    assert sorted(set(seen)) == ["time.now", "time.other"]


# --------------------------------------------------------------------------- template names


@pytest.mark.parametrize(
    ("tasks", "inputs", "message", "task", "field"),
    [
        (
            {"t": {"tool": "shell", "with": {"cmd": "echo {{ inputs.nope }}"}}},
            {"version": 1},
            "reads inputs.nope, which the workflow does not declare (declared inputs: version)",
            "t",
            "with.cmd",
        ),
        (
            {"t": {"tool": "shell", "with": {"cmd": "echo {{ inputs['no pe'] | trim }}"}}},
            {},
            "reads inputs['no pe'], which the workflow does not declare (it declares no inputs)",
            "t",
            "with.cmd",
        ),
        (
            {"t": {"tool": "shell", "with": {"cmd": "echo {{ item }}"}}},
            {},
            "reads item, which only a foreach task has",
            "t",
            "with.cmd",
        ),
        (
            {"t": {"tool": "shell", "foreach": "{{ item }}", "with": {"cmd": "echo"}}},
            {},
            "reads item, which only a foreach task has",
            "t",
            "foreach",
        ),
        (
            {"t": {"tool": "shell", "with": {"cmd": "echo {{ index }}"}}},
            {},
            "reads index, which only a foreach task has",
            "t",
            "with.cmd",
        ),
        (
            {"t": {"tool": "shell", "with": {"cmd": "echo {{ tsks.a.output }}"}}},
            {},
            "reads 'tsks', which templates do not have (did you mean 'tasks'?)",
            "t",
            "with.cmd",
        ),
        (
            {"t": {"tool": "shell", "with": {"cmd": "echo {{ run.title }}"}}},
            {},
            "reads run.title; run has id, name",
            "t",
            "with.cmd",
        ),
        (
            {"t": {"tool": "shell", "with": {"cmd": "{{ tasks.ghost.output }}"}}},
            {},
            "reads tasks.ghost but there is no task 'ghost'",
            "t",
            "with.cmd",
        ),
    ],
)
def test_templates_read_only_names_the_run_has(
    tasks: dict[str, Any], inputs: dict[str, Any], message: str, task: str, field: str
) -> None:
    error = only(minimal(tasks, inputs=inputs))
    assert message in str(error)
    assert (error.task, error.field) == (task, field)


def test_names_a_template_sets_itself_are_its_own() -> None:
    cmd = (
        "{% set n = inputs.count %}{% for x in range(n) %}{{ x }}{{ loop.index }}{% endfor %}"
        "{{ inputs.get('maybe', 1) }} {{ run.id }} {{ tasks.a.status }}"
    )
    doc = minimal(
        {
            "a": {"tool": "shell", "with": {"cmd": "true"}},
            "t": {"tool": "shell", "needs": "a", "with": {"cmd": cmd}},
            "each": {"tool": "shell", "foreach": [1], "with": {"cmd": "{{ item }}{{ index }}"}},
        },
        inputs={"count": 2},
    )
    assert problems(doc) == []


def test_a_read_through_other_tasks_is_accepted_and_a_stray_one_is_not() -> None:
    tasks = {
        "a": {"tool": "shell", "with": {"cmd": "true"}},
        "b": {"tool": "shell", "needs": "a", "with": {"cmd": "true"}},
        "c": {"tool": "shell", "needs": "b", "with": {"cmd": "echo {{ tasks.a.output }}"}},
        "d": {"tool": "shell", "with": {"cmd": "echo {{ tasks.a.output }}"}},
    }
    error = only(minimal(tasks))
    assert error.task == "d"
    assert "reads tasks.a but does not depend on it; add it to needs" in str(error)


def test_scripted_lines_are_checked_for_names_too() -> None:
    agents = {"w": {"model": "scripted:w", "capabilities": ["x"], "scripted": ["{{ inputs.x }}"]}}
    error = only(minimal({"t": {"capability": "x", "prompt": "go"}}, agents=agents))
    assert (error.task, error.field) == (None, "agents.w.scripted[0]")
    assert "reads inputs.x, which the workflow does not declare" in str(error)


# --------------------------------------------------------------------------- agent instructions


def _agent(**fields: Any) -> dict[str, Any]:
    return {"w": {"model": "scripted:w", "capabilities": ["write"], "scripted": ["ok"], **fields}}


def test_instructions_are_templates_and_their_syntax_is_checked() -> None:
    doc = minimal({"t": {"agent": "w", "prompt": "go"}}, agents=_agent(instructions="{{ oops"))
    error = only(doc)
    assert "template syntax error" in str(error)
    assert (error.task, error.field) == (None, "agents.w.instructions")


def test_instructions_read_names_like_any_template() -> None:
    agents = _agent(instructions="You write for {{ inputs.audience }}.")
    error = only(minimal({"t": {"agent": "w", "prompt": "go"}}, agents=agents))
    assert (error.task, error.field) == (None, "agents.w.instructions")
    assert "reads inputs.audience, which the workflow does not declare" in str(error)


def test_instructions_reading_item_need_every_task_of_the_agent_to_be_a_foreach() -> None:
    agents = _agent(instructions="Write about {{ item }}.")
    tasks = {
        "each": {"agent": "w", "foreach": ["a", "b"], "prompt": "go"},
        "once": {"capability": "write", "prompt": "go"},
    }
    error = only(minimal(tasks, agents=agents))
    assert (error.task, error.field) == ("once", "agents.w.instructions")
    assert "reads item, which only a foreach task has" in str(error)


def test_instructions_reading_a_task_need_every_task_of_the_agent_to_depend_on_it() -> None:
    agents = _agent(instructions="Facts: {{ tasks.facts.output }}")
    tasks = {
        "facts": {"tool": "shell", "with": {"cmd": "true"}},
        "good": {"agent": "w", "needs": "facts", "prompt": "go"},
        "bad": {"agent": "w", "prompt": "go"},
    }
    error = only(minimal(tasks, agents=agents))
    assert (error.task, error.field) == ("bad", "agents.w.instructions")
    assert "reads tasks.facts but does not depend on it" in str(error)


# --------------------------------------------------------------------------- model providers


@pytest.mark.parametrize(
    ("fields", "message", "field"),
    [
        (
            {"model": "opnai:gpt-4.1"},
            "unknown model provider 'opnai' in 'opnai:gpt-4.1' (did you mean 'openai'?)",
            "agents.w.model",
        ),
        (
            {"model": "scripted:w", "fallbacks": ["antropic:claude"]},
            "unknown model provider 'antropic' in 'antropic:claude' (did you mean 'anthropic'?)",
            "agents.w.fallbacks[0]",
        ),
        (
            {"model": "scripted:w", "tiers": {"small": "zzz:tiny"}},
            "unknown model provider 'zzz' in 'zzz:tiny' (known providers: anthropic, cassette",
            "agents.w.tiers.small",
        ),
    ],
)
def test_unknown_model_providers_are_named_with_a_suggestion(
    fields: dict[str, Any], message: str, field: str
) -> None:
    agents = {"w": {"capabilities": ["write"], "scripted": ["ok"], **fields}}
    error = only(minimal({"t": {"agent": "w", "prompt": "go"}}, agents=agents))
    assert message in str(error)
    assert (error.task, error.field) == (None, field)


def test_providers_are_not_checked_without_a_list() -> None:
    agents = {"w": {"model": "mine:model", "capabilities": ["write"]}}
    plan = compile_workflow(minimal({"t": {"agent": "w", "prompt": "go"}}, agents=agents))
    assert plan.agents["w"].model == "mine:model"


# --------------------------------------------------------------------------- MCP grants

SERVERS = {"git": {"command": "mcp-server-git"}}


def test_an_mcp_tool_task_needs_a_profile_grant() -> None:
    doc = minimal({"log": {"tool": "git.log", "with": {}}}, mcp_servers=SERVERS)
    error = only(doc)
    assert (error.task, error.field) == ("log", "profile")
    assert "MCP tool 'git.log' is not granted by the task's profile" in str(error)
    assert "profile: {mcp_tools: ['git.log']}" in str(error)
    granted = minimal(
        {"log": {"tool": "git.log", "with": {}, "profile": {"mcp_tools": ["git.*"]}}},
        mcp_servers=SERVERS,
    )
    assert problems(granted) == []


def test_an_agent_with_mcp_tools_needs_a_grant_from_its_profile_or_its_tasks() -> None:
    agents = _agent(tools=["git.log", "shell"])
    doc = minimal({"t": {"agent": "w", "prompt": "go"}}, agents=agents, mcp_servers=SERVERS)
    error = only(doc)
    assert (error.task, error.field) == (None, "agents.w.tools[0]")
    assert "agent 'w' may call MCP tool 'git.log', but its profile does not grant it" in str(error)

    agents["w"]["profile"] = {"mcp_tools": ["git.log"]}
    assert problems(doc) == []

    # a task's own profile replaces the agent's, so it must grant the tool too
    doc["tasks"]["t"]["profile"] = {"cpu_seconds": 5}
    error = only(doc)
    assert (error.task, error.field) == ("t", "profile")
    assert "does not grant MCP tool 'git.log', which agent 'w' may call" in str(error)


def test_a_file_compiled_without_a_context_is_not_held_to_grants() -> None:
    # (what ``nexus tools --workflow`` reads to list a file's servers, say)
    doc = minimal({"log": {"tool": "git.log", "with": {}}}, mcp_servers=SERVERS)
    assert compile_workflow(doc).tasks["log"].tool == "git.log"
    assert "is not granted" in str(only(doc, WorkflowContext()))


def test_mcp_servers_declared_in_the_project_count_as_known() -> None:
    context = WorkflowContext(tools=CONTEXT.tools, providers=PROVIDERS, mcp_servers=("git",))
    doc = minimal({"log": {"tool": "git.log", "profile": {"mcp_tools": ["git.log"]}}})
    assert problems(doc, context) == []
    assert "unknown tool 'git.log'" in str(only(doc))


# --------------------------------------------------------------------------- every problem


def test_every_problem_is_reported_in_document_order() -> None:
    doc = minimal(
        {
            "a": {"tool": "shell"},
            "b": {"tool": "shell", "with": {"cmd": ["ls"]}, "needs": ["nope"]},
            "c": {"agent": "w", "prompt": "{{ inputs.missing }}"},
            "d": {"tool": "shel", "with": {"cmd": "ls"}},
        },
        agents={"w": {"model": "opnai:gpt-4.1", "capabilities": ["x"]}},
    )
    found = problems(doc)
    assert [(p.task, p.field) for p in found] == [
        (None, "agents.w.model"),
        ("a", "with"),
        ("b", "with.cmd"),
        ("c", "prompt"),
        ("d", "tool"),
        ("b", "needs"),
    ]
    assert "unknown tool 'shel'" in str(found[4])
    assert "needs unknown task 'nope'" in str(found[5])


def test_schema_problems_are_all_reported() -> None:
    doc = minimal({"t": {"tool": "shell", "retries": "x", "timeout": 0, "priority": 1.5}})
    found = problems(doc)
    assert [p.field for p in found] == ["tasks.t.retries", "tasks.t.timeout", "tasks.t.priority"]
    assert all(p.task == "t" for p in found)


def test_a_limit_stops_compilation_at_once() -> None:
    # past the template budget every further template would fail: it is reported once
    template = "{{ run.name | upper }}{% if run.id %}x{% endif %}" * 40
    tasks = {f"t{i}": {"tool": "shell", "with": {"cmd": template}} for i in range(200)}
    found = problems(minimal(tasks))
    assert len(found) == 1
    assert "128,000 characters (the limit)" in str(found[0])


def test_many_problems_are_capped() -> None:
    tasks = {f"t{i}": {"tool": "shell"} for i in range(300)}
    found = problems(minimal(tasks))
    assert len(found) == 101
    assert "stopped after 100 problems" in str(found[-1])


def test_validate_workflow_gives_the_plan_or_every_problem(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("version: 1\nname: g\ntasks:\n  a: {tool: shell, with: {cmd: ls}}\n")
    checked = validate_workflow(good, context=CONTEXT)
    assert checked.problems == ()
    assert checked.plan is not None
    assert list(checked.plan.tasks) == ["a"]

    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: b\ntasks:\n  a: {tool: shell}\n  b: {tool: shell}\n")
    checked = validate_workflow(bad, context=CONTEXT)
    assert checked.plan is None
    assert [(p.file, p.task, p.field) for p in checked.problems] == [
        (str(bad), "a", "with"),
        (str(bad), "b", "with"),
    ]

    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nname: [\n")
    (problem,) = validate_workflow(broken, context=CONTEXT).problems
    assert "invalid YAML" in str(problem)

    with pytest.raises(NotFoundError):
        validate_workflow(tmp_path / "missing.yaml", context=CONTEXT)
