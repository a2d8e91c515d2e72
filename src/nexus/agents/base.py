"""Agents: the protocol an agent implements, the context it runs in, and function agents.

The LLM agent is in :mod:`nexus.agents.llm`; :mod:`nexus.agents.resolver` turns
a plan's agent specs into either. This module imports neither, so the two can
import it.

An agent's code runs deterministically; everything it does to the world (a
model call, a tool call) goes through :class:`AgentContext.effect`, which
records it -- and, on replay, serves the recorded result instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from nexus.domain.plan import AgentSpec
from nexus.gateway.base import ToolSpec


class AgentContext(Protocol):
    """What an agent can do during one attempt."""

    @property
    def task(self) -> str: ...

    @property
    def attempt(self) -> int: ...

    @property
    def template_context(self) -> Mapping[str, Any]: ...

    async def effect(
        self,
        kind: str,
        request: dict[str, Any],
        fn: Callable[[], Awaitable[Any]],
        *,
        estimate: Callable[[], dict[str, Any]] | None = None,
    ) -> Any:
        """Run ``fn`` as a recorded effect and return its JSON result.

        ``estimate`` gives the request a budget reservation is estimated on,
        when ``request`` (what is recorded) holds only part of it.
        """
        ...

    def tool_specs(self, names: Iterable[str]) -> tuple[ToolSpec, ...]:
        """The named tools as the model is offered them (name, description, schema)."""
        ...

    async def call_tool(self, name: str, args: dict[str, Any], call_id: str) -> tuple[Any, str]:
        """Call a registry tool as a recorded ``tool`` effect.

        Returns its JSON result and where the tool comes from (``builtin``,
        ``python``, ``mcp:<server>``, ``wasm``...).
        """
        ...

    @property
    def streaming(self) -> bool:
        """Whether someone listens to :meth:`delta` (then models are asked to stream)."""
        ...

    async def delta(self, text: str) -> None:
        """Pass on text a model produced, as it arrives (not recorded)."""
        ...


@dataclass(frozen=True, slots=True)
class AgentCall:
    """What the engine asks of an agent for one attempt."""

    agent: str
    prompt: str
    instructions: str
    model: str
    turn: int
    #: the models routing chose, in order (the first is ``model``)
    models: tuple[str, ...] = ()
    #: the JSON schema the answer must match, if the task has one
    output_schema: Mapping[str, Any] | None = None
    #: why the previous attempt failed (kind, message, details), fed to this one
    feedback: Mapping[str, Any] | None = None


class Agent(Protocol):
    """Something that can take an agent task."""

    async def run(self, call: AgentCall, ctx: AgentContext) -> Any:
        """Do the task; return a JSON-serialisable output."""
        ...


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
