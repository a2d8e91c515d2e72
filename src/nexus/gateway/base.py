"""The model gateway port: requests, responses, stream events and providers.

Every model call crosses the effect boundary, so a request and its response
must be plain JSON once converted with :meth:`ModelRequest.to_dict` /
:meth:`ModelResponse.to_dict`. The dictionaries carry optional fields (tools,
tool calls, cached tokens, the route a fallback chain took...) only when they
are set, so a plain text call records exactly what it recorded before those
fields existed and old event logs replay byte for byte.

Two ways to call a model:

* :meth:`ModelProvider.complete` answers with one :class:`ModelResponse`;
* :meth:`StreamingProvider.stream` yields :class:`TextDelta` events as tokens
  arrive and ends with one :class:`StreamEnd` holding the same response
  ``complete`` would have given (usage included).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from nexus.domain.errors import NotFoundError, UserError
from nexus.domain.plan import AgentSpec


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the model asked for; ``arguments`` is the JSON text as the model wrote it."""

    id: str
    name: str
    arguments: str = "{}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON (``{}`` for empty text).

        Raises:
            UserError: the model wrote arguments that are not JSON.
        """
        if not self.arguments.strip():
            return {}
        try:
            return json.loads(self.arguments)
        except ValueError as exc:
            raise UserError(
                f"tool call '{self.name}' ({self.id}) has arguments that are not JSON: {exc}"
            ) from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCall:
        return cls(id=str(data["id"]), name=str(data["name"]), arguments=str(data["arguments"]))


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: a name, what it does, and a JSON schema for its input."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
        }


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message: ``system``, ``user``, ``assistant`` (maybe with tool calls) or ``tool``.

    A ``tool`` message answers the assistant's tool call ``tool_call_id``.
    """

    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            data["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        if self.tool_call_id is not None:
            data["tool_call_id"] = self.tool_call_id
        return data


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One call to a model. ``turn`` counts this agent's earlier calls in the run.

    ``model`` is written ``provider:model`` (``openai:gpt-4.1-mini``); adapters
    send only the part after the prefix.
    """

    model: str
    messages: tuple[ChatMessage, ...]
    turn: int = 0
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int | None = None
    temperature: float | None = None

    def to_dict(self, *, since: int = 0) -> dict[str, Any]:
        """The request as JSON.

        With ``since``, the first ``since`` messages are left out and
        ``history: since`` stands in their place: how an agent records a call
        that continues its previous one (see ``docs/adr/0005``).
        """
        data: dict[str, Any] = {"model": self.model}
        if since:
            data["history"] = since
        data["messages"] = [m.to_dict() for m in self.messages[since:]]
        data["turn"] = self.turn
        if self.tools:
            data["tools"] = [tool.to_dict() for tool in self.tools]
        if self.max_tokens is not None:
            data["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            data["temperature"] = self.temperature
        return data


async def close_if_closable(thing: object) -> None:
    """Await ``thing.aclose()`` when it has one: a provider holding connections, an event stream."""
    close = getattr(thing, "aclose", None)
    if close is not None:
        await close()


def full_requests(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The whole model requests of one attempt, rebuilt from their records in order.

    An agent records a call that continues its previous one with only the new
    messages and ``history: k`` for the ``k`` it shares with that call
    (:meth:`ModelRequest.to_dict` with ``since``; ``docs/adr/0005``). This puts
    the shared messages back, so each request is what the model was sent.

    Example:
        >>> first = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        >>> later = {"model": "m", "history": 1, "messages": [{"role": "user", "content": "?"}]}
        >>> [len(r["messages"]) for r in full_requests([first, later])]
        [1, 2]

    Raises:
        ValueError: a record's ``history`` reaches past the previous request's
            messages (the records are not one attempt's, in order).
    """
    rebuilt: list[dict[str, Any]] = []
    previous: list[Any] = []
    for index, record in enumerate(records):
        shared = int(record.get("history", 0))
        if shared > len(previous):
            raise ValueError(
                f"model request {index} continues {shared} messages, but the request "
                f"before it has {len(previous)}"
            )
        messages = [*previous[:shared], *record["messages"]]
        request = {key: value for key, value in record.items() if key != "history"}
        request["messages"] = messages
        rebuilt.append(request)
        previous = messages
    return rebuilt


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one call used, normalised across providers.

    ``prompt_tokens`` counts every input token, cached or not; ``cached_tokens``
    (read from a prompt cache) and ``cache_write_tokens`` (written to it) are
    parts of it. ``completion_tokens`` counts every output token;
    ``reasoning_tokens`` is the part spent on hidden reasoning. ``estimated`` is
    true when the provider reported no usage and the figures are our estimate.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            estimated=self.estimated or other.estimated,
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }
        for name in ("cached_tokens", "cache_write_tokens", "reasoning_tokens"):
            value = getattr(self, name)
            if value:
                data[name] = value
        if self.estimated:
            data["estimated"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        return cls(
            prompt_tokens=int(data.get("prompt_tokens", 0)),
            completion_tokens=int(data.get("completion_tokens", 0)),
            cached_tokens=int(data.get("cached_tokens", 0)),
            cache_write_tokens=int(data.get("cache_write_tokens", 0)),
            reasoning_tokens=int(data.get("reasoning_tokens", 0)),
            estimated=bool(data.get("estimated", False)),
        )


RouteOutcome = Literal["answered", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class RouteStep:
    """One provider a call went to, and what came of it (the "why this model" record).

    Attributes:
        model: the ``provider:model`` tried.
        outcome: ``answered``, ``failed`` (errors, retries spent) or ``skipped``
            (its circuit breaker was open, or its provider could not be built:
            no API key, a host residency refuses).
        reason: why it was tried or left: ``primary``, ``fallback``, or the
            error kind and reason that made the chain move on.
        attempts: calls made to it (0 when skipped).
    """

    model: str
    outcome: RouteOutcome
    reason: str
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "outcome": self.outcome,
            "reason": self.reason,
            "attempts": self.attempts,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouteStep:
        outcome = data["outcome"]
        if outcome not in ("answered", "failed", "skipped"):
            raise ValueError(f"unknown route outcome {outcome!r}")
        return cls(
            model=str(data["model"]),
            outcome=outcome,
            reason=str(data["reason"]),
            attempts=int(data.get("attempts", 0)),
        )


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """A model's answer: text, tool calls, why it stopped, usage, and the route taken.

    ``finish_reason`` is normalised to ``stop``, ``length``, ``tool_calls`` or
    ``content_filter`` where the provider's reason maps onto one of them.
    ``cache`` is set only on an answer served by the response cache:
    ``{"hit": true, "key": <request key>, "saved": <the original usage dict>}``
    (see :mod:`nexus.gateway.cache`); ``usage`` is then zero.
    """

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    route: tuple[RouteStep, ...] = ()
    cache: Mapping[str, Any] | None = None

    def routed(self, step: RouteStep) -> ModelResponse:
        """This answer with ``step`` added to its route (what the resilience layer did)."""
        return ModelResponse(
            self.text,
            self.model,
            self.usage,
            self.tool_calls,
            self.finish_reason,
            (*self.route, step),
            self.cache,
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "text": self.text,
            "model": self.model,
            "usage": self.usage.to_dict(),
        }
        if self.tool_calls:
            data["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        if self.finish_reason is not None:
            data["finish_reason"] = self.finish_reason
        if self.route:
            data["route"] = [step.to_dict() for step in self.route]
        if self.cache is not None:
            data["cache"] = dict(self.cache)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelResponse:
        """The response a recorded effect holds (the inverse of :meth:`to_dict`)."""
        return cls(
            text=str(data["text"]),
            model=str(data["model"]),
            usage=Usage.from_dict(data.get("usage", {})),
            tool_calls=tuple(ToolCall.from_dict(c) for c in data.get("tool_calls", ())),
            finish_reason=data.get("finish_reason"),
            route=tuple(RouteStep.from_dict(s) for s in data.get("route", ())),
            cache=dict(data["cache"]) if data.get("cache") is not None else None,
        )


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Text the model produced, passed on as it arrives."""

    text: str
    kind: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last event of a stream: the whole response, usage included."""

    response: ModelResponse
    kind: Literal["end"] = "end"


StreamEvent = TextDelta | StreamEnd


class ModelProvider(Protocol):
    """Answers model requests."""

    async def complete(self, request: ModelRequest, context: Mapping[str, Any]) -> ModelResponse:
        """Answer ``request``. ``context`` is the task's template context."""
        ...


@runtime_checkable
class StreamingProvider(ModelProvider, Protocol):
    """A provider that can also stream its answer token by token."""

    def stream(
        self, request: ModelRequest, context: Mapping[str, Any]
    ) -> AsyncIterator[StreamEvent]:
        """Yield :class:`TextDelta` events, then exactly one :class:`StreamEnd`."""
        ...


ProviderFactory = Callable[[AgentSpec], ModelProvider]


@runtime_checkable
class CheckedFactory(Protocol):
    """A provider factory that can check ahead of a run that it will serve an agent.

    The replay (cassette) factory is one: it loads the agent's cassette files,
    so a missing file stops the run before it starts.
    """

    def __call__(self, agent: AgentSpec) -> ModelProvider: ...

    def check(self, agent: AgentSpec) -> None:
        """Raise a :class:`~nexus.domain.errors.UserError` if ``agent`` cannot be served."""
        ...


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

    def prefixes(self) -> tuple[str, ...]:
        """The provider prefixes this registry knows, sorted."""
        return tuple(sorted(self._factories))

    def factory(self, prefix: str) -> ProviderFactory:
        """The factory registered for ``prefix``.

        Raises:
            NotFoundError: no such prefix.
        """
        try:
            return self._factories[prefix]
        except KeyError:
            raise NotFoundError(f"unknown model provider '{prefix}'") from None

    def check(self, agent: AgentSpec) -> None:
        """Ask every factory that can check ahead (:class:`CheckedFactory`) about ``agent``.

        Raises:
            UserError: a factory cannot serve one of the agent's models (its
                message names the agent, the model and why).
        """
        for prefix in self.prefixes():
            factory = self._factories[prefix]
            if isinstance(factory, CheckedFactory):
                factory.check(agent)

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
