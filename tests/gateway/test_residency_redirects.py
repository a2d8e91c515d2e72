"""Residency holds across HTTP redirects: the SDK clients never follow one.

Two loopback fake servers: the allowed one on 127.0.0.1 (the residency's only
host) and an unlisted one on 127.0.0.2. The allowed server answers the model
call with a redirect to the unlisted one. Before this was enforced the SDK
clients re-sent the whole request -- prompt included -- to the unlisted host
and the run succeeded with its answer. Now the unlisted server receives
nothing, the call fails with ``policy_denied`` naming the host, and the run's
log records the denial.

A redirect to an allowed host is refused too (``validation``, reason
``redirect``): a model endpoint that redirects is misconfigured, following a
redirect would turn 301/302 POSTs into bodiless GETs, and headers such as
Anthropic's ``x-api-key`` would travel to the new origin (see docs/gateway.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeserver import FakeServer, Reply, collect, endpoint_for, user

from nexus.domain.errors import ErrorKind, PolicyDenied
from nexus.domain.events import Event, EventType
from nexus.domain.plan import AgentSpec, Plan, TaskSpec
from nexus.engine.facade import Engine
from nexus.gateway import default_providers
from nexus.gateway.anthropic_provider import AnthropicProvider
from nexus.gateway.errors import ProviderRejected
from nexus.gateway.openai_compat import OpenAICompatProvider
from nexus.gateway.routing import Residency
from nexus.gateway.settings import GatewaySettings, ProviderSettings
from nexus.store.sqlite import SQLiteStore

KEY = "sk-redirect-7c1d-never-travels"
MODEL = {"openai": "openai:gpt-4.1-mini", "anthropic": "anthropic:claude-haiku-4-5"}
PATH = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
STATUSES = (301, 302, 307, 308)
E = EventType


@pytest.fixture(scope="module")
def unlisted() -> Iterator[FakeServer]:
    """A second model server on a host the residency does not list."""
    with FakeServer(host="127.0.0.2") as server:
        yield server


@pytest.fixture
def other(unlisted: FakeServer) -> Iterator[FakeServer]:
    unlisted.reset()
    yield unlisted
    unlisted.reset()


def redirect(status: int, location: str) -> Reply:
    return Reply(status=status, headers={"location": location}, body=b"")


def strict(*hosts: str) -> Residency:
    return Residency(strict=True, providers=("openai", "anthropic"), hosts=hosts)


def settings_for(server: FakeServer, provider: str) -> GatewaySettings:
    base = server.url + "/v1" if provider == "openai" else server.url
    return GatewaySettings(**{provider: ProviderSettings(base_url=base, api_key=KEY)})


def run_one(
    tmp_path: Path, server: FakeServer, provider: str, residency: Residency, *, stream: bool
) -> tuple[str, list[Event]]:
    """One agent task through the engine; its status and its log."""
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    agent = AgentSpec(name="a", model=MODEL[provider])
    plan = Plan(
        name="redirects",
        tasks={"t": TaskSpec(id="t", agent="a", prompt="the secret plan: 42")},
        agents={"a": agent},
        workspace=str(ws),
    )

    async def go() -> tuple[str, list[Event]]:
        store = SQLiteStore.open(tmp_path / "db")
        providers = default_providers(
            settings_for(server, provider), environ={}, residency=residency
        )
        engine = Engine(store, providers=providers, residency=residency)
        try:
            result = await engine.start(plan, on_delta=(lambda _: None) if stream else None)
            return str(result.status), await store.load(result.run_id)
        finally:
            await providers.factory("openai").aclose()
            await store.close()

    return asyncio.run(go())


CASES = [(p, s, m) for p in ("openai", "anthropic") for s in STATUSES for m in (True, False)]


@pytest.mark.parametrize(
    ("provider", "status", "stream"),
    CASES,
    ids=[f"{p}-{s}-{'stream' if m else 'whole'}" for p, s, m in CASES],
)
def test_a_redirect_to_an_unlisted_host_is_denied_and_recorded(
    server: FakeServer,
    other: FakeServer,
    tmp_path: Path,
    provider: str,
    status: int,
    stream: bool,
) -> None:
    server.enqueue(redirect(status, other.url + PATH[provider]))
    outcome, events = run_one(tmp_path, server, provider, strict("127.0.0.1"), stream=stream)

    assert other.requests == [], "the unlisted host received the request"
    assert len(server.requests) == 1, "a policy denial is not retried"
    assert outcome == "failed"
    (failed,) = [e for e in events if e.type is E.TASK_FAILED]
    error = failed.data["error"]
    assert error["kind"] == str(ErrorKind.POLICY_DENIED)
    assert f"127.0.0.2:{other.port}" in error["message"]
    assert "not allowed" in error["message"]
    assert KEY not in str([e.data for e in events])
    # the model effect records the denial too
    (effect,) = [e for e in events if e.type is E.EFFECT_RECORDED]
    assert effect.data["error"]["kind"] == str(ErrorKind.POLICY_DENIED)


def adapter(provider: str, server: FakeServer, residency: Residency | None) -> Any:
    endpoint = endpoint_for(server, provider, key=KEY)
    if provider == "openai":
        return OpenAICompatProvider(endpoint, residency=residency)
    return AnthropicProvider(endpoint, residency=residency)


async def ask(provider_obj: Any, provider: str, *, stream: bool) -> Any:
    request = user(model=MODEL[provider])
    try:
        if stream:
            return await collect(provider_obj.stream(request, {}))
        return await provider_obj.complete(request, {})
    finally:
        await provider_obj.aclose()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("residency", [None, strict("127.0.0.1")], ids=["lax", "strict"])
def test_a_redirect_to_an_allowed_host_is_refused_not_followed(
    server: FakeServer, provider: str, stream: bool, residency: Residency | None
) -> None:
    # same host, same port, another path: allowed by residency, still not followed
    server.enqueue(redirect(307, server.url + "/elsewhere" + PATH[provider]))

    with pytest.raises(ProviderRejected) as info:
        asyncio.run(ask(adapter(provider, server, residency), provider, stream=stream))

    error = info.value
    assert (error.kind, error.reason, error.status) == (ErrorKind.VALIDATION, "redirect", 307)
    assert not error.retryable
    assert f"127.0.0.1:{server.port}/elsewhere" in str(error)
    assert "set base_url" in str(error)
    assert [r.path for r in server.requests] == [PATH[provider]]
    assert server.wait_idle(connections=0)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_without_strict_residency_an_offsite_redirect_is_still_not_followed(
    server: FakeServer, other: FakeServer, provider: str
) -> None:
    server.enqueue(redirect(308, other.url + PATH[provider]))
    with pytest.raises(ProviderRejected, match=r"127\.0\.0\.2"):
        asyncio.run(ask(adapter(provider, server, None), provider, stream=False))
    assert other.requests == []


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_every_request_is_checked_not_only_the_base_url(server: FakeServer, provider: str) -> None:
    # An adapter built for a listed host whose base URL was changed under it
    # (or any request the SDK would send elsewhere) is refused before connecting.
    residency = strict("127.0.0.2")
    with pytest.raises(PolicyDenied, match=rf"host 127\.0\.0\.1:{server.port} is not allowed"):
        asyncio.run(ask(adapter(provider, server, residency), provider, stream=False))
    assert server.requests == []
