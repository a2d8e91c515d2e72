"""Turns a plan's agent specs into runnable agents: function agents or LLM agents.

It sits above :mod:`nexus.agents.base` (the protocols) and :mod:`nexus.agents.llm`
(the tool-calling loop), so neither of those imports the other's module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from nexus.agents.base import Agent, FunctionAgent
from nexus.agents.llm import LLMAgent
from nexus.domain.errors import NotFoundError
from nexus.domain.plan import AgentSpec
from nexus.gateway.base import ModelProvider, ProviderRegistry
from nexus.gateway.resilience import Candidate, with_fallback


@dataclass(slots=True)
class AgentResolver:
    """Turns a plan's agent specs into runnable agents."""

    providers: ProviderRegistry
    functions: dict[str, FunctionAgent] = field(default_factory=dict)

    def add_functions(self, agents: Iterable[FunctionAgent]) -> None:
        for agent in agents:
            self.functions[agent.name] = agent

    def resolve(self, spec: AgentSpec, models: Sequence[str] = ()) -> Agent:
        """The agent for ``spec``; an LLM agent asks ``models`` in order (default: its own)."""
        if spec.model.startswith("function:"):
            name = spec.model.removeprefix("function:")
            try:
                return self.functions[name]
            except KeyError:
                raise NotFoundError(
                    f"agent '{spec.name}': no function agent '{name}' is registered"
                ) from None

        chain = tuple(models) or (spec.model,)
        if len(chain) == 1:
            provider = self.providers.provider_for(replace(spec, model=chain[0]))
            return LLMAgent(spec=spec, provider=provider)

        # Each route is built when the chain first reaches it: a fallback that
        # lacks a key, or whose host residency refuses, fails only the calls
        # that need it, and the chain records why it skipped it.
        candidates = [Candidate.deferred(self._builder(spec, m), m) for m in chain]
        return LLMAgent(spec=spec, provider=with_fallback(*candidates))

    def _builder(self, spec: AgentSpec, model: str) -> Callable[[], ModelProvider]:
        """Build ``spec``'s provider for ``model`` (one route of its chain) when called."""
        providers, agent = self.providers, replace(spec, model=model)
        return lambda: providers.provider_for(agent)
