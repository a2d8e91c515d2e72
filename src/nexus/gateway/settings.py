"""Provider settings: endpoints, keys (from env, files or config) and resilience knobs.

Each provider follows its own ecosystem's conventions first:

==================  ===============================  =================================
prefix              key                              base URL
==================  ===============================  =================================
``openai``          ``OPENAI_API_KEY`` (required)    ``OPENAI_BASE_URL``
``anthropic``       ``ANTHROPIC_API_KEY`` (required) ``ANTHROPIC_BASE_URL``
``ollama``          none                             ``OLLAMA_HOST`` (+ ``/v1``)
``vllm``            ``VLLM_API_KEY`` (optional)      ``VLLM_BASE_URL``
``openai_compatible:<name>``  ``NEXUS_OPENAI_COMPATIBLE_<NAME>_API_KEY``  ``..._BASE_URL``
==================  ===============================  =================================

A ``nexus.toml`` ``[providers]`` table (parsed by the caller and handed to
:meth:`GatewaySettings.from_mapping`) overrides them::

    [providers.openai]
    api_key_file = "/run/secrets/openai"
    timeout = 30

    [providers.openai_compatible.lmstudio]
    base_url = "http://127.0.0.1:1234/v1"
    model = "qwen2.5-7b-instruct"

    [providers.resilience]
    deadline = 90
    max_attempts = 3

Keys are held in :class:`Secret`, whose ``str``/``repr`` is ``***``: a key can
reach the SDK (through :meth:`Secret.reveal`) but never a log line, an event or
an exception message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, field_validator
from pydantic_core import core_schema

from nexus.domain.errors import UserError
from nexus.gateway.errors import ProviderAuthError

if TYPE_CHECKING:
    pass

__all__ = [
    "SDK_PREFIXES",
    "Endpoint",
    "GatewaySettings",
    "ProviderSettings",
    "ResilienceSettings",
    "Secret",
    "ollama_base_url",
]

_MASK = "***"


class Secret:
    """A secret string that shows as ``***`` everywhere except :meth:`reveal`.

    Example:
        >>> key = Secret("sk-live-123")
        >>> (str(key), repr(key), f"{key}")
        ('***', '***', '***')
        >>> key.reveal()
        'sk-live-123'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: hand it to the SDK and nowhere else."""
        return self._value

    def __str__(self) -> str:
        return _MASK

    def __repr__(self) -> str:
        return _MASK

    def __format__(self, spec: str) -> str:
        return _MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError("a Secret cannot be pickled")

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def coerce(value: object) -> Secret:
            if isinstance(value, Secret):
                return value
            if isinstance(value, str):
                return cls(value)
            raise ValueError("a secret must be a string")

        return core_schema.no_info_plain_validator_function(
            coerce,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda _: _MASK),
        )


def _read_key_file(path: Path) -> Secret:
    try:
        text = path.expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UserError(f"cannot read the API key file {path}: {exc.strerror}") from None
    if not text:
        raise UserError(f"the API key file {path} is empty")
    return Secret(text)


class ProviderSettings(BaseModel):
    """One endpoint's settings; unset fields fall back to the environment, then defaults.

    Attributes:
        api_key: the key itself (prefer ``api_key_file`` or the environment).
        api_key_file: a file holding the key (a mounted secret); read when used.
        base_url: the API root, ``/v1`` included for OpenAI-compatible servers.
        model: the default model of an ``openai_compatible`` endpoint.
        timeout: the SDK's per-request timeout in seconds (the call's total
            deadline is :attr:`ResilienceSettings.deadline`).
        connect_timeout: seconds to establish a connection.
        max_tokens: default output limit (Anthropic requires one).
        headers: extra HTTP headers (for gateways and proxies).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: Secret | None = None
    api_key_file: Path | None = None
    base_url: str | None = None
    model: str | None = None
    timeout: float = Field(default=60.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    max_tokens: int = Field(default=4096, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)


class ResilienceSettings(BaseModel):
    """Retry, deadline and circuit-breaker knobs shared by every provider."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deadline: float = Field(default=120.0, gt=0, description="total seconds per call")
    max_attempts: int = Field(default=4, ge=1)
    backoff_initial: float = Field(default=0.5, ge=0)
    backoff_multiplier: float = Field(default=2.0, ge=1)
    backoff_cap: float = Field(default=20.0, ge=0)
    jitter: Literal["full", "equal"] = "full"
    max_retry_after: float = Field(
        default=60.0, ge=0, description="give up at once when asked to wait longer"
    )
    breaker_failures: int = Field(default=5, ge=1, description="failures that open a breaker")
    breaker_window: float = Field(default=60.0, gt=0, description="seconds failures count in")
    breaker_cooldown: float = Field(default=30.0, gt=0, description="seconds before a probe")


class GatewaySettings(BaseModel):
    """Every provider's settings: the ``[providers]`` table of ``nexus.toml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    openai: ProviderSettings = Field(default_factory=ProviderSettings)
    anthropic: ProviderSettings = Field(default_factory=ProviderSettings)
    ollama: ProviderSettings = Field(default_factory=ProviderSettings)
    vllm: ProviderSettings = Field(default_factory=ProviderSettings)
    openai_compatible: dict[str, ProviderSettings] = Field(default_factory=dict)
    resilience: ResilienceSettings = Field(default_factory=ResilienceSettings)

    @field_validator("openai_compatible")
    @classmethod
    def _names(cls, value: dict[str, ProviderSettings]) -> dict[str, ProviderSettings]:
        for name in value:
            if not name or "/" in name or ":" in name:
                raise ValueError(f"endpoint name '{name}' may not be empty or hold '/' or ':'")
        return value

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> GatewaySettings:
        """Validate a parsed ``[providers]`` table.

        Raises:
            UserError: the table is invalid (the message names the field, never a key).
        """
        from pydantic import ValidationError

        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise UserError(f"invalid [providers] settings: {problems}") from None

    def endpoint(
        self, prefix: str, name: str = "", environ: Mapping[str, str] | None = None
    ) -> Endpoint:
        """Resolve the endpoint for a provider prefix (and an ``openai_compatible`` name).

        Settings win over the environment, the environment over defaults.

        Raises:
            NotFoundError: an unknown prefix or ``openai_compatible`` endpoint.
            UserError: a key file cannot be read.
        """
        env = os.environ if environ is None else environ
        return _resolve(self, prefix, name, env)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A resolved endpoint: where to send requests and with which key.

    ``repr`` shows the key as ``***``.
    """

    provider: str
    name: str
    base_url: str
    api_key: Secret | None
    key_required: bool
    timeout: float = 60.0
    connect_timeout: float = 5.0
    max_tokens: int = 4096
    default_model: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        """``openai``, or ``openai_compatible:lmstudio``."""
        return f"{self.provider}:{self.name}" if self.name else self.provider

    @property
    def host(self) -> str:
        """``host:port`` of the base URL (the scheme's port when it names none), for messages.

        Example:
            >>> Endpoint("openai", "", "https://api.openai.com/v1", None, True).host
            'api.openai.com:443'
        """
        try:
            parts = urlsplit(self.base_url)
            host, port = parts.hostname or "", parts.port
        except ValueError:
            return self.base_url
        if not host:
            return self.base_url
        port = port or {"https": 443, "http": 80}.get(parts.scheme.lower())
        shown = f"[{host}]" if ":" in host else host
        return f"{shown}:{port}" if port else shown

    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in messages (the key, if any)."""
        return (self.api_key.reveal(),) if self.api_key else ()

    def require_key(self) -> str:
        """The key to hand to the SDK.

        Raises:
            ProviderAuthError: the provider needs a key and none is configured.
        """
        if self.api_key:
            return self.api_key.reveal()
        if self.key_required:
            env = _ENV_KEYS.get(self.provider, "")
            raise ProviderAuthError(
                f"{self.label}: no API key: set {env} or providers.{self.provider}.api_key_file",
                provider=self.provider,
                reason="missing_key",
            )
        return "not-needed"  # OpenAI-compatible local servers ignore it, the SDK wants one


_ENV_KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "vllm": "VLLM_API_KEY",
}
_ENV_URLS = {
    "openai": "OPENAI_BASE_URL",
    "anthropic": "ANTHROPIC_BASE_URL",
    "vllm": "VLLM_BASE_URL",
}
_DEFAULT_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "vllm": "http://127.0.0.1:8000/v1",
}


def ollama_base_url(host: str | None) -> str:
    """The OpenAI-compatible URL of an Ollama server from ``OLLAMA_HOST``.

    ``OLLAMA_HOST`` may be ``host``, ``host:port``, or a URL; the default port is
    11434 and the OpenAI-compatible API lives under ``/v1``.

    Example:
        >>> ollama_base_url("gpu-box")
        'http://gpu-box:11434/v1'
        >>> ollama_base_url(None)
        'http://127.0.0.1:11434/v1'
    """
    value = (host or "").strip() or "127.0.0.1:11434"
    scheme = "http"
    if "://" in value:
        scheme, _, value = value.partition("://")
    value = value.rstrip("/")
    hostpart, _, path = value.partition("/")
    has_port = "]:" in hostpart if hostpart.startswith("[") else ":" in hostpart  # [::1]:port
    if not has_port:
        hostpart = f"{hostpart}:{443 if scheme == 'https' else 11434}"
    path = path.strip("/")
    if not path.endswith("v1"):
        path = f"{path}/v1" if path else "v1"
    return f"{scheme}://{hostpart}/{path}"


def _resolve(settings: GatewaySettings, prefix: str, name: str, env: Mapping[str, str]) -> Endpoint:
    from nexus.domain.errors import NotFoundError

    if prefix == "openai_compatible":
        configured = settings.openai_compatible.get(name)
        env_prefix = f"NEXUS_OPENAI_COMPATIBLE_{name.upper().replace('-', '_')}_"
        base_url = (configured.base_url if configured else None) or env.get(env_prefix + "BASE_URL")
        if not name or not base_url:
            known = ", ".join(sorted(settings.openai_compatible)) or "none"
            raise NotFoundError(
                f"openai_compatible endpoint '{name}' is not configured "
                f"(set providers.openai_compatible.{name or '<name>'}.base_url "
                f"or {env_prefix}BASE_URL; configured: {known})"
            )
        conf = configured or ProviderSettings()
        key = _key(conf, env.get(env_prefix + "API_KEY"))
        return _endpoint("openai_compatible", name, base_url, key, False, conf)
    if prefix == "ollama":
        conf = settings.ollama
        base_url = conf.base_url or ollama_base_url(env.get("OLLAMA_HOST"))
        return _endpoint("ollama", "", base_url, _key(conf, None), False, conf)
    if prefix in _DEFAULT_URLS:
        conf = getattr(settings, prefix)
        base_url = conf.base_url or env.get(_ENV_URLS[prefix]) or _DEFAULT_URLS[prefix]
        key = _key(conf, env.get(_ENV_KEYS[prefix]))
        return _endpoint(prefix, "", base_url, key, prefix != "vllm", conf)
    raise NotFoundError(f"unknown model provider '{prefix}'")


def _key(conf: ProviderSettings, from_env: str | None) -> Secret | None:
    if conf.api_key:
        return conf.api_key
    if conf.api_key_file is not None:
        return _read_key_file(conf.api_key_file)
    return Secret(from_env) if from_env else None


def _endpoint(
    provider: str,
    name: str,
    base_url: str,
    key: Secret | None,
    key_required: bool,
    conf: ProviderSettings,
) -> Endpoint:
    return Endpoint(
        provider=provider,
        name=name,
        base_url=base_url.rstrip("/"),
        api_key=key,
        key_required=key_required,
        timeout=conf.timeout,
        connect_timeout=conf.connect_timeout,
        max_tokens=conf.max_tokens,
        default_model=conf.model,
        headers=dict(conf.headers),
    )


#: The prefixes :class:`~nexus.gateway.sdk.SDKProviders` serves.
SDK_PREFIXES = ("openai", "anthropic", "ollama", "vllm", "openai_compatible")
