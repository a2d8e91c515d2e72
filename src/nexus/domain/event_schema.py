"""The event log's published schema, generated from the payload models.

:func:`json_schema` is the JSON Schema (draft 2020-12) of every event type,
``nexus events --schema`` prints it; :func:`markdown` is ``docs/events.md``
(a test checks the committed page equals it). Both come from the models in
:mod:`nexus.domain.payloads` -- their fields, types, defaults, class
docstrings and ``#:`` field comments -- so the schema cannot drift from the
code that reads and writes the log.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from dataclasses import MISSING, fields
from typing import Any

from nexus.domain.events import INPUT_TYPES, EventType, JSONDict
from nexus.domain.payloads import (
    ABSENT,
    MODELS,
    PAYLOADS,
    BudgetRefusal,
    ErrorRecord,
    Payload,
    TenantCrossing,
)

SCHEMA_ID = "https://nexus.dev/schemas/events.json"
#: The records payloads carry inside them, described after the event payloads.
RECORDS: tuple[type, ...] = (ErrorRecord, BudgetRefusal, TenantCrossing)
_FIELD = re.compile(r"^\s+(\w+): ")
_COMMENT = re.compile(r"^\s+#: ?(.*)$")


def _field_docs(cls: type) -> dict[str, str]:
    """The ``#:`` comment above each field of ``cls``."""
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        comment = _COMMENT.match(line)
        if comment:
            pending.append(comment.group(1))
            continue
        found = _FIELD.match(line)
        if found and pending:
            docs[found.group(1)] = " ".join(pending)
        pending = []
    return docs


def _summary(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return " ".join(doc.split("\n\n")[0].split())


def _without_none(hint: Any) -> Any:
    """``X | None`` as ``X`` (a field left out when None is never null)."""
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return hint
    args = tuple(a for a in typing.get_args(hint) if a is not type(None))
    return args[0] if len(args) == 1 else typing.Union[args]  # noqa: UP007


def _type_schema(hint: Any) -> dict[str, Any]:
    """JSON Schema of one annotation (the few types payload models use)."""
    if hint is Any:
        return {}
    if hint is str:
        return {"type": "string"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        # a dict whose shape a record model describes (``Annotated[JSONDict, TenantCrossing]``)
        record = args[1]
        if isinstance(record, type) and issubclass(record, Payload):
            return {"$ref": f"#/$defs/{record.__name__}"}
        return _type_schema(args[0])  # pragma: no cover - no other metadata is used
    if origin is typing.Literal and args == (ABSENT,):
        return {}  # the key may be absent: not a value
    if origin is typing.Literal and all(isinstance(a, str) for a in args):
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if typing.get_origin(a) is not typing.Literal]
        if any(a is Any for a in options):
            return {}
        parts = [_type_schema(a) for a in options if a is not type(None)]
        nullable = type(None) in options
        simple = [p["type"] for p in parts if set(p) == {"type"}]
        if len(simple) == len(parts):
            kinds = simple + (["null"] if nullable else [])
            return {"type": kinds[0] if len(kinds) == 1 else kinds}
        return {"anyOf": parts + ([{"type": "null"}] if nullable else [])}
    if origin is list:
        return {"type": "array", "items": _type_schema(args[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1])}
    raise TypeError(f"no JSON Schema for the annotation {hint!r}")


def _model_schema(cls: type) -> JSONDict:
    hints = typing.get_type_hints(cls, include_extras=True)
    docs = _field_docs(cls)
    properties: JSONDict = {}
    required: list[str] = []
    for f in fields(cls):
        if cls is ErrorRecord and f.name == "extra":
            continue
        hint = hints[f.name]
        if f.default is None:
            hint = _without_none(hint)  # left out when it has no value: never null
        prop = _type_schema(hint)
        if f.name == "error":
            nullable = f.default is MISSING and type(None) in typing.get_args(hints[f.name])
            ref = {"$ref": "#/$defs/ErrorRecord"}
            prop = {"anyOf": [ref, {"type": "null"}]} if nullable else ref
        if f.name in docs:
            prop = {**prop, "description": docs[f.name]}
        properties[f.name] = prop
        if f.default is MISSING:
            required.append(f.name)
    schema: JSONDict = {
        "type": "object",
        "description": _summary(cls),
        "properties": properties,
        "required": required,
        # an error record carries more fields for some errors (a provider's status...)
        "additionalProperties": cls is ErrorRecord,
    }
    return schema


def _event_schema(type_: EventType) -> JSONDict:
    model = PAYLOADS[type_]
    return {
        "type": "object",
        "description": (f"{'Input' if type_ in INPUT_TYPES else 'Decision'}: {_summary(model)}"),
        "properties": {
            "run_id": {"type": "string"},
            "seq": {"type": "integer", "minimum": 1},
            "type": {"const": str(type_)},
            "at": {"type": "string", "description": "RFC 3339 UTC, microseconds, 'Z'"},
            "data": {"$ref": f"#/$defs/{model.__name__}"},
            "prev_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        },
        "required": ["run_id", "seq", "type", "at", "data"],
        "additionalProperties": False,
    }


def json_schema() -> JSONDict:
    """The JSON Schema of an event, a union over every event type."""
    defs: JSONDict = {}
    for type_ in EventType:
        defs[f"event:{type_}"] = _event_schema(type_)
    for model in (*MODELS, *RECORDS):
        defs[model.__name__] = _model_schema(model)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Nexus event",
        "description": (
            "One link of a run's hash-chained event log. hash = sha256(prev_hash || "
            "RFC 8785 canonical JSON of {run_id, seq, type, at, data}). A payload key "
            "that is not required is left out when it has no value, never written as null "
            "unless its type allows null."
        ),
        "oneOf": [{"$ref": f"#/$defs/event:{t}"} for t in EventType],
        "$defs": defs,
    }


def _type_text(prop: JSONDict) -> str:
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in prop:
        return " or ".join(_type_text(p) for p in prop["anyOf"])
    if "enum" in prop:
        return " or ".join(f"`{value}`" for value in prop["enum"])
    kind = prop.get("type")
    if kind is None:
        return "any JSON"
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return f"array of {_type_text(prop['items'])}"
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        inner = prop["additionalProperties"]
        return "object" if not inner else f"object of {_type_text(inner)}"
    return str(kind)


def _table(schema: JSONDict) -> list[str]:
    rows = ["| field | type | required | description |", "| --- | --- | --- | --- |"]
    for name, prop in schema["properties"].items():
        need = "yes" if name in schema["required"] else "no"
        text = prop.get("description", "").replace("|", "\\|").replace("``", "`")
        rows.append(f"| `{name}` | {_type_text(prop)} | {need} | {text} |")
    return rows


def markdown() -> str:
    """``docs/events.md``: every event type and its payload, as tables."""
    schema = json_schema()
    defs = schema["$defs"]
    lines = [
        "# Events",
        "",
        "<!-- Generated from src/nexus/domain/payloads.py by"
        " `nexus events --schema --markdown`; do not edit. -->",
        "",
        "A run's log is a chain of events `{run_id, seq, type, at, data, prev_hash, hash}`:",
        "`hash = sha256(prev_hash || body)`, where the body is the RFC 8785 canonical JSON",
        "of `{run_id, seq, type, at, data}`. *Inputs* enter the run from outside the",
        "deterministic core and carry the time they arrived; *decisions* are computed from",
        "the folded state and take the time of the input that caused them (see",
        "`docs/how-it-works.md`). `nexus events --schema` prints the JSON Schema of all of",
        "this.",
        "",
        "A field that is not required is left out of `data` when it has no value; it is",
        "written as `null` only where its type says so. Readers must accept the fields",
        "listed here and nothing else: a payload with an unknown field is an integrity",
        "error.",
        "",
        "| type | class | payload |",
        "| --- | --- | --- |",
    ]
    for type_ in EventType:
        kind = "input" if type_ in INPUT_TYPES else "decision"
        name = PAYLOADS[type_].__name__
        lines.append(f"| [`{type_}`](#{name.lower()}) | {kind} | {name} |")
    lines.append("")
    seen: set[str] = set()
    for type_ in EventType:
        model = PAYLOADS[type_]
        if model.__name__ in seen:
            continue
        seen.add(model.__name__)
        names = ", ".join(f"`{t}`" for t in model.TYPES)
        lines += [f"## {model.__name__}", "", f"Payload of {names}.", ""]
        lines += [defs[model.__name__]["description"], ""]
        lines += _table(defs[model.__name__])
        lines.append("")
    lines += ["## ErrorRecord", "", defs["ErrorRecord"]["description"], ""]
    lines += _table(defs["ErrorRecord"])
    lines += [
        "",
        "Some errors carry more fields than these (a provider error's `provider`, `status`,",
        "`request_id`...); they are kept as recorded.",
        "",
    ]
    for record in RECORDS[1:]:
        name = record.__name__
        lines += [f"## {name}", "", defs[name]["description"], ""]
        lines += _table(defs[name])
        lines.append("")
    return "\n".join(lines)


__all__ = ["RECORDS", "SCHEMA_ID", "json_schema", "markdown"]
