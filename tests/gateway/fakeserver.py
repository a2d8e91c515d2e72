"""A fake model server on loopback that speaks the OpenAI and Anthropic wire protocols.

It is a small HTTP/1.1 server written on raw asyncio streams, running its own
event loop in a daemon thread, so a test can make it misbehave in ways a
framework would hide: hang before the headers, cut the TCP connection in the
middle of an SSE stream, send a truncated JSON body, or refuse nothing at all.

A test scripts the replies it wants (:meth:`FakeServer.enqueue`); when the
script is empty the server answers like the real API would (a short text
answer with a usage block, streamed if the request asked for a stream).

The server counts connections: ``open_connections`` (sockets still open) and
``busy`` (connections in the middle of a reply), so tests can assert that no
call leaves a connection behind.

Wire builders (``openai_completion``, ``openai_stream``, ``anthropic_message``,
``anthropic_stream``) produce the bodies and SSE events the real services send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nexus.gateway.anthropic_provider import AnthropicProvider
from nexus.gateway.base import (
    ChatMessage,
    ModelRequest,
    ModelResponse,
    StreamEvent,
    TextDelta,
)
from nexus.gateway.openai_compat import OpenAICompatProvider
from nexus.gateway.settings import Endpoint, Secret

JSON = dict[str, Any]


# -- replies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One scripted reply.

    Exactly one of ``body`` (a complete response), ``events`` (an SSE stream sent
    with chunked encoding), ``hang`` (never answer) or ``drop`` (close the socket
    without a byte) describes it.
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str = "application/json"
    events: Sequence[str] | None = None
    delay: float = 0.0  # before the status line
    event_delay: float = 0.0  # between SSE events
    disconnect_after: int | None = None  # close after this many events, mid-stream
    truncate_body: int | None = None  # send only this many body bytes, then close
    hang: bool = False
    drop: bool = False


def json_reply(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
    """A complete JSON response."""
    return Reply(status=status, headers=dict(headers or {}), body=json.dumps(body).encode())


def raw_reply(
    body: bytes, status: int = 200, content_type: str = "application/json", **headers: str
) -> Reply:
    """A response with exactly these bytes (for malformed bodies)."""
    return Reply(status=status, body=body, content_type=content_type, headers=headers)


def sse_reply(
    events: Sequence[str], *, disconnect_after: int | None = None, event_delay: float = 0.0
) -> Reply:
    """An SSE stream of already formatted events."""
    return Reply(
        events=list(events),
        content_type="text/event-stream",
        disconnect_after=disconnect_after,
        event_delay=event_delay,
    )


def truncated(body: Any, keep: int = 20) -> Reply:
    """A JSON response whose connection closes after ``keep`` bytes of the body."""
    return Reply(body=json.dumps(body).encode(), truncate_body=keep)


def hang() -> Reply:
    """Read the request, then never answer (until the client gives up)."""
    return Reply(hang=True)


def drop() -> Reply:
    """Close the connection as soon as the request is read."""
    return Reply(drop=True)


def openai_error(status: int, message: str, code: str | None = None, **headers: str) -> Reply:
    """An OpenAI-style error body."""
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return json_reply({"error": error}, status=status, headers=headers)


def anthropic_error(status: int, type_: str, message: str, **headers: str) -> Reply:
    """An Anthropic-style error body."""
    return json_reply(
        {"type": "error", "error": {"type": type_, "message": message}},
        status=status,
        headers=headers,
    )


def unused_port() -> int:
    """A loopback port nobody listens on (connecting to it is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- OpenAI chat completions wire format --------------------------------------------------


def openai_usage(
    prompt: int, completion: int, cached: int | None = None, reasoning: int | None = None
) -> JSON:
    """An OpenAI ``usage`` block (details only when given)."""
    usage: JSON = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached, "audio_tokens": 0}
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning, "audio_tokens": 0}
    return usage


def openai_completion(
    text: str | None = "ok",
    *,
    tool_calls: Iterable[tuple[str, str, str]] = (),
    usage: JSON | None = None,
    model: str = "gpt-test",
    finish_reason: str | None = None,
) -> JSON:
    """A non-streamed chat completion; ``tool_calls`` are ``(id, name, arguments)``."""
    calls = [
        {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
        for cid, name, args in tool_calls
    ]
    message: JSON = {"role": "assistant", "content": text, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason or ("tool_calls" if calls else "stop"),
            }
        ],
        "usage": usage if usage is not None else openai_usage(5, 1),
    }


def openai_chunk(
    delta: JSON | None = None,
    *,
    finish_reason: str | None = None,
    usage: JSON | None = None,
    choices: bool = True,
    model: str = "gpt-test",
) -> JSON:
    """One ``chat.completion.chunk``; ``choices=False`` gives the usage-only final chunk."""
    chunk: JSON = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": (
            [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}]
            if choices
            else []
        ),
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def sse_data(payload: JSON | str) -> str:
    """One SSE event with only a data line (the OpenAI style)."""
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n"


def openai_stream(
    pieces: Sequence[str] = ("o", "k"),
    *,
    tool_calls: Iterable[tuple[str, str, str]] = (),
    usage: JSON | None = None,
    include_usage: bool = True,
    done: bool = True,
) -> list[str]:
    """A well-formed OpenAI stream: role, content pieces, tool-call deltas, finish, usage."""
    chunks = [openai_chunk({"role": "assistant", "content": ""})]
    chunks += [openai_chunk({"content": piece}) for piece in pieces]
    calls = list(tool_calls)
    for index, (cid, name, args) in enumerate(calls):
        head = {"index": index, "id": cid, "type": "function"}
        head["function"] = {"name": name, "arguments": ""}
        chunks.append(openai_chunk({"tool_calls": [head]}))
        half = len(args) // 2
        for part in (args[:half], args[half:]):
            chunks.append(
                openai_chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
            )
    chunks.append(openai_chunk({}, finish_reason="tool_calls" if calls else "stop"))
    if include_usage:
        chunks.append(
            openai_chunk(choices=False, usage=usage if usage is not None else openai_usage(5, 1))
        )
    events = [sse_data(c) for c in chunks]
    if done:
        events.append(sse_data("[DONE]"))
    return events


# -- Anthropic messages wire format -------------------------------------------------------


def anthropic_usage(
    input_tokens: int,
    output_tokens: int,
    cache_read: int | None = None,
    cache_write: int | None = None,
) -> JSON:
    """An Anthropic ``usage`` block."""
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_write,
    }


def anthropic_message(
    text: str | None = "ok",
    *,
    tool_uses: Iterable[tuple[str, str, JSON]] = (),
    usage: JSON | None = None,
    model: str = "claude-test",
    stop_reason: str | None = None,
) -> JSON:
    """A non-streamed Messages API response; ``tool_uses`` are ``(id, name, input)``."""
    content: list[JSON] = []
    if text:
        content.append({"type": "text", "text": text})
    uses = list(tool_uses)
    content += [
        {"type": "tool_use", "id": tid, "name": name, "input": inp} for tid, name, inp in uses
    ]
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason or ("tool_use" if uses else "end_turn"),
        "stop_sequence": None,
        "usage": usage if usage is not None else anthropic_usage(5, 1),
    }


def sse_event(name: str, payload: JSON) -> str:
    """One SSE event with an ``event:`` line (the Anthropic style)."""
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n"


def anthropic_stream(
    pieces: Sequence[str] = ("o", "k"),
    *,
    tool_uses: Iterable[tuple[str, str, str]] = (),
    usage: JSON | None = None,
    model: str = "claude-test",
) -> list[str]:
    """A Messages API stream; ``tool_uses`` are ``(id, name, input JSON text)``.

    Input tokens (and cache figures) arrive in ``message_start``; the cumulative
    output count arrives in ``message_delta``, as the real API sends them.
    """
    full = usage if usage is not None else anthropic_usage(5, 1)
    start_usage = dict(full)
    start_usage["output_tokens"] = 1
    events = [
        sse_event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        ),
        sse_event("ping", {"type": "ping"}),
    ]
    index = 0
    if pieces:
        events.append(
            sse_event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        )
        for piece in pieces:
            events.append(
                sse_event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
            )
        events.append(sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        index = 1
    uses = list(tool_uses)
    for tid, name, args in uses:
        events.append(
            sse_event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "tool_use", "id": tid, "name": name, "input": {}},
                },
            )
        )
        half = len(args) // 2
        for part in (args[:half], args[half:]):
            events.append(
                sse_event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": part},
                    },
                )
            )
        events.append(
            sse_event("content_block_stop", {"type": "content_block_stop", "index": index})
        )
        index += 1
    delta_usage = {
        "output_tokens": full["output_tokens"],
        "input_tokens": full["input_tokens"],
        "cache_read_input_tokens": full.get("cache_read_input_tokens"),
        "cache_creation_input_tokens": full.get("cache_creation_input_tokens"),
    }
    events.append(
        sse_event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": "tool_use" if uses else "end_turn",
                    "stop_sequence": None,
                },
                "usage": delta_usage,
            },
        )
    )
    events.append(sse_event("message_stop", {"type": "message_stop"}))
    return events


# -- the server ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """A request the server read."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Handler = Callable[[Received], Reply]


def default_handler(request: Received) -> Reply:
    """Answer like the real API: a short text with usage, streamed if asked."""
    body = request.json() or {}
    streamed = bool(body.get("stream"))
    if request.path.endswith("/messages"):
        if streamed:
            return sse_reply(anthropic_stream())
        return json_reply(anthropic_message())
    if request.path.endswith("/chat/completions"):
        if streamed:
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            return sse_reply(openai_stream(include_usage=include))
        return json_reply(openai_completion())
    return json_reply({"error": {"message": f"no route {request.path}"}}, status=404)


class FakeServer:
    """The fake server. Use as a context manager; ``url`` is its base URL.

    ``host`` is the loopback address it listens on (``127.0.0.2`` gives a
    second, distinct host for residency tests).

    Example:
        >>> with FakeServer() as server:  # doctest: +SKIP
        ...     server.enqueue(json_reply(openai_completion("hi")))
    """

    def __init__(self, handler: Handler = default_handler, *, host: str = "127.0.0.1") -> None:
        self.handler = handler
        self.host = host
        self.requests: list[Received] = []
        self.open_connections = 0
        self.busy = 0
        self.total_connections = 0
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-model-server", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    # -- lifecycle
    def __enter__(self) -> FakeServer:
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("fake server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, self.host, 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        # after stop: close what is left
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._loop.run_until_complete(self._server.wait_closed())
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    def _stop(self) -> None:
        self._loop.stop()

    # -- scripting
    def enqueue(self, *replies: Reply) -> None:
        """Serve these replies, in order, to the next requests."""
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        """Forget the script and the recorded requests."""
        with self._lock:
            self._script.clear()
            self.requests.clear()

    def wait_idle(self, *, connections: int | None = 0, timeout: float = 3.0) -> bool:
        """Wait until nothing is mid-reply and (by default) no connection is open."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.busy == 0 and (connections is None or self.open_connections <= connections):
                return True
            time.sleep(0.01)
        return False

    def _next(self, request: Received) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._script:
                return self._script.popleft()
        return self.handler(request)

    # -- HTTP/1.1
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        self.total_connections += 1
        self._writers.add(writer)
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    return
                reply = self._next(request)
                self.busy += 1
                try:
                    keep = await self._answer(reply, reader, writer)
                finally:
                    self.busy -= 1
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self.open_connections -= 1

    async def _read_request(self, reader: asyncio.StreamReader) -> Received | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(length) if length else b""
        return Received(method, path, headers, body)

    async def _answer(
        self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        if reply.drop:
            return False
        if reply.hang:
            # answer nothing; return when the client closes its end
            while await reader.read(1024):
                pass
            return False
        if reply.delay:
            await asyncio.sleep(reply.delay)
        head = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}"]
        head.append(f"content-type: {reply.content_type}")
        for name, value in reply.headers.items():
            head.append(f"{name}: {value}")
        if reply.events is None:
            body = reply.body or b""
            head.append(f"content-length: {len(body)}")
            if reply.truncate_body is not None:
                body = body[: reply.truncate_body]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            await writer.drain()
            return reply.truncate_body is None
        head.append("transfer-encoding: chunked")
        head.append("cache-control: no-cache")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        await writer.drain()
        for count, event in enumerate(reply.events):
            if reply.disconnect_after is not None and count >= reply.disconnect_after:
                return False  # cut the connection: no terminating chunk
            if reply.event_delay:
                await asyncio.sleep(reply.event_delay)
            data = event.encode()
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


_REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    529: "Overloaded",
}


# -- client helpers -----------------------------------------------------------------------


def endpoint_for(
    server: FakeServer | None,
    provider: str = "openai",
    *,
    key: str = "sk-test-key",
    timeout: float = 5.0,
    base_url: str | None = None,
    name: str = "",
    default_model: str | None = None,
) -> Endpoint:
    """An endpoint pointing at the fake server (or at ``base_url``)."""
    if base_url is None:
        assert server is not None
        base_url = server.url if provider == "anthropic" else server.url + "/v1"
    return Endpoint(
        provider=provider,
        name=name,
        base_url=base_url,
        api_key=Secret(key) if key else None,
        key_required=provider in ("openai", "anthropic"),
        timeout=timeout,
        connect_timeout=min(timeout, 2.0),
        default_model=default_model,
    )


def active_connections(provider: OpenAICompatProvider | AnthropicProvider) -> int:
    """Connections the SDK client's pool holds that are neither idle nor closed."""
    pool = provider.client._client._transport._pool  # type: ignore[attr-defined]
    return sum(1 for c in pool.connections if not (c.is_idle() or c.is_closed()))


def user(text: str = "hi", model: str = "openai:gpt-test", **kwargs: Any) -> ModelRequest:
    """A one-message request."""
    return ModelRequest(model=model, messages=(ChatMessage("user", text),), **kwargs)


async def collect(events: AsyncIterator[StreamEvent]) -> tuple[list[str], ModelResponse]:
    """Drain a stream: the text deltas and the final response."""
    texts: list[str] = []
    final: ModelResponse | None = None
    async for event in events:
        if isinstance(event, TextDelta):
            texts.append(event.text)
        else:
            assert final is None, "two StreamEnd events"
            final = event.response
    assert final is not None, "no StreamEnd event"
    return texts, final
