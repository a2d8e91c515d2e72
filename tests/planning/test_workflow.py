"""Workflow files compile to plans; every invalid file is a WorkflowError that says where."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.domain.errors import NotFoundError, WorkflowError
from nexus.domain.plan import (
    AgentSpec,
    Plan,
    RetryPolicy,
    TaskSpec,
    plan_hash,
    recorded_plan_hash,
)
from nexus.planning.workflow import compile_workflow, load_workflow
from nexus.planning.workflow._values import simple_reads
from nexus.templating import check_syntax, inspect_reads

EXAMPLE = """\
version: 1
name: release-notes
description: optional text
inputs: {version: "1.0"}
fail_fast: true
max_parallel: 16
agents:
  writer:
    role: writer
    model: scripted:writer
    capabilities: [write]
    instructions: You write short release notes.
    scripted: ["Release {{ inputs.version }}: faster, safer."]
    max_concurrency: 0
defaults: {retries: 2, timeout: 60, backoff: {initial: 0.5, multiplier: 2, maximum: 30}}
tasks:
  changelog:
    tool: shell
    with: {cmd: "git log --oneline -5 || echo none"}
  draft:
    needs: [changelog]
    capability: write
    prompt: "Write notes from: {{ tasks.changelog.output.stdout }}"
  per_platform:
    needs: [draft]
    foreach: [linux, macos]
    tool: shell
    with: {cmd: "echo {{ item }}"}
    retries: 0
"""


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def example_doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE)
    return doc


def minimal(tasks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"version": 1, "name": "wf", "tasks": tasks, **extra}


def workflow_error(doc: Any, **kwargs: Any) -> WorkflowError:
    with pytest.raises(WorkflowError) as info:
        compile_workflow(doc, file="flow.yaml", **kwargs)
    assert type(info.value) is WorkflowError
    return info.value


# --------------------------------------------------------------------------- happy path


def test_example_compiles_to_the_expected_plan(tmp_path: Path) -> None:
    plan = load_workflow(write(tmp_path, EXAMPLE))

    retry = RetryPolicy(retries=2, initial=0.5, multiplier=2.0, maximum=30.0)
    expected = Plan(
        name="release-notes",
        tasks={
            "changelog": TaskSpec(
                id="changelog",
                tool="shell",
                args={"cmd": "git log --oneline -5 || echo none"},
                retry=retry,
                timeout=60.0,
            ),
            "draft": TaskSpec(
                id="draft",
                needs=("changelog",),
                capability="write",
                prompt="Write notes from: {{ tasks.changelog.output.stdout }}",
                retry=retry,
                timeout=60.0,
            ),
            "per_platform": TaskSpec(
                id="per_platform",
                needs=("draft",),
                tool="shell",
                args={"cmd": "echo {{ item }}"},
                foreach=["linux", "macos"],
                retry=RetryPolicy(retries=0, initial=0.5, multiplier=2.0, maximum=30.0),
                timeout=60.0,
            ),
        },
        agents={
            "writer": AgentSpec(
                name="writer",
                role="writer",
                model="scripted:writer",
                capabilities=("write",),
                instructions="You write short release notes.",
                scripted=("Release {{ inputs.version }}: faster, safer.",),
                max_concurrency=0,
            )
        },
        inputs={"version": "1.0"},
        workspace=str(tmp_path.resolve()),
        fail_fast=True,
        max_parallel=16,
        version=1,
    )
    assert plan == expected
    assert list(plan.tasks) == ["changelog", "draft", "per_platform"]
    assert Plan.from_dict(plan.to_dict()) == plan


def test_minimal_workflow_uses_the_defaults() -> None:
    plan = compile_workflow(minimal({"only": {"tool": "shell"}}))
    assert plan.workspace is None
    assert plan.fail_fast is True
    assert plan.max_parallel == 16
    assert plan.agents == {}
    assert plan.inputs == {}
    assert plan.tasks["only"] == TaskSpec(id="only", tool="shell")


def test_single_string_needs_and_per_task_overrides() -> None:
    doc = minimal(
        {
            "a": {"tool": "shell"},
            "b": {
                "tool": "shell",
                "needs": "a",
                "retries": 5,
                "timeout": 2,
                "priority": -3,
                "backoff": {"initial": 1},
            },
        },
        defaults={"retries": 1, "timeout": 10, "backoff": {"maximum": 9}},
        fail_fast=False,
        max_parallel=2,
    )
    plan = compile_workflow(doc)
    b = plan.tasks["b"]
    assert b.needs == ("a",)
    assert b.retry == RetryPolicy(retries=5, initial=1.0, multiplier=2.0, maximum=9.0)
    assert b.timeout == 2.0
    assert b.priority == -3
    assert plan.tasks["a"].retry == RetryPolicy(retries=1, maximum=9.0)
    assert plan.tasks["a"].timeout == 10.0
    assert (plan.fail_fast, plan.max_parallel) == (False, 2)


def test_agent_task_by_name_and_template_foreach() -> None:
    doc = minimal(
        {
            "ask": {"agent": "bot", "prompt": "Hi {{ inputs.who }}"},
            "each": {"needs": ["ask"], "tool": "shell", "foreach": "{{ inputs.items }}"},
        },
        agents={"bot": {"model": "openai:gpt-4o"}},
        inputs={"who": "you", "items": [1, 2]},
    )
    plan = compile_workflow(doc)
    assert plan.tasks["ask"].agent == "bot"
    assert plan.tasks["each"].foreach == "{{ inputs.items }}"
    assert plan.agents["bot"] == AgentSpec(name="bot", model="openai:gpt-4o")


def test_reading_a_transitive_dependency_is_allowed() -> None:
    doc = minimal(
        {
            "a": {"tool": "shell"},
            "b": {"tool": "shell", "needs": ["a"]},
            "c": {"tool": "shell", "needs": ["b"], "with": {"x": "{{ tasks['a'].output }}"}},
        }
    )
    assert list(compile_workflow(doc).tasks) == ["a", "b", "c"]


def test_yaml_dates_stay_strings(tmp_path: Path) -> None:
    text = "version: 1\nname: d\ninputs: {day: 2024-05-01}\ntasks: {a: {tool: shell}}\n"
    assert load_workflow(write(tmp_path, text)).inputs == {"day": "2024-05-01"}


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    text = "version: 1\nname: m\ntasks:\n  a:\n    <<: {tool: shell, retries: 1}\n    retries: 3\n"
    assert load_workflow(write(tmp_path, text)).tasks["a"].retry.retries == 3


def test_workspace_is_resolved_against_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the project directory: ../out from flows/ lies in it
    sub = tmp_path / "flows"
    sub.mkdir()
    relative = load_workflow(write(sub, EXAMPLE + "workspace: ../out\n"))
    assert relative.workspace == str((tmp_path / "out").resolve())
    absolute = load_workflow(write(sub, EXAMPLE + f"workspace: {tmp_path / 'abs'}\n"))
    assert absolute.workspace == str((tmp_path / "abs").resolve())
    doc = minimal({"a": {"tool": "shell"}}, workspace="ws")
    assert compile_workflow(doc, base_dir=tmp_path).workspace == str((tmp_path / "ws").resolve())
    assert compile_workflow(minimal({"a": {"tool": "shell"}}), base_dir=tmp_path).workspace == str(
        tmp_path.resolve()
    )


def test_workspace_does_not_change_the_plan_hash(tmp_path: Path) -> None:
    one = load_workflow(write(tmp_path, EXAMPLE))
    two = load_workflow(write(tmp_path, EXAMPLE + "workspace: elsewhere\n", "two.yaml"))
    assert one.workspace != two.workspace
    assert plan_hash(one) == plan_hash(two)


def test_the_hash_of_a_recorded_plan_is_its_plan_hash(tmp_path: Path) -> None:
    """A run's start hashes the plan it records (written once), not the plan again."""
    one = load_workflow(write(tmp_path, EXAMPLE))
    two = load_workflow(write(tmp_path, EXAMPLE + "workspace: elsewhere\n", "two.yaml"))
    recorded = one.to_dict()
    assert recorded_plan_hash(recorded) == plan_hash(one) == recorded_plan_hash(two.to_dict())
    assert "workspace" in recorded  # the record keeps it; only the hash leaves it out


def test_known_tools_accepts_listed_tools() -> None:
    plan = compile_workflow(minimal({"a": {"tool": "shell"}}), known_tools={"shell", "http"})
    assert plan.tasks["a"].tool == "shell"


def test_plan_does_not_share_mutable_values_with_the_document() -> None:
    doc = minimal({"a": {"tool": "shell", "with": {"argv": ["x"]}, "foreach": [[1]]}})
    plan = compile_workflow(doc)
    doc["tasks"]["a"]["with"]["argv"].append("y")
    doc["tasks"]["a"]["foreach"][0].append(2)
    assert plan.tasks["a"].args == {"argv": ["x"]}
    assert plan.tasks["a"].foreach == [[1]]


# --------------------------------------------------------------------------- plan hash


def _permuted(doc: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    out = copy.deepcopy(doc)

    def shuffle_map(mapping: dict[str, Any]) -> dict[str, Any]:
        items = list(mapping.items())
        rng.shuffle(items)
        return dict(items)

    out["agents"] = shuffle_map(out["agents"])
    for agent in out["agents"].values():
        rng.shuffle(agent["capabilities"])
    out["tasks"] = shuffle_map(out["tasks"])
    for task in out["tasks"].values():
        if isinstance(task.get("needs"), list):
            rng.shuffle(task["needs"])
    return shuffle_map(out)


def test_plan_hash_ignores_the_order_of_unordered_fields(tmp_path: Path) -> None:
    doc = minimal(
        {
            "a": {"tool": "shell"},
            "b": {"tool": "shell"},
            "c": {"tool": "shell", "needs": ["a", "b"]},
            "d": {"needs": ["c", "a", "b"], "capability": "write", "prompt": "go"},
            "e": {"needs": ["d", "b"], "agent": "reviewer", "prompt": "check"},
        },
        agents={
            "writer": {"model": "scripted:w", "capabilities": ["write", "edit", "draft"]},
            "reviewer": {"model": "scripted:r", "capabilities": ["review", "write"]},
            "idle": {"model": "scripted:i", "capabilities": ["a", "b", "c"]},
        },
        inputs={"x": 1, "y": 2},
    )
    reference = load_workflow(write(tmp_path, yaml.safe_dump(doc, sort_keys=False)))
    rng = random.Random(7)
    for i in range(10):
        shuffled = _permuted(doc, rng)
        text = yaml.safe_dump(shuffled, sort_keys=False)
        plan = load_workflow(write(tmp_path, text, f"p{i}.yaml"))
        assert list(plan.tasks) == list(shuffled["tasks"])  # file order is kept
        assert plan_hash(plan) == plan_hash(reference)


def test_plan_hash_changes_with_inputs(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE)
    assert plan_hash(load_workflow(path)) != plan_hash(load_workflow(path, inputs={"version": "2"}))


# --------------------------------------------------------------------------- inputs


def test_inputs_override_the_declared_defaults(tmp_path: Path) -> None:
    text = EXAMPLE.replace('inputs: {version: "1.0"}', 'inputs: {version: "1.0", channel: beta}')
    plan = load_workflow(write(tmp_path, text), inputs={"version": "2.0"})
    assert plan.inputs == {"version": "2.0", "channel": "beta"}


def test_undeclared_input_override_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE)
    with pytest.raises(WorkflowError) as info:
        load_workflow(path, inputs={"verison": "2.0"})
    message = str(info.value)
    assert str(path) in message
    assert "unknown input 'verison'" in message
    assert "declared inputs: version" in message


def test_override_without_declared_inputs() -> None:
    error = workflow_error(minimal({"a": {"tool": "shell"}}), inputs={"x": 1})
    assert "unknown input 'x'" in str(error)
    assert "declares no inputs" in str(error)


def test_override_values_must_be_json() -> None:
    doc = minimal({"a": {"tool": "shell"}}, inputs={"x": 1})
    error = workflow_error(doc, inputs={"x": {1, 2}})
    assert error.field == "inputs.x"
    assert "not a JSON value" in str(error)


# --------------------------------------------------------------------------- file errors


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(NotFoundError) as info:
        load_workflow(path)
    assert str(path) in str(info.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError) as info:
        load_workflow(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert "cannot read" in str(info.value)


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"version: 1\nname: \xff\xfe\n")
    with pytest.raises(WorkflowError, match="not UTF-8"):
        load_workflow(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\nname: x\ntasks:\n  a: {tool: shell\n", "line 5, column 1"),
        ("version: 1\nname: x\ntasks: [\n", "invalid YAML at line 4"),
        ("version: 1\nname: x\n  bad indent: 1\n", "invalid YAML at line 3"),
        ("x: *nope\n", "undefined alias"),
        (
            "version: 1\nname: x\ntasks:\n  a: {tool: shell}\n  a: {tool: http}\n",
            "line 5, column 3: duplicate key 'a' (first defined at line 4)",
        ),
        ("version: 1\nversion: 1\n", "duplicate key 'version'"),
        ("version: 1\nname: x\ntasks:\n  a: {tool: x, with: {k: 1, k: 2}}\n", "duplicate key 'k'"),
    ],
)
def test_bad_yaml(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(WorkflowError) as info:
        load_workflow(path)
    assert type(info.value) is WorkflowError
    assert str(path) in str(info.value)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the workflow is empty"),
        ("- a\n- b\n", "must be a mapping"),
        ("just text\n", "must be a mapping"),
        ("version: 2\nname: x\ntasks: {a: {tool: s}}\n", "unsupported workflow version 2"),
        ("version: true\nname: x\ntasks: {a: {tool: s}}\n", "unsupported workflow version True"),
        ("name: x\ntasks: {a: {tool: s}}\n", "missing required key 'version'"),
        ("version: 1\ntasks: {a: {tool: s}}\n", "missing required key 'name'"),
        ("version: 1\nname: x\n", "missing required key 'tasks'"),
        ("version: 1\nname: x\ntasks:\n", "the workflow has no tasks"),
        ("version: 1\nname: x\ntasks: {}\n", "the workflow has no tasks"),
        ("version: 1\nname: a b\ntasks: {a: {tool: s}}\n", "should match pattern"),
        ("version: 1\nname: x\nmax_parallel: 0\ntasks: {a: {tool: s}}\n", "greater than"),
        ("version: 1\nname: x\nfail_fast: maybe\ntasks: {a: {tool: s}}\n", "valid boolean"),
        ("version: 1\nname: x\ntask: {a: {tool: s}}\n", "unknown key 'task'"),
        ("version: 1\nname: x\ninputs: {1: a}\ntasks: {a: {tool: s}}\n", "key 1"),
        ("version: 1\nname: x\ninputs: {b: !!binary aGk=}\ntasks: {a: {tool: s}}\n", "JSON"),
        ("version: 1\nname: x\ninputs: {b: .nan}\ntasks: {a: {tool: s}}\n", "not a JSON number"),
    ],
)
def test_invalid_top_level(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(WorkflowError) as info:
        load_workflow(path)
    assert type(info.value) is WorkflowError
    assert str(path) in str(info.value)
    assert expected in str(info.value)


# --------------------------------------------------------------------------- task errors

AGENTS = {"writer": {"model": "scripted:w", "capabilities": ["write"]}}

TASK_ERRORS: list[tuple[str, dict[str, Any], str, str, str | None]] = [
    # (case, tasks, task named in the error, problem, field)
    ("bad id", {"a b": {"tool": "s"}}, "a b", "invalid task id 'a b'", "tasks"),
    (
        "pydantic",
        {"t": {"tool": "s", "retries": -1}},
        "t",
        "greater than or equal to 0, got -1",
        "tasks.t.retries",
    ),
    (
        "pydantic, several",
        {"t": {"tool": "s", "retries": "x", "timeout": 0, "priority": 1.5}},
        "t",
        "flow.yaml, task 't', field 'tasks.t.priority': Input should be a valid integer",
        "tasks.t.retries",
    ),
    ("pydantic, bool", {"t": {"tool": "s", "priority": True}}, "t", "valid integer", None),
    ("typo", {"t": {"tool": "s", "need": ["x"]}}, "t", "did you mean 'needs'?", "tasks.t.need"),
    ("with args", {"t": {"tool": "s", "args": {}}}, "t", "unknown key 'args'", "tasks.t.args"),
    ("bad needs type", {"t": {"tool": "s", "needs": 3}}, "t", "valid list", "tasks.t.needs"),
    ("unknown need", {"t": {"tool": "s", "needs": ["x"]}}, "t", "unknown task 'x'", "needs"),
    ("known listed", {"t": {"tool": "s", "needs": ["x"]}}, "t", "known tasks: t", "needs"),
    (
        "close match",
        {"build": {"tool": "s"}, "t": {"tool": "s", "needs": "biuld"}},
        "t",
        "did you mean 'build'?",
        "needs",
    ),
    ("self", {"t": {"tool": "s", "needs": "t"}}, "t", "depends on itself", "needs"),
    (
        "twice",
        {"a": {"tool": "s"}, "t": {"tool": "s", "needs": ["a", "a"]}},
        "t",
        "lists 'a' twice",
        "needs",
    ),
    (
        "cycle",
        {"a": {"tool": "s", "needs": "b"}, "b": {"tool": "s", "needs": "a"}},
        "a",
        "dependency cycle: a -> b -> a",
        "needs",
    ),
    (
        "long cycle",
        {
            "a": {"tool": "s", "needs": "c"},
            "b": {"tool": "s", "needs": "a"},
            "c": {"tool": "s", "needs": "b"},
            "d": {"tool": "s", "needs": "c"},
        },
        "a",
        "dependency cycle: a -> c -> b -> a",
        "needs",
    ),
    ("unknown agent", {"t": {"agent": "nobody", "prompt": "p"}}, "t", "unknown agent", "agent"),
    ("agents listed", {"t": {"agent": "nobody", "prompt": "p"}}, "t", "agents: writer", "agent"),
    (
        "capability",
        {"t": {"capability": "sing", "prompt": "p"}},
        "t",
        "no agent has capability 'sing' (available capabilities: write)",
        "capability",
    ),
    ("tool and prompt", {"t": {"tool": "s", "prompt": "p"}}, "t", "not both", "prompt"),
    ("tool and agent", {"t": {"tool": "s", "agent": "writer"}}, "t", "not both", "agent"),
    ("neither", {"t": {"needs": []}}, "t", "the task does nothing", None),
    ("empty", {"t": {}}, "t", "the task does nothing", None),
    (
        "agent and capability",
        {"t": {"agent": "writer", "capability": "write", "prompt": "p"}},
        "t",
        "either `agent` or `capability`",
        "capability",
    ),
    ("no prompt", {"t": {"agent": "writer"}}, "t", "needs a `prompt`", "prompt"),
    ("prompt only", {"t": {"prompt": "p"}}, "t", "needs an `agent` or a `capability`", "prompt"),
    (
        "with on agent task",
        {"t": {"agent": "writer", "prompt": "p", "with": {"a": 1}}},
        "t",
        "`with` is for tool tasks",
        "with",
    ),
    (
        "template in with",
        {"t": {"tool": "s", "with": {"cmd": "echo {{ item"}}},
        "t",
        "template syntax error",
        "with.cmd",
    ),
    (
        "nested template",
        {"t": {"tool": "s", "with": {"env": {"A": ["ok", "{% if %}"]}}}},
        "t",
        "template syntax error",
        "with.env.A[1]",
    ),
    (
        "unknown filter",
        {"t": {"tool": "s", "with": {"cmd": "{{ item | nosuchfilter }}"}}},
        "t",
        "No filter named 'nosuchfilter'",
        "with.cmd",
    ),
    (
        "template in prompt",
        {"t": {"agent": "writer", "prompt": "{{ }}"}},
        "t",
        "template syntax error",
        "prompt",
    ),
    (
        "template in foreach",
        {"t": {"tool": "s", "foreach": "{{ inputs.x ) }}"}},
        "t",
        "template syntax error",
        "foreach",
    ),
    (
        "reads a non-dependency",
        {
            "a": {"tool": "s"},
            "t": {"tool": "s", "with": {"cmd": "{{ tasks.a.output }}"}},
        },
        "t",
        "reads tasks.a but does not depend on it; add it to needs",
        "with.cmd",
    ),
    (
        "reads a sibling",
        {
            "a": {"tool": "s"},
            "b": {"tool": "s", "needs": "a"},
            "c": {"tool": "s", "needs": "a"},
            "t": {"tool": "s", "needs": "c", "foreach": "{{ tasks['b'].output.items }}"},
        },
        "t",
        "reads tasks.b but does not depend on it",
        "foreach",
    ),
    (
        "reads a missing task",
        {"t": {"agent": "writer", "prompt": "{{ tasks.ghost.output }}"}},
        "t",
        "reads tasks.ghost but there is no task 'ghost'",
        "prompt",
    ),
    (
        "reads a hyphenated id",
        {
            "my-step": {"tool": "s"},
            "t": {"tool": "s", "needs": "my-step", "with": {"c": "{{ tasks.my-step.output }}"}},
        },
        "t",
        "write tasks['my-step']",
        "with.c",
    ),
    (
        "reads itself",
        {"t": {"tool": "s", "with": {"cmd": "{{ tasks.t.output }}"}}},
        "t",
        "reads its own output",
        "with.cmd",
    ),
    ("foreach number", {"t": {"tool": "s", "foreach": 3}}, "t", "foreach must be", "foreach"),
    (
        "foreach mapping",
        {"t": {"tool": "s", "foreach": {"a": 1}}},
        "t",
        "not a mapping",
        "foreach",
    ),
    (
        "foreach plain string",
        {"t": {"tool": "s", "foreach": "linux"}},
        "t",
        "a list such as [linux]",
        "foreach",
    ),
    (
        "foreach item template",
        {"t": {"tool": "s", "foreach": ["ok", "{{ bad"]}},
        "t",
        "template syntax error",
        "foreach[1]",
    ),
    ("nan", {"t": {"tool": "s", "with": {"x": float("nan")}}}, "t", "not a JSON", "with.x"),
    ("int key", {"t": {"tool": "s", "with": {"x": {1: 2}}}}, "t", "must be a string", "with.x"),
    ("bytes", {"t": {"tool": "s", "with": {"x": b"1"}}}, "t", "not a JSON value", "with.x"),
    ("huge", {"t": {"tool": "s", "with": {"x": 2**60}}}, "t", "too large", "with.x"),
    ("empty tool", {"t": {"tool": ""}}, "t", "at least 1 character", "tasks.t.tool"),
    (
        "backoff",
        {"t": {"tool": "s", "backoff": {"multiplier": 0.5}}},
        "t",
        "greater than or equal to 1",
        "tasks.t.backoff.multiplier",
    ),
    (
        "backoff typo",
        {"t": {"tool": "s", "backoff": {"max": 5}}},
        "t",
        "unknown key 'max' (did you mean 'maximum'?)",
        "tasks.t.backoff.max",
    ),
]


@pytest.mark.parametrize(
    ("tasks", "task", "problem", "field"),
    [case[1:] for case in TASK_ERRORS],
    ids=[case[0] for case in TASK_ERRORS],
)
def test_task_errors_name_file_task_and_problem(
    tmp_path: Path, tasks: dict[str, Any], task: str, problem: str, field: str | None
) -> None:
    error = workflow_error(minimal(tasks, agents=AGENTS))
    message = str(error)
    assert message.startswith("flow.yaml")
    assert f"task '{task}'" in message
    assert problem in message
    assert error.file == "flow.yaml"
    assert error.task == task
    if field is not None:
        assert error.field == field


def test_task_error_from_a_file_names_the_path(tmp_path: Path) -> None:
    text = EXAMPLE.replace("needs: [changelog]", "needs: [changelogs]")
    path = write(tmp_path, text)
    with pytest.raises(WorkflowError) as info:
        load_workflow(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "task 'draft'" in message
    assert "unknown task 'changelogs' (did you mean 'changelog'?)" in message


def test_unknown_tool() -> None:
    error = workflow_error(minimal({"t": {"tool": "shel"}}), known_tools=["shell", "http"])
    assert "task 't'" in str(error)
    assert "unknown tool 'shel' (known tools: http, shell)" in str(error)
    assert error.field == "tool"


def test_many_known_names_are_abbreviated() -> None:
    tasks: dict[str, Any] = {f"task{i:02}": {"tool": "s"} for i in range(30)}
    tasks["t"] = {"tool": "s", "needs": ["zzz"]}
    message = str(workflow_error(minimal(tasks)))
    assert "unknown task 'zzz'" in message
    assert "(31 in all)" in message


@pytest.mark.parametrize(
    ("agents", "problem", "field"),
    [
        ({"w": {"model": "gpt4"}}, "model 'gpt4' must be 'provider:model'", "agents.w.model"),
        ({"w": {"model": ":x"}}, "must be 'provider:model'", "agents.w.model"),
        ({"w": {"model": "openai:"}}, "must be 'provider:model'", "agents.w.model"),
        ({"w": {}}, "missing required key 'model'", "agents.w.model"),
        ({"w": {"model": "a:b", "toolz": []}}, "unknown key 'toolz'", "agents.w.toolz"),
        (
            {"w": {"model": "a:b", "fallbacks": ["gpt"]}},
            "'provider:model'",
            "agents.w.fallbacks[0]",
        ),
        ({"w": {"model": "a:b", "tiers": {"huge": "a:c"}}}, "huge", None),
        ({"w": {"model": "a:b", "max_steps": 0}}, "greater than", None),
        ({"w": {"model": "a:b", "budget": {"usd": -1}}}, "usd", "agents.w.budget"),
        ({"w": {"model": "a:b", "budget": {"dollars": 1}}}, "unknown key 'dollars'", None),
        ({"w": {"model": "a:b", "profile": {"network": 5}}}, "network", "agents.w.profile"),
        ({"w": {"model": "a:b", "max_concurrency": -1}}, "greater than", None),
        ({"bad name": {"model": "a:b"}}, "invalid agent name 'bad name'", "agents"),
        (
            {"w": {"model": "a:b", "scripted": ["fine", "{{ oops"]}},
            "template syntax error",
            "agents.w.scripted[1]",
        ),
    ],
)
def test_agent_errors(agents: dict[str, Any], problem: str, field: str | None) -> None:
    error = workflow_error(minimal({"t": {"tool": "s"}}, agents=agents))
    assert str(error).startswith("flow.yaml")
    assert str(error).count("flow.yaml") == 1  # the location is said once
    assert problem in str(error)
    assert error.task is None
    if field is not None:
        assert error.field == field


# --------------------------------------------------------------------------- properties


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """Task id -> needs, acyclic, with ids in a random file order."""
    ids = draw(
        st.lists(
            st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,5}", fullmatch=True),
            min_size=1,
            max_size=12,
            unique=True,
        )
    )
    needs = {
        tid: draw(st.lists(st.sampled_from(ids[:i]), unique=True)) if i else []
        for i, tid in enumerate(ids)
    }
    order = draw(st.permutations(ids))
    return {tid: needs[tid] for tid in order}


def _doc(needs: dict[str, list[str]]) -> dict[str, Any]:
    return minimal({tid: {"tool": "shell", "needs": deps} for tid, deps in needs.items()})


@given(dags())
def test_random_dags_compile(needs: dict[str, list[str]]) -> None:
    plan = compile_workflow(_doc(needs))
    assert list(plan.tasks) == list(needs)
    assert {tid: list(task.needs) for tid, task in plan.tasks.items()} == needs


@given(dags(), st.data())
def test_random_cycles_are_rejected(needs: dict[str, list[str]], data: st.DataObject) -> None:
    ids = list(needs)
    if len(ids) < 2:
        ids.append("extra")
        needs["extra"] = []
    cycle = data.draw(st.lists(st.sampled_from(ids), min_size=2, unique=True))
    for here, there in zip(cycle, [*cycle[1:], cycle[0]], strict=True):
        if there not in needs[here]:
            needs[here] = [*needs[here], there]
    with pytest.raises(WorkflowError) as info:
        compile_workflow(_doc(needs))
    assert type(info.value) is WorkflowError
    assert "dependency cycle" in str(info.value)
    shown = str(info.value).split("dependency cycle: ")[1].split(" (")[0]
    path = shown.split(" -> ")
    assert path[0] == path[-1]
    assert info.value.task == path[0]


def _ancestors(needs: dict[str, list[str]], tid: str) -> set[str]:
    seen: set[str] = set()
    stack = list(needs[tid])
    while stack:
        dep = stack.pop()
        if dep not in seen:
            seen.add(dep)
            stack.extend(needs[dep])
    return seen


@given(dags(), st.data())
def test_template_reads_must_be_ancestors(needs: dict[str, list[str]], data: st.DataObject) -> None:
    ids = list(needs)
    reads = {
        tid: data.draw(st.lists(st.sampled_from([t for t in ids if t != tid] or [tid]), max_size=3))
        for tid in ids
    }
    tasks = {}
    for tid, deps in needs.items():
        wanted = [r for r in reads[tid] if r != tid]
        cmd = " ".join(f"{{{{ tasks['{r}'].output }}}}" for r in wanted) or "true"
        tasks[tid] = {"tool": "shell", "needs": deps, "with": {"cmd": cmd}}
    bad = [
        (tid, sorted(set(reads[tid]) - _ancestors(needs, tid) - {tid}))
        for tid in ids
        if set(reads[tid]) - _ancestors(needs, tid) - {tid}
    ]
    if not bad:
        assert len(compile_workflow(minimal(tasks)).tasks) == len(ids)
        return
    with pytest.raises(WorkflowError) as info:
        compile_workflow(minimal(tasks))
    first_task, missing = bad[0]
    assert info.value.task == first_task
    assert f"reads tasks.{missing[0]} but does not depend on it" in str(info.value)


_IDENTS = st.sampled_from(
    ["tasks", "tasks", "tasks", "inputs", "item", "a", "_b9", "not", "in", "true", "None"]
)
_ACCESSORS = st.one_of(
    _IDENTS.map(lambda name: "." + name),
    st.sampled_from(["a", "b-c", "x y", "", "}}", "{"]).map(lambda k: f"['{k}']"),
    st.sampled_from(["a", "q'"]).map(lambda k: f'["{k}"]'),
    st.just(".0"),
)
_EXPRS = st.builds(
    lambda pre, head, acc, post: "{{" + pre + head + "".join(acc) + post + "}}",
    st.sampled_from(["", " ", "  ", "\n", "-", "- "]),
    _IDENTS,
    st.lists(_ACCESSORS, max_size=3),
    st.sampled_from(["", " ", "\t", " -", "|trim"]),
)
_TEXTS = st.text(alphabet="ab {}%#'\"\\-\n", max_size=6)


@given(st.lists(st.one_of(_EXPRS, _TEXTS), min_size=1, max_size=5).map("".join))
def test_fast_template_path_agrees_with_jinja(source: str) -> None:
    fast = simple_reads(source)
    if fast is None:
        return
    check_syntax(source)  # a simple template always compiles
    assert fast == inspect_reads(source)


def test_fast_template_path_covers_common_templates() -> None:
    assert simple_reads("echo {{ tasks.build.output.stdout }} {{ item }}") == {
        "tasks": {"build"},
        "item": set(),
    }
    assert simple_reads("{{ tasks['my-step'].output }}") == {"tasks": {"my-step"}}
    assert simple_reads("{{ tasks.a.output | trim }}") is None  # filters go through Jinja
    assert simple_reads("{{ range }}") is None  # Jinja's own names: Jinja decides


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


def _outcome(compile_: Callable[[], Plan]) -> Plan | WorkflowError:
    """The plan, or the WorkflowError; any other exception fails the test."""
    try:
        return compile_()
    except WorkflowError as exc:
        return exc


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, sub in value.items():
            out.extend(_paths(sub, (*prefix, key)))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            out.extend(_paths(sub, (*prefix, i)))
    return out


@given(st.data(), _JSON | st.sampled_from([b"x", {1, 2}, {3: 4}, (1, 2)]))
def test_mutated_documents_never_leak_other_errors(data: st.DataObject, value: Any) -> None:
    doc = example_doc()
    path = data.draw(st.sampled_from(_paths(doc)[1:]))
    target = doc
    for step in path[:-1]:
        target = target[step]
    if data.draw(st.booleans()) and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = value
    outcome = _outcome(lambda: compile_workflow(doc, known_tools=["shell"]))
    if isinstance(outcome, WorkflowError):
        assert str(outcome).startswith("<workflow>")
    else:
        plan_hash(outcome)  # the plan is canonical JSON


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=150)
@given(
    st.one_of(
        st.text(max_size=80),
        st.lists(st.sampled_from(EXAMPLE.splitlines(keepends=True)), max_size=30).map("".join),
        st.text(alphabet="{}[]:- \n\t&*!|>'\"#%@`aé1", max_size=60),
    )
)
def test_arbitrary_files_raise_only_workflow_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    outcome = _outcome(lambda: load_workflow(path))
    if isinstance(outcome, WorkflowError):
        assert str(outcome).startswith(str(path))


# --------------------------------------------------------------------------- scale


def _chain(n: int) -> dict[str, Any]:
    tasks: dict[str, Any] = {"t0": {"tool": "shell", "with": {"cmd": "echo start"}}}
    for i in range(1, n):
        cmd = f"echo {{{{ tasks.t{i - 1}.output.stdout }}}} {{{{ tasks.t0.output.stdout }}}}"
        tasks[f"t{i}"] = {"tool": "shell", "needs": [f"t{i - 1}"], "with": {"cmd": cmd}}
    return minimal(tasks)


def test_a_ten_thousand_task_chain_compiles() -> None:
    plan = compile_workflow(_chain(10_000))
    assert len(plan.tasks) == 10_000
    assert plan.tasks["t9999"].needs == ("t9998",)


def test_compiling_a_chain_takes_linear_work(
    operations: Callable[[Callable[[], object]], int],
) -> None:
    # every task reads its predecessor and the first task: a compiler that rescans the
    # chain per reference (or per task) does 16x the work for 4x the tasks
    small, large = _chain(500), _chain(2_000)
    work_small = operations(lambda: compile_workflow(small))
    work_large = operations(lambda: compile_workflow(large))
    assert work_large < 5 * work_small, f"{work_small} -> {work_large} operations (quadratic?)"


def test_a_ten_thousand_task_chain_reports_a_far_bad_read() -> None:
    doc = _chain(10_000)
    doc["tasks"]["t9999"]["needs"] = []
    doc["tasks"]["t9999"]["with"]["cmd"] = "{{ tasks.t5.output }}"
    error = workflow_error(doc)
    assert error.task == "t9999"
    assert "reads tasks.t5 but does not depend on it" in str(error)
