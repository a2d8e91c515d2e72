"""Agents: one protocol, an LLM agent over the gateway, and function agents.

An agent's code runs deterministically; everything it does to the world (a
model call, a tool call) goes through :class:`AgentContext.effect`, which
records it -- and, on replay, serves the recorded result instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from nexus.domain.errors import NotFoundError
from nexus.domain.plan import AgentSpec
from nexus.gateway.base import ChatMessage, ModelProvider, ModelRequest, ProviderRegistry


class AgentContext(Protocol):
    """What an agent can do during one attempt."""

    @property
    def task(self) -> str: ...

    @property
    def attempt(self) -> int: ...

    @property
    def template_context(self) -> Mapping[str, Any]: ...

    async def effect(
        self, kind: str, request: dict[str, Any], fn: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Run ``fn`` as a recorded effect and return its JSON result."""
        ...


@dataclass(frozen=True, slots=True)
class AgentCall:
    """What the engine asks of an agent for one attempt."""

    agent: str
    prompt: str
    instructions: str
    model: str
    turn: int


class Agent(Protocol):
    """Something that can take an agent task."""

    async def run(self, call: AgentCall, ctx: AgentContext) -> Any:
        """Do the task; return a JSON-serialisable output."""
        ...


@dataclass(frozen=True, slots=True)
class LLMAgent:
    """An agent that answers with one model call (tool loops build on this)."""

    spec: AgentSpec
    provider: ModelProvider

    async def run(self, call: AgentCall, ctx: AgentContext) -> Any:
        messages: list[ChatMessage] = []
        if call.instructions:
            messages.append(ChatMessage("system", call.instructions))
        messages.append(ChatMessage("user", call.prompt))
        request = ModelRequest(model=call.model, messages=tuple(messages), turn=call.turn)
        context = ctx.template_context

        async def invoke() -> Any:
            return (await self.provider.complete(request, context)).to_dict()

        response = await ctx.effect("model", request.to_dict(), invoke)
        return {"text": response["text"], "model": response["model"], "usage": response["usage"]}


AgentFunction = Callable[[AgentCall, AgentContext], Awaitable[Any]] | Callable[..., Any]


@dataclass(frozen=True, slots=True)
class FunctionAgent:
    """A Python function as an agent: ``fn(call, ctx) -> output`` (sync or async)."""

    name: str
    fn: AgentFunction
    capabilities: tuple[str, ...] = ()

    async def run(self, call: AgentCall, ctx: AgentContext) -> Any:
        result = self.fn(call, ctx)
        if inspect.isawaitable(result):
            result = await result
        return result

    def spec(self) -> AgentSpec:
        """The plan entry for this agent (model ``function:<name>``)."""
        return AgentSpec(
            name=self.name,
            role="function",
            model=f"function:{self.name}",
            capabilities=self.capabilities,
        )


@dataclass(slots=True)
class AgentResolver:
    """Turns a plan's agent specs into runnable agents."""

    providers: ProviderRegistry
    functions: dict[str, FunctionAgent] = field(default_factory=dict)

    def add_functions(self, agents: Iterable[FunctionAgent]) -> None:
        for agent in agents:
            self.functions[agent.name] = agent

    def resolve(self, spec: AgentSpec) -> Agent:
        if spec.model.startswith("function:"):
            name = spec.model.removeprefix("function:")
            try:
                return self.functions[name]
            except KeyError:
                raise NotFoundError(
                    f"agent '{spec.name}': no function agent '{name}' is registered"
                ) from None
        return LLMAgent(spec=spec, provider=self.providers.provider_for(spec))
