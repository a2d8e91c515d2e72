"""The provider factory: which provider serves each model prefix.

A :class:`~nexus.gateway.base.ProviderRegistry` maps a model's prefix to a
factory. The registries Nexus builds hold two kinds:

* the offline providers (:func:`offline_providers`): ``scripted:<anything>``
  answers with the agent's scripted lines, ``cassette:<path>`` from a recorded
  cassette file, the path resolved against a folder (the workflow file's);
  ``replay:<path>``, the former name, is the same provider;
* the SDK providers (:class:`~nexus.gateway.sdk.SDKProviders`): ``openai``,
  ``anthropic``, ``ollama``, ``vllm`` and ``openai_compatible``, configured by
  :class:`~nexus.gateway.settings.GatewaySettings` and held to a residency.

:func:`default_providers` is both, what an :class:`~nexus.engine.Engine` uses
when it is given no registry; ``nexus.app`` builds the CLI's from the same
parts with ``nexus.toml`` (a cache, recording). Nothing connects, and no SDK is
imported, until an agent first uses a provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from nexus.gateway.base import ProviderRegistry
from nexus.gateway.cassette import CASSETTE_PREFIXES, cassette_factory
from nexus.gateway.routing import Residency
from nexus.gateway.scripted import scripted_factory
from nexus.gateway.sdk import SDKProviders
from nexus.gateway.settings import SDK_PREFIXES, GatewaySettings

__all__ = ["default_providers", "offline_providers"]


def offline_providers(base_dir: Path) -> ProviderRegistry:
    """The providers that send nothing: ``scripted``, and cassettes under ``base_dir``.

    Cassettes are served under ``cassette`` and its former name ``replay`` by one
    factory, so a file named both ways is loaded once and its interactions are
    used in one order.
    """
    registry = ProviderRegistry({"scripted": scripted_factory})
    cassettes = cassette_factory(base_dir)
    for prefix in CASSETTE_PREFIXES:
        registry.add(prefix, cassettes)
    return registry


def default_providers(
    settings: GatewaySettings | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    residency: Residency | None = None,
) -> ProviderRegistry:
    """The offline providers (``scripted``, ``cassette:<path>`` relative to the
    working directory) plus the SDK-backed ones (``openai``, ``anthropic``,
    ``ollama``, ``vllm``, ``openai_compatible``), configured from ``settings`` and
    the environment and held to ``residency``. Nothing connects, and no SDK is
    imported, until an agent first uses one of them.
    """
    registry = offline_providers(Path.cwd())
    sdk = SDKProviders(settings, environ=environ, residency=residency)
    for prefix in SDK_PREFIXES:
        registry.add(prefix, sdk)
    return registry
