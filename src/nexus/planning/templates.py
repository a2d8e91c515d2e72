"""Sandboxed Jinja2 templates over ``inputs``, ``tasks.<id>.output`` and ``item``.

Templates are compiled once per distinct source (an LRU cache), rendered with
``StrictUndefined`` so a typo is an error rather than an empty string, and run
in Jinja2's immutable sandbox so a workflow file cannot reach Python internals.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from nexus.domain.errors import TemplateError


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, with keys before attributes on mappings.

    Jinja2 resolves ``x.items`` to the dict method ``items`` before the key
    ``"items"``; workflow data is plain JSON, so for mappings a key wins.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)


_ENV = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_SINGLE_EXPR = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.DOTALL)


def is_template(value: str) -> bool:
    """True when ``value`` contains Jinja2 syntax."""
    return "{{" in value or "{%" in value


@lru_cache(maxsize=4096)
def _compile(source: str) -> Any:
    return _ENV.from_string(source)


@lru_cache(maxsize=1024)
def _compile_expr(source: str) -> Any:
    return _ENV.compile_expression(source, undefined_to_none=False)


def check_syntax(source: str) -> None:
    """Raise TemplateError when ``source`` does not compile."""
    try:
        _compile(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error (line {exc.lineno}): {exc.message}") from exc


def referenced_tasks(source: str) -> set[str]:
    """Task ids a template reads as ``tasks.<id>`` or ``tasks['<id>']``."""
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error (line {exc.lineno}): {exc.message}") from exc
    found: set[str] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            if isinstance(node.node, nodes.Name) and node.node.name == "tasks":
                found.add(node.attr)
        elif isinstance(node, nodes.Getitem):
            target, arg = node.node, node.arg
            named = isinstance(target, nodes.Name) and target.name == "tasks"
            if named and isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                found.add(arg.value)
    return found


def _explain(exc: Exception) -> str:
    if isinstance(exc, UndefinedError):
        return f"undefined value: {exc.message}"
    if isinstance(exc, SecurityError):
        return f"not allowed in the sandbox: {exc}"
    return f"{type(exc).__name__}: {exc}"


def render_text(source: str, context: dict[str, Any]) -> str:
    """Render a template to text.

    Raises:
        TemplateError: syntax error, undefined value or sandbox violation.
    """
    if not is_template(source):
        return source
    check_syntax(source)
    try:
        return str(_compile(source).render(context))
    except Exception as exc:
        raise TemplateError(f"cannot render {source!r}: {_explain(exc)}") from exc


def render_value(source: str, context: dict[str, Any]) -> Any:
    """Render ``{{ expr }}`` to its native value (a list stays a list); else to text."""
    match = _SINGLE_EXPR.match(source)
    if match is None or "{{" in match.group(1) or "{%" in source:
        return render_text(source, context)
    try:
        compiled = _compile_expr(match.group(1).strip())
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from exc
    try:
        value = compiled(**context)
        _check_defined(value)
    except Exception as exc:
        raise TemplateError(f"cannot render {source!r}: {_explain(exc)}") from exc
    return value


def _check_defined(value: Any) -> None:
    """Raise UndefinedError for an undefined value (StrictUndefined only raises when used)."""
    if isinstance(value, Undefined):
        str(value)  # raises UndefinedError naming what is missing
    elif isinstance(value, list | tuple):
        for item in value:
            _check_defined(item)
    elif isinstance(value, dict):
        for item in value.values():
            _check_defined(item)


def render_deep(value: Any, context: dict[str, Any]) -> Any:
    """Render every template string inside a JSON value (dicts and lists recursively).

    A string that is one ``{{ expression }}`` keeps the expression's type
    (``"{{ inputs.n }}"`` gives the number 3); anything else renders to text.
    """
    if isinstance(value, str):
        return render_value(value, context) if is_template(value) else value
    if isinstance(value, dict):
        return {key: render_deep(sub, context) for key, sub in value.items()}
    if isinstance(value, list):
        return [render_deep(sub, context) for sub in value]
    return value


def strings_in(value: Any) -> list[str]:
    """Every string inside a JSON value, for validation."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for sub in value.values() for s in strings_in(sub)]
    if isinstance(value, list):
        return [s for sub in value for s in strings_in(sub)]
    return []
