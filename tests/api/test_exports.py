"""The public surface is what we mean to export (compare httpx's test_exported_members)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import nexus

#: The packages whose ``__init__`` is a public surface, and what each exports.
SURFACES: dict[str, set[str]] = {
    "nexus.gateway": {
        # the port and its values
        "ModelProvider",
        "StreamingProvider",
        "ProviderRegistry",
        "ChatMessage",
        "ModelRequest",
        "ModelResponse",
        "RouteStep",
        "StreamEnd",
        "StreamEvent",
        "TextDelta",
        "ToolCall",
        "ToolSpec",
        "Usage",
        "full_requests",
        # the errors to catch
        "ProviderError",
        "ProviderAuthError",
        "ProviderConflict",
        "ProviderInternalError",
        "ProviderNotFound",
        "ProviderRateLimited",
        "ProviderRefused",
        "ProviderRejected",
        "ProviderTimeout",
        "ProviderUnavailable",
        # providers to build and compose
        "AnthropicProvider",
        "OpenAICompatProvider",
        "SDKProviders",
        "ResilientProvider",
        "Candidate",
        "with_fallback",
        "Cassette",
        "CassetteProvider",
        "RecordingProvider",
        # the factory, settings, residency and prices
        "default_providers",
        "GatewaySettings",
        "Endpoint",
        "Secret",
        "Residency",
        "PricingTable",
        "cost_of",
        "default_pricing",
    },
    "nexus.store": {
        "Store",
        "SQLiteStore",
        "StoreUnusable",
        "RunRecord",
        "RunFilter",
        "Lease",
        "Command",
        "ChainRow",
        "AuditReport",
        "verify_chain",
        "verify_store",
        "HeadSigner",
        "SignedHead",
    },
    "nexus.planning": {
        "compile_workflow",
        "load_workflow",
        "WorkflowBuilder",
        "TaskRef",
        "AgentRef",
        "McpServerRef",
        "Input",
        "Loop",
        "Extend",
        "Extensions",
        "Bt",
        "Aggregate",
        "Compensate",
        "Fsm",
        "FsmState",
        "FsmTransition",
        "Wait",
        "Backoff",
        "Approval",
        "Budget",
        "Profile",
        "Replan",
        "WORKFLOW_VERSION",
        "MAX_WORKFLOW_BYTES",
    },
    "nexus.testing": {
        "TestModel",
        "Reply",
        "Call",
        "Fault",
        "HANG",
        "ScriptExhausted",
        "Answer",
        "AnswerFn",
        "model_registry",
        "temp_store",
        "temp_engine",
        "sqlite_engine",
        "EngineOptions",
        "ManualClock",
    },
}


def test_all_names_exist_and_nothing_else_is_public_by_accident() -> None:
    exported = set(nexus.__all__)
    for name in exported:
        assert hasattr(nexus, name), name
    # sub-packages and modules are reachable as attributes once imported; they are not names
    modules = {info.name for info in pkgutil.iter_modules(nexus.__path__)}
    public = {n for n in dir(nexus) if not n.startswith("_")} - modules
    assert public == exported - {"__version__"}


def test_all_is_unique() -> None:
    assert len(nexus.__all__) == len(set(nexus.__all__))


@pytest.mark.parametrize("package", sorted(SURFACES))
def test_each_package_exports_exactly_its_surface(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == SURFACES[package]
    assert len(module.__all__) == len(set(module.__all__))
    for name in module.__all__:
        value = getattr(module, name)
        if isinstance(value, type) or inspect.isfunction(value):
            assert value.__module__.startswith(package), (name, value.__module__)
    assert set(module.__all__) <= set(dir(module))


@pytest.mark.parametrize("package", ["nexus.gateway", "nexus.store", "nexus.planning"])
def test_an_unknown_name_is_an_attribute_error_naming_it(package: str) -> None:
    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'Nope'"):
        module.Nope  # noqa: B018


def test_names_left_out_of_the_gateway_surface_live_in_their_modules() -> None:
    import nexus.gateway as gateway

    dropped = {
        "nexus.gateway.routing": ["ModelCatalog", "RoutePolicy", "choose_models", "TIERS"],
        "nexus.gateway.cache": ["CachingProvider", "SQLiteResponseCache", "request_key"],
        "nexus.gateway.resilience": ["BreakerBoard", "CircuitBreaker", "FallbackProvider"],
        "nexus.gateway.scripted": ["ScriptedProvider", "scripted_factory"],
        "nexus.gateway.errors": ["map_provider_error"],
        "nexus.gateway.base": ["split_model"],
    }
    for module, names in dropped.items():
        for name in names:
            assert not hasattr(gateway, name) or name in gateway.__all__, name
            assert getattr(importlib.import_module(module), name) is not None


def test_the_surfaces_load_their_modules_only_when_a_name_is_used() -> None:
    code = (
        "import sys\n"
        "import nexus.gateway, nexus.store, nexus.planning\n"
        "import nexus.gateway.base, nexus.store.base\n"
        "heavy = ['yaml', 'sqlalchemy', 'openai', 'anthropic', 'nexus.gateway.cassette',\n"
        "         'nexus.store.sqlite', 'nexus.planning.workflow']\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "nexus.store.SQLiteStore\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split("\n")[:2] == ["[]", "True"]
