"""A tool task's ``with:`` checked against the tool's argument schema.

The schema comes from the caller (:class:`~._context.ToolInfo`: the built-ins'
own, a WASM tool's declared one, a Python tool's type hints) or, for an MCP
tool, from a descriptor known without starting its server; a tool whose
schema is not known is not checked.

A template stands for a value the run will make. ``"{{ inputs.n }}"`` (one
expression) keeps the type of what it renders, so it may stand for anything;
any other template renders to text, so it is checked only where the schema
takes no string at all. Every problem is reported, each naming its argument.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from typing import Any

from nexus.planning.workflow._errors import Reporter, kind, snippet
from nexus.templating import is_single_expression, is_template

__all__ = ["Arguments"]

_TYPES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}
_MESSAGE_LIMIT = 200


class Arguments:
    """Checks the arguments of one workflow's tool tasks; a schema is compiled once per tool."""

    __slots__ = ("_mcp_schema", "_schemas", "_validators", "report")

    def __init__(
        self,
        schemas: Mapping[str, Mapping[str, Any] | None],
        mcp_schema: Callable[[str], Mapping[str, Any] | None] | None,
        report: Reporter,
    ) -> None:
        self._schemas = schemas
        self._mcp_schema = mcp_schema
        self._validators: dict[str, Any] = {}
        self.report = report

    def check(
        self, tool: str, args: dict[str, Any], *, mcp: bool, task: str, field: str = "with"
    ) -> None:
        """Report every way ``args`` (the task's ``with``, at ``field``) misses ``tool``'s
        schema."""
        validator = self._validator(tool, mcp=mcp)
        if validator is None:
            return
        try:
            errors = list(validator.iter_errors(args))
        except Exception:  # a schema jsonschema cannot apply is the tool's problem, not the file's
            return
        errors.sort(key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path]))
        for error in errors:
            self._report(tool, validator.schema, error, task, field)

    def _validator(self, tool: str, *, mcp: bool) -> Any:
        if tool in self._validators:
            return self._validators[tool]
        schema = self._schemas.get(tool)
        if schema is None and mcp and self._mcp_schema is not None:
            schema = self._mcp_schema(tool)
        validator = None
        if isinstance(schema, Mapping):
            import jsonschema  # only when a task's arguments are checked

            cls = jsonschema.validators.validator_for(schema)
            try:
                cls.check_schema(dict(schema))
                validator = cls(dict(schema))
            except jsonschema.SchemaError:
                validator = None  # the tool's schema is broken: its calls will say so
        self._validators[tool] = validator
        return validator

    def _report(
        self, tool: str, schema: Mapping[str, Any], error: Any, task: str, root: str
    ) -> None:
        path = [str(p) for p in error.absolute_path]
        field = ".".join([root, *path])
        name = ".".join(path)
        instance = error.instance
        if isinstance(instance, str) and is_template(instance):
            if error.validator != "type" or is_single_expression(instance):
                return  # the value is only known when the template renders
            wanted = _types(error.validator_value)
            if "string" in wanted:
                return
            self.report.add(
                f"argument {name!r} must be {_phrase(wanted)}; this template renders to text",
                task=task,
                field=field,
            )
            return
        if error.validator == "required" and isinstance(instance, Mapping):
            for missing in error.validator_value:
                if missing not in instance:
                    what = "argument" if not path else f"key of {name!r}"
                    self.report.add(
                        f"missing {what} {missing!r}{_takes(tool, error.schema, path)}",
                        task=task,
                        field=field,
                    )
        elif error.validator == "additionalProperties" and isinstance(instance, Mapping):
            allowed = list(error.schema.get("properties", {}))
            for extra in _extra(instance, error.schema):
                close = difflib.get_close_matches(extra, allowed, n=1)
                if close:
                    hint = f"did you mean {close[0]!r}?"
                elif path:
                    hint = f"known: {', '.join(allowed)}" if allowed else "it takes none"
                else:
                    takes = ", ".join(allowed) if allowed else "no arguments"
                    hint = f"tool {tool!r} takes: {takes}"
                what = "argument" if not path else f"key of {name!r}"
                self.report.add(
                    f"unknown {what} {extra!r} ({hint})",
                    task=task,
                    field=".".join([field, extra]),
                )
        elif error.validator == "type":
            self.report.add(
                f"argument {name or 'with'!r} must be {_phrase(_types(error.validator_value))}, "
                f"not {kind(instance)}",
                task=task,
                field=field,
            )
        else:
            message = error.message
            if len(message) > _MESSAGE_LIMIT:
                message = snippet(message, _MESSAGE_LIMIT)
            self.report.add(f"argument {name or 'with'!r}: {message}", task=task, field=field)


def _types(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [t for t in value if isinstance(t, str)]


def _phrase(types: list[str]) -> str:
    return " or ".join(_TYPES.get(t, t) for t in types)


def _takes(tool: str, schema: Mapping[str, Any], path: list[str]) -> str:
    names = list(schema.get("properties", {}))
    if path or not names:
        return ""
    return f" (tool {tool!r} takes: {', '.join(names)})"


def _extra(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """The keys of ``instance`` that ``schema``'s ``additionalProperties: false`` refuses."""
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    return [
        key
        for key in instance
        if key not in properties and not any(re.search(p, key) for p in patterns)
    ]
