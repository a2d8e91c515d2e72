"""Missions from a goal: a one-task workflow whose planner extends the plan.

``nexus run --goal "..." --agents agents.yaml`` (and
:meth:`nexus.Workflow.from_goal`) does not need a workflow file: the goal
becomes the input of a workflow with a single task, ``plan``, run by the
agent whose ``role`` is ``planner``. Its prompt lists the other agents'
capabilities and the tools the agents file offers; its answer must match
:func:`plan_schema` (structured output, repaired by the agent's own loop),
and it ``extend``s the running plan (see :mod:`._extension`): the proposed
tasks are checked exactly like a workflow file's before any of them runs,
routed by capability to the declared agents, and with ``review`` they wait
for ``nexus approve RUN plan``.

The agents file is YAML: ``agents:`` as in a workflow file, plus optional
``tools:`` (the tools the planner may give tasks; none by default, so a goal
cannot reach a shell unless the file says so), ``budget:``, ``max_parallel:``
and ``extensions:``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus.domain.errors import UserError, WorkflowError
from nexus.planning.workflow._yaml import parse_yaml, read_workflow

__all__ = [
    "MAX_GOAL_CHARS",
    "PLANNER_ROLE",
    "PLAN_TASK",
    "ToolNote",
    "goal_workflow",
    "plan_schema",
    "read_agents",
]

#: The role of the agent that turns a goal into tasks.
PLANNER_ROLE = "planner"
#: The id of the planning task (``nexus approve RUN plan`` answers its review).
PLAN_TASK = "plan"
#: The longest goal accepted, in characters.
MAX_GOAL_CHARS = 20_000
#: The keys an agents file may hold.
_AGENTS_FILE_KEYS = ("agents", "tools", "budget", "max_parallel", "extensions", "defaults")


@dataclass(frozen=True, slots=True)
class ToolNote:
    """What the planner is told of one tool: its name, what it does, its arguments."""

    name: str
    description: str
    schema: Mapping[str, Any] | None = None

    def line(self) -> str:
        props = (self.schema or {}).get("properties")
        required = set((self.schema or {}).get("required") or ())
        args = ", ".join(
            f"{arg}{' (required)' if arg in required else ''}"
            for arg in (props if isinstance(props, dict) else {})
        )
        text = self.description.strip().splitlines()[0] if self.description.strip() else ""
        return f"- {self.name}: {text or 'no description'}" + (
            f" Arguments: {args}." if args else ""
        )


def read_agents(path: str | Path) -> dict[str, Any]:
    """The agents file at ``path``, parsed (with the workflow reader's limits).

    Raises:
        NotFoundError: there is no such file.
        WorkflowError: it is not YAML, not a mapping, or holds a key an agents
            file does not have.
    """
    file = str(path)
    doc = parse_yaml(read_workflow(Path(path), file), file)
    if not isinstance(doc, dict) or not isinstance(doc.get("agents"), dict) or not doc["agents"]:
        raise WorkflowError(
            "an agents file is a mapping with `agents:` (at least one, as in a workflow file)",
            file=file,
        )
    unknown = sorted(str(key) for key in doc if key not in _AGENTS_FILE_KEYS)
    if unknown:
        raise WorkflowError(
            f"unknown key {unknown[0]!r} (an agents file has: {', '.join(_AGENTS_FILE_KEYS)})",
            file=file,
            field=unknown[0],
        )
    return doc


def goal_workflow(
    goal: str,
    agents_file: Mapping[str, Any],
    *,
    file: str,
    tools: Sequence[ToolNote] = (),
    planner: str | None = None,
    review: bool = False,
    max_tasks: int = 50,
    replan: int = 1,
    name: str = "goal",
    cache: Sequence[str] = (),
) -> dict[str, Any]:
    """The workflow document of a mission from ``goal``.

    Args:
        goal: what the mission is for, in words.
        agents_file: the parsed agents file (:func:`read_agents`).
        file: the agents file's name, for errors.
        tools: what the planner is told of each tool ``agents_file`` offers.
        planner: the planning agent (default: the one whose role is ``planner``).
        review: the plan waits for ``nexus approve RUN plan`` before any task runs.
        max_tasks: the most tasks the plan may hold.
        replan: how many times the planner is asked to repair its plan when tasks
            of it failed (told which, and why).
        name: the workflow's name.
        cache: what the run may re-use from earlier runs (``["plans"]``: the
            plan of an earlier run of the same goal, agents and inputs; see
            docs/planning.md, The plan cache).

    Raises:
        UserError: the goal is empty or too long.
        WorkflowError: no agent (or more than one) can plan, naming ``file``.
    """
    goal = goal.strip()
    if not goal:
        raise UserError("the goal is empty: say what the mission is for")
    if len(goal) > MAX_GOAL_CHARS:
        raise UserError(f"the goal is {len(goal)} characters; at most {MAX_GOAL_CHARS}")
    agents: dict[str, Any] = dict(agents_file["agents"])
    chosen = _planner(agents, planner, file)
    workers = {n: a for n, a in agents.items() if n != chosen and isinstance(a, dict)}
    capabilities = sorted({str(c) for a in workers.values() for c in (a.get("capabilities") or ())})
    offered = sorted(tools, key=lambda t: t.name)
    if not capabilities and not offered:
        raise WorkflowError(
            f"nothing can carry out a plan: give an agent other than {chosen!r} "
            "capabilities, or list tools under `tools:`",
            file=file,
            field="agents",
        )
    doc: dict[str, Any] = {
        "version": 1,
        "name": name,
        "description": goal[:200],
        "inputs": {"goal": goal},
        "fail_fast": False,
        "agents": agents,
        "extensions": {"max_tasks": max_tasks, "max_depth": 1},
        "tasks": {
            PLAN_TASK: {
                "agent": chosen,
                "prompt": _prompt(workers, offered, max_tasks),
                "output_schema": plan_schema(capabilities, [t.name for t in offered], max_tasks),
                "extend": {"max_tasks": max_tasks, "review": review, "replan": replan},
                "retries": 2,
            }
        },
    }
    if cache:
        doc["cache"] = list(cache)
    for key in ("budget", "max_parallel", "defaults"):
        if key in agents_file:
            doc[key] = agents_file[key]
    if isinstance(agents_file.get("extensions"), dict):
        doc["extensions"] = {**doc["extensions"], **agents_file["extensions"]}
    return doc


def _planner(agents: Mapping[str, Any], wanted: str | None, file: str) -> str:
    if wanted is not None:
        if wanted not in agents:
            raise WorkflowError(
                f"no agent {wanted!r} to plan (agents: {', '.join(sorted(agents))})",
                file=file,
                field="agents",
            )
        return wanted
    found = [n for n, a in agents.items() if isinstance(a, dict) and a.get("role") == PLANNER_ROLE]
    if len(found) == 1:
        return found[0]
    if not found:
        raise WorkflowError(
            f"no agent has role {PLANNER_ROLE!r}: give one `role: {PLANNER_ROLE}` to plan "
            "the goal (or name it with --planner)",
            file=file,
            field="agents",
        )
    raise WorkflowError(
        f"{len(found)} agents have role {PLANNER_ROLE!r} ({', '.join(found)}); "
        "name the one to plan with --planner",
        file=file,
        field="agents",
    )


def plan_schema(
    capabilities: Sequence[str], tools: Sequence[str], max_tasks: int
) -> dict[str, Any]:
    """The JSON schema a planner's answer must match: a summary and the tasks.

    A task may only be what the agents file offers: an agent task for one of
    ``capabilities``, a tool task for one of ``tools`` (none: no tool task).
    """
    properties: dict[str, Any] = {
        "id": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_-]*$"},
        "needs": {"type": "array", "items": {"type": "string"}},
    }
    if capabilities:
        properties["capability"] = {"type": "string", "enum": list(capabilities)}
        properties["prompt"] = {"type": "string"}
    if tools:
        properties["tool"] = {"type": "string", "enum": list(tools)}
        properties["with"] = {"type": "object"}
    task = {
        "type": "object",
        "required": ["id"],
        "properties": properties,
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "required": ["tasks"],
        "properties": {
            "summary": {"type": "string"},
            "tasks": {"type": "array", "minItems": 1, "maxItems": max_tasks, "items": task},
        },
        "additionalProperties": False,
    }


def _prompt(workers: Mapping[str, Any], tools: Sequence[ToolNote], max_tasks: int) -> str:
    """The planner's prompt: the goal (an input), the rules, who and what can do the work.

    Only ``inputs.goal`` is a template; the rest is literal (``{% raw %}``), so an
    agent's description or a tool's cannot inject a template into the run.
    """
    lines = [
        "Break this goal into a plan of tasks for the agents and tools listed below.",
        "",
        'Answer with a JSON object: {"summary": "<one line>", "tasks": [...]}. Each task has',
        '"id" (letters, digits, _ or -, starting with a letter, unique), "needs" (the ids of',
        "the tasks that must finish before it) and either",
        '  "capability" (one listed below) and "prompt" (what to do, self-contained), or',
        '  "tool" (one listed below) and "with" (its arguments).',
        "A prompt or an argument may use the result of a task it needs (directly or not):",
        "{{ tasks.ID.output.text }} is an agent's answer, {{ tasks.ID.output }} a tool's",
        f"result. Plan no cycles and at most {max_tasks} tasks; order does not matter.",
        "",
        "Agents (capability: who does it):",
    ]
    for agent_name, agent in sorted(workers.items()):
        caps = ", ".join(str(c) for c in (agent.get("capabilities") or ())) or "none"
        role = agent.get("role") or "agent"
        lines.append(f"- {agent_name} ({role}): {caps}")
    lines.append("Tools:")
    lines.extend([t.line() for t in tools] or ["- none"])
    catalog = "\n".join(lines).replace("{% endraw %}", "")
    return "Goal:\n{{ inputs.goal }}\n\n{% raw %}" + catalog + "{% endraw %}\n"
