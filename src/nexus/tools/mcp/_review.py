"""What a user reviews before approving MCP tools: a descriptor in readable parts, and the
tools a name, a glob or ``--all`` selects.

``nexus tools show`` and ``nexus tools approve`` print what this module returns;
it does no I/O. Everything shown comes from an untrusted server, so text is
made visible first (:func:`visible`): an invisible or control character is
shown as its ``\\u`` escape, never passed to the terminal, where it could hide
words or move the cursor.

A name that matches nothing is refused with the closest names the server has
(:func:`select_tools`), so a typo (``git.raed_file``) is never approved in the
dark.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nexus.domain.errors import NotFoundError
from nexus.tools.lint import is_invisible
from nexus.tools.mcp._status import McpToolStatus, ServerStatus

__all__ = [
    "ANNOTATION_HINTS",
    "Argument",
    "annotations_of",
    "arguments",
    "closest",
    "is_pattern",
    "review_data",
    "select_tools",
    "type_of",
    "visible",
]

#: The MCP annotation hints, as a reader words them.
ANNOTATION_HINTS = {
    "readOnlyHint": "read-only",
    "destructiveHint": "destructive",
    "idempotentHint": "idempotent",
    "openWorldHint": "open world",
}

_GLOB = frozenset("*?[")


def visible(text: object) -> str:
    """``text`` with every invisible or control character (but newline) as its escape."""
    shown = []
    previous = ""
    for ch in str(text):
        if ch != "\n" and (ch == "\r" or is_invisible(ch, previous)):
            shown.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            shown.append(ch)
        previous = ch
    return "".join(shown)


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The one of ``candidates`` closest to ``name`` (a likely typo of it), if any is close."""
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return close[0] if close else None


def is_pattern(name: str) -> bool:
    """Whether ``name`` is a glob (``read_*``, ``get_?``, ``[ab]*``)."""
    return any(ch in _GLOB for ch in name)


def select_tools(server: ServerStatus, pattern: str | None) -> list[McpToolStatus]:
    """The tools of ``server`` that ``pattern`` names: one name, a glob, or all (``None``).

    Tools the server no longer lists are never selected.

    Raises:
        NotFoundError: the name is not one of the server's tools (the message
            says ``no such tool`` and suggests the closest name), or the glob
            matches none of them.
    """
    listed = [t for t in server.tools if str(t.state) != "removed"]
    names = [t.tool for t in listed]
    known = f"{server.name}'s tools: {', '.join(names) or 'none'}"
    if pattern is None:
        if not listed:
            raise NotFoundError(f"MCP server '{server.name}' lists no tools")
        return listed
    if is_pattern(pattern):
        chosen = [t for t in listed if fnmatch.fnmatchcase(t.tool, pattern)]
        if not chosen:
            raise NotFoundError(
                f"no tool of MCP server '{server.name}' matches '{pattern}' ({known})"
            )
        return chosen
    for tool in listed:
        if tool.tool == pattern:
            return [tool]
    close = closest(pattern, names)
    hint = f"; did you mean '{server.name}.{close}'?" if close else ""
    raise NotFoundError(f"no such tool: '{server.name}.{pattern}'{hint} ({known})")


@dataclass(frozen=True, slots=True)
class Argument:
    """One property of a tool's input schema, as a row of an argument table.

    Attributes:
        name: the property's name.
        type: its JSON type in words (``string``, ``array of integer``, ``string | null``).
        required: whether the schema requires it.
        description: its description (or title), made visible.
        notes: its default, allowed values and bounds, in words.
    """

    name: str
    type: str
    required: bool
    description: str
    notes: str

    def to_data(self) -> dict[str, Any]:
        """The row as plain JSON."""
        return {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "description": self.description,
            "notes": self.notes,
        }


def type_of(schema: Any) -> str:
    """A schema's type in words: ``string``, ``array of string``, ``integer | null``, ``any``."""
    if not isinstance(schema, Mapping):
        return "any"
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind) or "any"
    if kind == "array":
        items = schema.get("items")
        return f"array of {type_of(items)}" if isinstance(items, Mapping) else "array"
    if isinstance(kind, str):
        return kind
    for combinator in ("anyOf", "oneOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            return " | ".join(dict.fromkeys(type_of(o) for o in options))
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return ref.rsplit("/", 1)[-1]
    if "enum" in schema or "const" in schema:
        return "value"
    return "any"


def _notes(schema: Mapping[str, Any]) -> str:
    notes = []
    if "const" in schema:
        notes.append(f"always {_json(schema['const'])}")
    enum = schema.get("enum")
    if isinstance(enum, list):
        notes.append("one of " + ", ".join(_json(v) for v in enum))
    if "default" in schema:
        notes.append(f"default {_json(schema['default'])}")
    for key, word in (
        ("minimum", ">="),
        ("maximum", "<="),
        ("exclusiveMinimum", ">"),
        ("exclusiveMaximum", "<"),
        ("minLength", "length >="),
        ("maxLength", "length <="),
        ("minItems", "items >="),
        ("maxItems", "items <="),
    ):
        if key in schema:
            notes.append(f"{word} {_json(schema[key])}")
    if "pattern" in schema:
        notes.append(f"matches {_json(schema['pattern'])}")
    if "format" in schema:
        notes.append(f"format {_json(schema['format'])}")
    return visible("; ".join(notes))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def arguments(schema: Any) -> list[Argument]:
    """The rows of an argument table for an input schema, in the schema's order.

    A schema without an object of ``properties`` gives no rows (the tool takes
    any arguments, or none).
    """
    if not isinstance(schema, Mapping):
        return []
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return []
    required_list = schema.get("required")
    required = set(required_list) if isinstance(required_list, list) else set()
    rows = []
    for name, prop in properties.items():
        prop = prop if isinstance(prop, Mapping) else {}
        text = prop.get("description") or prop.get("title") or ""
        rows.append(
            Argument(
                name=visible(name),
                type=visible(type_of(prop)),
                required=name in required,
                description=visible(text),
                notes=_notes(prop),
            )
        )
    return rows


def annotations_of(descriptor: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The descriptor's annotations as ``(hint, yes|no)`` pairs, in words; others as given.

    These are hints from an untrusted server: they describe, they grant nothing.
    """
    raw = descriptor.get("annotations")
    if not isinstance(raw, Mapping):
        return []
    shown = []
    for key, value in raw.items():
        if key == "title":
            continue  # shown as the tool's title
        label = ANNOTATION_HINTS.get(key, visible(key))
        if isinstance(value, bool):
            shown.append((label, "yes" if value else "no"))
        else:
            shown.append((label, visible(_json(value))))
    return shown


def _title(descriptor: Mapping[str, Any]) -> str:
    title = descriptor.get("title")
    annotations = descriptor.get("annotations")
    if not title and isinstance(annotations, Mapping):
        title = annotations.get("title")
    return visible(title) if isinstance(title, str) else ""


def _output(descriptor: Mapping[str, Any]) -> list[str]:
    schema = descriptor.get("outputSchema")
    if not isinstance(schema, Mapping):
        return []
    properties = schema.get("properties")
    return [visible(p) for p in properties] if isinstance(properties, Mapping) else []


def review_data(status: McpToolStatus, server_state: str) -> dict[str, Any]:
    """Everything ``nexus tools show`` says of one tool, as plain JSON.

    Args:
        status: the tool as its server lists it now.
        server_state: the state in the user's words (``new``, ``approved``,
            ``changed``, ``blocked-by-lint``).
    """
    descriptor = status.descriptor
    description = descriptor.get("description", "")
    return {
        "name": visible(status.name),
        "tool": visible(status.tool),
        "title": _title(descriptor),
        "description": visible(description if isinstance(description, str) else ""),
        "arguments": [a.to_data() for a in arguments(descriptor.get("inputSchema"))],
        "input_schema": descriptor.get("inputSchema", {}),
        "output_fields": _output(descriptor),
        "output_schema": descriptor.get("outputSchema"),
        "annotations": dict(annotations_of(descriptor)),
        "pin_status": server_state,
        "pin": status.pin,
        "approved_pin": status.approved_pin,
        "changed": list(status.changed),
        "findings": [
            {**f.to_data(), "message": visible(f.message), "where": visible(f.where)}
            for f in status.findings
        ],
    }
