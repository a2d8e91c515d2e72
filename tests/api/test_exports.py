"""The public surface is what we mean to export (compare httpx's test_exported_members)."""

from __future__ import annotations

import nexus


def test_all_names_exist_and_nothing_else_is_public_by_accident() -> None:
    exported = set(nexus.__all__)
    for name in exported:
        assert hasattr(nexus, name), name
    public_modules = {
        "agents",
        "app",
        "cli",
        "config",
        "domain",
        "engine",
        "gateway",
        "metrics",
        "planning",
        "redaction",
        "security",
        "store",
        "templating",
        "testing",
        "tools",
    }
    public = {n for n in dir(nexus) if not n.startswith("_")} - public_modules
    assert public == exported - {"__version__"}


def test_all_is_unique() -> None:
    assert len(nexus.__all__) == len(set(nexus.__all__))
