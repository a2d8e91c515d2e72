"""Workers execute attempts: a tool call or an agent, through the effect boundary.

A worker gets an :class:`Assignment` -- everything the attempt needs, as plain
values, so it could as well arrive over a queue from another machine -- and
reports back :class:`EffectDone` for every effect and one :class:`AttemptDone`.
It never touches the event log or the run state: the controller turns its
reports into input events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nexus.agents.base import AgentCall, AgentResolver
from nexus.domain.errors import ErrorKind
from nexus.domain.ids import effect_key
from nexus.domain.plan import AgentSpec
from nexus.engine.effects import EffectCall, EffectFailed, Effects, error_record, to_json
from nexus.tools.base import ToolContext, ToolRegistry


@dataclass(frozen=True, slots=True)
class EffectDone:
    task: str
    attempt: int
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AttemptDone:
    task: str
    attempt: int
    output: Any
    error: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Assignment:
    """One attempt to execute: the ``attempt.started`` data plus what it needs."""

    run_id: str
    task: str
    attempt: int
    workspace: str
    started: dict[str, Any]
    agent: AgentSpec | None = None
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def timeout_ms(self) -> int | None:
        value = self.started.get("timeout_ms")
        return None if value is None else int(value)


Report = Callable[[EffectDone | AttemptDone], Awaitable[None]]


class AttemptContext:
    """One attempt's view of the world; every effect goes through it."""

    def __init__(
        self,
        assignment: Assignment,
        effects: Effects,
        report: Report,
        deadline: float | None,
    ) -> None:
        self._a = assignment
        self._effects = effects
        self._report = report
        self._deadline = deadline
        self._calls = 0

    @property
    def task(self) -> str:
        return self._a.task

    @property
    def attempt(self) -> int:
        return self._a.attempt

    @property
    def template_context(self) -> dict[str, Any]:
        return self._a.context

    async def effect(
        self, kind: str, request: dict[str, Any], fn: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Run ``fn`` as effect number n of this attempt; record (or replay) it."""
        a = self._a
        call = EffectCall(
            key=effect_key(a.run_id, a.task, a.attempt, self._calls),
            kind=kind,
            task=a.task,
            attempt=a.attempt,
            request=to_json(request, f"the {kind} request"),
            deadline=self._deadline,
        )
        self._calls += 1
        record = await self._effects.perform(call, fn)
        await self._report(EffectDone(a.task, a.attempt, record))
        if record["error"] is not None:
            raise EffectFailed(record["error"])
        return record["response"]


class Worker:
    """Executes assignments with the given tools, agents and effect policy."""

    def __init__(self, tools: ToolRegistry, agents: AgentResolver, effects: Effects) -> None:
        self.tools = tools
        self.agents = agents
        self.effects = effects

    async def execute(self, a: Assignment, report: Report) -> None:
        """Run one attempt to its end; report every effect and the outcome."""
        loop = asyncio.get_running_loop()
        timeout_ms = a.timeout_ms
        deadline = None if timeout_ms is None else loop.time() + timeout_ms / 1000
        ctx = AttemptContext(a, self.effects, report, deadline)
        output: Any = None
        error: dict[str, Any] | None = None
        try:
            if a.agent is None:
                output = await self._tool(a, ctx)
            elif deadline is None:
                output = await self._agent(a, a.agent, ctx)
            else:
                async with asyncio.timeout_at(deadline + 0.5):
                    output = await self._agent(a, a.agent, ctx)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            error = {
                "kind": str(ErrorKind.TIMEOUT),
                "message": f"task '{a.task}' exceeded its timeout of {timeout_ms} ms",
                "retryable": True,
            }
        except Exception as exc:
            error = to_json(error_record(exc), "error")
        await report(AttemptDone(a.task, a.attempt, output, error))

    async def _tool(self, a: Assignment, ctx: AttemptContext) -> Any:
        name, args = a.started["tool"], a.started["args"]
        grant = a.started.get("profile")
        tool_ctx = ToolContext(
            a.run_id,
            a.task,
            a.attempt,
            Path(a.workspace),
            grant=grant,
        )

        async def call_tool() -> Any:
            # looked up inside the effect: a replay needs no tool at all
            return await self.tools.get(name)(args, tool_ctx)

        return await ctx.effect("tool", {"tool": name, "args": args}, call_tool)

    async def _agent(self, a: Assignment, spec: AgentSpec, ctx: AttemptContext) -> Any:
        agent = self.agents.resolve(spec)
        data = a.started
        call = AgentCall(
            agent=data["agent"],
            prompt=data["prompt"],
            instructions=data["instructions"],
            model=data["model"],
            turn=data["turn"],
        )
        return to_json(await agent.run(call, ctx), f"the output of task '{a.task}'")
