"""A plan extension: the tasks a running task's output adds, compiled like a workflow's.

A task with ``extend:`` answers with ``{"tasks": ...}``: new tasks in the
workflow file's own syntax, as a mapping of id to task or as a list of tasks
each with an ``id`` (a mapping's tasks are taken in the order of their ids, a
list's in its own order). They are untrusted (a model or a tool wrote them), so
they go through every check a workflow file's tasks do -- the file model,
each task's compiler (tools and their arguments, agents and capabilities,
grants, templates), the graph -- against what the run already holds: its
agents, its inputs, and the tasks already in it, which the new ones may
need and read but never change. On top of that come the limits the
workflow set (``extend.max_tasks``, ``extensions.max_tasks`` and
``max_depth``). The result is the new tasks as the plan holds them, or every
problem found, naming the extending task.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nexus.domain.errors import WorkflowError
from nexus.domain.plan import MAX_ADDED_TASKS, Plan, TaskSpec
from nexus.planning.workflow._agents import AgentFacts
from nexus.planning.workflow._arguments import Arguments
from nexus.planning.workflow._context import WorkflowContext
from nexus.planning.workflow._control import all_needs
from nexus.planning.workflow._errors import Reporter, Stop, kind
from nexus.planning.workflow._grants import ToolNames
from nexus.planning.workflow._graph import check_needs, check_reads
from nexus.planning.workflow._names import TemplateNames
from nexus.planning.workflow._schema import _Agent, _Defaults, _Task, validate
from nexus.planning.workflow._tasks import TaskCompiler
from nexus.planning.workflow._values import NO_READS, Values
from nexus.planning.workflow._yaml import MAX_WORKFLOW_BYTES

__all__ = ["Extension", "compile_extension", "extension_tasks"]

#: The most characters an extension may hold, as JSON text (a workflow file's limit).
MAX_EXTENSION_TEXT = MAX_WORKFLOW_BYTES


@dataclass(frozen=True, slots=True)
class Extension:
    """Where an extension lands and how far it may go.

    Attributes:
        by: the task whose output it is.
        existing: every task the run holds now (plan tasks and tasks added
            before), by id; ``foreach`` items are not among them.
        depth: the depth of the tasks it adds (the extending task's plus one).
        room: how many tasks it may add (the smaller of its task's
            ``max_tasks`` and what the run's ``extensions.max_tasks`` leaves).
        why_room: what sets ``room``, for the message when it is passed.
    """

    by: str
    existing: Mapping[str, TaskSpec]
    depth: int
    room: int
    why_room: str


def extension_tasks(output: Any, report: Reporter, room: int = MAX_ADDED_TASKS) -> dict[str, Any]:
    """The ``tasks`` of an extending task's output, as a mapping of id to task.

    At most ``room`` of them, and :data:`MAX_EXTENSION_TEXT` characters as JSON:
    an answer over either is refused before anything in it is read.

    An agent's answer is read where it is: ``{"data": ...}`` (structured
    output) or ``{"text": ...}`` (JSON text, maybe in a fenced code block).
    """
    if isinstance(output, dict) and "tasks" not in output:
        if isinstance(output.get("data"), dict):
            output = output["data"]
        elif isinstance(output.get("text"), str):
            output = _unfenced(output["text"])
    if isinstance(output, str):
        if len(output) > MAX_EXTENSION_TEXT:
            report.stop(
                f"the output is {len(output)} characters of text, more than an extension "
                f"may hold ({MAX_EXTENSION_TEXT})"
            )
        try:
            output = json.loads(output)
        except ValueError as exc:
            report.stop(f"the output is text that is not JSON ({exc}); answer with {{tasks: ...}}")
        except RecursionError:
            report.stop("the output is JSON nested too deeply to read")
    if not isinstance(output, dict) or "tasks" not in output:
        report.stop(
            f"the output must be a mapping with `tasks` (the tasks to add), not {kind(output)}"
            + (f" with keys {sorted(map(str, output))[:8]}" if isinstance(output, dict) else "")
        )
    tasks = output["tasks"]
    if isinstance(tasks, dict | list) and len(tasks) > room:
        report.stop(f"it adds {len(tasks)} tasks; the most it may add is {room}")
    try:
        size = len(json.dumps(tasks, default=str))
    except (ValueError, RecursionError):
        report.stop("`tasks` is nested too deeply to read")
    if size > MAX_EXTENSION_TEXT:
        report.stop(
            f"`tasks` is {size} characters as JSON, more than an extension may hold "
            f"({MAX_EXTENSION_TEXT}, a workflow file's limit)"
        )
    if isinstance(tasks, dict):
        # by id: a recorded output is canonical JSON, whose keys are sorted, so the
        # order the producer wrote them in is not what a resume or a replay reads
        return {key: tasks[key] for key in sorted(tasks, key=str)}
    if not isinstance(tasks, list):
        report.stop(
            f"`tasks` must be a mapping of id to task or a list of tasks, not {kind(tasks)}"
        )
    found: dict[str, Any] = {}
    for index, entry in enumerate(tasks):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            report.add(f"`tasks[{index}]` must be a mapping with an `id` (a string)", field="tasks")
            continue
        body = {key: value for key, value in entry.items() if key != "id"}
        if entry["id"] in found:
            report.add(f"`tasks[{index}]` repeats the id {entry['id']!r}", task=entry["id"])
            continue
        found[entry["id"]] = body
    if report.problems:
        raise Stop
    return found


def _unfenced(text: str) -> str:
    """``text`` without the Markdown code fence a model may put JSON in."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```") and "\n" in stripped:
        return stripped[stripped.index("\n") + 1 : -3]
    return text


def compile_extension(
    plan: Plan,
    output: Any,
    extension: Extension,
    context: WorkflowContext | None = None,
) -> list[TaskSpec]:
    """The tasks ``output`` adds to ``plan``'s run, checked and compiled.

    Raises:
        WorkflowError: the extension is not valid; it lists every problem,
            each naming the task and field (the file is the extending task).
    """
    report = Reporter(f"the plan extension of task '{extension.by}'")
    try:
        tasks = _compile(plan, output, extension, context, report)
    except Stop:
        tasks = []
    if report.problems:
        raise WorkflowError.several(report.problems)
    return tasks


def _compile(
    plan: Plan,
    output: Any,
    extension: Extension,
    context: WorkflowContext | None,
    report: Reporter,
) -> list[TaskSpec]:
    tasks = output.get("tasks") if isinstance(output, dict) else None
    if isinstance(tasks, dict | list) and len(tasks) > extension.room:
        report.stop(f"it adds {len(tasks)} tasks; {extension.why_room}")
    entries = extension_tasks(output, report, extension.room)
    if not entries:
        return []
    if len(entries) > extension.room:
        report.stop(f"it adds {len(entries)} tasks; {extension.why_room}")
    for tid in entries:
        if tid in extension.existing:
            report.add(f"the run already has a task {tid!r}; choose another id", task=tid)
    if report.problems:
        raise Stop
    wf = validate({"version": 1, "name": plan.name, "tasks": entries}, report)
    context = context if context is not None else WorkflowContext(grants=False)
    known = None if context.tools is None else list(context.tools)
    tools = ToolNames(known, [*plan.mcp_servers, *context.mcp_servers])
    agents = {
        name: _Agent.model_construct(**_agent_fields(spec)) for name, spec in plan.agents.items()
    }
    facts = {
        name: _facts(spec.name, spec.tools, spec.profile, tools)
        for name, spec in plan.agents.items()
    }
    values = Values(report)
    schemas = {name: info.schema for name, info in (context.tools or {}).items()}
    # the run's tasks may be needed and read; a stand-in is enough to name them
    known_tasks: dict[str, _Task] = dict.fromkeys(extension.existing, _STAND_IN)
    known_tasks.update(wf.tasks)
    compiler = TaskCompiler(
        known_tasks,
        _Defaults(),
        agents,
        facts,
        values,
        tools,
        TemplateNames([key for key in plan.inputs], report),
        Arguments(schemas, context.mcp_schema, report),
        grants=context.grants,
        allowed={},
    )
    compiled: list[TaskSpec] = []
    for tid, spec in wf.tasks.items():
        task = compiler.compile(tid, spec)
        if task is None:
            continue
        if task.extend is not None and extension.depth >= plan.extension_limits.max_depth:
            report.add(
                f"it would extend the plan again at depth {extension.depth + 1}, past "
                f"extensions.max_depth ({plan.extension_limits.max_depth})",
                task=tid,
                field="extend",
            )
        compiled.append(task)
    needs = {tid: spec.needs for tid, spec in extension.existing.items()}
    needs.update({tid: all_needs(spec, known_tasks) for tid, spec in wf.tasks.items()})
    if check_needs(needs, report) and compiler.reads:
        check_reads(needs, compiler.reads, report)
    return compiled


def _agent_fields(spec: Any) -> dict[str, Any]:
    """What the task checks read of an agent (its capabilities), from its compiled form."""
    return {"model": spec.model, "capabilities": list(spec.capabilities), "tools": list(spec.tools)}


def _facts(
    name: str, tools: tuple[str, ...], profile: dict[str, Any] | None, names: ToolNames
) -> AgentFacts:
    """An agent as the task checks see it: its instructions were checked with the plan."""
    return AgentFacts(
        name=name,
        instructions=NO_READS,
        tools=tools,
        mcp_tools=tuple((i, tool) for i, tool in enumerate(tools) if names.is_mcp(tool)),
        profile=profile,
        profile_valid=True,
    )


#: What a task already in the run looks like to the checks of the tasks added.
_STAND_IN = _Task()
