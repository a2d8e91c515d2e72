"""Provider registries that serve ``<prefix>:<name>`` models with test models.

A workflow names its test models (``model: test:writer``); the registry built
here hands each agent the model registered under that name, and checks ahead
of a run that every such name is registered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from nexus.domain.errors import UserError
from nexus.domain.plan import AgentSpec
from nexus.gateway.base import ModelProvider, ProviderRegistry, split_model

__all__ = ["model_registry", "registry_of"]


class _Factory:
    """The registry entry for ``<prefix>:<name>`` models; checks ahead that it serves them."""

    def __init__(
        self,
        prefix: str,
        pick: Callable[[str], ModelProvider],
        names: Sequence[str] | None,
    ) -> None:
        self._prefix = prefix
        self._pick = pick
        self._names = names

    def check(self, agent: AgentSpec) -> None:
        """Raise a :class:`UserError` if one of ``agent``'s models of ours is not registered."""
        if self._names is None:
            return
        models = (agent.model, *agent.fallbacks, *(str(m) for m in agent.tiers.values()))
        for model in dict.fromkeys(models):
            prefix, _, name = model.partition(":")
            if prefix == self._prefix and name not in self._names:
                known = ", ".join(f"{self._prefix}:{n}" for n in sorted(self._names)) or "none"
                raise UserError(
                    f"agent '{agent.name}': model '{model}' is not a registered test model "
                    f"(registered: {known})"
                )

    def __call__(self, agent: AgentSpec) -> ModelProvider:
        _, name = split_model(agent.model)
        if self._names is not None and name not in self._names:
            self.check(agent)
        return self._pick(name)


def registry_of(
    prefix: str,
    pick: Callable[[str], ModelProvider],
    base: ProviderRegistry | None,
    names: Sequence[str] | None = None,
) -> ProviderRegistry:
    """A copy of ``base`` (or an empty registry) serving ``<prefix>:<name>`` with ``pick(name)``.

    Args:
        names: the names ``pick`` knows; ``None`` when it serves any name.

    Raises:
        ValueError: ``prefix`` is empty or holds a colon.
    """
    if not prefix or ":" in prefix:
        raise ValueError(f"a provider prefix must be a non-empty word without ':', got {prefix!r}")
    registry = ProviderRegistry()
    if base is not None:
        for known in base.prefixes():
            registry.add(known, base.factory(known))
    registry.add(prefix, _Factory(prefix, pick, names))
    return registry


def model_registry(
    models: Mapping[str, ModelProvider],
    *,
    prefix: str = "test",
    base: ProviderRegistry | None = None,
) -> ProviderRegistry:
    """A provider registry serving ``<prefix>:<name>`` with ``models[name]``.

    A workflow file then names its test models (``model: test:writer``). An
    agent naming a model not in ``models`` stops the run before it starts
    (the registry's check), with a message that lists the names it has.

    Args:
        models: the test models (or any providers) by name.
        prefix: the provider prefix (default ``test``).
        base: providers to keep beside them (copied, not changed).

    Example:
        >>> from nexus.testing import TestModel
        >>> registry = model_registry({"writer": TestModel("draft"), "critic": TestModel("ok")})
        >>> registry.prefixes()
        ('test',)
    """
    table = dict(models)
    return registry_of(prefix, table.__getitem__, base, tuple(table))
