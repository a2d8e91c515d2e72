"""Model gateway: providers behind one port, made resilient and accounted for.

What a user of the gateway needs is here: the provider port and its values
(requests, responses, usage, stream events), the errors to catch, the
providers to build or compose, the registry and its factory, the settings,
residency and prices. Everything else lives in its own module and is imported
from there: routing (:mod:`nexus.gateway.routing`), the response cache
(:mod:`nexus.gateway.cache`), breakers and backoff
(:mod:`nexus.gateway.resilience`), the scripted provider
(:mod:`nexus.gateway.scripted`), the error mapping (:mod:`nexus.gateway.errors`).

Example:
    >>> from nexus.gateway import ChatMessage, ModelRequest, default_providers
    >>> registry = default_providers()  # nothing connects until an agent uses one
    >>> request = ModelRequest("openai:gpt-4.1-mini", (ChatMessage("user", "Hello"),))

The names are loaded on first use (PEP 562): ``import nexus.gateway`` imports
neither SDK, nor YAML, nor any module of the package before a program uses a
name that needs it.
"""

import typing as _typing

from nexus.domain._lazy import on_first_use as _on_first_use

if _typing.TYPE_CHECKING:
    from nexus.gateway.anthropic_provider import AnthropicProvider as AnthropicProvider
    from nexus.gateway.base import ChatMessage as ChatMessage
    from nexus.gateway.base import ModelProvider as ModelProvider
    from nexus.gateway.base import ModelRequest as ModelRequest
    from nexus.gateway.base import ModelResponse as ModelResponse
    from nexus.gateway.base import ProviderRegistry as ProviderRegistry
    from nexus.gateway.base import RouteStep as RouteStep
    from nexus.gateway.base import StreamEnd as StreamEnd
    from nexus.gateway.base import StreamEvent as StreamEvent
    from nexus.gateway.base import StreamingProvider as StreamingProvider
    from nexus.gateway.base import TextDelta as TextDelta
    from nexus.gateway.base import ToolCall as ToolCall
    from nexus.gateway.base import ToolSpec as ToolSpec
    from nexus.gateway.base import Usage as Usage
    from nexus.gateway.base import full_requests as full_requests
    from nexus.gateway.cassette import Cassette as Cassette
    from nexus.gateway.cassette import CassetteProvider as CassetteProvider
    from nexus.gateway.cassette import RecordingProvider as RecordingProvider
    from nexus.gateway.errors import ProviderAuthError as ProviderAuthError
    from nexus.gateway.errors import ProviderConflict as ProviderConflict
    from nexus.gateway.errors import ProviderError as ProviderError
    from nexus.gateway.errors import ProviderInternalError as ProviderInternalError
    from nexus.gateway.errors import ProviderNotFound as ProviderNotFound
    from nexus.gateway.errors import ProviderRateLimited as ProviderRateLimited
    from nexus.gateway.errors import ProviderRefused as ProviderRefused
    from nexus.gateway.errors import ProviderRejected as ProviderRejected
    from nexus.gateway.errors import ProviderTimeout as ProviderTimeout
    from nexus.gateway.errors import ProviderUnavailable as ProviderUnavailable
    from nexus.gateway.factory import default_providers as default_providers
    from nexus.gateway.openai_compat import OpenAICompatProvider as OpenAICompatProvider
    from nexus.gateway.pricing import PricingTable as PricingTable
    from nexus.gateway.pricing import cost_of as cost_of
    from nexus.gateway.pricing import default_pricing as default_pricing
    from nexus.gateway.resilience import Candidate as Candidate
    from nexus.gateway.resilience import ResilientProvider as ResilientProvider
    from nexus.gateway.resilience import with_fallback as with_fallback
    from nexus.gateway.routing import Residency as Residency
    from nexus.gateway.sdk import SDKProviders as SDKProviders
    from nexus.gateway.settings import Endpoint as Endpoint
    from nexus.gateway.settings import GatewaySettings as GatewaySettings
    from nexus.gateway.settings import Secret as Secret

_BASE = "nexus.gateway.base"
_ERRORS = "nexus.gateway.errors"
_PRICING = "nexus.gateway.pricing"
_RESILIENCE = "nexus.gateway.resilience"
_CASSETTE = "nexus.gateway.cassette"
_SETTINGS = "nexus.gateway.settings"

#: Where each public name lives; :func:`__getattr__` imports it on first use.
_EXPORTS: dict[str, str] = {
    # the port and its values
    "ModelProvider": _BASE,
    "StreamingProvider": _BASE,
    "ProviderRegistry": _BASE,
    "ChatMessage": _BASE,
    "ModelRequest": _BASE,
    "ModelResponse": _BASE,
    "RouteStep": _BASE,
    "StreamEnd": _BASE,
    "StreamEvent": _BASE,
    "TextDelta": _BASE,
    "ToolCall": _BASE,
    "ToolSpec": _BASE,
    "Usage": _BASE,
    "full_requests": _BASE,
    # the errors to catch
    "ProviderError": _ERRORS,
    "ProviderAuthError": _ERRORS,
    "ProviderConflict": _ERRORS,
    "ProviderInternalError": _ERRORS,
    "ProviderNotFound": _ERRORS,
    "ProviderRateLimited": _ERRORS,
    "ProviderRefused": _ERRORS,
    "ProviderRejected": _ERRORS,
    "ProviderTimeout": _ERRORS,
    "ProviderUnavailable": _ERRORS,
    # providers to build and compose
    "AnthropicProvider": "nexus.gateway.anthropic_provider",
    "OpenAICompatProvider": "nexus.gateway.openai_compat",
    "SDKProviders": "nexus.gateway.sdk",
    "ResilientProvider": _RESILIENCE,
    "Candidate": _RESILIENCE,
    "with_fallback": _RESILIENCE,
    "Cassette": _CASSETTE,
    "CassetteProvider": _CASSETTE,
    "RecordingProvider": _CASSETTE,
    # the registry's factory, settings, residency and prices
    "default_providers": "nexus.gateway.factory",
    "GatewaySettings": _SETTINGS,
    "Endpoint": _SETTINGS,
    "Secret": _SETTINGS,
    "Residency": "nexus.gateway.routing",
    "PricingTable": _PRICING,
    "cost_of": _PRICING,
    "default_pricing": _PRICING,
}


__getattr__, __dir__ = _on_first_use(__name__, _EXPORTS, globals())


__all__ = [
    "AnthropicProvider",
    "Candidate",
    "Cassette",
    "CassetteProvider",
    "ChatMessage",
    "Endpoint",
    "GatewaySettings",
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
    "ProviderTimeout",
    "ProviderUnavailable",
    "RecordingProvider",
    "Residency",
    "ResilientProvider",
    "RouteStep",
    "SDKProviders",
    "Secret",
    "StreamEnd",
    "StreamEvent",
    "StreamingProvider",
    "TextDelta",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "cost_of",
    "default_pricing",
    "default_providers",
    "full_requests",
    "with_fallback",
]
