"""``TestModel``: a model provider that answers from a script, for tests.

It implements the real provider port (:class:`~nexus.gateway.base.ModelProvider`
and :class:`~nexus.gateway.base.StreamingProvider`), so anything that takes a
provider takes it: an :class:`~nexus.engine.Engine` through a registry
(:meth:`TestModel.registry`, :func:`model_registry`), the resilience and cache
wrappers, an agent. Each call is answered by the next entry of its script:

* a ``str``: a plain text answer;
* a :class:`Reply`: text, tool calls (:class:`Call`), usage, finish reason,
  latency (``delay``), how a stream splits it (``chunks``), an error after the
  chunks (``error``) or a stall (``stall``); :data:`HANG` never answers;
* a mapping: a structured answer, its JSON text (``Reply.of_json`` for any
  other JSON value);
* a :class:`~nexus.gateway.base.ModelResponse`: returned as it is;
* a :class:`Fault` (a fresh provider error of one kind of the taxonomy on each
  call) or any exception instance (raised as it is);
* a function of the :class:`~nexus.gateway.base.ModelRequest` returning one of
  the above (or raising).

By default the n-th call gets the n-th entry (``match="call"``); with
``match="step"`` the entry is picked by the conversation's step, the number
of answers the request already holds, so concurrent tool loops each walk the
script from its top. After the last entry the last one repeats, as the
``scripted`` provider's lines do; ``repeat_last=False`` makes one call too many
raise :class:`ScriptExhausted`. Without any entry every call is answered "ok".

Usage is the reply's, else the model's ``usage``, else counted as the
``scripted`` provider counts it (whitespace-separated words of the prompt; of
the answer plus one per tool call and the words of its arguments), so budgets
and cost reports have figures to add up. Price a prefix with a
:class:`~nexus.gateway.PricingTable` (``{"test:*": {...}}``) to get dollars.

Example:
    >>> import asyncio
    >>> from nexus.gateway import ChatMessage, ModelRequest
    >>> model = TestModel(Reply(calls=[Call("file.read", {"path": "a.txt"})]), "done")
    >>> request = ModelRequest("test:m", (ChatMessage("user", "read a.txt"),))
    >>> first = asyncio.run(model.complete(request, {}))
    >>> first.tool_calls[0].name, first.finish_reason
    ('file.read', 'tool_calls')
    >>> asyncio.run(model.complete(request, {})).text
    'done'
    >>> model.calls
    2
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from nexus.domain.errors import ErrorKind
from nexus.gateway.base import (
    ModelProvider,
    ModelRequest,
    ModelResponse,
    ProviderRegistry,
    StreamEnd,
    StreamEvent,
    TextDelta,
    ToolCall,
    Usage,
)
from nexus.gateway.errors import (
    ProviderAuthError,
    ProviderConflict,
    ProviderError,
    ProviderInternalError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRefused,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from nexus.testing._registry import registry_of

__all__ = [
    "HANG",
    "Answer",
    "AnswerFn",
    "Call",
    "Fault",
    "Reply",
    "ScriptExhausted",
    "TestModel",
]


class _Default(enum.Enum):
    """The "not given" marker of :attr:`Reply.finish_reason` (None is a value there)."""

    TOKEN = 0


_DEFAULT: Final = _Default.TOKEN

#: The provider error class of each kind of the taxonomy a provider can fail with.
_FAULTS: Final[dict[ErrorKind, type[ProviderError]]] = {
    ErrorKind.TRANSIENT: ProviderUnavailable,
    ErrorKind.TIMEOUT: ProviderTimeout,
    ErrorKind.RATE_LIMITED: ProviderRateLimited,
    ErrorKind.VALIDATION: ProviderRejected,
    ErrorKind.AUTH: ProviderAuthError,
    ErrorKind.NOT_FOUND: ProviderNotFound,
    ErrorKind.CONFLICT: ProviderConflict,
    ErrorKind.POLICY_DENIED: ProviderRefused,
    ErrorKind.INTERNAL: ProviderInternalError,
}


@dataclass(frozen=True, slots=True)
class Fault:
    """A provider failure of one kind of the error taxonomy, raised fresh on each call.

    ``Fault("rate_limited", retry_after=3)`` raises a
    :class:`~nexus.gateway.errors.ProviderRateLimited`; ``Fault("transient")`` a
    :class:`~nexus.gateway.errors.ProviderUnavailable`; and so on for
    ``timeout``, ``validation``, ``auth``, ``not_found``, ``conflict``,
    ``policy_denied`` and ``internal`` (``budget_exceeded`` is Nexus's own
    verdict, never a provider's).

    Args:
        kind: the taxonomy kind (an :class:`~nexus.domain.errors.ErrorKind` or its value).
        message: the error's message (default: names the kind and reason).
        reason: the machine-readable cause (``quota``, ``context_length_exceeded``...).
        status: the HTTP status a real provider would have answered.
        code: the provider's own error code.
        retry_after: seconds the provider asks to wait.
        retryable: overrides the kind's default (a quota 429 is not retryable).
        provider: the provider named in the error (default: the request's prefix).
        delay: seconds to wait before failing (a timeout that took its time).

    Raises:
        ValueError: ``kind`` is not a kind a provider fails with.
    """

    kind: ErrorKind | str
    message: str = ""
    reason: str = ""
    status: int | None = None
    code: str | None = None
    retry_after: float | None = None
    retryable: bool | None = None
    provider: str | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        try:
            kind = ErrorKind(self.kind)
        except ValueError:
            kind = None
        if kind not in _FAULTS:
            kinds = ", ".join(sorted(k.value for k in _FAULTS))
            raise ValueError(
                f"Fault kind {str(self.kind)!r} is not a provider failure (one of: {kinds})"
            )
        object.__setattr__(self, "kind", kind)

    def to_error(self, provider: str = "test") -> ProviderError:
        """A new :class:`~nexus.gateway.errors.ProviderError` of this fault's kind."""
        kind = ErrorKind(self.kind)
        name = self.provider if self.provider is not None else provider
        detail = f" ({self.reason})" if self.reason else ""
        return _FAULTS[kind](
            self.message or f"test model failed: {kind.value}{detail}",
            provider=name,
            status=self.status,
            code=self.code,
            reason=self.reason,
            retryable=self.retryable,
            retry_after=self.retry_after,
        )


@dataclass(frozen=True, slots=True)
class Call:
    """A tool call a :class:`Reply` asks for.

    Args:
        name: the tool, by its registry name (``file.read``) or wire name (``file_read``).
        arguments: a mapping (sent as JSON) or the JSON text as a model would write
            it (a text that is not JSON tests how a tool loop copes with it).
        id: the call's id (default: ``call_<step>_<index>``, as the ``scripted``
            provider numbers them).
    """

    name: str
    arguments: Mapping[str, object] | str = "{}"
    id: str | None = None

    def tool_call(self, step: int, index: int) -> ToolCall:
        """The :class:`~nexus.gateway.base.ToolCall` of this call at ``step``."""
        arguments = self.arguments
        text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments))
        return ToolCall(id=self.id or f"call_{step}_{index}", name=self.name, arguments=text)


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer.

    Args:
        text: the answer's text (default: the chunks joined).
        calls: tool calls the answer asks for.
        usage: the tokens the call reports (default: the model's, else counted).
        finish_reason: default ``tool_calls`` with calls, else ``stop``; ``None``
            for a provider that reports none.
        model: the model the answer names (default: the request's).
        delay: seconds before the answer (or the first chunk) arrives.
        chunks: how :meth:`TestModel.stream` hands the text out (default: word by
            word); they must join to ``text``.
        error: raised after the chunks (a stream cut off mid-way); a plain
            ``complete`` raises it at once.
        stall: after the chunks, never go on: only cancellation (a deadline, a
            timeout) ends the call.

    Raises:
        ValueError: ``chunks`` do not join to ``text``, or ``delay`` is negative.
    """

    text: str = ""
    calls: Sequence[Call] = ()
    usage: Usage | None = None
    finish_reason: str | _Default | None = _DEFAULT
    model: str | None = None
    delay: float = 0.0
    chunks: Sequence[str] | None = None
    error: Fault | BaseException | None = None
    stall: bool = False

    def __post_init__(self) -> None:
        if type(self.calls) is not tuple:
            object.__setattr__(self, "calls", tuple(self.calls))
        if self.chunks is not None:
            chunks = tuple(self.chunks)
            object.__setattr__(self, "chunks", chunks)
            joined = "".join(chunks)
            if not self.text:
                object.__setattr__(self, "text", joined)
            elif joined != self.text:
                raise ValueError(f"Reply chunks {chunks!r} do not join to its text {self.text!r}")
        if self.delay < 0:
            raise ValueError(f"Reply delay must not be negative, got {self.delay}")

    @classmethod
    def of_json(cls, value: object, **options: Any) -> Reply:
        """A reply whose text is ``value`` as JSON (a structured answer).

        Raises:
            ValueError: ``value`` cannot be written as JSON.
        """
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"a structured Reply must be JSON: {exc}") from None
        return cls(text, **options)


#: A reply that never comes: only cancellation (a deadline, a timeout) ends the call.
HANG: Final = Reply(stall=True)

#: What a script entry may be (see the module docstring).
Answer = str | Reply | ModelResponse | Fault | BaseException | Mapping[str, object]
#: A script entry worked out from the request.
AnswerFn = Callable[[ModelRequest], Answer]


class ScriptExhausted(AssertionError):
    """A :class:`TestModel` with ``repeat_last=False`` got more calls than its script has."""


def _step(request: ModelRequest) -> int:
    """Answers the conversation already holds (its assistant messages)."""
    return sum(1 for message in request.messages if message.role == "assistant")


def _counted(request: ModelRequest, text: str, calls: Sequence[ToolCall]) -> Usage:
    prompt = sum(len(message.content.split()) for message in request.messages)
    completion = len(text.split()) + sum(1 + len(c.arguments.split()) for c in calls)
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


def _words(text: str) -> tuple[str, ...]:
    """``text`` in pieces that join back to it: each word with the space after it."""
    if not text:
        return ()
    *words, last = text.split(" ")
    return (*(f"{word} " for word in words), last)


class TestModel:
    """A model provider answering from a script and keeping what it was asked.

    Args:
        *script: the answers, in order (see the module docstring for what an
            entry may be); none: every call is answered "ok".
        match: ``call`` (the n-th call gets the n-th entry) or ``step`` (the
            entry of the conversation's step).
        repeat_last: after the script, repeat its last entry (else raise
            :class:`ScriptExhausted`).
        usage: the usage of every reply that sets none (default: counted).
        delay: seconds every call waits before its answer (a model's latency), on
            top of a reply's own ``delay``.
        record: keep each request and context (off for load tests: only the
            counters are kept).

    Attributes:
        requests: every request, in the order the calls came.
        contexts: the template context of each of them.
        calls: how many calls were made (``complete`` and ``stream``).
        in_flight: calls under way now; ``peak_in_flight``: the most at once.
        streams_closed: streams that ended, however they ended.

    Example:
        >>> from nexus.testing import Fault, TestModel
        >>> flaky = TestModel(Fault("rate_limited", retry_after=2), "ok")
        >>> flaky.registry().prefixes()
        ('test',)
    """

    __test__ = False  # pytest: a class named Test* that is not a test

    def __init__(
        self,
        *script: Answer | AnswerFn,
        match: Literal["call", "step"] = "call",
        repeat_last: bool = True,
        usage: Usage | None = None,
        delay: float = 0.0,
        record: bool = True,
    ) -> None:
        if match not in ("call", "step"):
            raise ValueError(f"TestModel match must be 'call' or 'step', got {match!r}")
        if delay < 0:
            raise ValueError(f"TestModel delay must not be negative, got {delay}")
        self._script: tuple[Answer | AnswerFn, ...] = tuple(
            Reply.of_json(entry) if isinstance(entry, Mapping) else entry
            for entry in (script or ("ok",))
        )
        self._match = match
        self._repeat_last = repeat_last
        self._usage = usage
        self._delay = delay
        self._record = record
        self.requests: list[ModelRequest] = []
        self.contexts: list[dict[str, Any]] = []
        self.calls = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.streams_closed = 0

    def __repr__(self) -> str:
        return f"TestModel({len(self._script)} replies, match={self._match!r}, calls={self.calls})"

    # -- the provider port ---------------------------------------------------------------

    async def complete(self, request: ModelRequest, context: Mapping[str, Any]) -> ModelResponse:
        """Answer ``request`` with the script's entry for it (or raise its error)."""
        reply = self._begin(request, context)
        try:
            delay = self._delay_of(reply)
            if delay:
                await asyncio.sleep(delay)
            if isinstance(reply, ModelResponse):
                return reply
            if reply.error is not None:
                raise self._error(reply.error, request)
            if reply.stall:
                await _forever()
            return self._response(reply, request)
        finally:
            self.in_flight -= 1

    async def stream(
        self, request: ModelRequest, context: Mapping[str, Any]
    ) -> AsyncIterator[StreamEvent]:
        """Yield the entry's chunks as :class:`TextDelta` events, then its :class:`StreamEnd`."""
        try:
            reply = self._begin(request, context)
            try:
                delay = self._delay_of(reply)
                if delay:
                    await asyncio.sleep(delay)
                if isinstance(reply, ModelResponse):
                    for piece in _words(reply.text):
                        yield TextDelta(piece)
                    yield StreamEnd(reply)
                    return
                chunks = reply.chunks if reply.chunks is not None else _words(reply.text)
                for piece in chunks:
                    yield TextDelta(piece)
                if reply.error is not None:
                    raise self._error(reply.error, request)
                if reply.stall:
                    await _forever()
                yield StreamEnd(self._response(reply, request))
            finally:
                self.in_flight -= 1
        finally:
            self.streams_closed += 1

    # -- registries ----------------------------------------------------------------------

    def registry(
        self, prefix: str = "test", *, base: ProviderRegistry | None = None
    ) -> ProviderRegistry:
        """A provider registry in which this model serves every ``<prefix>:<name>`` model.

        Args:
            prefix: the provider prefix agents name (``test:writer``).
            base: providers to keep beside it (copied, not changed), such as
                :func:`~nexus.gateway.default_providers` for ``scripted`` agents.
        """
        return registry_of(prefix, lambda _name: self, base)

    def complete_only(self) -> ModelProvider:
        """This model behind the plain :class:`~nexus.gateway.base.ModelProvider` port.

        For code paths that must cope with a provider that cannot stream (the
        ``scripted`` provider is one): the view has ``complete`` only.
        """
        return _CompleteOnly(self)

    # -- the script ----------------------------------------------------------------------

    def _begin(self, request: ModelRequest, context: Mapping[str, Any]) -> Reply | ModelResponse:
        """Count and record the call, and work out its answer."""
        index = self.calls
        self.calls += 1
        if self._record:
            self.requests.append(request)
            self.contexts.append(dict(context))
        position = _step(request) if self._match == "step" else index
        if position < len(self._script):
            entry = self._script[position]
        elif self._repeat_last:
            entry = self._script[-1]
        else:
            where = f"step {position} (call {index + 1})" if self._match == "step" else ""
            raise ScriptExhausted(
                f"TestModel got {where or f'call {index + 1}'} of {request.model!r}, "
                f"but its script has {len(self._script)} entries and repeat_last=False"
            )
        answer = entry(request) if callable(entry) else entry
        reply = answer if isinstance(answer, Reply | ModelResponse) else _as_reply(answer, index)
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight
        return reply

    def _delay_of(self, reply: Reply | ModelResponse) -> float:
        """The model's delay, plus the reply's own."""
        return self._delay if isinstance(reply, ModelResponse) else self._delay + reply.delay

    @staticmethod
    def _error(error: Fault | BaseException, request: ModelRequest) -> BaseException:
        if isinstance(error, Fault):
            return error.to_error(request.model.partition(":")[0] or "test")
        return error

    def _response(self, reply: Reply, request: ModelRequest) -> ModelResponse:
        calls: tuple[ToolCall, ...] = ()
        if reply.calls:
            step = _step(request) if any(c.id is None for c in reply.calls) else 0
            calls = tuple(call.tool_call(step, i) for i, call in enumerate(reply.calls))
        usage = reply.usage if reply.usage is not None else self._usage
        if usage is None:
            usage = _counted(request, reply.text, calls)
        finish = reply.finish_reason
        if isinstance(finish, _Default):
            finish = "tool_calls" if calls else "stop"
        return ModelResponse(
            text=reply.text,
            model=reply.model or request.model,
            usage=usage,
            tool_calls=calls,
            finish_reason=finish,
        )


def _as_reply(answer: object, index: int) -> Reply:
    if isinstance(answer, str):
        return Reply(answer)
    if isinstance(answer, Fault):
        return Reply(error=answer, delay=answer.delay)
    if isinstance(answer, BaseException):
        return Reply(error=answer)
    if isinstance(answer, Mapping):
        return Reply.of_json(answer)
    raise TypeError(
        f"TestModel script entry for call {index + 1} gave {type(answer).__name__}; "
        "expected str, Reply, ModelResponse, Fault, an exception or a mapping"
    )


async def _forever() -> None:
    await asyncio.Event().wait()


@dataclass(frozen=True, slots=True)
class _CompleteOnly:
    model: TestModel = field(repr=False)

    async def complete(self, request: ModelRequest, context: Mapping[str, Any]) -> ModelResponse:
        return await self.model.complete(request, context)
