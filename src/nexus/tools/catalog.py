"""What ``nexus tools`` shows: every tool's source, schema and permissions.

Tools describe themselves through optional attributes -- ``input_schema``,
``description``, ``profile`` (an :class:`~nexus.tools.profile.ExecProfile`),
``allowed`` (the most a workflow's ``profile:`` grant may get it: its own
profile widened by ``nexus.toml``'s ``[tools.<name>]``; default its own),
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
        "properties": {
            "cmd": {
                "type": "string",
                "description": "the command line, run by /bin/sh -c in the workspace",
            }
        },
        "required": ["cmd"],
        "additionalProperties": False,
    },
    "python": {
        "type": "object",
        "properties": {
            "code": {"type": "string", "description": "Python source, run as python -I -c"},
            "input": {"description": "any JSON value, given to the code on standard input"},
        },
        "required": ["code"],
        "additionalProperties": False,
    },
    "noop": _OBJECT,
    "file.read": {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "relative to the workspace"},
            "max_bytes": {
                "type": "integer",
                "description": "the most bytes returned (default and cap: the output cap)",
            },
        },
        "required": ["path"],
    },
    "file.write": {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "relative to the workspace"},
            "text": {"type": "string", "description": "the content, written as UTF-8"},
            "append": {"type": "boolean", "description": "add to the end (default: replace)"},
        },
        "required": ["path", "text"],
    },
    "file.list": {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "a directory (default: the workspace)"},
            "max_entries": {"type": "integer", "description": "default 1000"},
        },
    },
    "http": {
        "type": "object",
        "properties": {
            "url": {"type": "string", "description": "an http(s) URL on the allow-list"},
            "method": {"type": "string", "description": "default GET"},
            "headers": {"type": "object", "description": "request headers"},
            "json": {"description": "a JSON body (sets Content-Type)"},
            "body": {"type": "string", "description": "a text body"},
            "timeout": {"type": "number", "description": "seconds"},
        },
        "required": ["url"],
    },
}

#: What a model (and ``nexus tools``) is told each built-in does. Agents see the
#: tools under wire-safe names (``file.read`` becomes ``file_read``): see docs/agents.md.
BUILTIN_DESCRIPTIONS: dict[str, str] = {
    "shell": (
        "Run a shell command in the sandboxed workspace. Returns exit_code, stdout and "
        "stderr; no network unless the profile allows hosts."
    ),
    "python": (
        "Run Python code in the sandbox, with `input` as JSON on stdin. Returns exit_code, "
        "stdout, stderr, and `result` when the last line printed is JSON."
    ),
    "noop": "Return the arguments unchanged (for tests).",
    "file.read": (
        "Read a UTF-8 text file in the workspace. Returns path, text, size and whether "
        "the text was truncated. Symlinks are refused."
    ),
    "file.write": (
        "Write (or append) UTF-8 text to a file in the workspace, creating missing "
        "directories. Nexus's own files (nexus.toml, .nexus) are refused."
    ),
    "file.list": (
        "List a directory of the workspace: each entry's name, type (file, dir or "
        "link) and size (for files)."
    ),
    "http": (
        "Make one HTTP request to an allow-listed host:port; redirects are not followed. "
        "Returns status, headers, text (and json when the response is JSON)."
    ),
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
    allowed: dict[str, Any] | None = None
    if isinstance(declared, dict):
        permissions = declared
    elif profile is not None and hasattr(profile, "to_dict"):
        permissions = profile.to_dict()
        ceiling: Any = getattr(tool, "allowed", None)
        allowed = ceiling.to_dict() if ceiling is not None else permissions
    elif tool.pure:
        permissions = {"effects": "none (pure)"}
    else:
        permissions = {"effects": "in-process Python: runs with the engine's rights"}
    description = getattr(tool, "description", "") or ""
    if not description and source_of(tool) == "builtin":
        description = BUILTIN_DESCRIPTIONS.get(tool.name, "")
    entry = {
        "name": tool.name,
        "source": source_of(tool),
        "pure": tool.pure,
        "description": description,
        "input_schema": schema,
        "permissions": permissions,
    }
    if allowed is not None:  # an exec profile: what a grant may widen it to
        entry["allowed"] = allowed
    return entry


def catalog(registry: ToolRegistry) -> list[dict[str, Any]]:
    """Every tool of ``registry``, by name."""
    return [describe(registry.get(name)) for name in registry.names()]
