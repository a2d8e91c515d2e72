"""The provider factory for the SDK-backed prefixes (``openai``, ``anthropic``, ``ollama``...).

It builds the adapters (:mod:`nexus.gateway.openai_compat`,
:mod:`nexus.gateway.anthropic_provider`) from :mod:`nexus.gateway.settings`;
the adapters import the settings' :class:`~nexus.gateway.settings.Endpoint`
and nothing here, so the dependency runs one way. The adapters (and the SDKs
they load) are imported when a model first needs one: a run that only uses
``scripted`` models never loads the SDKs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nexus.gateway.base import split_model
from nexus.gateway.resilience import Backoff, BreakerBoard, ResilientProvider
from nexus.gateway.settings import SDK_PREFIXES, GatewaySettings

if TYPE_CHECKING:
    from nexus.gateway.routing import Residency

__all__ = ["SDK_PREFIXES", "SDKProviders"]


class SDKProviders:
    """The provider factory for the SDK-backed prefixes, built from settings.

    Each endpoint gets one adapter (one SDK client and connection pool), wrapped
    in a :class:`~nexus.gateway.resilience.ResilientProvider`; every agent naming
    that endpoint shares it, and all of them share one breaker board. Nothing
    is built or imported until an agent first needs it, so a run that only uses
    ``scripted`` models never imports the SDKs.

    With a strict :class:`~nexus.gateway.routing.Residency`, :meth:`for_model`
    refuses a model whose provider or endpoint host is not allowed before any
    client is built, so nothing is sent; the clients it builds then check the
    host of every request they send and follow no redirect (see
    :mod:`nexus.gateway.egress`).

    Args:
        settings: the ``[providers]`` settings (default: environment only).
        environ: the environment to read (default: ``os.environ``).
        residency: where calls may go (default: anywhere).
    """

    def __init__(
        self,
        settings: GatewaySettings | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        residency: Residency | None = None,
    ) -> None:
        self.settings = settings or GatewaySettings()
        self._environ = environ
        self.residency = residency
        knobs = self.settings.resilience
        self.breakers = BreakerBoard(
            failures=knobs.breaker_failures,
            window=knobs.breaker_window,
            cooldown=knobs.breaker_cooldown,
        )
        self._providers: dict[tuple[str, str], Any] = {}
        self._base_urls: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:
        return f"SDKProviders({', '.join(f'{p}:{n}' if n else p for p, n in self._providers)})"

    def __call__(self, agent: Any) -> Any:
        """The provider for ``agent`` (an :class:`~nexus.domain.plan.AgentSpec`)."""
        return self.for_model(agent.model)

    def for_model(self, model: str) -> Any:
        """The (shared) resilient provider serving ``model`` (``provider:model``).

        Raises:
            PolicyDenied: residency forbids the model's provider or its endpoint's
                host (raised before any client is built).
            NotFoundError: unknown prefix or ``openai_compatible`` endpoint.
            ProviderAuthError: the provider needs a key and none is set.
        """
        prefix, name = split_model(model)
        if self.residency is not None:
            self.residency.check_model(model)  # before endpoint resolution reads any key
        endpoint_name = name.partition("/")[0] if prefix == "openai_compatible" else ""
        key = (prefix, endpoint_name)
        provider = self._providers.get(key)
        if provider is not None and self.residency is not None:
            self.residency.check_endpoint(model, self._base_urls[key])
        if provider is None:
            endpoint = self.settings.endpoint(prefix, endpoint_name, self._environ)
            if self.residency is not None:
                self.residency.check_endpoint(model, endpoint.base_url)
            adapter: Any
            if prefix == "anthropic":
                from nexus.gateway.anthropic_provider import AnthropicProvider

                adapter = AnthropicProvider(endpoint, residency=self.residency)
            else:
                from nexus.gateway.openai_compat import OpenAICompatProvider

                adapter = OpenAICompatProvider(endpoint, residency=self.residency)
            knobs = self.settings.resilience
            provider = ResilientProvider(
                adapter,
                backoff=Backoff(
                    max_attempts=knobs.max_attempts,
                    initial=knobs.backoff_initial,
                    multiplier=knobs.backoff_multiplier,
                    cap=knobs.backoff_cap,
                    jitter=knobs.jitter,
                    max_retry_after=knobs.max_retry_after,
                ),
                deadline=knobs.deadline,
                breakers=self.breakers,
            )
            self._providers[key] = provider
            self._base_urls[key] = endpoint.base_url
        return provider

    async def aclose(self) -> None:
        """Close every client built so far (idempotent)."""
        providers, self._providers = list(self._providers.values()), {}
        self._base_urls = {}
        for provider in providers:
            await provider.aclose()
