"""Fallback routes are built when the chain first needs them, and a route that
cannot be built (no key, residency) is skipped and recorded, not fatal.

The engine runs over the real SDK adapters against the loopback fake server:
the primary ``openai`` model is served by it; the ``anthropic`` fallback has no
key in the environment, or lives on a host strict residency does not
list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from fakeserver import FakeServer, json_reply, openai_completion, openai_error

from nexus.domain.events import Event, EventType
from nexus.domain.plan import AgentSpec, Plan, TaskSpec
from nexus.engine.facade import Engine
from nexus.gateway import default_providers
from nexus.gateway.base import ChatMessage, ModelRequest, ProviderRegistry, RouteStep
from nexus.gateway.errors import ProviderAuthError, ProviderUnavailable
from nexus.gateway.resilience import Candidate, with_fallback
from nexus.gateway.routing import Residency
from nexus.gateway.scripted import ScriptedProvider
from nexus.gateway.sdk import SDKProviders
from nexus.gateway.settings import GatewaySettings, ProviderSettings, ResilienceSettings
from nexus.store.sqlite import SQLiteStore

E = EventType
KEY = "sk-test-fallback-routes-5512"
PRIMARY = "openai:gpt-4.1-mini"
FALLBACK = "anthropic:claude-haiku-4-5"

Main = Callable[[Engine, SQLiteStore], Awaitable[Any]]


def settings(
    server: FakeServer, *, anthropic_url: str | None = None, **keys: str
) -> GatewaySettings:
    """``openai`` on the fake server with a key; ``anthropic`` keyless unless given one."""
    return GatewaySettings(
        openai=ProviderSettings(base_url=server.url + "/v1", api_key=keys.get("openai", KEY)),
        anthropic=ProviderSettings(base_url=anthropic_url, api_key=keys.get("anthropic")),
        resilience=ResilienceSettings(max_attempts=1),
    )


def run(db: Path, gateway: GatewaySettings, main: Main, residency: Residency | None = None) -> Any:
    """Drive ``main`` with an empty environment (no key reaches a provider from it)."""

    async def go() -> Any:
        store = SQLiteStore.open(db)
        providers = default_providers(gateway, environ={}, residency=residency)
        sdk = providers.factory("openai")
        assert isinstance(sdk, SDKProviders)
        try:
            engine = Engine(store, providers=providers, residency=residency)
            return await asyncio.wait_for(main(engine, store), 60)
        finally:
            await sdk.aclose()
            await store.close()

    return asyncio.run(go())


def plan(ws: Path, *fallbacks: str, model: str = PRIMARY) -> Plan:
    ws.mkdir(parents=True, exist_ok=True)
    spec = AgentSpec(name="a", model=model, fallbacks=fallbacks or (FALLBACK,))
    task = TaskSpec(id="t", agent="a", prompt="When is high water?")
    return Plan(name="routes", tasks={"t": task}, agents={"a": spec}, workspace=str(ws))


def start(p: Plan) -> Main:
    async def main(engine: Engine, store: SQLiteStore) -> tuple[str, list[Event]]:
        engine.check_models(p)  # preflight: a keyless fallback must not refuse the run
        result = await engine.start(p)
        return result.status, await store.load(result.run_id)

    return main


def model_effect(evs: list[Event]) -> dict[str, Any]:
    (effect,) = [e.data for e in evs if e.type is E.EFFECT_RECORDED]
    return effect


def failure(evs: list[Event]) -> dict[str, Any]:
    error: dict[str, Any] = next(e for e in evs if e.type is E.TASK_FAILED).data["error"]
    return error


# -- a fallback without a key ---------------------------------------------------------------


def test_a_fallback_without_a_key_does_not_stop_the_primary(
    server: FakeServer, tmp_path: Path
) -> None:
    server.enqueue(json_reply(openai_completion("High water at 06:12.")))
    status, evs = run(tmp_path / "db", settings(server), start(plan(tmp_path / "ws")))
    assert status == "succeeded"
    assert len(server.requests) == 1
    route = model_effect(evs)["response"]["route"]
    assert route == [{"model": PRIMARY, "outcome": "answered", "reason": "primary", "attempts": 1}]


def test_a_keyless_fallback_reached_is_skipped_and_recorded_with_why(
    server: FakeServer, tmp_path: Path
) -> None:
    server.enqueue(openai_error(503, "busy"))
    status, evs = run(tmp_path / "db", settings(server), start(plan(tmp_path / "ws")))
    assert status == "failed"
    assert len(server.requests) == 1
    error = failure(evs)
    assert error["kind"] == "transient"  # the primary's own failure, not the fallback's key
    primary, fallback = (RouteStep.from_dict(s) for s in model_effect(evs)["error"]["route"])
    assert (primary.model, primary.outcome, primary.attempts) == (PRIMARY, "failed", 1)
    assert (fallback.model, fallback.outcome, fallback.attempts) == (FALLBACK, "skipped", 0)
    assert "missing_key" in fallback.reason
    assert "ANTHROPIC_API_KEY" in fallback.reason


def test_a_keyless_primary_is_skipped_for_the_fallback_that_has_a_key(
    server: FakeServer, tmp_path: Path
) -> None:
    server.enqueue(json_reply(openai_completion("High water at 06:12.")))
    p = plan(tmp_path / "ws", PRIMARY, model=FALLBACK)  # anthropic first, keyless
    status, evs = run(tmp_path / "db", settings(server), start(p))
    assert status == "succeeded"
    skipped, answered = (RouteStep.from_dict(s) for s in model_effect(evs)["response"]["route"])
    assert (skipped.model, skipped.outcome) == (FALLBACK, "skipped")
    assert "ANTHROPIC_API_KEY" in skipped.reason
    assert (answered.model, answered.outcome) == (PRIMARY, "answered")


def test_when_every_route_lacks_a_key_the_error_names_each(
    server: FakeServer, tmp_path: Path
) -> None:
    gateway = settings(server, openai="")
    status, evs = run(tmp_path / "db", gateway, start(plan(tmp_path / "ws")))
    assert status == "failed"
    assert server.requests == []
    error = failure(evs)
    assert error["kind"] == "auth"
    assert error["retryable"] is False
    for model, variable in ((PRIMARY, "OPENAI_API_KEY"), (FALLBACK, "ANTHROPIC_API_KEY")):
        assert model in error["message"]
        assert variable in error["message"]
    assert [s["outcome"] for s in error["route"]] == ["skipped", "skipped"]


# -- a fallback outside strict residency ------------------------------------------------------

STRICT = Residency(strict=True, providers=("openai", "anthropic"), hosts=("127.0.0.1",))


def test_a_fallback_on_a_host_residency_denies_does_not_block_the_allowed_primary(
    server: FakeServer, tmp_path: Path
) -> None:
    server.enqueue(json_reply(openai_completion("High water at 06:12.")))
    gateway = settings(server, anthropic="sk-ant", anthropic_url="https://api.anthropic.com")
    status, evs = run(tmp_path / "db", gateway, start(plan(tmp_path / "ws")), STRICT)
    assert status == "succeeded"
    assert len(server.requests) == 1
    assert model_effect(evs)["response"]["route"][0]["outcome"] == "answered"


def test_a_denied_route_is_dropped_and_recorded_and_the_next_one_answers(
    server: FakeServer, tmp_path: Path
) -> None:
    server.enqueue(json_reply(openai_completion("High water at 06:12.")))
    gateway = settings(server, anthropic="sk-ant", anthropic_url="https://api.anthropic.com")
    p = plan(tmp_path / "ws", PRIMARY, model=FALLBACK)  # the denied host first
    status, evs = run(tmp_path / "db", gateway, start(p), STRICT)
    assert status == "succeeded"
    skipped, answered = (RouteStep.from_dict(s) for s in model_effect(evs)["response"]["route"])
    assert (skipped.model, skipped.outcome, skipped.attempts) == (FALLBACK, "skipped", 0)
    assert "policy_denied" in skipped.reason
    assert "api.anthropic.com:443 is not allowed" in skipped.reason
    assert (answered.model, answered.outcome) == (PRIMARY, "answered")


def test_when_residency_leaves_no_route_the_task_fails_policy_denied_naming_each(
    server: FakeServer, tmp_path: Path
) -> None:
    gateway = settings(server, anthropic="sk-ant", anthropic_url="https://api.anthropic.com")
    residency = Residency(strict=True, providers=("openai", "anthropic"), hosts=("10.9.9.9",))
    status, evs = run(tmp_path / "db", gateway, start(plan(tmp_path / "ws")), residency)
    assert status == "failed"
    assert server.requests == []
    error = failure(evs)
    assert error["kind"] == "policy_denied"
    for named in (PRIMARY, FALLBACK, "host 127.0.0.1:", "host api.anthropic.com:443"):
        assert named in error["message"]


# -- the chain itself --------------------------------------------------------------------


def request() -> ModelRequest:
    return ModelRequest(model="scripted:a", messages=(ChatMessage("user", "hi"),))


def test_a_deferred_candidate_is_built_once_and_only_when_reached() -> None:
    built: list[str] = []

    def build(name: str) -> Callable[[], ScriptedProvider]:
        def make() -> ScriptedProvider:
            built.append(name)
            return ScriptedProvider(name, (f"from {name}",))

        return make

    chain = with_fallback(
        Candidate.deferred(build("a"), "scripted:a"), Candidate.deferred(build("b"), "scripted:b")
    )

    async def go() -> list[str]:
        answers = [await chain.complete(request(), {}) for _ in range(2)]
        return [a.text for a in answers]

    assert asyncio.run(go()) == ["from a", "from a"]
    assert built == ["a"]


def test_a_candidate_that_cannot_be_built_is_skipped_whatever_its_kind() -> None:
    def keyless() -> ScriptedProvider:
        raise ProviderAuthError("anthropic: no API key", provider="anthropic", reason="missing_key")

    chain = with_fallback(
        Candidate.deferred(keyless, "anthropic:claude-haiku-4-5"),
        Candidate(ScriptedProvider("b", ("yes",)), "scripted:b"),
    )
    answer = asyncio.run(chain.complete(request(), {}))
    assert answer.text == "yes"
    assert [s.outcome for s in answer.route] == ["skipped", "answered"]
    assert answer.route[0].reason.startswith("cannot be used: auth/missing_key: ")
    assert answer.route[1].reason.startswith("fallback after anthropic:claude-haiku-4-5 skipped")


def test_a_build_that_raises_a_bug_is_not_swallowed() -> None:
    def broken() -> ScriptedProvider:
        raise RuntimeError("bug")

    chain = with_fallback(
        Candidate.deferred(broken, "scripted:a"),
        Candidate(ScriptedProvider("b", ("yes",)), "scripted:b"),
    )
    with pytest.raises(RuntimeError, match="bug"):
        asyncio.run(chain.complete(request(), {}))


def test_a_skipped_route_and_a_failed_one_end_with_the_real_failure() -> None:
    class Down:
        async def complete(self, request: ModelRequest, context: Any) -> Any:
            raise ProviderUnavailable("down", provider="scripted", reason="unavailable")

    def keyless() -> ScriptedProvider:
        raise ProviderAuthError("no API key", provider="anthropic", reason="missing_key")

    chain = with_fallback(
        Candidate(Down(), "scripted:a"), Candidate.deferred(keyless, "anthropic:claude-haiku-4-5")
    )
    with pytest.raises(ProviderUnavailable) as caught:
        asyncio.run(chain.complete(request(), {}))
    assert [s.outcome for s in caught.value.route] == ["failed", "skipped"]


def test_the_resolver_builds_no_fallback_before_the_chain_needs_it() -> None:
    from nexus.agents.resolver import AgentResolver

    made: list[str] = []

    def factory(agent: AgentSpec) -> ScriptedProvider:
        made.append(agent.model)
        return ScriptedProvider(agent.name, ("ok",))

    resolver = AgentResolver(ProviderRegistry({"scripted": factory}))
    spec = AgentSpec(name="a", model="scripted:a", fallbacks=("scripted:b",))
    resolver.resolve(spec, ("scripted:a", "scripted:b"))
    assert made == []


def test_a_stream_skips_a_candidate_that_cannot_be_built_and_names_it_when_none_can() -> None:
    from nexus.gateway.base import StreamEnd

    def keyless(provider: str) -> Callable[[], ScriptedProvider]:
        def make() -> ScriptedProvider:
            raise ProviderAuthError(
                f"{provider}: no API key", provider=provider, reason="missing_key"
            )

        return make

    async def final(chain: Any) -> Any:
        return [event async for event in chain.stream(request(), {})][-1]

    chain = with_fallback(
        Candidate.deferred(keyless("anthropic"), "anthropic:claude-haiku-4-5"),
        Candidate(ScriptedProvider("b", ("yes",)), "scripted:b"),
    )
    end = asyncio.run(final(chain))
    assert isinstance(end, StreamEnd)
    assert [s.outcome for s in end.response.route] == ["skipped", "answered"]

    none = with_fallback(
        Candidate.deferred(keyless("anthropic"), "anthropic:claude-haiku-4-5"),
        Candidate.deferred(keyless("openai"), "openai:gpt-4.1-mini"),
    )
    with pytest.raises(ProviderAuthError) as caught:
        asyncio.run(final(none))
    assert "anthropic:claude-haiku-4-5 (auth/missing_key" in caught.value.message
    assert "openai:gpt-4.1-mini (auth/missing_key" in caught.value.message
    assert [s.outcome for s in caught.value.route] == ["skipped", "skipped"]
