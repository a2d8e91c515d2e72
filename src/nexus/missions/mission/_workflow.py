"""A code mission as a workflow: an architect plans, each work item runs as a state machine.

The mission is an ordinary event-sourced run, so resume, replay, budgets,
cost and audit hold for it as for any run. Its document (:func:`mission_workflow`)
has two tasks:

* ``architect`` -- a state machine: the ``architect`` agent drafts work items
  (structured output against the plan schema), the ``mission.plan`` tool
  compiles them (:func:`nexus.missions.plan.compile_plan`: owned files
  disjoint, no dependency cycle, requirement ids known...), and a rejected
  plan goes back to the architect with the problems, until one is accepted or
  ``max_steps`` ends it;
* ``work`` -- the ``mission.expand`` tool turns the accepted plan into one task
  per work item and *extends* the running plan with them (``plan.extended``;
  with ``--plan-only`` or ``review`` they wait for ``nexus approve RUN work``).

Each work item ``W`` is the task ``item-W`` (:func:`item_tasks`), needing the
items it depends on, a state machine of its own::

    open -> [test] -> code -> check --accepted--> [review] -> merge --merged--> merged
                       ^        |  rejected, attempts left     |  rejected -> code
                       +--------+------------------------------+  conflict -> sync ->
                                |                                   integrate -> check
                                |  no attempt left -> gave_up (the task fails, with the reason)

``mission.open`` opens the item's worktree on the mission branch's tip and
hands back the role prompts; the tester writes tests from the contract, the
coder the change (with the gate's feedback from the last check); ``mission.check``
commits the worktree and runs the checks; ``mission.merge`` puts the change
through the merge queue. Every tool call is a recorded effect, so a replay
reproduces the mission with no model call and no checker run.

Text from the spec or the repository is never template source: it reaches a
prompt either through a tool's recorded output or inside ``{% raw %}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nexus.missions.mission._config import (
    ITEM_TASK_PREFIX,
    MISSION_INPUT,
    MISSION_WORKFLOW,
    SPEC_INPUT,
    MissionConfig,
)

__all__ = [
    "ARCHITECT_TASK",
    "ROLES",
    "WORK_TASK",
    "item_tasks",
    "literal",
    "mission_workflow",
]

#: The planning task (a state machine) and the task that adds the work items.
ARCHITECT_TASK = "architect"
WORK_TASK = "work"
#: The roles a mission's agents play (each the name of an agent in the plan).
ROLES = ("architect", "coder", "tester", "reviewer", "integrator")


def literal(text: str) -> str:
    """``text`` as template source that renders to itself (nothing in it is evaluated)."""
    return "{% raw %}" + text.replace("{% endraw %}", "{ % endraw % }") + "{% endraw %}"


def mission_workflow(
    config: MissionConfig,
    spec: Mapping[str, Any],
    agents: Mapping[str, Mapping[str, Any]],
    *,
    architect_prompt: str,
    plan_schema: Mapping[str, Any],
    plan_review: bool = False,
    rounds: int = 3,
    budget: Mapping[str, Any] | None = None,
    max_parallel: int = 2,
) -> dict[str, Any]:
    """The workflow document of a code mission.

    Args:
        config: the mission's settings (recorded as the input ``mission``).
        spec: the SpecMap, as JSON data (recorded as the input ``spec``).
        agents: the workflow's agents by role name (each an agent entry).
        architect_prompt: what the architect is asked (literal text).
        plan_schema: the JSON schema of the architect's answer.
        plan_review: the work items wait for ``nexus approve RUN work``.
        rounds: how many plans the architect may draft before the mission fails.
        budget: the run's budget (as in a workflow file).
        max_parallel: how many attempts run at once.
    """
    feedback = (
        "{% if fsm.output %}\n\nYour previous plan was rejected. Fix every problem "
        "and answer with the whole plan again:\n{{ fsm.output.feedback }}{% endif %}"
    )
    doc: dict[str, Any] = {
        "version": 1,
        "name": MISSION_WORKFLOW,
        "description": f"code mission {config.id} on {config.branch}",
        "workspace": config.workdir,
        "inputs": {MISSION_INPUT: config.model_dump(mode="json"), SPEC_INPUT: dict(spec)},
        "fail_fast": False,
        "max_parallel": max_parallel,
        "agents": {name: dict(entry) for name, entry in agents.items()},
        "extensions": {"max_tasks": config.max_items, "max_depth": 1},
        "tasks": {
            ARCHITECT_TASK: {
                "fsm": {
                    "initial": "draft",
                    "max_steps": 2 * rounds,
                    "states": {
                        "draft": {
                            "agent": "architect",
                            "prompt": literal(architect_prompt) + feedback,
                            "output_schema": dict(plan_schema),
                            "transitions": [{"to": "compile"}],
                        },
                        "compile": {
                            "tool": "mission.plan",
                            "with": {"answer": "{{ fsm.output }}"},
                            "transitions": [
                                {"to": "accepted", "when": "{{ fsm.output.ok }}"},
                                {"to": "draft"},
                            ],
                        },
                        "accepted": {"terminal": True},
                    },
                },
            },
            WORK_TASK: {
                "needs": [ARCHITECT_TASK],
                "tool": "mission.expand",
                "with": {"plan": "{{ tasks.architect.output.plan }}"},
                "extend": {"max_tasks": config.max_items, "review": plan_review},
            },
        },
    }
    if budget:
        doc["budget"] = dict(budget)
    return doc


def item_tasks(
    items: Sequence[Mapping[str, Any]],
    config: MissionConfig,
    roles: Sequence[str],
    *,
    review_schema: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The tasks of the work items of an accepted plan (``mission.expand`` answers them).

    Args:
        items: the plan's work items (``MissionPlan.to_data()["items"]``), in order.
        config: the mission's settings.
        roles: the roles the mission has agents for (a missing tester or
            reviewer leaves its state out).
    """
    tasks: dict[str, Any] = {}
    for item in items:
        item_id = str(item["id"])
        tasks[f"{ITEM_TASK_PREFIX}{item_id}"] = {
            "needs": [f"{ITEM_TASK_PREFIX}{n}" for n in item.get("needs") or ()],
            "fsm": _item_machine(item_id, bool(item.get("tests")), config, roles, review_schema),
        }
    return tasks


def _item_machine(
    item: str,
    has_tests: bool,
    config: MissionConfig,
    roles: Sequence[str],
    review_schema: Mapping[str, Any] | None,
) -> dict[str, Any]:
    tester = has_tests and "tester" in roles
    reviewer = config.review and "reviewer" in roles
    integrator = "integrator" in roles
    attempts = config.max_attempts
    gave_up = {"to": "gave_up", "when": f"{{{{ fsm.output.attempt >= {attempts} }}}}"}
    coder_prompt = (
        "{{ fsm.outputs.open.prompts.coder }}"
        "{% if fsm.outputs.check is defined and not fsm.outputs.check.accepted %}\n\n"
        "The checks rejected your last change (attempt {{ fsm.outputs.check.attempt }} of "
        f"{attempts}). Fix what they report:\n"
        "<feedback>\n{{ fsm.outputs.check.feedback }}\n</feedback>{% endif %}"
        "{% if fsm.outputs.review is defined and fsm.outputs.review.data is defined "
        "and fsm.outputs.review.data.verdict == 'revise' %}\n\n"
        "The reviewer asked for changes:\n"
        "<feedback>\n{{ fsm.outputs.review.data.notes }}\n</feedback>{% endif %}"
        "{% if fsm.outputs.merge is defined and fsm.outputs.merge.status == 'rejected' %}\n\n"
        "Merged with the mission branch, your change failed the checks:\n"
        "<feedback>\n{{ fsm.outputs.merge.diagnostics }}\n</feedback>{% endif %}"
    )
    after_check_ok = "review" if reviewer else "merge"
    states: dict[str, Any] = {
        "open": {
            "tool": "mission.open",
            "with": {"item": item},
            "transitions": [{"to": "test" if tester else "code"}],
        },
        "code": {
            "agent": "coder",
            "prompt": coder_prompt,
            "transitions": [{"to": "check"}],
        },
        "check": {
            "tool": "mission.check",
            "with": {"item": item, "step": "{{ fsm.step }}"},
            "transitions": [
                {"to": after_check_ok, "when": "{{ fsm.output.accepted }}"},
                gave_up,
                {"to": "code"},
            ],
        },
        "merge": {
            "tool": "mission.merge",
            "with": {"item": item, "step": "{{ fsm.step }}"},
            "transitions": [
                {"to": "merged", "when": "{{ fsm.output.merged }}"},
                *(
                    [{"to": "sync", "when": "{{ fsm.output.status == 'conflict' }}"}]
                    if integrator
                    else []
                ),
                gave_up,
                {"to": "code"},
            ],
        },
        "merged": {"terminal": True},
        "gave_up": {
            "terminal": True,
            "fail": True,
            "reason": (
                f"work item {item}: not merged after {attempts} attempts: "
                "{{ fsm.output.summary }}"
            ),
        },
    }
    if tester:
        states["test"] = {
            "agent": "tester",
            "prompt": "{{ fsm.outputs.open.prompts.tester }}",
            "transitions": [{"to": "code"}],
        }
    if reviewer:
        states["review"] = {
            "agent": "reviewer",
            "prompt": "{{ fsm.outputs.check.review_prompt }}",
            **({"output_schema": dict(review_schema)} if review_schema else {}),
            "transitions": [
                {"to": "merge", "when": "{{ fsm.output.data.verdict == 'accept' }}"},
                {"to": "code"},
            ],
        }
    if integrator:
        states["sync"] = {
            "tool": "mission.sync",
            "with": {"item": item},
            "transitions": [{"to": "integrate"}],
        }
        states["integrate"] = {
            "agent": "integrator",
            "prompt": "{{ fsm.outputs.sync.integrator_prompt }}",
            "transitions": [{"to": "check"}],
        }
    # each attempt may take every state once, plus the states before the first
    per_attempt = 2 + int(reviewer) + 1 + 3 * int(integrator)
    return {
        "initial": "open",
        "max_steps": 2 + int(tester) + per_attempt * attempts,
        "states": states,
    }
