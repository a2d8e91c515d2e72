"""The model gateway port: requests, responses and providers.

Every model call crosses the effect boundary, so a request and its response
must be plain JSON once converted with :meth:`ModelRequest.to_dict` /
:meth:`ModelResponse.to_dict`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from nexus.domain.errors import NotFoundError, UserError
from nexus.domain.plan import AgentSpec


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str
    content: str

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One call to a model. ``turn`` counts this agent's earlier calls in the run."""

    model: str
    messages: tuple[ChatMessage, ...]
    turn: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [m.to_dict() for m in self.messages],
            "turn": self.turn,
        }


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


@dataclass(frozen=True, slots=True)
class ModelResponse:
    text: str
    model: str
    usage: Usage = field(default_factory=Usage)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "model": self.model, "usage": self.usage.to_dict()}


class ModelProvider(Protocol):
    """Answers model requests."""

    async def complete(self, request: ModelRequest, context: Mapping[str, Any]) -> ModelResponse:
        """Answer ``request``. ``context`` is the task's template context."""
        ...


ProviderFactory = Callable[[AgentSpec], ModelProvider]


def split_model(model: str) -> tuple[str, str]:
    """``"provider:model"`` -> ``("provider", "model")``.

    Raises:
        UserError: no provider prefix.
    """
    provider, sep, name = model.partition(":")
    if not sep or not provider or not name:
        raise UserError(f"model '{model}' must be written provider:model")
    return provider, name


class ProviderRegistry:
    """Provider factories by prefix (``scripted``, ``openai``, ...)."""

    def __init__(self, factories: Mapping[str, ProviderFactory] | None = None) -> None:
        self._factories: dict[str, ProviderFactory] = dict(factories or {})

    def add(self, prefix: str, factory: ProviderFactory) -> None:
        self._factories[prefix] = factory

    def provider_for(self, agent: AgentSpec) -> ModelProvider:
        prefix, _ = split_model(agent.model)
        try:
            factory = self._factories[prefix]
        except KeyError:
            raise NotFoundError(
                f"agent '{agent.name}': unknown model provider '{prefix}' "
                f"(available: {', '.join(sorted(self._factories))})"
            ) from None
        return factory(agent)
