"""``workflow: path.yaml`` on a task: the sub-workflow compiled inline, and every way a
sub-workflow file can be wrong or hostile named with the parent's and its own place."""

from __future__ import annotations

import os
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.domain.errors import NotFoundError, WorkflowError
from nexus.domain.plan import Plan, SubWorkflow, plan_hash
from nexus.planning.workflow import load_workflow, validate_workflow
from nexus.planning.workflow._subworkflow import MAX_DEPTH


def write(path: Path, doc: dict[str, Any] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
    path.write_text(textwrap.dedent(text))
    return path


def parent(tmp_path: Path, build: dict[str, Any], **tasks: Any) -> Path:
    doc = {
        "version": 1,
        "name": "parent",
        "inputs": {"version": "2.0"},
        "tasks": {"fetch": {"tool": "noop", "with": {"files": ["a"]}}, "build": build, **tasks},
    }
    return write(tmp_path / "workflow.yaml", doc)


SUB = {
    "version": 1,
    "name": "build",
    "inputs": {"version": "1.0", "files": []},
    "outputs": {"name": "{{ tasks.package.output.name }}"},
    "tasks": {
        "compile": {"tool": "noop", "with": {"files": "{{ inputs.files }}"}},
        "package": {"needs": "compile", "tool": "noop", "with": {"name": "v{{ inputs.version }}"}},
    },
}


def problems(path: Path) -> list[str]:
    return [str(p) for p in validate_workflow(path).problems]


def test_the_sub_workflow_joins_the_plan_under_the_task(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "build.yaml", SUB)
    path = parent(
        tmp_path,
        {
            "needs": "fetch",
            "workflow": "sub/build.yaml",
            "with": {"files": "{{ tasks.fetch.output.files }}"},
        },
        report={"needs": "build", "tool": "noop", "with": {"n": "{{ tasks.build.output.name }}"}},
    )
    plan = load_workflow(path)
    assert list(plan.tasks) == ["fetch", "build/compile", "build/package", "build", "report"]
    assert plan.tasks["build/compile"].needs == ("fetch",), "its first tasks need the task's needs"
    assert plan.tasks["build/package"].needs == ("build/compile",)
    end = plan.tasks["build"]
    assert end.needs == ("fetch", "build/compile", "build/package")
    assert end.tool == "noop"
    assert end.args == {"name": "{{ tasks.package.output.name }}"}
    assert end.workflow == SubWorkflow(
        name="build",
        inputs={"files": "{{ tasks.fetch.output.files }}"},
        defaults={"version": "1.0", "files": []},
    )
    assert Plan.from_dict(plan.to_dict()).to_dict() == plan.to_dict()
    assert plan_hash(Plan.from_dict(plan.to_dict())) == plan_hash(plan)


def test_a_name_is_a_file_in_the_workflows_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "workflows" / "build.yaml", SUB)
    plan = load_workflow(parent(tmp_path, {"workflow": "build"}))
    assert "build/package" in plan.tasks
    path = parent(tmp_path, {"workflow": "lint"})
    (found,) = problems(path)
    assert "task 'build', field 'workflow'" in found
    assert "no sub-workflow named 'lint'" in found
    assert "workflows/lint.yaml" in found
    # beside the file first, else in the current directory (a project's root)
    project = tmp_path / "project"
    write(project / "workflows" / "lint.yaml", {**SUB, "name": "lint"})
    monkeypatch.chdir(project)
    plan = load_workflow(parent(tmp_path, {"workflow": "lint"}))
    assert plan.tasks["build"].workflow is not None
    assert plan.tasks["build"].workflow.name == "lint"
    for bad in ("..", ".hidden", "a b"):
        (found,) = problems(parent(tmp_path, {"workflow": bad}))
        assert "a sub-workflow's name is letters" in found, found


def test_with_gives_declared_inputs_and_every_required_one(tmp_path: Path) -> None:
    sub = {
        **SUB,
        "inputs": {"version": "1.0", "files": [], "token": {"secret": True}},
        "tasks": {"compile": {"tool": "noop", "with": {"t": "{{ inputs.token }}"}}},
        "outputs": {},
    }
    write(tmp_path / "build.yaml", sub)
    found = problems(parent(tmp_path, {"workflow": "build.yaml", "with": {"flavour": "x"}}))
    assert any(
        "task 'build', field 'with.flavour'" in p and "declares no input 'flavour'" in p
        for p in found
    ), found
    assert any("needs its input 'token'" in p and "field 'with'" in p for p in found), found
    plan = load_workflow(parent(tmp_path, {"workflow": "build.yaml", "with": {"token": "t"}}))
    workflow = plan.tasks["build"].workflow
    assert workflow is not None
    assert "token" not in workflow.defaults, "a secret input's default is never in the plan"


def test_with_reads_only_what_the_task_needs(tmp_path: Path) -> None:
    write(tmp_path / "build.yaml", SUB)
    found = problems(
        parent(tmp_path, {"workflow": "build.yaml", "with": {"files": "{{ tasks.fetch.output }}"}})
    )
    assert any("task 'build', field 'with.files'" in p and "fetch" in p for p in found), found


def test_a_problem_inside_names_the_parent_and_the_sub_workflow(tmp_path: Path) -> None:
    bad = {**SUB, "tasks": {"compile": {"tool": "noop", "retries": "many"}}, "outputs": {}}
    write(tmp_path / "sub" / "build.yaml", bad)
    (found,) = problems(parent(tmp_path, {"workflow": "sub/build.yaml"}))
    assert found.startswith(f"{tmp_path / 'workflow.yaml'}, task 'build', field 'workflow': ")
    assert "in the sub-workflow " in found
    assert (
        f"{tmp_path / 'sub' / 'build.yaml'}, task 'compile', field 'tasks.compile.retries'" in found
    )


def test_a_problem_two_levels_down_names_each_file(tmp_path: Path) -> None:
    inner = {"version": 1, "name": "inner", "tasks": {"x": {"tool": "noop", "when": "{{"}}}
    write(tmp_path / "inner.yaml", inner)
    write(
        tmp_path / "mid.yaml",
        {"version": 1, "name": "mid", "tasks": {"i": {"workflow": "inner.yaml"}}},
    )
    (found,) = problems(parent(tmp_path, {"workflow": "mid.yaml"}))
    assert "task 'build', field 'workflow'" in found
    assert "mid.yaml, task 'i', field 'workflow'" in found
    assert "inner.yaml, task 'x', field 'when'" in found


def test_a_file_that_includes_itself_is_refused_with_the_chain(tmp_path: Path) -> None:
    write(
        tmp_path / "loop.yaml",
        {"version": 1, "name": "l", "tasks": {"again": {"workflow": "loop.yaml"}}},
    )
    (found,) = problems(parent(tmp_path, {"workflow": "loop.yaml"}))
    assert "includes itself" in found
    assert "loop.yaml -> loop.yaml" in found
    # through another file, and back to the top file
    write(tmp_path / "a.yaml", {"version": 1, "name": "a", "tasks": {"b": {"workflow": "b.yaml"}}})
    write(
        tmp_path / "b.yaml",
        {"version": 1, "name": "b", "tasks": {"t": {"workflow": "workflow.yaml"}}},
    )
    (found,) = problems(parent(tmp_path, {"workflow": "a.yaml"}))
    assert "includes itself" in found
    assert "workflow.yaml -> " in found
    assert "a.yaml -> " in found
    assert "b.yaml -> workflow.yaml" in found


def test_nesting_deeper_than_the_limit_is_refused(tmp_path: Path) -> None:
    for level in range(MAX_DEPTH + 2):
        write(
            tmp_path / f"l{level}.yaml",
            {"version": 1, "name": f"l{level}", "tasks": {"t": {"workflow": f"l{level + 1}.yaml"}}},
        )
    write(
        tmp_path / f"l{MAX_DEPTH + 2}.yaml",
        {"version": 1, "name": "end", "tasks": {"t": {"tool": "noop"}}},
    )
    (found,) = problems(parent(tmp_path, {"workflow": "l0.yaml"}))
    assert f"nest deeper than {MAX_DEPTH}" in found
    # at the limit it compiles
    write(
        tmp_path / f"l{MAX_DEPTH - 1}.yaml",
        {"version": 1, "name": "end", "tasks": {"t": {"tool": "noop"}}},
    )
    plan = load_workflow(parent(tmp_path, {"workflow": "l0.yaml"}))
    assert "build/t/" + "t/" * (MAX_DEPTH - 2) + "t" in plan.tasks


def test_a_diamond_of_includes_is_not_recursion(tmp_path: Path) -> None:
    write(tmp_path / "build.yaml", SUB)
    path = parent(tmp_path, {"workflow": "build.yaml"}, again={"workflow": "build.yaml"})
    plan = load_workflow(path)
    assert {"build/package", "again/package"} <= set(plan.tasks)


def test_a_sub_workflow_file_outside_the_workflow_tree_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside"
    write(outside / "build.yaml", SUB)
    top = tmp_path / "project"
    monkeypatch.chdir(write(top / "here" / "x", "").parent)
    for written in (str(outside / "build.yaml"), "../outside/build.yaml"):
        (found,) = problems(parent(top, {"workflow": written}))
        assert "may not be read" in found, found
        assert "task 'build', field 'workflow'" in found
    # a symlink inside the tree to a file outside it is judged by where it leads
    (top / "link.yaml").symlink_to(outside / "build.yaml")
    (found,) = problems(parent(top, {"workflow": "link.yaml"}))
    assert "may not be read" in found


def test_system_files_and_odd_files_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (found,) = problems(parent(tmp_path, {"workflow": "/etc/hosts.yaml"}))
    assert "may not be read" in found
    assert "/etc" in found
    (found,) = problems(parent(tmp_path, {"workflow": "/etc/passwd"}))
    assert "ends in .yaml" in found
    os.mkfifo(tmp_path / "pipe.yaml")
    (found,) = problems(parent(tmp_path, {"workflow": "pipe.yaml"}))
    assert "not a regular file" in found
    (found,) = problems(parent(tmp_path, {"workflow": "missing.yaml"}))
    assert "not found" in found
    assert "field 'workflow'" in found
    write(
        tmp_path / "bomb.yaml",
        'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
        + "".join(
            f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    )
    (found,) = problems(parent(tmp_path, {"workflow": "bomb.yaml"}))
    assert "in the sub-workflow" in found
    assert "alias" in found.lower()


def test_a_sub_workflow_may_not_set_what_is_the_runs(tmp_path: Path) -> None:
    bad = {**SUB, "fail_fast": False, "workspace": "out", "max_parallel": 2}
    bad["tasks"] = {**SUB["tasks"], "grow": {"tool": "noop", "extend": True}}
    write(tmp_path / "build.yaml", bad)
    found = "\n".join(problems(parent(tmp_path, {"workflow": "build.yaml"})))
    for key in ("fail_fast", "workspace", "max_parallel"):
        assert f"field '{key}': a sub-workflow runs in its parent's run" in found
    assert "task 'grow', field 'extend'" in found


def test_a_task_that_runs_a_sub_workflow_takes_only_needs_with_and_budget(tmp_path: Path) -> None:
    write(tmp_path / "build.yaml", SUB)
    found = problems(
        parent(tmp_path, {"workflow": "build.yaml", "when": "{{ true }}", "retries": 2})
    )
    assert any("field 'when'" in p and "takes only needs, with and budget" in p for p in found)
    assert any("field 'retries'" in p for p in found)


def test_outputs_read_the_sub_workflows_own_tasks(tmp_path: Path) -> None:
    write(tmp_path / "build.yaml", {**SUB, "outputs": {"x": "{{ tasks.nope.output }}"}})
    (found,) = problems(parent(tmp_path, {"workflow": "build.yaml"}))
    assert "field 'outputs.x'" in found
    assert "no task 'nope'" in found
    write(tmp_path / "build.yaml", {**SUB, "outputs": {"x": "{{ inputs.nope }}"}})
    (found,) = problems(parent(tmp_path, {"workflow": "build.yaml"}))
    assert "field 'outputs.x'" in found
    assert "inputs.nope" in found


def test_agents_are_shared_and_must_agree(tmp_path: Path) -> None:
    agent = {"model": "scripted:w", "capabilities": ["write"], "scripted": ["hi"]}
    sub = {
        "version": 1,
        "name": "s",
        "agents": {"writer": agent},
        "tasks": {"say": {"agent": "writer", "prompt": "hi"}},
    }
    write(tmp_path / "s.yaml", sub)
    doc = {
        "version": 1,
        "name": "p",
        "agents": {"writer": agent},
        "tasks": {"one": {"workflow": "s.yaml"}, "two": {"workflow": "s.yaml"}},
    }
    plan = load_workflow(write(tmp_path / "p.yaml", doc))
    assert list(plan.agents) == ["writer"]
    assert plan.tasks["two/say"].agent == "writer"
    doc["agents"] = {"writer": {**agent, "scripted": ["other"]}}
    found, *_ = problems(write(tmp_path / "p.yaml", doc))
    assert "task 'one', field 'workflow'" in found
    assert "agent 'writer' unlike" in found


def test_the_budget_is_the_sub_workflows_with_the_tasks_over_it(tmp_path: Path) -> None:
    write(tmp_path / "build.yaml", {**SUB, "budget": {"tool_calls": 5, "usd": 1}})
    plan = load_workflow(parent(tmp_path, {"workflow": "build.yaml", "budget": {"tool_calls": 2}}))
    assert plan.tasks["build"].budget == {"tool_calls": 2, "usd": "1"}
    plan = load_workflow(parent(tmp_path, {"workflow": "build.yaml"}))
    assert plan.tasks["build"].budget == {"tool_calls": 5, "usd": "1"}


def test_a_switch_case_that_runs_a_sub_workflow_routes_its_first_tasks(tmp_path: Path) -> None:
    write(tmp_path / "build.yaml", SUB)
    path = parent(
        tmp_path,
        {"needs": "pick", "workflow": "build.yaml"},
        pick={"switch": "{{ inputs.version }}", "cases": {"2.0": ["build"], "default": []}},
    )
    plan = load_workflow(path)
    assert plan.tasks["pick"].cases == {"2.0": ("build", "build/compile"), "default": ()}


def test_a_missing_top_file_is_still_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        validate_workflow(tmp_path / "nope.yaml")
    with pytest.raises(WorkflowError):
        load_workflow(parent(tmp_path, {"workflow": "nope.yaml"}))


def test_the_estimate_counts_the_sub_workflows_calls(tmp_path: Path) -> None:
    from nexus.budget.estimate import estimate_plan

    agent = {"model": "openai:gpt-4.1-mini", "capabilities": ["write"]}
    sub = {
        "version": 1,
        "name": "s",
        "agents": {"writer": agent},
        "tasks": {"draft": {"agent": "writer", "prompt": "Write the notes."}},
    }
    write(tmp_path / "s.yaml", sub)
    doc = {"version": 1, "name": "p", "tasks": {"one": {"workflow": "s.yaml"}}}
    once = estimate_plan(load_workflow(write(tmp_path / "p.yaml", doc)))
    assert once.calls == 1
    assert once.usd > 0
    assert once.per_task["one/draft"].agent == "writer"
    assert once.per_task["one"].usd == 0, "the task that ends it calls no model"
    doc["tasks"]["two"] = {"workflow": "s.yaml"}
    twice = estimate_plan(load_workflow(write(tmp_path / "p.yaml", doc)))
    assert twice.calls == 2
    assert twice.usd == 2 * once.usd


@st.composite
def _dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """Task id -> needs, each task needing some of those before it."""
    count = draw(st.integers(1, 6))
    ids = [f"t{i}" for i in range(count)]
    return {
        tid: draw(st.lists(st.sampled_from(ids[:i]), unique=True)) if i else []
        for i, tid in enumerate(ids)
    }


@settings(max_examples=40, deadline=None)
@given(sub=_dags(), outer=_dags(), uses=st.integers(1, 3))
def test_an_inlined_sub_workflow_keeps_its_graph_under_the_task(
    sub: dict[str, list[str]], outer: dict[str, list[str]], uses: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        tasks = {tid: {"tool": "noop", "needs": needs} for tid, needs in sub.items()}
        write(base / "s.yaml", {"version": 1, "name": "s", "tasks": tasks})
        doc_tasks: dict[str, Any] = {
            tid: {"tool": "noop", "needs": needs} for tid, needs in outer.items()
        }
        for n in range(uses):
            doc_tasks[f"use{n}"] = {"workflow": "s.yaml", "needs": list(outer)[: n + 1]}
        plan = load_workflow(
            write(base / "p.yaml", {"version": 1, "name": "p", "tasks": doc_tasks})
        )
    for n in range(uses):
        use, outer_needs = f"use{n}", tuple(list(outer)[: n + 1])
        inside = {f"{use}/{tid}" for tid in sub}
        assert set(plan.tasks[use].needs) == inside | set(outer_needs)
        for tid, needs in sub.items():
            spec = plan.tasks[f"{use}/{tid}"]
            want = tuple(f"{use}/{dep}" for dep in needs) or outer_needs
            assert spec.needs == want
    for spec in plan.tasks.values():
        assert set(spec.needs) <= set(plan.tasks), "every need is a task of the plan"
    assert len(plan.tasks) == len(outer) + uses * (len(sub) + 1)
    assert Plan.from_dict(plan.to_dict()).to_dict() == plan.to_dict()
