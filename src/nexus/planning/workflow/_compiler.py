"""From a parsed workflow document to a :class:`~nexus.domain.plan.Plan`.

The steps, in the order their problems are reported: the file model
(:mod:`._schema`; nothing else is checked when the file has no usable
shape), the inputs (:mod:`._inputs`), the agents (:mod:`._agents`), each task
in document order (:mod:`._tasks`), the graph (:mod:`._graph`), then the
workspace, the MCP servers and the budget (:mod:`._grants`). Every problem is
reported (:mod:`._errors`): :func:`check_document` returns them, and
:func:`compile_document` raises them as one
:class:`~nexus.domain.errors.WorkflowError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nexus.domain.errors import WorkflowError
from nexus.domain.plan import AgentSpec, ExtensionLimits, Plan, TaskSpec
from nexus.planning.workflow._agents import AgentFacts, compile_agent
from nexus.planning.workflow._arguments import Arguments
from nexus.planning.workflow._context import WorkflowContext
from nexus.planning.workflow._control import all_needs
from nexus.planning.workflow._errors import Reporter, Stop
from nexus.planning.workflow._grants import ToolNames, budget_limits, mcp_servers
from nexus.planning.workflow._graph import check_needs, check_reads
from nexus.planning.workflow._inputs import merge_inputs
from nexus.planning.workflow._names import TemplateNames
from nexus.planning.workflow._schema import _Workflow, validate
from nexus.planning.workflow._tasks import TaskCompiler
from nexus.planning.workflow._values import Values
from nexus.planning.workflow._writes import check_conflicts
from nexus.security.workspaces import workspace_problem

if TYPE_CHECKING:
    from nexus.tools.profile import ExecProfile

__all__ = ["check_document", "compile_document"]


def compile_document(
    doc: Any,
    *,
    file: str,
    base_dir: Path | None,
    inputs: dict[str, Any] | None,
    context: WorkflowContext,
) -> Plan:
    """See :func:`nexus.planning.workflow.compile_workflow`."""
    plan, problems = check_document(
        doc, file=file, base_dir=base_dir, inputs=inputs, context=context
    )
    if plan is None:
        raise WorkflowError.several(problems)
    return plan


def check_document(
    doc: Any,
    *,
    file: str,
    base_dir: Path | None,
    inputs: dict[str, Any] | None,
    context: WorkflowContext,
) -> tuple[Plan | None, list[WorkflowError]]:
    """The plan (None when there is a problem) and every problem found, in order."""
    report = Reporter(file)
    plan = None
    try:
        wf = validate(doc, report)
        plan = _Compiler(wf, report, context).plan(base_dir, inputs)
    except Stop:
        pass
    return (plan if not report.problems else None), report.problems


class _Compiler:
    """The checks of one valid-shaped document, step by step."""

    __slots__ = ("context", "names", "report", "tools", "values", "wf")

    def __init__(self, wf: _Workflow, report: Reporter, context: WorkflowContext) -> None:
        self.wf = wf
        self.report = report
        self.context = context
        known = None if context.tools is None else list(context.tools)
        self.tools = ToolNames(known, [*(wf.mcp_servers or {}), *context.mcp_servers])
        self.values = Values(report)
        self.names = TemplateNames([key for key in wf.inputs if isinstance(key, str)], report)

    def plan(self, base_dir: Path | None, inputs: dict[str, Any] | None) -> Plan | None:
        wf, report = self.wf, self.report
        plan_inputs: dict[str, Any] = {}
        secret_inputs: dict[str, str | None] = {}
        with report.step():
            plan_inputs, secret_inputs = merge_inputs(wf.inputs, inputs, self.values)
        allowed: dict[str, ExecProfile] = {}
        if self.context.grants:
            for name, info in (self.context.tools or {}).items():
                if info.allowed is not None:
                    allowed[name] = info.allowed
        agents, facts = self.agents(allowed)
        schemas = {name: info.schema for name, info in (self.context.tools or {}).items()}
        arguments = Arguments(schemas, self.context.mcp_schema, report)
        compiler = TaskCompiler(
            wf.tasks,
            wf.defaults,
            wf.agents,
            facts,
            self.values,
            self.tools,
            self.names,
            arguments,
            grants=self.context.grants,
            allowed=allowed,
            on_failure=wf.on_failure,
        )
        tasks: dict[str, TaskSpec | None] = {}
        for tid, spec in wf.tasks.items():
            tasks[tid] = compiler.compile(tid, spec)
        for name in sorted(compiler.agents_run_bare):
            facts[name].report_ungranted(report)
        needs = {tid: all_needs(spec, wf.tasks) for tid, spec in wf.tasks.items()}
        if check_needs(needs, report) and compiler.reads:
            check_reads(needs, compiler.reads, report)
        workspace = servers = budget = None
        with report.step():
            workspace = _workspace(wf.workspace, base_dir, report)
        with report.step():
            servers = mcp_servers(wf.mcp_servers, report)
        with report.step():
            budget = budget_limits(wf.budget, "budget", report)
        _check_thresholds(wf, report)
        if wf.conflicts == "reject" and not report.problems:
            # needs must be sound (no cycle, no unknown task) to judge what they order
            check_conflicts({tid: t for tid, t in tasks.items() if t is not None}, report)
        if report.problems:
            return None
        return Plan(
            name=wf.name,
            tasks={tid: task for tid, task in tasks.items() if task is not None},
            agents={name: agent for name, agent in agents.items() if agent is not None},
            inputs=plan_inputs,
            workspace=workspace,
            fail_fast=wf.fail_fast,
            max_parallel=wf.max_parallel,
            max_failures=wf.max_failures,
            max_failure_rate=wf.max_failure_rate,
            conflicts=wf.conflicts,
            version=wf.version,
            mcp_servers=servers or {},
            budget=budget,
            secret_inputs=secret_inputs,
            extensions=(
                None
                if wf.extensions is None
                else ExtensionLimits(wf.extensions.max_tasks, wf.extensions.max_depth)
            ),
        )

    def agents(
        self, allowed: dict[str, ExecProfile]
    ) -> tuple[dict[str, AgentSpec | None], dict[str, AgentFacts]]:
        agents: dict[str, AgentSpec | None] = {}
        facts: dict[str, AgentFacts] = {}
        for name, spec in self.wf.agents.items():
            agents[name], facts[name] = compile_agent(
                name,
                spec,
                self.values,
                self.tools,
                self.names,
                providers=self.context.providers,
                task_ids=self.wf.tasks,
                allowed=allowed,
            )
        return agents, facts


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


def _check_thresholds(wf: _Workflow, report: Reporter) -> None:
    """A failure threshold needs ``fail_fast: false``: with it, the first failure ends the run."""
    if not wf.fail_fast:
        return
    default = "" if "fail_fast" in wf.model_fields_set else " (the default)"
    for key in ("max_failures", "max_failure_rate"):
        if getattr(wf, key) is not None:
            report.add(
                f"{key} has no effect while fail_fast is true{default}: the first failed "
                "task already stops the run; set fail_fast: false",
                field=key,
            )
