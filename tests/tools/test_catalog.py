"""Every built-in tool tells a model what it does and what each argument means."""

from __future__ import annotations

import pytest

from nexus.tools.builtins import builtin_tools
from nexus.tools.catalog import BUILTIN_DESCRIPTIONS, describe

REGISTRY = builtin_tools()


@pytest.mark.parametrize("name", REGISTRY.names())
def test_each_builtin_has_a_description_and_documented_arguments(name: str) -> None:
    entry = describe(REGISTRY.get(name))
    assert entry["source"] == "builtin"
    assert len(entry["description"]) > 20, entry
    for arg, schema in entry["input_schema"].get("properties", {}).items():
        assert schema.get("description"), f"{name}.{arg} has no description"


def test_the_descriptions_cover_exactly_the_builtins() -> None:
    assert sorted(BUILTIN_DESCRIPTIONS) == REGISTRY.names()


def test_a_tool_s_own_description_wins() -> None:
    from nexus.tools.base import tool

    @tool(name="shell")
    def mine(cmd: str) -> str:
        """My shell."""
        return cmd

    assert describe(mine)["description"] == "My shell."


def test_an_exec_profile_tool_says_what_a_grant_may_get_it() -> None:
    """``allowed``: the tool's own profile, widened only by nexus.toml's [tools.<name>]."""
    from nexus.tools.profile import ToolAllowance

    governed = builtin_tools({"http": ToolAllowance(network=("api.github.com:443",))})
    http = describe(governed.get("http"))
    assert http["permissions"]["network"] == "none"
    assert http["allowed"]["network"] == ["api.github.com:443"]
    assert (
        describe(REGISTRY.get("shell"))["allowed"] == describe(REGISTRY.get("shell"))["permissions"]
    )
    assert "allowed" not in describe(REGISTRY.get("noop"))
