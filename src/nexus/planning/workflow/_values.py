"""The values a workflow carries: plain JSON, and templates whose syntax is checked.

Plans are hashed as JSON, so every value a task or input holds is checked to
be plain JSON (no dates, no huge integers, no NaN, string keys, bounded
depth) and copied. A string that is a template has its syntax checked and the
names it reads returned (:data:`Reads`): the graph checks prove that a reader
of ``tasks.<id>`` depends on that task, :mod:`._names` that the other names
exist.

Templates made only of text and ``{{ a.b['c'] }}`` references are read by a
regular expression (:func:`simple_reads`); any other template is parsed by
Jinja2, whose cost (~3 us a character) is bounded by :data:`MAX_TEMPLATE_TEXT`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from nexus.domain.errors import TemplateError
from nexus.planning.workflow._errors import Reporter, kind, snippet
from nexus.planning.workflow._schema import MAX_SAFE_INT
from nexus.templating import BUILTIN_NAMES, MAX_TEMPLATE_CHARS, inspect_reads, is_template

__all__ = ["MAX_TEMPLATE_TEXT", "NO_READS", "Reads", "Values", "simple_reads", "strings"]

#: The names a template reads from its context, each with the keys it reads
#: directly off it: ``{{ tasks.a.output }} {{ item }}`` is
#: ``{"tasks": {"a"}, "item": set()}`` (see :func:`nexus.templating.inspect_reads`).
Reads = Mapping[str, AbstractSet[str]]
NO_READS: Reads = {}

#: The most characters of templates that need Jinja2 to parse (~3 us a
#: character); plain ``{{ a.b }}`` references are read without it and not counted.
MAX_TEMPLATE_TEXT = 128_000
_MAX_DEPTH = 64


class Values:
    """Checks the JSON values and templates of one workflow file.

    It counts the template text Jinja2 has parsed so far, against
    :data:`MAX_TEMPLATE_TEXT`.
    """

    __slots__ = ("report", "template_chars")

    def __init__(self, report: Reporter) -> None:
        self.report = report
        self.template_chars = 0

    def json(self, value: Any, field: str, task: str | None = None) -> Any:
        """A fresh copy of ``value``, checked to be plain JSON (plans are hashed as JSON)."""
        return self._json(value, field, task, 0)

    def _json(self, value: Any, field: str, task: str | None, depth: int) -> Any:
        if value is None or isinstance(value, str | bool):
            return value
        if isinstance(value, int):
            if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
                return value
            self.report.error(f"integer {value} is too large for JSON", task=task, field=field)
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            self.report.error(f"{value} is not a JSON number", task=task, field=field)
        if depth >= _MAX_DEPTH:
            field = field if len(field) <= 60 else field[:57] + "..."
            self.report.error(
                f"value is nested more than {_MAX_DEPTH} levels deep (or refers to itself)",
                task=task,
                field=field,
            )
        if isinstance(value, list):
            return [
                self._json(item, f"{field}[{i}]", task, depth + 1) for i, item in enumerate(value)
            ]
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    self.report.error(
                        f"key {key!r} must be a string (quote it)", task=task, field=field
                    )
                out[key] = self._json(item, f"{field}.{key}", task, depth + 1)
            return out
        self.report.error(
            f"{kind(value)} is not a JSON value; use a string, number, boolean, null, "
            "list or mapping",
            task=task,
            field=field,
        )

    def template(self, source: str, task: str | None, field: str) -> Reads:
        """Check a string's template syntax; return the names it reads (none for plain text)."""
        if not is_template(source):
            return NO_READS
        if len(source) > MAX_TEMPLATE_CHARS:
            self.report.error(
                f"the template is {len(source):,} characters long; the limit is "
                f"{MAX_TEMPLATE_CHARS:,}",
                task=task,
                field=field,
            )
        fast = simple_reads(source)
        if fast is not None:
            return fast
        self.template_chars += len(source)
        if self.template_chars > MAX_TEMPLATE_TEXT:
            # every template after this one would pass the limit too: stop here
            self.report.stop(
                f"the templates that need Jinja2 (more than plain {{{{ a.b }}}} references) "
                f"total more than {MAX_TEMPLATE_TEXT:,} characters (the limit)",
                task=task,
                field=field,
            )
        try:
            return inspect_reads(source)
        except TemplateError as exc:
            self.report.error(
                f"{exc.message.rstrip('.')} in {snippet(source)}", task=task, field=field
            )


# A template made only of text and ``{{ name.attr['key'] }}`` expressions compiles
# for sure, and the names it reads can be found without Jinja (which costs ~0.5 ms
# per distinct template to compile). Anything else goes through Jinja.
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_ACCESS = rf"(?:\.{_IDENT}|\[\s*(?:'[^'\\{{}}]*'|\"[^\"\\{{}}]*\")\s*\])"
_EXPR = rf"\{{\{{\s*(?P<head>{_IDENT})(?P<first>{_ACCESS})?{_ACCESS}*\s*\}}\}}"
_EXPR_RE = re.compile(_EXPR)
_SIMPLE_RE = re.compile(rf"(?:[^{{]++|\{{(?![{{%#])|{_EXPR})*+")
_KEYWORDS = frozenset(
    {"and", "or", "not", "in", "is", "if", "else", "elif", "true", "false", "none"}
    | {"True", "False", "None"}
)
#: Heads the fast path leaves to Jinja: keywords, and names no context provides.
_NOT_CONTEXT = _KEYWORDS | BUILTIN_NAMES


def simple_reads(source: str) -> dict[str, set[str]] | None:
    """The names a simple template reads (as Jinja2 would find them); None when Jinja must look."""
    if _SIMPLE_RE.fullmatch(source) is None:
        return None
    reads: dict[str, set[str]] = {}
    for match in _EXPR_RE.finditer(source):
        head, first = match.group("head", "first")
        if head in _NOT_CONTEXT:
            return None
        keys = reads.setdefault(head, set())
        if first:
            keys.add(first[1:] if first[0] == "." else first.strip("[] \t\r\n")[1:-1])
    return reads


def strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string inside a JSON value, with its field path (``with.env.HOME``)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from strings(item, f"{path}[{i}]")
