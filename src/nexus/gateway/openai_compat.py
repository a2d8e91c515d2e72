"""The OpenAI chat-completions adapter, for OpenAI and every server that speaks its API.

One class, :class:`OpenAICompatProvider`, over the official ``openai.AsyncOpenAI``
client, serves the ``openai:``, ``ollama:``, ``vllm:`` and
``openai_compatible:<endpoint>[/<model>]`` prefixes; only the
:class:`~nexus.gateway.settings.Endpoint` differs. The SDK's own retries are
off (``max_retries=0``): :mod:`nexus.gateway.resilience` owns the one retry loop.

Requests go through the SDK's own client (``client.post`` to
``/chat/completions``: its auth, base URL, headers, timeouts, SSE decoding,
stream lifetime and exception classes) with ``cast_to=object`` (the decoded JSON, as
is) instead of the typed ``chat.completions.create``. Two reasons, both measured:
OpenAI-compatible servers bend the format in ways the typed models do not
describe, so we read plain dictionaries anyway; and building the typed model of
every chunk costs about 0.1 ms a chunk, three times our whole per-call
overhead budget on a 20-chunk stream (see ``bench/gateway_overhead.py``).

Streams ask for usage (``stream_options={"include_usage": True}``) and accept it
on any chunk. :class:`ToolCallAssembler` rebuilds tool calls across these
quirks seen in Ollama, vLLM and llama.cpp streams:

* ``index`` missing, or ``0`` for every call of a parallel batch;
* ``id`` missing (we derive a deterministic one, so a replay matches);
* ``type`` missing (``function`` is assumed);
* ``id`` or ``name`` repeated on every delta;
* usage on a chunk that also has choices, or no usage at all before ``[DONE]``
  (then the usage is estimated and marked ``estimated=True``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import openai

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

__all__ = ["OpenAICompatProvider", "ToolCallAssembler", "openai_usage"]

_PATH = "/chat/completions"
_Chunks = openai.AsyncStream[object]  # ``object``: the SDK hands back the decoded JSON as is

_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def openai_usage(data: object) -> Usage | None:
    """Our :class:`Usage` from an OpenAI ``usage`` block (None when there is none)."""
    if not isinstance(data, Mapping) or not data:
        return None
    prompt_details = data.get("prompt_tokens_details") or {}
    completion_details = data.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


def _call_id(position: int, name: str, arguments: str) -> str:
    """A deterministic id for a tool call the server sent without one."""
    digest = hashlib.sha256(f"{position}\0{name}\0{arguments}".encode()).hexdigest()
    return f"call_{digest[:24]}"


def _text_of(content: object) -> str:
    """Message content as text: a string, or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text") or "")
            for part in content
            if isinstance(part, Mapping) and part.get("type", "text") == "text"
        )
    return ""


@dataclass(slots=True)
class _Building:
    id: str | None
    name: str | None = None
    parts: list[str] = field(default_factory=list)

    def arguments(self) -> str:
        return "".join(self.parts)

    def complete(self) -> bool:
        text = self.arguments().strip()
        if not text:
            return False
        try:
            json.loads(text)
        except ValueError:
            return False
        return True


class ToolCallAssembler:
    """Rebuilds tool calls from streamed ``delta.tool_calls`` items, quirks included.

    Which call a delta continues is decided by, in order: its ``id`` (a new id
    starts a new call); its ``index`` (the latest call started with that
    index); a ``name`` arriving for a call that already has a different name or
    complete JSON arguments (a new call, for servers that number every call 0);
    otherwise the latest call.
    """

    def __init__(self) -> None:
        self._calls: list[_Building] = []
        self._by_id: dict[str, _Building] = {}
        self._by_index: dict[int, _Building] = {}

    def feed(self, item: Mapping[str, Any]) -> None:
        """Take one element of a chunk's ``delta.tool_calls``."""
        function = item.get("function") or {}
        call_id = item.get("id") or None
        raw_index = item.get("index")
        index = raw_index if isinstance(raw_index, int) else None
        name = function.get("name") or None
        arguments = function.get("arguments")
        target = self._target(call_id, index, name)
        if call_id is not None and target.id is None:
            target.id = str(call_id)
            self._by_id[target.id] = target
        if name is not None and target.name is None:
            target.name = str(name)
        if arguments:
            target.parts.append(arguments if isinstance(arguments, str) else json.dumps(arguments))

    def _target(self, call_id: object, index: int | None, name: object) -> _Building:
        if call_id is not None:
            known = self._by_id.get(str(call_id))
            if known is not None:
                return known
            candidate = self._candidate(index)
            # an id arriving late for a call that began without one
            if candidate is not None and candidate.id is None and not candidate.complete():
                return candidate
            return self._start(index)
        candidate = self._candidate(index)
        if candidate is None:
            return self._start(index)
        if (
            name is not None
            and candidate.name is not None
            and (name != candidate.name or candidate.complete())
        ):
            return self._start(index)
        return candidate

    def _candidate(self, index: int | None) -> _Building | None:
        if index is not None:
            return self._by_index.get(index)
        return self._calls[-1] if self._calls else None

    def _start(self, index: int | None) -> _Building:
        building = _Building(id=None)
        self._calls.append(building)
        if index is not None:
            self._by_index[index] = building
        return building

    def calls(self) -> tuple[ToolCall, ...]:
        """The calls rebuilt so far, in the order they began."""
        result = []
        for position, building in enumerate(self._calls):
            name = building.name or ""
            arguments = building.arguments()
            call_id = building.id or _call_id(position, name, arguments)
            result.append(ToolCall(id=call_id, name=name, arguments=arguments))
        return tuple(result)


@dataclass(slots=True)
class _StreamState:
    text: list[str] = field(default_factory=list)
    tools: ToolCallAssembler = field(default_factory=ToolCallAssembler)
    usage: Usage | None = None
    finish_reason: str | None = None
    chunks: int = 0

    def feed(self, chunk: Mapping[str, Any]) -> str:
        """Take one chunk; return its text (empty when it has none)."""
        self.chunks += 1
        usage = openai_usage(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        pieces = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, Mapping) or (choice.get("index") or 0) != 0:
                continue  # we ask for one choice; ignore any others
            delta = choice.get("delta") or {}
            piece = _text_of(delta.get("content"))
            if piece:
                pieces.append(piece)
            for item in delta.get("tool_calls") or ():
                if isinstance(item, Mapping):
                    self.tools.feed(item)
            reason = choice.get("finish_reason")
            if reason:
                self.finish_reason = _FINISH.get(str(reason), str(reason))
        text = "".join(pieces)
        if text:
            self.text.append(text)
        return text

    def response(self, request: ModelRequest) -> ModelResponse:
        text = "".join(self.text)
        calls = self.tools.calls()
        usage = self.usage or estimate_usage(request, text, calls)
        return ModelResponse(
            text=text,
            model=request.model,
            usage=usage,
            tool_calls=calls,
            finish_reason=self.finish_reason,
        )


def _message(message: ChatMessage) -> dict[str, Any]:
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "tool":
        data["tool_call_id"] = message.tool_call_id or ""
    if message.tool_calls:
        data["content"] = message.content or None
        data["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    return data


class OpenAICompatProvider:
    """A model provider over ``openai.AsyncOpenAI`` chat completions.

    Args:
        endpoint: where to send requests and with which key.
        client: an SDK client to use instead of building one (tests, custom
            transports); it must have ``max_retries=0``, and it is used as
            given (no redirect refusal, no per-request residency check).
        residency: where requests may go: with a strict policy the client
            checks the host of every request it sends (see
            :mod:`nexus.gateway.egress`; redirects are never followed).

    Raises:
        ProviderAuthError: the endpoint needs a key and has none.

    Example:
        >>> from nexus.gateway.settings import GatewaySettings
        >>> endpoint = GatewaySettings().endpoint("ollama", environ={})
        >>> OpenAICompatProvider(endpoint)
        OpenAICompatProvider(ollama at http://127.0.0.1:11434/v1)
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        client: openai.AsyncOpenAI | None = None,
        residency: Residency | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._client = client or openai.AsyncOpenAI(
            api_key=endpoint.require_key(),
            base_url=endpoint.base_url,
            max_retries=0,
            timeout=openai.Timeout(endpoint.timeout, connect=endpoint.connect_timeout),
            default_headers=dict(endpoint.headers) or None,
            http_client=guarded_client(
                openai.DefaultAsyncHttpxClient, label=endpoint.label, residency=residency
            ),
        )

    def __repr__(self) -> str:
        return f"OpenAICompatProvider({self.endpoint.label} at {self.endpoint.base_url})"

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The SDK client (for connection-pool inspection in tests)."""
        return self._client

    async def aclose(self) -> None:
        """Close the SDK client and its connections."""
        await self._client.close()

    # -- requests
    def _model_name(self, model: str) -> str:
        prefix, name = split_model(model)
        if prefix != self.endpoint.provider:
            raise UserError(f"model '{model}' was sent to the {self.endpoint.label} provider")
        if self.endpoint.provider == "openai_compatible":
            endpoint_name, _, name = name.partition("/")
            if endpoint_name != self.endpoint.name:
                raise UserError(f"model '{model}' was sent to the {self.endpoint.label} provider")
            name = name or self.endpoint.default_model or ""
            if not name:
                raise UserError(
                    f"model '{model}' names no model and endpoint '{endpoint_name}' has no "
                    "default: write openai_compatible:<endpoint>/<model>"
                )
        return name

    def _params(self, request: ModelRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self._model_name(request.model),
            "messages": [_message(m) for m in request.messages],
        }
        if request.tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": dict(tool.parameters),
                    },
                }
                for tool in request.tools
            ]
        if request.max_tokens is not None:
            # OpenAI's reasoning models accept only the new name; other servers the old one
            key = "max_completion_tokens" if self.endpoint.provider == "openai" else "max_tokens"
            params[key] = request.max_tokens
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

    async def complete(self, request: ModelRequest, context: Mapping[str, Any]) -> ModelResponse:
        """One non-streamed chat completion.

        Raises:
            ProviderError: any failure, mapped onto the error taxonomy.
        """
        params = self._params(request)
        try:
            completion: object = await self._client.post(_PATH, body=params, cast_to=object)
        except Exception as exc:
            self._fail(exc)
        if not isinstance(completion, dict):
            raise ProviderUnavailable(
                f"{self.endpoint.label}: malformed response body (not a chat completion)",
                provider=self.endpoint.label,
                reason="malformed_body",
            )
        return self._from_completion(request, completion)

    def _from_completion(self, request: ModelRequest, data: Mapping[str, Any]) -> ModelResponse:
        choices = data.get("choices")
        if not isinstance(choices, Sequence) or not choices or not isinstance(choices[0], Mapping):
            raise ProviderUnavailable(
                f"{self.endpoint.label}: malformed response body (no choices)",
                provider=self.endpoint.label,
                reason="malformed_body",
            )
        choice = choices[0]
        message = choice.get("message") or {}
        text = _text_of(message.get("content"))
        calls = []
        for position, item in enumerate(message.get("tool_calls") or ()):
            function = item.get("function") or {}
            name = str(function.get("name") or "")
            raw = function.get("arguments")
            arguments = raw if isinstance(raw, str) else json.dumps(raw if raw is not None else {})
            call_id = item.get("id") or _call_id(position, name, arguments)
            calls.append(ToolCall(id=str(call_id), name=name, arguments=arguments))
        tool_calls = tuple(calls)
        usage = openai_usage(data.get("usage")) or estimate_usage(request, text, tool_calls)
        reason = choice.get("finish_reason")
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
        """A streamed chat completion: text deltas as they arrive, then the whole response.

        Raises:
            ProviderError: any failure, mapped onto the error taxonomy.
        """
        params = self._params(request)
        state = _StreamState()
        body = {**params, "stream": True, "stream_options": {"include_usage": True}}
        try:
            chunks = await self._client.post(
                _PATH, body=body, cast_to=object, stream=True, stream_cls=_Chunks
            )
        except Exception as exc:
            self._fail(exc)
        try:
            async with chunks:
                async for chunk in chunks:
                    text = state.feed(chunk if isinstance(chunk, dict) else {})
                    if text:
                        yield TextDelta(text)
        except Exception as exc:
            self._fail(exc)
        if state.chunks == 0:
            # a server that ignored `stream: true` (or sent nothing): not an empty answer
            raise ProviderUnavailable(
                f"{self.endpoint.label}: the stream carried no chunks",
                provider=self.endpoint.label,
                reason="malformed_body",
            )
        yield StreamEnd(state.response(request))
