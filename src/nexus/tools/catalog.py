"""What ``nexus tools`` shows: every tool's source, schema and permissions.

Tools describe themselves through optional attributes -- ``input_schema``,
``description``, ``profile`` (an :class:`~nexus.tools.profile.ExecProfile`),
``permissions`` (a dict, for tools whose rights are not an exec profile: WASM
modules, MCP servers), ``source`` -- so new kinds of tools need no change
here; the built-ins' schemas are listed below.
"""

from __future__ import annotations

from typing import Any

from nexus.tools.base import FunctionTool, Tool, ToolRegistry

_OBJECT = {"type": "object"}

BUILTIN_SCHEMAS: dict[str, dict[str, Any]] = {
    "shell": {
        "type": "object",
        "properties": {"cmd": {"type": "string", "description": "run by /bin/sh -c"}},
        "required": ["cmd"],
        "additionalProperties": False,
    },
    "python": {
        "type": "object",
        "properties": {"code": {"type": "string"}, "input": {}},
        "required": ["code"],
        "additionalProperties": False,
    },
    "noop": _OBJECT,
    "file.read": {
        "type": "object",
        "properties": {"path": {"type": "string"}, "max_bytes": {"type": "integer"}},
        "required": ["path"],
    },
    "file.write": {
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "text": {"type": "string"},
            "append": {"type": "boolean"},
        },
        "required": ["path", "text"],
    },
    "file.list": {
        "type": "object",
        "properties": {"path": {"type": "string"}, "max_entries": {"type": "integer"}},
    },
    "http": {
        "type": "object",
        "properties": {
            "url": {"type": "string"},
            "method": {"type": "string"},
            "headers": {"type": "object"},
            "json": {},
            "body": {"type": "string"},
            "timeout": {"type": "number"},
        },
        "required": ["url"],
    },
}


def source_of(tool: Tool) -> str:
    """``builtin``, ``python``, ``wasm``, ``mcp:<server>``... where a tool comes from."""
    declared = getattr(tool, "source", None)
    if isinstance(declared, str) and declared:
        return declared
    if isinstance(tool, FunctionTool):
        return "python"
    if tool.name in BUILTIN_SCHEMAS:
        return "builtin"
    return type(tool).__module__.rsplit(".", 1)[-1]


def describe(tool: Tool) -> dict[str, Any]:
    """A JSON description of one tool."""
    schema = getattr(tool, "input_schema", None)
    if not isinstance(schema, dict):
        schema = BUILTIN_SCHEMAS.get(tool.name, _OBJECT)
    profile = getattr(tool, "profile", None)
    declared = getattr(tool, "permissions", None)
    permissions: dict[str, Any]
    if isinstance(declared, dict):
        permissions = declared
    elif profile is not None and hasattr(profile, "to_dict"):
        permissions = profile.to_dict()
    elif tool.pure:
        permissions = {"effects": "none (pure)"}
    else:
        permissions = {"effects": "in-process Python: runs with the engine's rights"}
    description = getattr(tool, "description", "") or ""
    return {
        "name": tool.name,
        "source": source_of(tool),
        "pure": tool.pure,
        "description": description,
        "input_schema": schema,
        "permissions": permissions,
    }


def catalog(registry: ToolRegistry) -> list[dict[str, Any]]:
    """Every tool of ``registry``, by name."""
    return [describe(registry.get(name)) for name in registry.names()]
