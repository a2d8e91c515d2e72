"""Settings, secrets and the provider registry; no key ever shows in a log, repr or error."""

from __future__ import annotations

import asyncio
import logging
import pickle
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest
from fakeserver import (
    FakeServer,
    anthropic_error,
    collect,
    endpoint_for,
    json_reply,
    openai_completion,
    openai_error,
    user,
)

from nexus.domain.errors import NotFoundError, UserError
from nexus.domain.plan import AgentSpec
from nexus.gateway import default_providers
from nexus.gateway.anthropic_provider import AnthropicProvider
from nexus.gateway.errors import ProviderAuthError, ProviderError
from nexus.gateway.openai_compat import OpenAICompatProvider
from nexus.gateway.resilience import ResilientProvider
from nexus.gateway.sdk import SDKProviders
from nexus.gateway.settings import (
    GatewaySettings,
    ProviderSettings,
    Secret,
    ollama_base_url,
)

KEY = "sk-DISTINCTIVE-7f3a9c2e51b04d68"


# -- Secret -------------------------------------------------------------------------------


def test_secret_never_shows_itself() -> None:
    secret = Secret(KEY)
    assert str(secret) == repr(secret) == f"{secret}" == f"{secret!r}" == "***"
    assert secret.reveal() == KEY
    assert secret == Secret(KEY)
    assert KEY not in repr([secret, {"k": secret}])
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_settings_hold_keys_as_secrets() -> None:
    settings = GatewaySettings.from_mapping({"openai": {"api_key": KEY, "timeout": 9}})
    assert isinstance(settings.openai.api_key, Secret)
    for text in (
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
    ):
        assert KEY not in text
    assert settings.model_dump(mode="json")["openai"]["api_key"] == "***"


def test_invalid_settings_name_the_field_not_the_key() -> None:
    with pytest.raises(UserError) as info:
        GatewaySettings.from_mapping({"openai": {"api_key": KEY, "timeout": "soon"}})
    assert "openai.timeout" in str(info.value)
    assert KEY not in str(info.value)
    with pytest.raises(UserError, match="api_kee"):
        GatewaySettings.from_mapping({"openai": {"api_kee": KEY}})


# -- endpoints ------------------------------------------------------------------------------


def test_openai_reads_the_ecosystem_env_vars() -> None:
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1/"}
    endpoint = GatewaySettings().endpoint("openai", environ=env)
    assert endpoint.base_url == "http://127.0.0.1:9/v1"
    assert endpoint.require_key() == KEY
    assert KEY not in repr(endpoint)
    default = GatewaySettings().endpoint("openai", environ={"OPENAI_API_KEY": "k"})
    assert default.base_url == "https://api.openai.com/v1"


def test_settings_win_over_the_environment(tmp_path: Path) -> None:
    key_file = tmp_path / "openai.key"
    key_file.write_text(f"  {KEY}\n")
    settings = GatewaySettings(
        openai=ProviderSettings(api_key_file=key_file, base_url="http://127.0.0.1:1/v1")
    )
    endpoint = settings.endpoint("openai", environ={"OPENAI_API_KEY": "from-env"})
    assert endpoint.require_key() == KEY
    assert endpoint.base_url == "http://127.0.0.1:1/v1"


def test_unreadable_or_empty_key_files_are_user_errors(tmp_path: Path) -> None:
    missing = GatewaySettings(openai=ProviderSettings(api_key_file=tmp_path / "nope"))
    with pytest.raises(UserError, match="nope"):
        missing.endpoint("openai", environ={})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(UserError, match="empty"):
        GatewaySettings(anthropic=ProviderSettings(api_key_file=empty)).endpoint("anthropic")


def test_a_missing_required_key_is_an_auth_error() -> None:
    endpoint = GatewaySettings().endpoint("anthropic", environ={})
    with pytest.raises(ProviderAuthError, match="ANTHROPIC_API_KEY"):
        endpoint.require_key()
    with pytest.raises(ProviderAuthError):
        AnthropicProvider(endpoint)
    assert GatewaySettings().endpoint("vllm", environ={}).require_key() == "not-needed"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        (None, "http://127.0.0.1:11434/v1"),
        ("", "http://127.0.0.1:11434/v1"),
        ("gpu", "http://gpu:11434/v1"),
        ("gpu:8080", "http://gpu:8080/v1"),
        ("http://gpu:8080/", "http://gpu:8080/v1"),
        ("https://ollama.example", "https://ollama.example:443/v1"),
        ("http://gpu:8080/v1", "http://gpu:8080/v1"),
        ("[::1]:11434", "http://[::1]:11434/v1"),
        ("[::1]", "http://[::1]:11434/v1"),
    ],
)
def test_ollama_host_forms(host: str | None, url: str) -> None:
    assert ollama_base_url(host) == url


def test_ollama_and_vllm_endpoints() -> None:
    settings = GatewaySettings()
    assert settings.endpoint("ollama", environ={"OLLAMA_HOST": "box"}).base_url == (
        "http://box:11434/v1"
    )
    vllm = settings.endpoint(
        "vllm", environ={"VLLM_BASE_URL": "http://h:8000/v1", "VLLM_API_KEY": KEY}
    )
    assert (vllm.base_url, vllm.require_key()) == ("http://h:8000/v1", KEY)


def test_openai_compatible_endpoints_from_settings_or_env() -> None:
    settings = GatewaySettings.from_mapping(
        {"openai_compatible": {"lab": {"base_url": "http://127.0.0.1:1234/v1", "model": "q"}}}
    )
    lab = settings.endpoint("openai_compatible", "lab", environ={})
    assert (lab.label, lab.default_model, lab.api_key) == ("openai_compatible:lab", "q", None)
    env = {"NEXUS_OPENAI_COMPATIBLE_TGI_BOX_BASE_URL": "http://127.0.0.1:8080/v1"}
    assert settings.endpoint("openai_compatible", "tgi-box", environ=env).base_url.endswith(
        "8080/v1"
    )
    with pytest.raises(NotFoundError, match="lab"):
        settings.endpoint("openai_compatible", "nope", environ={})
    with pytest.raises(NotFoundError):
        settings.endpoint("bedrock", environ={})
    with pytest.raises(UserError):
        GatewaySettings.from_mapping({"openai_compatible": {"a/b": {"base_url": "x"}}})


# -- the registry -------------------------------------------------------------------------


def test_default_providers_keep_scripted_and_add_the_sdk_ones() -> None:
    registry = default_providers(environ={})
    assert registry.prefixes() == (
        "anthropic",
        "cassette",
        "ollama",
        "openai",
        "openai_compatible",
        "replay",
        "scripted",
        "vllm",
    )
    scripted = registry.provider_for(AgentSpec(name="a", model="scripted:x", scripted=("hello",)))
    response = asyncio.run(scripted.complete(user(model="scripted:x"), {}))
    assert response.text == "hello"


def test_sdk_providers_share_one_resilient_provider_per_endpoint() -> None:
    sdk = SDKProviders(environ={"OPENAI_API_KEY": KEY})
    first = sdk(AgentSpec(name="a", model="openai:gpt-4.1"))
    second = sdk(AgentSpec(name="b", model="openai:gpt-4.1-mini"))
    ollama = sdk(AgentSpec(name="c", model="ollama:qwen"))
    assert first is second
    assert isinstance(first, ResilientProvider)
    assert isinstance(first.inner, OpenAICompatProvider)
    assert first.breakers is ollama.breakers
    assert first is not ollama
    assert KEY not in repr(sdk) + repr(first)
    with pytest.raises(ProviderAuthError):
        sdk(AgentSpec(name="d", model="anthropic:claude-haiku-4-5"))
    asyncio.run(sdk.aclose())


def test_importing_the_gateway_does_not_import_the_sdks() -> None:
    code = (
        "import sys, nexus.gateway, nexus.engine; "
        "print(sorted(m for m in ('openai', 'anthropic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- secrets never leak ---------------------------------------------------------------------


def _everything_about(error: BaseException) -> str:
    return "\n".join(
        [
            str(error),
            repr(error),
            "".join(traceback.format_exception(error)),
            str(getattr(error, "to_data", lambda: "")()),
        ]
    )


def test_keys_never_reach_logs_reprs_or_errors(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"Incorrect API key provided: {KEY}. You can find your API key at ..."
    server.enqueue(
        json_reply(openai_completion("fine")),
        openai_error(401, echo, "invalid_api_key"),
        openai_error(401, echo, "invalid_api_key"),
        anthropic_error(401, "authentication_error", f"invalid x-api-key {KEY}"),
    )
    seen: list[str] = []

    async def main() -> None:
        openai_side = OpenAICompatProvider(endpoint_for(server, "openai", key=KEY))
        anthropic_side = AnthropicProvider(endpoint_for(server, "anthropic", key=KEY))
        wrapped = ResilientProvider(openai_side)
        seen.extend([repr(openai_side), repr(anthropic_side), repr(wrapped)])
        try:
            await wrapped.complete(user(), {})
            for call in (
                wrapped.complete(user(), {}),
                collect(wrapped.stream(user(), {})),
                anthropic_side.complete(user(model="anthropic:claude-haiku-4-5"), {}),
            ):
                with pytest.raises(ProviderError) as info:
                    await call
                seen.append(_everything_about(info.value))
        finally:
            await wrapped.aclose()
            await anthropic_side.aclose()

    asyncio.run(main())
    assert len(seen) == 6
    assert all("***" in text for text in seen[3:]), "the echoed key should show as ***"
    for text in seen:
        assert KEY not in text
    assert caplog.records, "debug logging was on: the SDKs should have logged something"
    assert KEY not in caplog.text
    for record in caplog.records:
        assert KEY not in repr(record.__dict__)


def test_provider_reprs_show_where_not_what(server: FakeServer) -> None:
    provider: Any = OpenAICompatProvider(endpoint_for(server, "openai", key=KEY))
    assert repr(provider) == f"OpenAICompatProvider(openai at {server.url}/v1)"
    asyncio.run(provider.aclose())
