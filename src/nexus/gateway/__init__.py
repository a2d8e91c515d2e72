"""Model gateway: providers behind one port, made resilient and accounted for.

The SDK-backed adapters (:class:`OpenAICompatProvider`, :class:`AnthropicProvider`)
are imported on first use, so ``import nexus.gateway`` does not pay for
importing the ``openai`` and ``anthropic`` packages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nexus.gateway.base import (
    ChatMessage,
    ModelProvider,
    ModelRequest,
    ModelResponse,
    ProviderRegistry,
    RouteStep,
    StreamEnd,
    StreamEvent,
    StreamingProvider,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
    full_requests,
    split_model,
)
from nexus.gateway.cache import (
    CachedEntry,
    CacheSavings,
    CacheStats,
    CachingProvider,
    MemoryResponseCache,
    ResponseCache,
    SQLiteResponseCache,
    request_key,
    savings,
)
from nexus.gateway.cassette import (
    Cassette,
    Interaction,
    RecordingProvider,
    ReplayProvider,
    replay_factory,
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
    map_provider_error,
)
from nexus.gateway.factory import default_providers
from nexus.gateway.pricing import (
    ModelPrice,
    PricingTable,
    cost_of,
    default_pricing,
)
from nexus.gateway.resilience import (
    Backoff,
    BreakerBoard,
    BreakerState,
    Candidate,
    CircuitBreaker,
    FallbackProvider,
    ResilientProvider,
    with_fallback,
)
from nexus.gateway.routing import (
    TIERS,
    Considered,
    ModelCatalog,
    ModelChoice,
    ModelInfo,
    Residency,
    RoutePolicy,
    choose_models,
    default_catalog,
)
from nexus.gateway.scripted import ScriptedProvider, scripted_factory
from nexus.gateway.sdk import SDKProviders
from nexus.gateway.settings import (
    Endpoint,
    GatewaySettings,
    ProviderSettings,
    ResilienceSettings,
    Secret,
)

if TYPE_CHECKING:
    from nexus.gateway.anthropic_provider import AnthropicProvider
    from nexus.gateway.openai_compat import OpenAICompatProvider


_LAZY = {
    "AnthropicProvider": "nexus.gateway.anthropic_provider",
    "OpenAICompatProvider": "nexus.gateway.openai_compat",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nexus.gateway' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "TIERS",
    "AnthropicProvider",
    "Backoff",
    "BreakerBoard",
    "BreakerState",
    "CacheSavings",
    "CacheStats",
    "CachedEntry",
    "CachingProvider",
    "Candidate",
    "Cassette",
    "ChatMessage",
    "CircuitBreaker",
    "Considered",
    "Endpoint",
    "FallbackProvider",
    "GatewaySettings",
    "Interaction",
    "MemoryResponseCache",
    "ModelCatalog",
    "ModelChoice",
    "ModelInfo",
    "ModelPrice",
    "ModelProvider",
    "ModelRequest",
    "ModelResponse",
    "OpenAICompatProvider",
    "PricingTable",
    "ProviderAuthError",
    "ProviderConflict",
    "ProviderError",
    "ProviderInternalError",
    "ProviderNotFound",
    "ProviderRateLimited",
    "ProviderRefused",
    "ProviderRegistry",
    "ProviderRejected",
    "ProviderSettings",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RecordingProvider",
    "ReplayProvider",
    "Residency",
    "ResilienceSettings",
    "ResilientProvider",
    "ResponseCache",
    "RoutePolicy",
    "RouteStep",
    "SDKProviders",
    "SQLiteResponseCache",
    "ScriptedProvider",
    "Secret",
    "StreamEnd",
    "StreamEvent",
    "StreamingProvider",
    "TextDelta",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "choose_models",
    "cost_of",
    "default_catalog",
    "default_pricing",
    "default_providers",
    "full_requests",
    "map_provider_error",
    "replay_factory",
    "request_key",
    "savings",
    "scripted_factory",
    "split_model",
    "with_fallback",
]
