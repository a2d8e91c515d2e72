"""The Anthropic Messages API adapter, over the official ``anthropic.AsyncAnthropic`` client.

Requests translate from our OpenAI-shaped messages: system messages become the
``system`` parameter; an assistant message's tool calls become ``tool_use``
blocks; ``tool`` messages become ``tool_result`` blocks in a user turn
(consecutive results share one turn, as the API requires).

Usage is normalised to :class:`~nexus.gateway.base.Usage`: Anthropic's
``input_tokens`` excludes cache reads and writes, so ``prompt_tokens`` is
``input_tokens + cache_read_input_tokens + cache_creation_input_tokens`` and
the two cache figures become ``cached_tokens`` and ``cache_write_tokens``. In a
stream the input figures arrive in ``message_start`` and the cumulative output
count in ``message_delta``; the last value of each wins.

Tool arguments are re-serialised as compact JSON, streamed or not, so both
modes give byte-identical tool calls. The SDK's retries are off
(``max_retries=0``); :mod:`nexus.gateway.resilience` owns the retry loop.

Non-streamed calls use the typed ``messages.create``, for its guard against a
non-streamed request that may run past ten minutes (on a client with the SDK's
default timeout it refuses such a request and asks for streaming). Streams
post to ``/v1/messages`` through the same client (its auth, headers, SSE
decoding, error classes and stream lifetime) with ``cast_to=object``, so each
event arrives as its decoded JSON: building the typed model of every event and
turning it back into a dictionary cost about 0.02 ms an event, half our
overhead on a 20-chunk stream (see ``bench/gateway_overhead.py``). That path
skips two things ``create`` does: its deprecation warning, which
:func:`_warn_if_deprecated` repeats from the SDK's own table, and its
OpenTelemetry span (only emitted when the application configures a tracer).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, cast

import anthropic
from anthropic.resources.messages import DEPRECATED_MODELS
from anthropic.types import Message

from nexus.domain.errors import UserError
from nexus.gateway.base import (
    ChatMessage,
    ModelRequest,
    ModelResponse,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCall,
    Usage,
    split_model,
)
from nexus.gateway.egress import guarded_client
from nexus.gateway.errors import (
    ProviderTimeout,
    ProviderUnavailable,
    leaks_secret,
    map_provider_error,
    request_timeout,
)
from nexus.gateway.pricing import estimate_usage
from nexus.gateway.settings import Endpoint

if TYPE_CHECKING:
    from nexus.gateway.routing import Residency

__all__ = ["AnthropicProvider", "anthropic_usage"]

_PATH = "/v1/messages"
_Events = anthropic.AsyncStream[object]  # ``object``: the SDK hands back each event's JSON as is
_UNTYPED = ("temperature",)  # API fields the SDK's typed ``create`` no longer takes as arguments

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) else 0


def anthropic_usage(data: object) -> Usage | None:
    """Our :class:`Usage` from an Anthropic ``usage`` block (None when there is none)."""
    if not isinstance(data, Mapping) or not data:
        return None
    read = _int(data.get("cache_read_input_tokens"))
    written = _int(data.get("cache_creation_input_tokens"))
    details = data.get("output_tokens_details") or {}
    return Usage(
        prompt_tokens=_int(data.get("input_tokens")) + read + written,
        completion_tokens=_int(data.get("output_tokens")),
        cached_tokens=read,
        cache_write_tokens=written,
        reasoning_tokens=_int(details.get("thinking_tokens"))
        if isinstance(details, Mapping)
        else 0,
    )


def _compact(arguments: object) -> str:
    return json.dumps(arguments, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _normalise_json(text: str) -> str:
    if not text.strip():
        return "{}"
    try:
        return _compact(json.loads(text))
    except ValueError:
        return text  # leave what the model wrote; the agent loop reports it


def _messages(messages: tuple[ChatMessage, ...]) -> tuple[str, list[dict[str, Any]]]:
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            system.append(message.content)
            continue
        if message.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id or "",
                "content": message.content,
            }
            last = turns[-1] if turns else None
            if last is not None and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].append(block)
            else:
                turns.append({"role": "user", "content": [block]})
            continue
        if message.role == "assistant" and message.tool_calls:
            content: list[dict[str, Any]] = []
            if message.content:
                content.append({"type": "text", "text": message.content})
            for call in message.tool_calls:
                content.append(
                    {
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": call.parsed_arguments(),
                    }
                )
            turns.append({"role": "assistant", "content": content})
            continue
        turns.append({"role": message.role, "content": message.content})
    return "\n\n".join(system), turns


def _warn_if_deprecated(model: str) -> None:
    """The warning ``messages.create`` gives for a deprecated model, for a call that bypasses it.

    Same table, text, category and attribution (``stacklevel`` names the frame
    that drives our stream, as the SDK's names the one that drives ``create``).
    """
    end_of_life = DEPRECATED_MODELS.get(model)
    if end_of_life is not None:
        warnings.warn(
            f"The model '{model}' is deprecated and will reach end-of-life on {end_of_life}.\n"
            "Please migrate to a newer model. Visit "
            "https://docs.anthropic.com/en/docs/resources/model-deprecations for more information.",
            DeprecationWarning,
            stacklevel=3,
        )


@dataclass(slots=True)
class _Block:
    kind: str
    id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _StreamState:
    started: bool = False
    stopped: bool = False
    usage: dict[str, Any] = field(default_factory=dict)
    blocks: dict[int, _Block] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    finish_reason: str | None = None

    def feed(self, event: Mapping[str, Any]) -> str:
        """Take one stream event; return the text it adds (empty when none)."""
        kind = event.get("type")
        if kind == "message_start":
            self.started = True
            message = event.get("message") or {}
            self._merge_usage(message.get("usage"))
        elif kind == "content_block_start":
            index = int(event.get("index") or 0)
            block = event.get("content_block") or {}
            built = _Block(kind=str(block.get("type") or ""))
            if built.kind == "tool_use":
                built.id = str(block.get("id") or "")
                built.name = str(block.get("name") or "")
            elif built.kind == "text" and block.get("text"):
                built.parts.append(str(block["text"]))
            self.blocks[index] = built
            self.order.append(index)
        elif kind == "content_block_delta":
            index = int(event.get("index") or 0)
            delta = event.get("delta") or {}
            block = self.blocks.get(index)
            if block is None:
                return ""
            if delta.get("type") == "text_delta":
                text = str(delta.get("text") or "")
                block.parts.append(text)
                return text
            if delta.get("type") == "input_json_delta":
                block.parts.append(str(delta.get("partial_json") or ""))
        elif kind == "message_delta":
            delta = event.get("delta") or {}
            reason = delta.get("stop_reason")
            if reason:
                self.finish_reason = _FINISH.get(str(reason), str(reason))
            self._merge_usage(event.get("usage"))
        elif kind == "message_stop":
            self.stopped = True
        return ""

    def _merge_usage(self, usage: object) -> None:
        if isinstance(usage, Mapping):
            for key, value in usage.items():
                if value is not None:
                    self.usage[key] = value

    def response(self, request: ModelRequest) -> ModelResponse:
        texts: list[str] = []
        calls: list[ToolCall] = []
        for index in self.order:
            block = self.blocks[index]
            if block.kind == "text":
                texts.append("".join(block.parts))
            elif block.kind == "tool_use":
                arguments = _normalise_json("".join(block.parts))
                calls.append(ToolCall(id=block.id, name=block.name, arguments=arguments))
        text = "".join(texts)
        tool_calls = tuple(calls)
        usage = anthropic_usage(self.usage) or estimate_usage(request, text, tool_calls)
        return ModelResponse(
            text=text,
            model=request.model,
            usage=usage,
            tool_calls=tool_calls,
            finish_reason=self.finish_reason,
        )


class AnthropicProvider:
    """A model provider over ``anthropic.AsyncAnthropic`` (the Messages API).

    Args:
        endpoint: where to send requests and with which key.
        client: an SDK client to use instead of building one; it must have
            ``max_retries=0``, and it is used as given (no redirect refusal,
            no per-request residency check).
        residency: where requests may go: with a strict policy the client
            checks the host of every request it sends (see
            :mod:`nexus.gateway.egress`; redirects are never followed).

    Raises:
        ProviderAuthError: no API key is configured.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        client: anthropic.AsyncAnthropic | None = None,
        residency: Residency | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._client = client or anthropic.AsyncAnthropic(
            api_key=endpoint.require_key(),
            base_url=endpoint.base_url,
            max_retries=0,
            timeout=anthropic.Timeout(endpoint.timeout, connect=endpoint.connect_timeout),
            default_headers=dict(endpoint.headers) or None,
            http_client=guarded_client(
                anthropic.DefaultAsyncHttpxClient, label=endpoint.label, residency=residency
            ),
        )

    def __repr__(self) -> str:
        return f"AnthropicProvider({self.endpoint.label} at {self.endpoint.base_url})"

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        """The SDK client (for connection-pool inspection in tests)."""
        return self._client

    async def aclose(self) -> None:
        """Close the SDK client and its connections."""
        await self._client.close()

    def _body(self, request: ModelRequest) -> dict[str, Any]:
        """The Messages API request body (without ``stream``)."""
        prefix, name = split_model(request.model)
        if prefix != self.endpoint.provider:
            raise UserError(f"model '{request.model}' was sent to the anthropic provider")
        system, turns = _messages(request.messages)
        params: dict[str, Any] = {
            "model": name,
            "max_tokens": request.max_tokens or self.endpoint.max_tokens,
            "messages": turns,
        }
        if system:
            params["system"] = system
        if request.tools:
            params["tools"] = [
                {
                    "name": tool.name,
                    "description": tool.description,
                    "input_schema": dict(tool.parameters),
                }
                for tool in request.tools
            ]
        if request.temperature is not None:
            params["temperature"] = request.temperature
        return params

    def _fail(self, exc: BaseException) -> NoReturn:
        secrets = self.endpoint.secrets()
        error = map_provider_error(exc, provider=self.endpoint.label, secrets=secrets)
        if error is exc or error is exc.__cause__:
            raise error  # ours (an egress denial), already explained; no self-referring cause
        if isinstance(error, ProviderTimeout):
            error = request_timeout(
                error,
                exc,
                host=self.endpoint.host,
                timeout=self.endpoint.timeout,
                connect_timeout=self.endpoint.connect_timeout,
            )
        raise error from (None if leaks_secret(exc, secrets) else exc)

    def _malformed(self, what: str) -> ProviderUnavailable:
        return ProviderUnavailable(
            f"{self.endpoint.label}: malformed response ({what})",
            provider=self.endpoint.label,
            reason="malformed_body",
        )

    async def complete(self, request: ModelRequest, context: Mapping[str, Any]) -> ModelResponse:
        """One non-streamed message.

        Raises:
            ProviderError: any failure, mapped onto the error taxonomy.
        """
        params = self._body(request)
        extra = {key: params.pop(key) for key in _UNTYPED if key in params}
        try:
            message: object = await self._client.messages.create(**params, extra_body=extra or None)
        except Exception as exc:
            self._fail(exc)
        if not isinstance(message, Message):
            raise self._malformed("not a message")
        data = cast(dict[str, Any], message.to_dict(warnings=False))
        content = data.get("content")
        if not isinstance(content, list):
            raise self._malformed("no content")
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in content:
            if not isinstance(block, Mapping):
                continue
            if block.get("type") == "text":
                texts.append(str(block.get("text") or ""))
            elif block.get("type") == "tool_use":
                calls.append(
                    ToolCall(
                        id=str(block.get("id") or ""),
                        name=str(block.get("name") or ""),
                        arguments=_compact(block.get("input") or {}),
                    )
                )
        text = "".join(texts)
        tool_calls = tuple(calls)
        usage = anthropic_usage(data.get("usage")) or estimate_usage(request, text, tool_calls)
        reason = data.get("stop_reason")
        return ModelResponse(
            text=text,
            model=request.model,
            usage=usage,
            tool_calls=tool_calls,
            finish_reason=_FINISH.get(str(reason), str(reason)) if reason else None,
        )

    async def stream(
        self, request: ModelRequest, context: Mapping[str, Any]
    ) -> AsyncIterator[StreamEvent]:
        """A streamed message: text deltas as they arrive, then the whole response.

        Raises:
            ProviderError: any failure, mapped onto the error taxonomy; a
                stream that ends without ``message_stop`` is ``transient``
                with ``reason="incomplete_stream"``.
        """
        body = self._body(request)
        state = _StreamState()
        try:
            _warn_if_deprecated(body["model"])  # inside the try, as in ``create``
            events = await self._client.post(
                _PATH,
                body={**body, "stream": True},
                cast_to=object,
                stream=True,
                stream_cls=_Events,
            )
        except Exception as exc:
            self._fail(exc)
        try:
            async with events:
                async for event in events:
                    text = state.feed(event if isinstance(event, dict) else {})
                    if text:
                        yield TextDelta(text)
        except Exception as exc:
            self._fail(exc)
        if not state.started or not state.stopped:
            raise ProviderUnavailable(
                f"{self.endpoint.label}: the stream ended before message_stop",
                provider=self.endpoint.label,
                reason="incomplete_stream",
            )
        yield StreamEnd(state.response(request))
