"""Turns a plan's agent specs into runnable agents: function agents or LLM agents.

It sits above :mod:`nexus.agents.base` (the protocols) and :mod:`nexus.agents.llm`
(the tool-calling loop), so neither of those imports the other's module.

A function agent is Python code, not data, so a plan can only point at it: the
Python API records where it can be imported from (:func:`entrypoint_of`,
``module:name`` in :attr:`~nexus.domain.plan.AgentSpec.entrypoint`), and a
process that was not handed the agent (``nexus replay``, ``nexus resume``)
imports it from there (:meth:`AgentResolver.function`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from nexus.agents.base import Agent, FunctionAgent
from nexus.agents.llm import LLMAgent
from nexus.domain.errors import NotFoundError, UserError
from nexus.domain.plan import AgentSpec
from nexus.gateway.base import ModelProvider, ProviderRegistry
from nexus.gateway.resilience import Candidate, with_fallback

__all__ = ["AgentResolver", "entrypoint_of"]


def entrypoint_of(agent: FunctionAgent) -> str | None:
    """``module:name`` from which another process can import ``agent`` again, or None.

    The name is the function's own; it must lead, in its module as loaded now,
    to the agent or to its function (a decorator that returned the agent, or a
    plain function). None for code no other process can import by name: a
    function of ``__main__`` (a script; importing it again would run it), one
    defined inside another function, a lambda.

    Example:
        >>> entrypoint_of(FunctionAgent("echo", lambda call, ctx: call.prompt)) is None
        True
    """
    fn = agent.fn
    module_name = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module_name or not qualname or module_name == "__main__" or "<" in qualname:
        return None
    target: object = sys.modules.get(module_name)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if target is not agent and target is not fn:
        return None
    return f"{module_name}:{qualname}"


def _import(spec: AgentSpec, entrypoint: str, name: str) -> FunctionAgent:
    """The function agent ``entrypoint`` (``module:name``) names, imported.

    Raises:
        UserError: it is not written ``module:name``, cannot be imported (the
            module is missing or fails as it loads), or names something that is
            neither a function agent nor a function.
    """
    where = f"agent '{spec.name}': cannot load its function {entrypoint}"
    module_name, sep, qualname = entrypoint.partition(":")
    if not sep or not module_name or not qualname:
        raise UserError(f"{where}: '{entrypoint}' is not written module:function")
    try:
        target: object = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except ImportError as exc:
        raise UserError(
            f"{where}: {exc} (run it where Python can import {module_name}: from the "
            "directory the run was started in, or with PYTHONPATH)"
        ) from None
    except Exception as exc:  # the user's module failed as it loaded, or has no such name
        raise UserError(f"{where}: {type(exc).__name__}: {exc}") from None
    if isinstance(target, FunctionAgent):
        return target
    if callable(target):
        return FunctionAgent(name=name, fn=target, capabilities=spec.capabilities)
    raise UserError(f"{where}: {type(target).__name__} is not a function agent or a function")


@dataclass(slots=True)
class AgentResolver:
    """Turns a plan's agent specs into runnable agents."""

    providers: ProviderRegistry
    functions: dict[str, FunctionAgent] = field(default_factory=dict)

    def add_functions(self, agents: Iterable[FunctionAgent]) -> None:
        for agent in agents:
            self.functions[agent.name] = agent

    def function(self, spec: AgentSpec) -> FunctionAgent:
        """The function agent ``spec`` names (model ``function:<name>``).

        One registered under the name wins; otherwise the plan's
        :attr:`~nexus.domain.plan.AgentSpec.entrypoint` is imported (once).

        Raises:
            NotFoundError: none is registered and the plan records no entrypoint.
            UserError: the entrypoint cannot be imported (see :func:`_import`).
        """
        name = spec.model.removeprefix("function:")
        agent = self.functions.get(name)
        if agent is not None:
            return agent
        if spec.entrypoint is None:
            raise NotFoundError(f"agent '{spec.name}': no function agent '{name}' is registered")
        agent = _import(spec, spec.entrypoint, name)
        self.functions[name] = agent
        return agent

    def resolve(self, spec: AgentSpec, models: Sequence[str] = ()) -> Agent:
        """The agent for ``spec``; an LLM agent asks ``models`` in order (default: its own)."""
        if spec.model.startswith("function:"):
            return self.function(spec)

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
