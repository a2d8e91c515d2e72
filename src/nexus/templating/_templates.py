"""Sandboxed Jinja2 templates over ``inputs``, ``tasks.<id>.output`` and ``item``.

Templates are compiled once per distinct source (an LRU cache), rendered with
``StrictUndefined`` so a typo is an error rather than an empty string, and run
in a bounded immutable sandbox (:mod:`nexus.templating._sandbox`) so a workflow
file can neither reach Python internals nor ask for unbounded work, memory or
time: a template past a limit raises :class:`TemplateLimitError`, the same way
on every machine and on replay.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.parser import Parser

from nexus.domain.errors import TemplateError
from nexus.templating._sandbox import (
    BoundedEnvironment,
    TemplateLimitError,
    bound,
    check_output,
    checked,
    metered,
)

__all__ = [
    "BUILTIN_NAMES",
    "MAX_TEMPLATE_CHARS",
    "TemplateLimitError",
    "check_syntax",
    "inspect_reads",
    "inspect_template",
    "is_single_expression",
    "is_template",
    "referenced_tasks",
    "render_deep",
    "render_text",
    "render_value",
    "strings_in",
]

_ENV = BoundedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_SINGLE_EXPR = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.DOTALL)


def is_template(value: str) -> bool:
    """True when ``value`` contains Jinja2 syntax."""
    return "{{" in value or "{%" in value


@lru_cache(maxsize=4096)
def _compile(source: str) -> Any:
    # constant folding runs filters and operators at compile time: metered too
    with metered():
        return _ENV.from_string(bound(_ENV.parse(source)))


@lru_cache(maxsize=1024)
def _compile_expr(source: str) -> Any:
    """A template whose module's ``result`` is the expression's value (Jinja's own way)."""
    with metered():
        parser = Parser(_ENV, source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            token = parser.stream.current
            raise TemplateSyntaxError("chunk after expression", token.lineno, None, None)
        expr.set_environment(_ENV)
        body = nodes.Template([nodes.Assign(nodes.Name("result", "store"), expr)], lineno=1)
        return _ENV.from_string(bound(body))


def _compiled(source: str, compile: Any, *, short: bool = False) -> Any:
    try:
        return compile(source)
    except TemplateSyntaxError as exc:
        # the wording events have always recorded (replays compare it byte for byte)
        line = "" if short else f" (line {exc.lineno})"
        raise TemplateError(f"template syntax error{line}: {exc.message}") from exc
    except TemplateError:
        raise
    except RecursionError:
        raise TemplateError("template syntax error: nested too deeply") from None
    except Exception as exc:  # e.g. a 5,000-digit literal: int() refuses it
        raise TemplateError(f"template error: {type(exc).__name__}: {exc}") from None


def check_syntax(source: str) -> None:
    """Raise TemplateError when ``source`` does not compile."""
    _compiled(source, _compile)


#: The longest template a workflow may hold (compiling one costs ~5 us a character).
MAX_TEMPLATE_CHARS = 64_000


@lru_cache(maxsize=4096)
def _parsed(source: str) -> nodes.Template:
    tree: nodes.Template = _compiled(source, _ENV.parse)
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        assert isinstance(node, nodes.Filter | nodes.Test)
        known = _ENV.filters if isinstance(node, nodes.Filter) else _ENV.tests
        if node.name not in known:
            kind = "filter" if isinstance(node, nodes.Filter) else "test"
            message = f"No {kind} named {node.name!r}."  # Jinja2's own words
            raise TemplateError(f"template syntax error (line {node.lineno}): {message}")
    return tree


def inspect_template(source: str) -> frozenset[str]:
    """Check a template without compiling it; return the task ids it reads.

    Parsing finds every syntax error and unknown filter or test at a fraction
    of the cost of compiling (which happens, once per template, when it is
    first rendered), so a large workflow file validates quickly.

    Raises:
        TemplateError: a syntax error, an unknown filter or test, or a
            template longer than :data:`MAX_TEMPLATE_CHARS`.
    """
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateLimitError(
            f"the template is {len(source):,} characters long; the limit is {MAX_TEMPLATE_CHARS:,}"
        )
    return frozenset(_tasks_read(_parsed(source)))


#: Names a template reads that no context provides: Jinja's own, and its globals.
BUILTIN_NAMES = frozenset({"loop", "caller", "varargs", "kwargs", "super", "self", *_ENV.globals})


def inspect_reads(source: str) -> dict[str, frozenset[str]]:
    """Check a template as :func:`inspect_template` does; return the names it reads.

    Each name the template reads from its context (``inputs``, ``tasks``,
    ``item``...) maps to the keys it reads directly off it: ``{{ inputs.a }}``
    and ``{{ inputs['a'] }}`` read ``a`` of ``inputs``; ``{{ inputs.get('a') }}``
    calls a method and reads no key. Names the template sets itself (``{% set %}``,
    loop variables, macro arguments), Jinja's own (``loop``, ``caller``) and the
    globals (``range``, ``dict``...) are left out.

    Raises:
        TemplateError: as :func:`inspect_template`.
    """
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateLimitError(
            f"the template is {len(source):,} characters long; the limit is {MAX_TEMPLATE_CHARS:,}"
        )
    return _names_read(_parsed(source))


def _names_read(ast: nodes.Template) -> dict[str, frozenset[str]]:
    local = {node.name for node in ast.find_all(nodes.Name) if node.ctx in ("store", "param")}
    local.update(node.name for node in ast.find_all(nodes.Macro))
    skipped = local | BUILTIN_NAMES
    called = {id(node.node) for node in ast.find_all(nodes.Call)}
    reads: dict[str, set[str]] = {}
    for name in ast.find_all(nodes.Name):
        if name.ctx == "load" and name.name not in skipped:
            reads.setdefault(name.name, set())
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
        target = node.node
        if not isinstance(target, nodes.Name) or target.name not in reads or id(node) in called:
            continue
        if isinstance(node, nodes.Getattr):
            reads[target.name].add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            reads[target.name].add(node.arg.value)
    return {name: frozenset(keys) for name, keys in reads.items()}


def referenced_tasks(source: str) -> set[str]:
    """Task ids a template reads as ``tasks.<id>`` or ``tasks['<id>']``."""
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error (line {exc.lineno}): {exc.message}") from exc
    return _tasks_read(ast)


def _tasks_read(ast: nodes.Template) -> set[str]:
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
    if isinstance(exc, TemplateError):
        return exc.message
    if isinstance(exc, UndefinedError):
        return f"undefined value: {exc.message}"
    if isinstance(exc, SecurityError):
        return f"not allowed in the sandbox: {exc}"
    return f"{type(exc).__name__}: {exc}"


def render_text(source: str, context: dict[str, Any], *, where: str = "") -> str:
    """Render a template to text.

    Args:
        source: the template.
        context: the names it sees.
        where: who renders what (``task 'a', field 'prompt'``), put before the message.

    Raises:
        TemplateError: syntax error, undefined value or sandbox violation.
        TemplateLimitError: the template asked for more work, memory or time
            than :mod:`nexus.templating._sandbox` allows.
    """
    if not is_template(source):
        return source
    template = _compiled(source, _compile)
    try:
        with metered():
            return check_output(template.generate(context))
    except Exception as exc:
        raise _render_error(source, exc, where) from exc


def _render_error(source: str, exc: Exception, where: str) -> TemplateError:
    """The error a failed render reports.

    A limit names who rendered what (``where``). Other errors keep the exact
    wording runs have always recorded, so old runs still replay byte for byte.
    """
    if isinstance(exc, TemplateLimitError):
        prefix = f"{where}: " if where else ""
        return TemplateLimitError(f"{prefix}cannot render {_snippet(source)}: {exc.message}")
    return TemplateError(f"cannot render {source!r}: {_explain(exc)}")


def _snippet(source: str, limit: int = 80) -> str:
    return repr(source if len(source) <= limit else source[: limit - 3] + "...")


def is_single_expression(source: str) -> bool:
    """True when ``source`` is one ``{{ expression }}``: it renders to the expression's value.

    Any other template renders to text (see :func:`render_value`).
    """
    match = _SINGLE_EXPR.match(source)
    return match is not None and "{{" not in match.group(1) and "{%" not in source


def render_value(source: str, context: dict[str, Any], *, where: str = "") -> Any:
    """Render ``{{ expr }}`` to its native value (a list stays a list); else to text.

    Raises the errors of :func:`render_text`.
    """
    match = _SINGLE_EXPR.match(source)
    if match is None or not is_single_expression(source):
        return render_text(source, context, where=where)
    template = _compiled(match.group(1).strip(), _compile_expr, short=True)
    try:
        with metered():
            run = template.new_context(dict(context))
            for _ in template.root_render_func(run):
                pass
            value = checked(run.vars["result"], "the value")
        _check_defined(value)
    except Exception as exc:
        raise _render_error(source, exc, where) from exc
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


def render_deep(value: Any, context: dict[str, Any], *, task: str = "", field: str = "") -> Any:
    """Render every template string inside a JSON value (dicts and lists recursively).

    A string that is one ``{{ expression }}`` keeps the expression's type
    (``"{{ inputs.n }}"`` gives the number 3); anything else renders to text.
    An error names ``task`` and the path of the failing string under ``field``
    (``with.env.HOME``).
    """
    if isinstance(value, str):
        if not is_template(value):
            return value
        return render_value(value, context, where=_where(task, field))
    if isinstance(value, dict):
        return {
            key: render_deep(sub, context, task=task, field=f"{field}.{key}" if field else key)
            for key, sub in value.items()
        }
    if isinstance(value, list):
        return [
            render_deep(sub, context, task=task, field=f"{field}[{i}]")
            for i, sub in enumerate(value)
        ]
    return value


def _where(task: str, field: str) -> str:
    parts = [f"task '{task}'"] if task else []
    if field:
        parts.append(f"field '{field}'")
    return ", ".join(parts)


def strings_in(value: Any) -> list[str]:
    """Every string inside a JSON value, for validation."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for sub in value.values() for s in strings_in(sub)]
    if isinstance(value, list):
        return [s for sub in value for s in strings_in(sub)]
    return []
