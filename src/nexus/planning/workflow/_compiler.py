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
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nexus.domain.errors import WorkflowError
from nexus.domain.plan import AgentSpec, ExtensionLimits, Plan, TaskSpec
from nexus.planning.workflow._agents import AgentFacts, compile_agent
from nexus.planning.workflow._arguments import Arguments
from nexus.planning.workflow._context import WorkflowContext
from nexus.planning.workflow._control import all_needs
from nexus.planning.workflow._errors import Reporter, Stop, known
from nexus.planning.workflow._grants import ToolNames, budget_limits, mcp_servers
from nexus.planning.workflow._graph import check_needs, check_reads
from nexus.planning.workflow._inputs import merge_inputs
from nexus.planning.workflow._names import TemplateNames
from nexus.planning.workflow._schema import _Task, _Workflow, validate
from nexus.planning.workflow._subworkflow import (
    RUN_SETTINGS,
    Nesting,
    SubPlan,
    expand,
    first_tasks,
)
from nexus.planning.workflow._tasks import TaskCompiler
from nexus.planning.workflow._values import Values, strings
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
    nesting: Nesting | None = None,
) -> tuple[Plan | None, list[WorkflowError]]:
    """The plan (None when there is a problem) and every problem found, in order."""
    _, plan, problems = _check(
        doc, file, base_dir, inputs, context, nesting or Nesting.top(file, base_dir)
    )
    return plan, problems


def _check(
    doc: Any,
    file: str,
    base_dir: Path | None,
    inputs: dict[str, Any] | None,
    context: WorkflowContext,
    nesting: Nesting,
) -> tuple[_Compiler | None, Plan | None, list[WorkflowError]]:
    report = Reporter(file)
    plan = compiler = None
    try:
        wf = validate(doc, report)
        compiler = _Compiler(wf, report, context, nesting)
        plan = compiler.plan(base_dir, inputs)
    except Stop:
        pass
    return compiler, (plan if not report.problems else None), report.problems


def _sub_plan(
    context: WorkflowContext,
) -> Callable[[Any, str, Path, Nesting], tuple[SubPlan | None, list[WorkflowError]]]:
    """How a sub-workflow's document is compiled: as a workflow file, with its nesting."""

    def compile_sub(
        doc: Any, file: str, base_dir: Path, nesting: Nesting
    ) -> tuple[SubPlan | None, list[WorkflowError]]:
        compiler, plan, problems = _check(doc, file, base_dir, None, context, nesting)
        if compiler is None or plan is None:
            return None, problems
        secret = frozenset(plan.secret_inputs)
        declared = frozenset(compiler.declared)
        required = (declared - plan.inputs.keys()) | secret
        return SubPlan(plan, compiler.outputs, declared, required), problems

    return compile_sub


class _Compiler:
    """The checks of one valid-shaped document, step by step."""

    __slots__ = (
        "context",
        "declared",
        "names",
        "nesting",
        "outputs",
        "own_agents",
        "report",
        "sub_agents",
        "tools",
        "values",
        "wf",
    )

    def __init__(
        self, wf: _Workflow, report: Reporter, context: WorkflowContext, nesting: Nesting
    ) -> None:
        self.wf = wf
        self.report = report
        self.context = context
        self.nesting = nesting
        self.declared = [key for key in wf.inputs if isinstance(key, str)]
        #: the ``outputs:``, checked (what the task running it as a sub-workflow gives)
        self.outputs: dict[str, Any] = {}
        #: the agents sub-workflows bring, by name (-> the task that brought each)
        self.sub_agents: dict[str, tuple[AgentSpec, str]] = {}
        self.own_agents: dict[str, AgentSpec | None] = {}
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
        self.own_agents = agents
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
        starts: dict[str, list[str]] = {}
        if self.nesting.inside:
            self.sub_only()
        for tid, spec in wf.tasks.items():
            if spec.workflow is None:
                tasks[tid] = compiler.compile(tid, spec)
                continue
            inlined = self.sub_workflow(tid, spec, compiler, base_dir)
            if inlined is None:
                tasks[tid] = None
                continue
            starts[tid] = first_tasks(inlined, tuple(dict.fromkeys(spec.needs)))
            tasks.update((task.id, task) for task in inlined)
        if starts:
            _route_into(tasks, starts)
        with report.step():
            self.outputs = self.check_outputs()
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
            agents={
                **{name: agent for name, agent in agents.items() if agent is not None},
                **{name: agent for name, (agent, _) in self.sub_agents.items()},
            },
            inputs=plan_inputs,
            workspace=workspace,
            fail_fast=wf.fail_fast,
            max_parallel=wf.max_parallel,
            max_failures=wf.max_failures,
            max_failure_rate=wf.max_failure_rate,
            conflicts=wf.conflicts,
            cache=tuple(sorted(set(wf.cache or ()))),
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

    def sub_only(self) -> None:
        """What a sub-workflow may not do: set what is the run's, or extend the plan."""
        wf, report = self.wf, self.report
        for key in RUN_SETTINGS:
            # the default is no setting (the Python API writes some of them)
            if getattr(wf, key) != type(wf).model_fields[key].default:
                report.add(
                    f"a sub-workflow runs in its parent's run, which sets {key}; remove it",
                    field=key,
                )
        for tid, spec in wf.tasks.items():
            if spec.extend is not None:
                report.add(
                    "a task of a sub-workflow cannot extend the plan (the tasks it adds "
                    "would be the run's, not the sub-workflow's)",
                    task=tid,
                    field="extend",
                )

    def sub_workflow(
        self, tid: str, spec: _Task, compiler: TaskCompiler, base_dir: Path | None
    ) -> list[TaskSpec] | None:
        """The tasks task ``tid``'s ``workflow:`` brings, and the task that ends it."""
        report = self.report
        args: dict[str, Any] = {}
        with report.step() as values:
            args, _ = compiler.check_values(tid, spec)
        budget = None
        if spec.budget is not None:
            with report.step():
                budget = budget_limits(spec.budget, f"tasks.{tid}.budget", report, task=tid)
        if not values.ok:
            return None
        result = expand(
            tid,
            spec,
            args,
            budget=budget,
            base_dir=base_dir,
            nesting=self.nesting,
            report=report,
            compile_sub=_sub_plan(self.context),
        )
        if result is None:
            return None
        inlined, agents = result
        for name, agent in agents.items():
            other = self.sub_agents.get(name)
            if name in self.own_agents:
                if self.own_agents[name] == agent:
                    continue
                where = "this workflow"
            elif other is None or other[0] == agent:
                self.sub_agents.setdefault(name, (agent, tid))
                continue
            else:
                where = f"the sub-workflow of task {other[1]!r}"
            report.add(
                f"the sub-workflow defines an agent {name!r} unlike the one {where} "
                "defines; the agents of a run are shared: rename one, or use the same",
                task=tid,
                field="workflow",
            )
        return inlined

    def check_outputs(self) -> dict[str, Any]:
        """``outputs:`` is a mapping of JSON values whose templates read the workflow's
        own tasks and inputs (any task: the task running it needs them all)."""
        raw = self.wf.outputs
        if raw is None:
            return {}
        values = self.values
        outputs: dict[str, Any] = values.json(raw, "outputs")
        for field, text in strings(outputs, "outputs"):
            reads = values.template(text, None, field)
            self.names.check(reads, items=False, task=None, field=field)
            for ref in sorted(reads.get("tasks", ())):
                if ref not in self.wf.tasks:
                    self.report.add(
                        f"reads tasks.{ref} but there is no task {ref!r} "
                        f"({known('known tasks', self.wf.tasks)})",
                        field=field,
                    )
        return outputs

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


def _route_into(tasks: dict[str, TaskSpec | None], starts: dict[str, list[str]]) -> None:
    """A switch case that runs a sub-workflow's task runs its first tasks too (so a case
    not picked skips them, and everything inside with them)."""
    for tid, task in tasks.items():
        if task is None or task.cases is None:
            continue
        cases = {
            case: tuple(
                dict.fromkeys(t for target in targets for t in (target, *starts.get(target, ())))
            )
            for case, targets in task.cases.items()
        }
        if cases != task.cases:
            tasks[tid] = replace(task, cases=cases)


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
