"""What a user reviews before approving MCP tools: readable descriptors, and selection by name,
glob or all (nexus.tools.mcp._review); no server needed."""

from __future__ import annotations

from typing import Any

import pytest

from nexus.domain.errors import NotFoundError
from nexus.domain.resilience import BreakerState
from nexus.tools.mcp import (
    McpToolStatus,
    ServerStatus,
    arguments,
    review_data,
    select_tools,
    visible,
)
from nexus.tools.mcp._review import annotations_of, type_of
from nexus.tools.pins import ToolState, tool_pin


def tool(
    name: str, state: ToolState = ToolState.PENDING_APPROVAL, **descriptor: Any
) -> McpToolStatus:
    described = {"name": name, "inputSchema": {"type": "object"}, **descriptor}
    return McpToolStatus(
        name=f"srv.{name}",
        tool=name,
        state=state,
        pin=tool_pin(described),
        approved_pin=None,
        changed=(),
        findings=(),
        descriptor=described,
    )


def server(*tools: McpToolStatus) -> ServerStatus:
    return ServerStatus(
        name="srv",
        transport="stdio",
        connected=True,
        connects=1,
        breaker=BreakerState.CLOSED,
        last_error=None,
        tools=tools,
    )


def test_invisible_and_control_characters_are_shown_as_escapes() -> None:
    assert visible("plain\ntext") == "plain\ntext"
    assert visible("a\u200bb") == "a\\u200bb"  # zero-width space
    assert visible("\x1b[2Jwiped") == "\\u001b[2Jwiped"  # a terminal escape
    assert visible("over\rwrite") == "over\\u000dwrite"
    assert visible("tag\U000e0041") == "tag\\U000e0041"
    assert visible("\u2764\ufe0f") == "\u2764\ufe0f"  # an emoji selector where it belongs


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": "string"}, "string"),
        ({"type": ["integer", "null"]}, "integer | null"),
        ({"type": "array", "items": {"type": "string"}}, "array of string"),
        ({"type": "array"}, "array"),
        ({"anyOf": [{"type": "string"}, {"type": "null"}, {"type": "string"}]}, "string | null"),
        ({"$ref": "#/$defs/Point"}, "Point"),
        ({"enum": ["a", "b"]}, "value"),
        ({}, "any"),
        ("not a schema", "any"),
    ],
)
def test_types_read_as_words(schema: Any, words: str) -> None:
    assert type_of(schema) == words


def test_argument_rows_keep_order_requiredness_and_constraints() -> None:
    rows = arguments(
        {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "what\u200b to find", "minLength": 1},
                "limit": {"type": "integer", "default": 10, "minimum": 1, "maximum": 100},
                "sort": {"enum": ["asc", "desc"], "title": "Sort"},
            },
            "required": ["query"],
        }
    )
    assert [(r.name, r.type, r.required) for r in rows] == [
        ("query", "string", True),
        ("limit", "integer", False),
        ("sort", "value", False),
    ]
    assert rows[0].description == "what\\u200b to find"  # the hidden character shows
    assert rows[0].notes == "length >= 1"
    assert rows[1].notes == "default 10; >= 1; <= 100"
    assert (rows[2].description, rows[2].notes) == ("Sort", 'one of "asc", "desc"')
    assert arguments({"type": "object"}) == []
    assert arguments({"properties": ["not", "an", "object"]}) == []


def test_annotations_are_words_and_the_title_is_shown_once() -> None:
    status = tool(
        "t",
        annotations={"title": "Tee", "readOnlyHint": True, "destructiveHint": False, "x": [1]},
    )
    assert annotations_of(status.descriptor) == [
        ("read-only", "yes"),
        ("destructive", "no"),
        ("x", "[1]"),
    ]
    data = review_data(status, "new")
    assert data["title"] == "Tee"
    assert data["annotations"] == {"read-only": "yes", "destructive": "no", "x": "[1]"}


def test_a_name_a_glob_or_all_selects_and_a_typo_suggests_the_closest() -> None:
    listed = server(
        tool("read_file"),
        tool("read_dir"),
        tool("write_file"),
        tool("gone", ToolState.REMOVED),
    )
    assert [t.tool for t in select_tools(listed, None)] == ["read_file", "read_dir", "write_file"]
    assert [t.tool for t in select_tools(listed, "read_*")] == ["read_file", "read_dir"]
    assert [t.tool for t in select_tools(listed, "write_file")] == ["write_file"]
    with pytest.raises(NotFoundError, match=r"did you mean 'srv\.read_file'\?"):
        select_tools(listed, "raed_file")
    with pytest.raises(NotFoundError, match=r"no such tool: 'srv\.gone'"):
        select_tools(listed, "gone")  # no longer listed: never approved
    with pytest.raises(NotFoundError, match=r"no tool of MCP server 'srv' matches 'del_\*'"):
        select_tools(listed, "del_*")
    with pytest.raises(NotFoundError, match="lists no tools"):
        select_tools(server(), None)
