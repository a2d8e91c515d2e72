"""The demo mission's roles: function agents that play back recorded answers.

Each role answers from ``responses.yaml`` (by work item and attempt): it makes
the recorded tool calls through its context -- recorded effects, exactly as a
model's tool calls are -- and gives the recorded reply. So ``nexus demo``
runs the whole mission loop (plan, tests, code, checks, gate feedback,
review, merge queue, evidence) with no network and no key. Being functions,
they are loaded again by ``module:function`` on resume and replay.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

import yaml

from nexus.agents.base import AgentCall, AgentContext
from nexus.domain.errors import NexusError

__all__ = ["architect", "coder", "reviewer", "tester"]

_RETRY = re.compile(r"\(attempt (\d+) of \d+\)")


@cache
def _responses() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("responses.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def _item(ctx: AgentContext) -> str:
    task = ctx.task
    if not task.startswith("item-"):
        raise NexusError(f"the demo's roles work on work items, not on task {task!r}")
    return task[len("item-") :]


async def _play(role: str, call: AgentCall, ctx: AgentContext) -> dict[str, Any]:
    item = _item(ctx)
    answers = _responses()[role].get(item)
    if not answers:
        raise NexusError(f"the demo has no recorded {role} answer for work item {item!r}")
    found = _RETRY.search(call.prompt)
    attempt = int(found.group(1)) + 1 if found else 1
    answer = answers[min(attempt, len(answers)) - 1]
    for index, tool_call in enumerate(answer.get("calls") or ()):
        await ctx.call_tool(tool_call["tool"], dict(tool_call["args"]), f"{role}-{index}")
    return {"text": answer["reply"]}


async def architect(call: AgentCall, ctx: AgentContext) -> dict[str, Any]:
    """The recorded plan: three work items along the spec's modules."""
    recorded = _responses()["architect"]
    return {"text": recorded["reply"], "data": recorded["plan"]}


async def tester(call: AgentCall, ctx: AgentContext) -> dict[str, Any]:
    """The recorded tests of the work item."""
    return await _play("tester", call, ctx)


async def coder(call: AgentCall, ctx: AgentContext) -> dict[str, Any]:
    """The recorded change of the work item, for this attempt."""
    return await _play("coder", call, ctx)


async def reviewer(call: AgentCall, ctx: AgentContext) -> dict[str, Any]:
    """The recorded review: accept."""
    answer = dict(_responses()["reviewer"]["reply"])
    return {"text": answer["notes"], "data": answer}
