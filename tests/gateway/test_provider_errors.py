"""Error mapping: complete over every exception class the SDKs export, and right on each."""

from __future__ import annotations

import json
import types
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from anthropic import _error_classes

from nexus.domain.errors import ErrorKind, InfrastructureError, NexusError, NotFoundError, UserError
from nexus.gateway.errors import (
    ProviderError,
    covered_exceptions,
    leaks_secret,
    map_provider_error,
    parse_retry_after,
)

STATUS_BASES: tuple[type[BaseException], ...] = (
    openai.APIStatusError,
    anthropic.APIStatusError,
    httpx.HTTPStatusError,
    httpx2.HTTPStatusError,
)


def exported_exceptions(module: types.ModuleType) -> set[type[BaseException]]:
    """Every exception class a library exposes at its top level (warnings excluded)."""
    found: set[type[BaseException]] = set()
    for name in dir(module):
        if name.startswith("_"):
            continue
        obj = getattr(module, name, None)
        if (
            isinstance(obj, type)
            and issubclass(obj, BaseException)
            and not issubclass(obj, Warning)
            and obj.__module__.split(".")[0] == module.__name__
        ):
            found.add(obj)
    return found


def all_sdk_exceptions() -> set[type[BaseException]]:
    classes: set[type[BaseException]] = set()
    for module in (openai, anthropic, httpx, httpx2):
        classes |= exported_exceptions(module)
    classes |= set(_error_classes.ERROR_CLASSES.values())
    return classes


def expected_kind(status: int) -> ErrorKind:
    if status in (401, 403):
        return ErrorKind.AUTH
    if status in (402, 429):
        return ErrorKind.RATE_LIMITED
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 408:
        return ErrorKind.TIMEOUT
    if status in (409, 412):
        return ErrorKind.CONFLICT
    if status == 501 or 400 <= status < 499:
        return ErrorKind.VALIDATION
    return ErrorKind.TRANSIENT


def response(
    status: int, body: Any = None, headers: dict[str, str] | None = None
) -> httpx2.Response:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    content = json.dumps(body if body is not None else {}).encode()
    return httpx2.Response(status, request=request, content=content, headers=headers or {})


def status_error(cls: type[Any], status: int, body: Any = None, **headers: str) -> BaseException:
    resp = response(status, body, headers)
    if issubclass(cls, (httpx.HTTPStatusError, httpx2.HTTPStatusError)):
        module = httpx if issubclass(cls, httpx.HTTPStatusError) else httpx2
        req = module.Request("POST", "http://127.0.0.1/")
        return cls("bad status", request=req, response=module.Response(status, request=req))
    try:
        return cls("bad status", response=resp, body=body)  # type: ignore[no-any-return]
    except TypeError:
        return cls(response=resp, body=body)  # type: ignore[no-any-return]


def status_of(cls: type[Any]) -> int:
    status = getattr(cls, "status_code", None)
    return status if isinstance(status, int) else 500


# -- completeness -------------------------------------------------------------------------


def test_every_sdk_exception_class_is_mapped_explicitly() -> None:
    covered = covered_exceptions()
    missing = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in all_sdk_exceptions()
        if cls not in covered and not issubclass(cls, STATUS_BASES)
    )
    assert missing == [], "add a rule in nexus.gateway.errors for: " + ", ".join(missing)


@pytest.mark.parametrize(
    "cls",
    sorted(
        (c for c in all_sdk_exceptions() if issubclass(c, STATUS_BASES)),
        key=lambda c: f"{c.__module__}.{c.__name__}",  # type: ignore[attr-defined]
    ),
    ids=lambda c: f"{c.__module__.split('.')[0]}.{c.__name__}",
)
def test_every_status_error_class_maps_by_its_status(cls: type[Any]) -> None:
    status = status_of(cls)
    error = map_provider_error(status_error(cls, status), provider="p")
    assert error.kind is expected_kind(status), (cls, status)
    assert error.kind is not ErrorKind.INTERNAL


def test_unknown_exceptions_are_internal_and_not_retried() -> None:
    error = map_provider_error(ValueError("surprise"), provider="openai")
    assert error.kind is ErrorKind.INTERNAL
    assert not error.retryable


def test_nexus_errors_pass_through() -> None:
    original = NotFoundError("nope")
    assert map_provider_error(original) is original


# -- the taxonomy, case by case -------------------------------------------------------------

REQ = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")


def caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


CASES: list[tuple[str, BaseException, ErrorKind, str]] = [
    (
        "openai-connect",
        caused(openai.APIConnectionError(request=REQ), httpx2.ConnectError("refused")),
        ErrorKind.TRANSIENT,
        "connect_failed",
    ),
    ("openai-timeout", openai.APITimeoutError(request=REQ), ErrorKind.TIMEOUT, "timeout"),
    (
        "openai-disconnect",
        caused(openai.APIConnectionError(request=REQ), httpx2.RemoteProtocolError("peer closed")),
        ErrorKind.TRANSIENT,
        "connection_lost",
    ),
    ("anthropic-timeout", anthropic.APITimeoutError(request=REQ), ErrorKind.TIMEOUT, "timeout"),
    (
        "anthropic-connect",
        caused(anthropic.APIConnectionError(request=REQ), ConnectionRefusedError(111, "refused")),
        ErrorKind.TRANSIENT,
        "connect_failed",
    ),
    ("httpx2-read-timeout", httpx2.ReadTimeout("slow"), ErrorKind.TIMEOUT, "read_timeout"),
    ("httpx-connect-timeout", httpx.ConnectTimeout("slow"), ErrorKind.TIMEOUT, "connect_timeout"),
    (
        "httpx2-remote-protocol",
        httpx2.RemoteProtocolError("incomplete chunked read"),
        ErrorKind.TRANSIENT,
        "connection_lost",
    ),
    (
        "httpx2-bad-url",
        httpx2.UnsupportedProtocol("ftp"),
        ErrorKind.VALIDATION,
        "bad_client_config",
    ),
    ("httpx2-stream-closed", httpx2.StreamClosed(), ErrorKind.INTERNAL, "unexpected_error"),
    ("socket-refused", ConnectionRefusedError(111, "x"), ErrorKind.TRANSIENT, "connect_failed"),
    ("socket-reset", ConnectionResetError(104, "x"), ErrorKind.TRANSIENT, "connection_lost"),
    ("deadline", TimeoutError(), ErrorKind.TIMEOUT, "timeout"),
    ("bad-json", json.JSONDecodeError("x", "{", 1), ErrorKind.TRANSIENT, "malformed_body"),
    (
        "openai-stream-error-event",
        openai.APIError("overloaded", REQ, body={"message": "busy", "type": "server_error"}),
        ErrorKind.TRANSIENT,
        "server_error",
    ),
    (
        "anthropic-stream-error-event",
        anthropic.APIStatusError(
            "x",
            response=response(200),
            body={"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
        ),
        ErrorKind.TRANSIENT,
        "overloaded",
    ),
    (
        "content-filter",
        openai.ContentFilterFinishReasonError(),
        ErrorKind.POLICY_DENIED,
        "content_filter",
    ),
    (
        "webhook-signature",
        openai.InvalidWebhookSignatureError("bad"),
        ErrorKind.AUTH,
        "credentials",
    ),
]


@pytest.mark.parametrize(
    ("exc", "kind", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_mapping(exc: BaseException, kind: ErrorKind, reason: str) -> None:
    error = map_provider_error(exc, provider="p")
    assert isinstance(error, ProviderError)
    assert (error.kind, error.reason) == (kind, reason)
    assert error.retryable == (
        kind in (ErrorKind.TRANSIENT, ErrorKind.TIMEOUT, ErrorKind.RATE_LIMITED)
    )


@pytest.mark.parametrize(
    ("status", "body", "kind", "reason", "retryable"),
    [
        (500, {}, ErrorKind.TRANSIENT, "server_error", True),
        (502, {}, ErrorKind.TRANSIENT, "server_error", True),
        (503, {}, ErrorKind.TRANSIENT, "unavailable", True),
        (504, {}, ErrorKind.TRANSIENT, "gateway_timeout", True),
        (529, {}, ErrorKind.TRANSIENT, "overloaded", True),
        (429, {"code": "rate_limit_exceeded"}, ErrorKind.RATE_LIMITED, "rate_limited", True),
        (429, {"code": "insufficient_quota"}, ErrorKind.RATE_LIMITED, "quota", False),
        (402, {}, ErrorKind.RATE_LIMITED, "quota", False),
        (
            400,
            {"code": "context_length_exceeded", "message": "too long"},
            ErrorKind.VALIDATION,
            "context_length_exceeded",
            False,
        ),
        (
            400,
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "message": "prompt is too long: 210000 tokens > 200000 maximum",
                },
            },
            ErrorKind.VALIDATION,
            "context_length_exceeded",
            False,
        ),
        (
            400,
            {"message": "This model's maximum context length is 4096 tokens. You requested 5000"},
            ErrorKind.VALIDATION,
            "context_length_exceeded",
            False,
        ),
        (400, {"message": "temperature must be <= 2"}, ErrorKind.VALIDATION, "bad_request", False),
        (422, {}, ErrorKind.VALIDATION, "bad_request", False),
        (401, {}, ErrorKind.AUTH, "authentication", False),
        (403, {}, ErrorKind.AUTH, "permission", False),
        (404, {}, ErrorKind.NOT_FOUND, "not_found", False),
        (409, {}, ErrorKind.CONFLICT, "conflict", True),
    ],
)
def test_status_mapping(
    status: int, body: Any, kind: ErrorKind, reason: str, retryable: bool
) -> None:
    cls = openai.APIStatusError
    error = map_provider_error(status_error(cls, status, body), provider="openai")
    assert isinstance(error, ProviderError)
    assert (error.kind, error.reason, error.retryable) == (kind, reason, retryable)
    assert error.status == status


def test_classes_keep_the_domain_hierarchy() -> None:
    assert isinstance(
        map_provider_error(status_error(openai.APIStatusError, 503)), InfrastructureError
    )
    assert isinstance(map_provider_error(status_error(openai.APIStatusError, 400)), UserError)
    assert isinstance(map_provider_error(status_error(openai.APIStatusError, 404)), NotFoundError)


def test_anthropic_spend_limit_is_quota() -> None:
    body = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "spend limit reached",
            "details": {"error_code": "enforced_spend_limit_reached"},
        },
    }
    exc = status_error(anthropic.EnforcedSpendLimitReachedError, 429, body)
    error = map_provider_error(exc, provider="anthropic")
    assert isinstance(error, ProviderError)
    assert (error.kind, error.reason, error.retryable) == (ErrorKind.RATE_LIMITED, "quota", False)


# -- Retry-After --------------------------------------------------------------------------


def test_retry_after_seconds_from_a_429() -> None:
    exc = status_error(openai.RateLimitError, 429, {}, **{"retry-after": "7"})
    error = map_provider_error(exc)
    assert error.retry_after == 7.0
    assert error.retryable


def test_retry_after_on_a_503_is_kept() -> None:
    exc = status_error(anthropic.ServiceUnavailableError, 503, {}, **{"retry-after": "3"})
    assert map_provider_error(exc).retry_after == 3.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "12"}, 12.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "x", "retry-after": "2"}, 2.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert later.endswith("GMT")
    assert parse_retry_after({"retry-after": later}, now=now) == 30.0
    earlier = format_datetime(datetime(2026, 3, 1, 11, 0, 0, tzinfo=UTC), usegmt=True)
    assert parse_retry_after({"retry-after": earlier}, now=now) == 0.0


# -- secrets ------------------------------------------------------------------------------

KEY = "sk-DISTINCTIVE-0123456789abcdef"


def test_secrets_are_redacted_from_messages() -> None:
    body = {"message": f"Incorrect API key provided: {KEY}", "code": "invalid_api_key"}
    exc = status_error(openai.AuthenticationError, 401, body)
    error = map_provider_error(exc, provider="openai", secrets=[KEY])
    assert KEY not in str(error)
    assert KEY not in json.dumps(error.to_data())
    assert "***" in str(error)
    assert leaks_secret(exc, [KEY])
    assert not leaks_secret(ValueError("clean"), [KEY])


def test_error_record_holds_the_details() -> None:
    exc = status_error(
        openai.RateLimitError,
        429,
        {"code": "rate_limit_exceeded"},
        **{"retry-after": "2", "x-request-id": "req_1"},
    )
    data = map_provider_error(exc, provider="openai").to_data()
    assert data == {
        "kind": "rate_limited",
        "message": data["message"],
        "retryable": True,
        "retry_after": 2.0,
        "reason": "rate_limited",
        "provider": "openai",
        "status": 429,
        "code": "rate_limit_exceeded",
        "request_id": "req_1",
    }
    assert isinstance(map_provider_error(exc), NexusError)
