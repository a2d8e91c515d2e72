"""Residency: allowed providers and hosts, enforced before a byte leaves the machine."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from fakeserver import FakeServer, user
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.domain.errors import PolicyDenied, UserError
from nexus.gateway.routing import Residency
from nexus.gateway.sdk import SDKProviders
from nexus.gateway.settings import GatewaySettings, ProviderSettings

KEY = "sk-residency-3b1f0c9e"


# -- the policy -----------------------------------------------------------------------------


def test_non_strict_allows_everything() -> None:
    lax = Residency(providers=("ollama",), hosts=())
    assert lax.denies("openai:gpt-4.1") is None
    lax.check_endpoint("anthropic:claude-haiku-4-5", "https://api.anthropic.com")
    lax.check_endpoint("openai:gpt-4.1", "not a url")
    assert Residency().denies("anything at all") is None


def test_offline_providers_are_always_allowed() -> None:
    closed = Residency(strict=True)
    for model in ("scripted:planner", "cassette:demo.yaml", "replay:demo.yaml"):
        assert closed.denies(model) is None
        closed.check_endpoint(model, "https://api.openai.com/v1")
    assert closed.denies("ollama:qwen") == "provider not allowed; allowed: none"


@pytest.mark.parametrize(
    ("entry", "allowed", "denied"),
    [
        ("ollama", ["ollama:qwen", "ollama:hf.co/x/y"], ["openai:gpt-4.1", "ollama2:q"]),
        ("open", [], ["openai:gpt-4.1"]),
        ("openai:gpt-4.1*", ["openai:gpt-4.1", "openai:gpt-4.1-mini"], ["openai:gpt-5"]),
        (
            "openai_compatible:lab",
            ["openai_compatible:lab", "openai_compatible:lab/qwen"],
            ["openai_compatible:lab2", "openai_compatible:other/lab"],
        ),
        (
            "openai_compatible:local/*",
            ["openai_compatible:local/qwen"],
            ["openai_compatible:local", "openai_compatible:remote/qwen"],
        ),
        ("ollama:qwen*", ["ollama:qwen2.5-coder"], ["ollama:llama3", "vllm:qwen"]),
    ],
)
def test_provider_entries(entry: str, allowed: list[str], denied: list[str]) -> None:
    residency = Residency(strict=True, providers=(entry,))
    for model in allowed:
        assert residency.denies(model) is None, model
    for model in denied:
        assert residency.denies(model) == f"provider not allowed; allowed: {entry}", model


def test_a_denied_model_is_policy_denied_naming_the_model_and_list() -> None:
    residency = Residency(strict=True, providers=("vllm", "ollama"), hosts=("127.0.0.1",))
    with pytest.raises(PolicyDenied) as info:
        residency.check_endpoint("openai:gpt-4.1-mini", "http://127.0.0.1:8000/v1")
    assert str(info.value) == (
        "residency: model 'openai:gpt-4.1-mini' is denied: "
        "provider not allowed; allowed: ollama, vllm"
    )
    with pytest.raises(PolicyDenied):
        residency.check_model("openai:gpt-4.1-mini")
    residency.check_model("vllm:llama")
    with pytest.raises(UserError, match="provider:model"):
        residency.denies("gpt-4.1")


@pytest.mark.parametrize(
    ("entry", "url", "ok"),
    [
        ("127.0.0.1", "http://127.0.0.1:11434/v1", True),
        ("127.0.0.1:11434", "http://127.0.0.1:11434/v1", True),
        ("127.0.0.1:8000", "http://127.0.0.1:11434/v1", False),
        ("127.0.0.1:*", "http://127.0.0.1:11434/v1", True),
        ("GPU.Lab", "http://gpu.lab:8000/v1", True),
        ("gpu.lab", "http://GPU.LAB:8000/v1", True),
        ("api.example:443", "https://api.example/v1", True),
        ("api.example:80", "https://api.example/v1", False),
        ("api.example:80", "http://api.example", True),
        ("*.internal.example", "https://gpu.internal.example/v1", True),
        ("*.internal.example", "https://a.b.internal.example/v1", True),
        ("*.internal.example", "https://internal.example/v1", False),
        ("*.internal.example", "https://internal.example.evil.com/v1", False),
        ("*.internal.example", "https://x.internal.example@evil.com/v1", False),
        ("[::1]:11434", "http://[::1]:11434/v1", True),
        ("[::1]", "http://[::1]:9/v1", True),
        ("::1", "http://[::1]:9/v1", True),
        ("[::1]:1", "http://[::1]:9/v1", False),
        ("localhost", "http://127.0.0.1:9/v1", False),
    ],
)
def test_host_entries(entry: str, url: str, ok: bool) -> None:
    residency = Residency(strict=True, providers=("vllm",), hosts=(entry,))
    if ok:
        residency.check_endpoint("vllm:m", url)
    else:
        with pytest.raises(PolicyDenied, match=r"host .* is not allowed"):
            residency.check_endpoint("vllm:m", url)


def test_host_denials_name_the_model_host_and_allow_list() -> None:
    residency = Residency(strict=True, providers=("vllm",), hosts=("gpu.lab", "10.0.0.*"))
    with pytest.raises(PolicyDenied) as info:
        residency.check_endpoint("vllm:llama", "https://api.example.com:8443/v1")
    assert str(info.value) == (
        "residency: model 'vllm:llama' is denied: host api.example.com:8443 is not allowed "
        "(allowed hosts: 10.0.0.*, gpu.lab)"
    )
    with pytest.raises(PolicyDenied, match=r"host \[::1\]:9 is not allowed"):
        residency.check_endpoint("vllm:llama", "http://[::1]:9/v1")
    for bad in ("not a url", "http://gpu.lab:99999/v1", "/v1"):
        with pytest.raises(PolicyDenied, match="has no valid host"):
            residency.check_endpoint("vllm:llama", bad)
    closed = Residency(strict=True, providers=("vllm",))
    with pytest.raises(PolicyDenied, match=r"allowed hosts: none"):
        closed.check_endpoint("vllm:llama", "http://127.0.0.1:8000/v1")


def test_residency_round_trips_canonically() -> None:
    residency = Residency.from_dict(
        {"strict": True, "providers": ["vllm", "ollama", "vllm"], "hosts": ["B.lab", "a.lab"]}
    )
    assert residency.to_dict() == {
        "strict": True,
        "providers": ["ollama", "vllm"],
        "hosts": ["a.lab", "b.lab"],
    }
    assert Residency.from_dict(residency.to_dict()) == residency
    assert residency == Residency(True, ("ollama", "vllm"), ("a.lab", "b.lab"))
    assert Residency.from_dict({}) == Residency()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"strict": "yes"}, "'strict' must be true or false"),
        ({"providers": "ollama"}, "'providers' must be a list"),
        ({"providers": [""]}, "'providers' must be a list of non-empty strings"),
        ({"hosts": [1]}, "'hosts' must be a list"),
        ({"hosts": {"a": 1}}, "'hosts' must be a list"),
        ({"regions": ["eu"]}, "unknown field.*regions"),
    ],
)
def test_bad_residency_settings(data: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        Residency.from_dict(data)


hostnames = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True)


@settings(max_examples=40)
@given(listed=hostnames, other=hostnames, port=st.integers(1, 65535))
def test_a_literal_host_entry_matches_that_host_only(listed: str, other: str, port: int) -> None:
    residency = Residency(strict=True, providers=("vllm",), hosts=(listed,))
    residency.check_endpoint("vllm:m", f"http://{listed}:{port}/v1")
    if other != listed:
        with pytest.raises(PolicyDenied):
            residency.check_endpoint("vllm:m", f"http://{other}:{port}/v1")


# -- enforcement in SDKProviders ------------------------------------------------------------


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every socket connect attempted during the test (passed on to the network guard)."""
    seen: list[Any] = []
    guarded = socket.socket.connect

    def spy(self: socket.socket, address: Any) -> Any:
        seen.append(address)
        return guarded(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    return seen


def test_a_denied_provider_is_refused_before_anything_is_built(
    server: FakeServer, connects: list[Any], tmp_path: Path
) -> None:
    # The openai key file does not exist: reading it would fail, so the denial must come first.
    settings = GatewaySettings(
        openai=ProviderSettings(api_key_file=tmp_path / "absent", base_url=server.url + "/v1")
    )
    sdk = SDKProviders(
        settings,
        environ={},
        residency=Residency(strict=True, providers=("ollama",), hosts=("127.0.0.1",)),
    )
    before = server.total_connections
    with pytest.raises(PolicyDenied) as info:
        sdk.for_model("openai:gpt-4.1-mini")
    assert "openai:gpt-4.1-mini" in str(info.value)
    assert "allowed: ollama" in str(info.value)
    assert info.value.kind == "policy_denied"
    assert repr(sdk) == "SDKProviders()", "no client may be built"
    assert connects == []
    assert server.total_connections == before
    assert server.requests == []


def test_an_allowed_endpoint_on_a_listed_host_is_served(server: FakeServer) -> None:
    settings = GatewaySettings.from_mapping(
        {"openai_compatible": {"lab": {"base_url": server.url + "/v1"}}}
    )
    residency = Residency(
        strict=True, providers=("openai_compatible:lab",), hosts=(f"127.0.0.1:{server.port}",)
    )
    sdk = SDKProviders(settings, environ={}, residency=residency)
    provider = sdk.for_model("openai_compatible:lab/qwen")

    async def main() -> str:
        try:
            response = await provider.complete(user(model="openai_compatible:lab/qwen"), {})
            return str(response.text)
        finally:
            await sdk.aclose()

    assert asyncio.run(main())
    assert len(server.requests) == 1


def test_an_unlisted_host_is_refused_before_a_connection(
    server: FakeServer, connects: list[Any]
) -> None:
    settings = GatewaySettings.from_mapping(
        {"openai_compatible": {"lab": {"base_url": server.url + "/v1"}}}
    )
    residency = Residency(
        strict=True, providers=("openai_compatible",), hosts=("*.internal.example",)
    )
    sdk = SDKProviders(settings, environ={}, residency=residency)
    before = server.total_connections
    with pytest.raises(PolicyDenied) as info:
        sdk.for_model("openai_compatible:lab")
    assert str(info.value) == (
        "residency: model 'openai_compatible:lab' is denied: "
        f"host 127.0.0.1:{server.port} is not allowed (allowed hosts: *.internal.example)"
    )
    assert repr(sdk) == "SDKProviders()"
    assert connects == []
    assert server.total_connections == before


def test_a_shared_endpoint_still_checks_each_model(server: FakeServer) -> None:
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.url + "/v1"}
    residency = Residency(strict=True, providers=("openai:gpt-4.1*",), hosts=("127.0.0.1",))
    sdk = SDKProviders(environ=env, residency=residency)
    first = sdk.for_model("openai:gpt-4.1-mini")
    assert sdk.for_model("openai:gpt-4.1") is first
    with pytest.raises(PolicyDenied, match="'openai:gpt-5'"):
        sdk.for_model("openai:gpt-5")
    asyncio.run(sdk.aclose())


def test_without_residency_or_non_strict_nothing_changes(server: FakeServer) -> None:
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "https://api.openai.com/v1"}
    for residency in (None, Residency(providers=("ollama",))):
        sdk = SDKProviders(environ=env, residency=residency)
        assert sdk.for_model("openai:gpt-4.1-mini") is not None
        asyncio.run(sdk.aclose())
