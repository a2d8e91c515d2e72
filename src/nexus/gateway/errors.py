"""Provider errors: every openai, anthropic and httpx failure mapped onto the taxonomy.

The adapters call one helper, :func:`map_provider_error`, at their boundary;
nothing above the gateway ever sees an SDK exception. The tree (each class
also derives from the domain class of its kind, so ``isinstance`` checks
written against :mod:`nexus.domain.errors` keep working)::

    NexusError
    └── ProviderError              provider, status, code, reason, request_id
        ├── ProviderUnavailable    transient      5xx, 529 overloaded, connection refused or
        │                                         reset, disconnect mid-stream, malformed body,
        │                                         circuit breaker open
        ├── ProviderTimeout        timeout        connect/read/pool timeout, the total deadline
        ├── ProviderRateLimited    rate_limited   429 (``retry_after`` from Retry-After);
        │                                         quota or spend limit: ``reason="quota"``,
        │                                         not retryable
        ├── ProviderRejected       validation     400, 413, 422...; ``reason=
        │                                         "context_length_exceeded"`` for a prompt
        │                                         longer than the model's window
        ├── ProviderAuthError      auth           401, 403, bad or missing credentials
        ├── ProviderNotFound       not_found      404: unknown model or wrong base URL
        ├── ProviderConflict       conflict       409 (retryable, as the SDKs treat it), 412
        ├── ProviderRefused        policy_denied  the provider's content filter refused
        └── ProviderInternalError  internal       anything we did not expect: a bug to report

Decisions worth knowing:

* **Malformed bodies are transient.** A truncated or garbled body (bad JSON,
  a non-JSON 200, an SSE event that is not JSON) almost always comes from a
  proxy or an overloaded server cutting a reply short, and a retry is cheap and
  bounded. A server that *always* answers garbage exhausts the attempts and
  fails with ``reason="malformed_body"``, which says what to fix.
* **Quota is not a rate limit to wait out.** OpenAI's ``insufficient_quota``
  429, Anthropic's spend-limit 429s and 402 are ``rate_limited`` with
  ``reason="quota"`` and ``retryable=False``: waiting does not help, paying
  does. The fallback chain still moves on from them (another provider may have
  credit).
* **Errors carry no secrets.** Messages pass through :func:`redact` with the
  adapter's key, and the SDK exception is chained only when its text is clean.

The mapping is table driven (exact class -> rule, looked up along the MRO) so a
test can assert that it covers every exception class the SDKs export, as httpx
does for httpcore (``test_httpcore_all_exceptions_mapped``). Tables for a
library are built only once that library is imported, so importing this module
costs no SDK import.
"""

from __future__ import annotations

import email.utils
import json
import ssl
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

from nexus.domain.errors import (
    ConflictError,
    EffectTimeout,
    ErrorKind,
    InfrastructureError,
    InternalError,
    NexusError,
    NotFoundError,
    PolicyDenied,
    UserError,
)
from nexus.gateway.base import RouteStep

__all__ = [
    "ProviderAuthError",
    "ProviderConflict",
    "ProviderError",
    "ProviderInternalError",
    "ProviderNotFound",
    "ProviderRateLimited",
    "ProviderRefused",
    "ProviderRejected",
    "ProviderTimeout",
    "ProviderUnavailable",
    "covered_exceptions",
    "map_provider_error",
    "parse_retry_after",
    "redact",
    "request_timeout",
]

_MAX_MESSAGE = 500


class ProviderError(NexusError):
    """A model provider failed; ``kind`` says how, ``reason`` says precisely why.

    Args:
        message: what happened, for people (never contains a secret).
        provider: the provider prefix (``openai``, ``anthropic``...).
        status: the HTTP status, when there was a response.
        code: the provider's own error code or type, when it gave one.
        reason: a short machine-readable cause (``overloaded``, ``quota``,
            ``context_length_exceeded``, ``connect_failed``, ``deadline``...).
        request_id: the provider's request id, for support tickets.
        retryable: overrides the kind's default.
        retry_after: seconds the provider asked us to wait.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        code: str | None = None,
        reason: str = "",
        request_id: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, retry_after=retry_after)
        self.provider = provider
        self.status = status
        self.code = code
        self.reason = reason or str(self.kind)
        self.request_id = request_id
        #: calls made before giving up (set by the retry loop)
        self.attempts = 0
        #: the providers a fallback chain tried (set by the chain)
        self.route: tuple[RouteStep, ...] = ()

    def to_data(self) -> dict[str, object]:
        data = super().to_data()
        data["reason"] = self.reason
        if self.provider:
            data["provider"] = self.provider
        if self.status is not None:
            data["status"] = self.status
        if self.code:
            data["code"] = self.code
        if self.request_id:
            data["request_id"] = self.request_id
        if self.attempts:
            data["attempts"] = self.attempts
        if self.route:
            data["route"] = [step.to_dict() for step in self.route]
        return data


class ProviderUnavailable(ProviderError, InfrastructureError):
    """The provider could not answer now; a retry (or another provider) may."""

    kind = ErrorKind.TRANSIENT


class ProviderTimeout(ProviderError, EffectTimeout):
    """No answer in time: a connect or read timeout, or the call's total deadline.

    A per-request timeout (see :func:`request_timeout`) has ``limit``, the
    seconds that ran out, and its message names the limit and the endpoint's
    host; the retry loop adds the attempt with :meth:`at_attempt`.
    """

    kind = ErrorKind.TIMEOUT
    #: the per-request limit (seconds) that ran out; None for the total deadline
    limit: float | None = None
    _attempt_named = False

    def at_attempt(self, attempt: int, of: int) -> None:
        """Name the attempt that timed out in the message (per-request timeouts only, once)."""
        if self.limit is None or self._attempt_named:
            return
        self._attempt_named = True
        self.message = f"{self.message} (attempt {attempt} of {of})"
        self.args = (self.message,)


class ProviderRateLimited(ProviderError, InfrastructureError):
    """Too many requests (retry after ``retry_after``), or no quota left (not retryable)."""

    kind = ErrorKind.RATE_LIMITED


class ProviderRejected(ProviderError, UserError):
    """The provider rejected the request as invalid (too long, bad parameters)."""


class ProviderAuthError(ProviderError):
    """Credentials are missing, wrong, or lack a permission."""

    kind = ErrorKind.AUTH


class ProviderNotFound(ProviderError, NotFoundError):
    """The model or endpoint does not exist."""


class ProviderConflict(ProviderError, ConflictError):
    """The provider reports a conflicting concurrent operation."""


class ProviderRefused(ProviderError, PolicyDenied):
    """The provider's content policy refused to answer."""


class ProviderInternalError(ProviderError, InternalError):
    """An exception the mapping did not expect: report it as a bug."""


# -- helpers ------------------------------------------------------------------------------


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret replaced by ``***`` (empty secrets ignored)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP-date) or ``retry-after-ms``.

    Args:
        headers: response headers (case-insensitive mappings welcome).
        now: the current POSIX time, for HTTP dates (tests pass a fixed one).

    Returns:
        A non-negative number of seconds, or None when no usable header is present.
    """
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive parse means the same
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "context length",
    "context window",
    "prompt is too long",
    "too many tokens",
    "input is too long",
)


def _is_context_length(code: str | None, message: str) -> bool:
    text = f"{code or ''} {message}".lower()
    return any(marker in text for marker in _CONTEXT_MARKERS)


_QUOTA_CODES = ("insufficient_quota", "billing", "spend_limit", "credit")


def _is_quota(code: str | None, message: str) -> bool:
    text = f"{code or ''} {message}".lower()
    return any(marker in text for marker in _QUOTA_CODES)


class _Ctx:
    """What a rule needs besides the exception: who failed and which secrets to hide."""

    __slots__ = ("provider", "secrets")

    def __init__(self, provider: str, secrets: tuple[str, ...]) -> None:
        self.provider = provider
        self.secrets = secrets

    def text(self, value: object) -> str:
        text = redact(str(value), self.secrets)
        return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."

    def label(self) -> str:
        return self.provider or "model provider"


def _error_details(body: object) -> tuple[str | None, str | None, str]:
    """``(code, type, message)`` from an error body in the OpenAI or Anthropic shape."""
    if isinstance(body, Mapping):
        inner = body.get("error")
        err: Mapping[str, Any] = inner if isinstance(inner, Mapping) else body
        code = err.get("code")
        type_ = err.get("type")
        details = err.get("details")
        if isinstance(details, Mapping) and isinstance(details.get("error_code"), str):
            code = details["error_code"]
        message = err.get("message")
        return (
            str(code) if code is not None else None,
            str(type_) if type_ is not None else None,
            str(message) if message is not None else "",
        )
    if isinstance(body, str):
        return None, None, body
    return None, None, ""


# error types seen in error bodies (Anthropic's ``error.type``, OpenAI's ``type``/``code``)
_BODY_TYPES: dict[str, tuple[type[ProviderError], str]] = {
    "overloaded_error": (ProviderUnavailable, "overloaded"),
    "api_error": (ProviderUnavailable, "server_error"),
    "server_error": (ProviderUnavailable, "server_error"),
    "rate_limit_error": (ProviderRateLimited, "rate_limited"),
    "rate_limit_exceeded": (ProviderRateLimited, "rate_limited"),
    "tokens": (ProviderRateLimited, "rate_limited"),
    "insufficient_quota": (ProviderRateLimited, "quota"),
    "billing_error": (ProviderRateLimited, "quota"),
    "invalid_request_error": (ProviderRejected, "bad_request"),
    "request_too_large": (ProviderRejected, "request_too_large"),
    "authentication_error": (ProviderAuthError, "authentication"),
    "permission_error": (ProviderAuthError, "permission"),
    "not_found_error": (ProviderNotFound, "not_found"),
    "timeout_error": (ProviderTimeout, "provider_timeout"),
}


def _from_status(exc: BaseException, ctx: _Ctx) -> ProviderError:
    """A response with an error status (or an error event inside a stream)."""
    status: int | None = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    if status is None and response is not None:
        status = getattr(response, "status_code", None)
    headers: Mapping[str, str] | None = getattr(response, "headers", None)
    body = getattr(exc, "body", None)
    if body is None and response is not None:
        body = _safe_json(response)
    code, type_, api_message = _error_details(body)
    request_id = getattr(exc, "request_id", None)
    if request_id is None and headers is not None:
        request_id = headers.get("x-request-id") or headers.get("request-id")
    message = api_message or str(getattr(exc, "message", "") or exc)
    where = f"{ctx.label()} answered {status}" if status else f"{ctx.label()} reported an error"
    text = f"{where}: {ctx.text(message)}"
    common: dict[str, Any] = {
        "provider": ctx.provider,
        "status": status,
        "code": code or type_,
        "request_id": request_id if isinstance(request_id, str) else None,
    }
    if status is None or status < 400:
        # an error event inside a 200 stream: only the body says what it was
        cls, reason = _BODY_TYPES.get(code or "") or _BODY_TYPES.get(
            type_ or "", (ProviderUnavailable, "stream_error")
        )
        if cls is ProviderRejected and _is_context_length(code, message):
            reason = "context_length_exceeded"
        retryable = False if reason == "quota" else None
        return cls(text, reason=reason, retryable=retryable, **common)
    if status == 429:
        if (
            _is_quota(code, message)
            or _is_quota(type_, "")
            or type(exc).__name__.endswith("SpendLimitReachedError")
        ):
            return ProviderRateLimited(text, reason="quota", retryable=False, **common)
        return ProviderRateLimited(
            text, reason="rate_limited", retry_after=parse_retry_after(headers), **common
        )
    if status >= 500 or status == 499:
        reason = {529: "overloaded", 503: "unavailable", 504: "gateway_timeout"}.get(
            status, "server_error"
        )
        if status == 501:
            return ProviderRejected(text, reason="not_implemented", **common)
        return ProviderUnavailable(
            text, reason=reason, retry_after=parse_retry_after(headers), **common
        )
    if status in (401, 403):
        reason = "authentication" if status == 401 else "permission"
        return ProviderAuthError(text, reason=reason, **common)
    if status == 402:
        return ProviderRateLimited(text, reason="quota", retryable=False, **common)
    if status == 404:
        return ProviderNotFound(text, reason="not_found", **common)
    if status == 408:
        return ProviderTimeout(text, reason="provider_timeout", **common)
    if status == 409:
        return ProviderConflict(text, reason="conflict", retryable=True, **common)
    if status == 412:
        return ProviderConflict(text, reason="precondition_failed", **common)
    if _is_context_length(code, message):
        return ProviderRejected(text, reason="context_length_exceeded", **common)
    if status in (413, 431):
        return ProviderRejected(text, reason="request_too_large", **common)
    return ProviderRejected(text, reason="bad_request", **common)


def _safe_json(response: object) -> object:
    try:
        return response.json()  # type: ignore[attr-defined]
    except Exception:
        try:
            return str(response.text)  # type: ignore[attr-defined]
        except Exception:
            return None


def _chain(exc: BaseException, depth: int = 6) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from, nearest first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < depth and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _connection_reason(exc: BaseException) -> str:
    names = [type(e).__name__ for e in _chain(exc)]
    if any(n in ("ConnectError", "ConnectionRefusedError", "gaierror") for n in names):
        return "connect_failed"
    if any(
        n in ("RemoteProtocolError", "ReadError", "ConnectionResetError", "EndOfStream")
        for n in names
    ):
        return "connection_lost"
    return "connection_error"


def _connection(exc: BaseException, ctx: _Ctx) -> ProviderError:
    reason = _connection_reason(exc)
    detail = {
        "connect_failed": "could not connect",
        "connection_lost": "the connection broke before the answer was complete",
        "connection_error": "connection error",
    }[reason]
    cause = _chain(exc)[-1]
    suffix = f" ({ctx.text(cause)})" if str(cause) and cause is not exc else ""
    return ProviderUnavailable(
        f"{ctx.label()}: {detail}{suffix}", provider=ctx.provider, reason=reason
    )


def _timeout(reason: str) -> Callable[[BaseException, _Ctx], ProviderError]:
    def rule(exc: BaseException, ctx: _Ctx) -> ProviderError:
        what = reason.replace("_", " ")
        return ProviderTimeout(f"{ctx.label()}: {what}", provider=ctx.provider, reason=reason)

    return rule


def _simple(
    cls: type[ProviderError], reason: str, what: str, *, retryable: bool | None = None
) -> Callable[[BaseException, _Ctx], ProviderError]:
    def rule(exc: BaseException, ctx: _Ctx) -> ProviderError:
        detail = ctx.text(exc)
        text = f"{ctx.label()}: {what}" + (f": {detail}" if detail else "")
        return cls(text, provider=ctx.provider, reason=reason, retryable=retryable)

    return rule


_malformed = _simple(ProviderUnavailable, "malformed_body", "malformed response body")
_internal = _simple(ProviderInternalError, "unexpected_error", "unexpected client error")

Rule = Callable[[BaseException, _Ctx], ProviderError]


def _stdlib_rules() -> dict[type[BaseException], Rule]:
    return {
        json.JSONDecodeError: _malformed,
        TimeoutError: _timeout("timeout"),
        ConnectionRefusedError: _connection,
        ConnectionResetError: _connection,
        ConnectionAbortedError: _connection,
        BrokenPipeError: _connection,
        ConnectionError: _connection,
        ssl.SSLCertVerificationError: _simple(
            ProviderAuthError, "tls_verification", "the server's TLS certificate is not trusted"
        ),
        ssl.SSLError: _simple(ProviderUnavailable, "tls", "TLS error"),
        OSError: _connection,
    }


def _anyio_rules(anyio: Any) -> dict[type[BaseException], Rule]:
    return {
        anyio.EndOfStream: _connection,
        anyio.BrokenResourceError: _connection,
        anyio.ClosedResourceError: _connection,
    }


def _httpx_rules(m: Any) -> dict[type[BaseException], Rule]:
    """For ``httpx`` and ``httpx2``, which share one exception tree."""
    transient = _connection
    rejected = _simple(ProviderRejected, "bad_client_config", "the request could not be sent")
    rules: dict[type[BaseException], Rule] = {
        m.HTTPError: _simple(ProviderUnavailable, "http_error", "HTTP error"),
        m.RequestError: transient,
        m.TransportError: transient,
        m.TimeoutException: _timeout("timeout"),
        m.ConnectTimeout: _timeout("connect_timeout"),
        m.ReadTimeout: _timeout("read_timeout"),
        m.WriteTimeout: _timeout("write_timeout"),
        m.PoolTimeout: _timeout("pool_timeout"),
        m.NetworkError: transient,
        m.ConnectError: transient,
        m.ReadError: transient,
        m.WriteError: transient,
        m.CloseError: transient,
        m.ProtocolError: transient,
        m.RemoteProtocolError: transient,
        m.LocalProtocolError: rejected,
        m.ProxyError: transient,
        m.UnsupportedProtocol: rejected,
        m.DecodingError: _malformed,
        m.TooManyRedirects: rejected,
        m.HTTPStatusError: _from_status,
        m.InvalidURL: rejected,
        m.CookieConflict: _internal,
        m.StreamError: _internal,
        m.StreamConsumed: _internal,
        m.StreamClosed: _internal,
        m.ResponseNotRead: _internal,
        m.RequestNotRead: _internal,
    }
    if hasattr(m, "SSEError"):
        rules[m.SSEError] = _malformed
    return rules


def _openai_rules(m: Any) -> dict[type[BaseException], Rule]:
    from openai import _exceptions as ex

    auth = _simple(ProviderAuthError, "credentials", "credentials problem")
    rules: dict[type[BaseException], Rule] = {
        m.OpenAIError: _internal,
        m.APIError: _from_status,  # an error event inside a stream
        m.APIStatusError: _from_status,
        m.APIConnectionError: _connection,
        m.APITimeoutError: _timeout("timeout"),
        m.APIResponseValidationError: _malformed,
        m.LengthFinishReasonError: _simple(
            ProviderRejected, "length", "the answer hit the token limit"
        ),
        m.ContentFilterFinishReasonError: _simple(
            ProviderRefused, "content_filter", "the provider's content filter refused"
        ),
        m.InvalidWebhookSignatureError: auth,
        ex.SubjectTokenProviderError: auth,
    }
    for name in ("WebSocketConnectionClosedError", "WebSocketQueueFullError"):
        if hasattr(m, name):
            rules[getattr(m, name)] = _simple(ProviderUnavailable, "websocket", "websocket error")
    return rules


def _anthropic_rules(m: Any) -> dict[type[BaseException], Rule]:
    auth = _simple(ProviderAuthError, "credentials", "credentials problem")
    rules: dict[type[BaseException], Rule] = {
        m.AnthropicError: _internal,
        m.APIError: _from_status,  # an ``event: error`` inside a stream
        m.APIStatusError: _from_status,
        m.APIConnectionError: _connection,
        m.APITimeoutError: _timeout("timeout"),
        m.APIResponseValidationError: _malformed,
        m.APIWebhookValidationError: auth,
    }
    for name, rule in (
        ("RetryableError", _simple(ProviderUnavailable, "retryable", "retryable error")),
        ("CredentialsError", auth),
        ("IdentityTokenFileError", auth),
        ("WorkloadIdentityError", auth),  # the OIDC token exchange failed
    ):
        if hasattr(m, name):
            rules[getattr(m, name)] = rule
    return rules


_LIBRARIES: dict[str, Callable[[Any], dict[type[BaseException], Rule]]] = {
    "anyio": _anyio_rules,
    "httpx": _httpx_rules,
    "httpx2": _httpx_rules,
    "openai": _openai_rules,
    "anthropic": _anthropic_rules,
}


@cache
def _build(libraries: tuple[str, ...]) -> dict[type[BaseException], Rule]:
    table = _stdlib_rules()
    for name in libraries:
        table.update(_LIBRARIES[name](sys.modules[name]))
    return table


def _table() -> dict[type[BaseException], Rule]:
    # Only libraries already imported: an exception of a library not loaded cannot exist.
    return _build(tuple(name for name in _LIBRARIES if name in sys.modules))


def covered_exceptions() -> frozenset[type[BaseException]]:
    """The exception classes the mapping has an explicit rule for (for the completeness test)."""
    return frozenset(_table())


def map_provider_error(
    exc: BaseException, *, provider: str = "", secrets: Iterable[str] = ()
) -> NexusError:
    """Translate an SDK, httpx or socket exception into a :class:`NexusError`.

    A :class:`NexusError` passes through unchanged, also when an SDK wrapped it
    (``raise APIConnectionError(...) from err``: the ``anthropic`` SDK does so
    with what our own HTTP event hooks raise, see :mod:`nexus.gateway.egress`).
    The rule of the nearest
    class in the exception's MRO applies; an exception no rule covers becomes a
    :class:`ProviderInternalError` (a bug to report, never retried).

    Args:
        exc: what the SDK raised. Never pass ``asyncio.CancelledError``: a
            cancellation is not a provider failure and must propagate.
        provider: the provider prefix, for the message and the record.
        secrets: strings that must not appear in the message (the API key).

    Returns:
        The error to raise, on the taxonomy, without secrets in its message.

    Example:
        >>> err = map_provider_error(ConnectionRefusedError(111, "refused"), provider="ollama")
        >>> (str(err.kind), err.retryable)
        ('transient', True)
    """
    if isinstance(exc, NexusError):
        return exc
    ours = _wrapped_nexus_error(exc)
    if ours is not None:
        return ours
    ctx = _Ctx(provider, tuple(s for s in secrets if s))
    table = _table()
    for klass in type(exc).__mro__:
        rule = table.get(klass)
        if rule is not None:
            return rule(exc, ctx)
    return _internal(exc, ctx)


#: the httpx timeout classes, by name: what ran out, and whether the connect limit applies
_TIMEOUTS = {
    "ConnectTimeout": ("connect timeout", "could not connect to", True),
    "PoolTimeout": ("pool timeout", "no free connection to", False),
    "WriteTimeout": ("write timeout", "could not finish sending the request to", False),
    "ReadTimeout": ("read timeout", "no response from", False),
}
#: names of the exceptions that say our own client gave up waiting
_CLIENT_TIMEOUTS = frozenset({*_TIMEOUTS, "TimeoutException", "APITimeoutError", "TimeoutError"})


def request_timeout(
    error: ProviderTimeout,
    exc: BaseException,
    *,
    host: str,
    timeout: float,
    connect_timeout: float,
) -> ProviderTimeout:
    """``error`` (mapped from ``exc``) restated with the limit that ran out and the host.

    Only a timeout of our own client is restated; one the server reported (a
    408, an error event in a stream) is returned as it is.

    Args:
        error: the mapped timeout.
        exc: what the SDK raised (its cause chain says which timeout it was).
        host: the endpoint's ``host:port``.
        timeout: the per-request limit (read, write and pool).
        connect_timeout: the connect limit.

    Example:
        >>> import httpx2
        >>> err = request_timeout(
        ...     ProviderTimeout("ollama: timeout", provider="ollama", reason="timeout"),
        ...     httpx2.ReadTimeout("timed out"),
        ...     host="gpu.lab:11434",
        ...     timeout=60,
        ...     connect_timeout=5,
        ... )
        >>> str(err)
        'ollama: read timeout: no response from gpu.lab:11434 within the 60s per-request limit'
        >>> err.limit
        60
    """
    names = [type(e).__name__ for e in _chain(exc)]
    if error.status is not None or not _CLIENT_TIMEOUTS.intersection(names):
        return error  # the server said it timed out (a 408, an error event): its words stand
    what, detail, connect = next(
        (_TIMEOUTS[name] for name in names if name in _TIMEOUTS), _TIMEOUTS["ReadTimeout"]
    )
    limit = connect_timeout if connect else timeout
    label = error.provider or "model provider"
    scope = "connect" if connect else "per-request"
    restated = ProviderTimeout(
        f"{label}: {what}: {detail} {host} within the {limit:g}s {scope} limit",
        provider=error.provider,
        reason=error.reason,
        request_id=error.request_id,
    )
    restated.limit = limit
    return restated


def _wrapped_nexus_error(exc: BaseException, depth: int = 6) -> NexusError | None:
    """A :class:`NexusError` that ``exc`` was explicitly raised from (``__cause__`` only).

    ``__context__`` is not followed: an SDK error raised while an earlier error
    of ours was being handled is a new failure, not that one.
    """
    current = exc.__cause__
    while current is not None and depth > 0:
        if isinstance(current, NexusError):
            return current
        current = current.__cause__
        depth -= 1
    return None


def leaks_secret(exc: BaseException, secrets: Iterable[str]) -> bool:
    """Whether ``exc`` or anything it was raised from mentions one of ``secrets``."""
    wanted = [s for s in secrets if s]
    if not wanted:
        return False
    for item in _chain(exc, depth=10):
        text = f"{item!s} {item!r} {getattr(item, 'body', '')!s}"
        if any(secret in text for secret in wanted):
            return True
    return False
