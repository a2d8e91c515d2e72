"""Model gateway: providers behind one port."""

from nexus.gateway.base import (
    ChatMessage,
    ModelProvider,
    ModelRequest,
    ModelResponse,
    ProviderRegistry,
    Usage,
    split_model,
)
from nexus.gateway.scripted import ScriptedProvider, scripted_factory


def default_providers() -> ProviderRegistry:
    """The providers available without configuration (offline ones)."""
    return ProviderRegistry({"scripted": scripted_factory})


__all__ = [
    "ChatMessage",
    "ModelProvider",
    "ModelRequest",
    "ModelResponse",
    "ProviderRegistry",
    "ScriptedProvider",
    "Usage",
    "default_providers",
    "scripted_factory",
    "split_model",
]
