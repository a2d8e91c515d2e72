"""From a parsed workflow document to a :class:`~nexus.domain.plan.Plan`.

The steps, in the order their errors are found: the file model
(:mod:`._schema`), the inputs (:mod:`._inputs`), the agents (:mod:`._agents`),
each task in document order (:mod:`._tasks`), the graph (:mod:`._graph`),
then the workspace, the MCP servers and the budget (:mod:`._grants`). The
first problem stops compilation with a :class:`~nexus.domain.errors.WorkflowError`.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from nexus.domain.plan import Plan
from nexus.planning.workflow._agents import compile_agent
from nexus.planning.workflow._errors import Reporter
from nexus.planning.workflow._grants import ToolNames, budget_limits, mcp_servers
from nexus.planning.workflow._graph import check_needs, check_reads
from nexus.planning.workflow._inputs import merge_inputs
from nexus.planning.workflow._schema import validate
from nexus.planning.workflow._tasks import TaskCompiler
from nexus.planning.workflow._values import Values
from nexus.security.workspaces import workspace_problem

__all__ = ["compile_document"]


def compile_document(
    doc: Any,
    *,
    file: str,
    base_dir: Path | None,
    inputs: dict[str, Any] | None,
    known_tools: Collection[str] | None,
) -> Plan:
    """See :func:`nexus.planning.workflow.compile_workflow`."""
    report = Reporter(file)
    wf = validate(doc, report)
    tools = ToolNames(known_tools, wf.mcp_servers or {})
    values = Values(report)
    plan_inputs, secret_inputs = merge_inputs(wf.inputs, inputs, values)
    agents = {name: compile_agent(name, spec, values, tools) for name, spec in wf.agents.items()}
    compiler = TaskCompiler(wf.tasks, wf.defaults, agents, values, tools)
    tasks = {tid: compiler.compile(tid, spec) for tid, spec in wf.tasks.items()}
    needs = {tid: task.needs for tid, task in tasks.items()}
    check_needs(needs, report)
    if compiler.reads:
        check_reads(needs, compiler.reads, report)
    return Plan(
        name=wf.name,
        tasks=tasks,
        agents=agents,
        inputs=plan_inputs,
        workspace=_workspace(wf.workspace, base_dir, report),
        fail_fast=wf.fail_fast,
        max_parallel=wf.max_parallel,
        version=wf.version,
        mcp_servers=mcp_servers(wf.mcp_servers, report),
        budget=budget_limits(wf.budget, "budget", report),
        secret_inputs=secret_inputs,
    )


def _workspace(workspace: str | None, base_dir: Path | None, report: Reporter) -> str | None:
    """The workspace's real path, resolved once here (see :mod:`nexus.security.workspaces`).

    With a file (``base_dir``) it must lie under the file's directory or the
    current one; a document built in code is only kept out of system
    directories.
    """
    if workspace is None and base_dir is None:
        return None
    if workspace is None:
        path = base_dir if base_dir is not None else Path.cwd()
        written = "the workflow file's directory"
    else:
        path = Path(workspace).expanduser()
        if not path.is_absolute():
            path = (base_dir if base_dir is not None else Path.cwd()) / path
        written = f"{workspace!r}"
    real = os.path.realpath(path)
    roots = None
    if base_dir is not None:
        roots = list(dict.fromkeys([os.path.realpath(base_dir), os.path.realpath(os.getcwd())]))
    problem = workspace_problem(real, roots=roots)
    if problem is not None:
        shown = "" if os.path.normpath(path) == real else f" ({path} resolves to {real})"
        report.error(f"workspace {written}{shown} may not be used: {problem}", field="workspace")
    return real
