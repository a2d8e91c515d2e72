"""Conditions over a run's state: ``when:``, ``switch:`` and the truthiness they use.

A condition is a template rendered by the decider with the task's template
context (:func:`~nexus.engine.decider.template_context`); a one-expression
template keeps its value's type (``{{ tasks.check.output.ok }}`` may give
``false``), any other template gives text. The value is then judged by
:func:`truthy`, one rule, YAML-ish, for every condition:

* false: ``false``, ``null``, ``0`` (and ``0.0``), the empty string (or only
  blanks), an empty list or mapping, and the strings ``"false"``, ``"no"``,
  ``"off"``, ``"0"``, ``"null"``, ``"none"`` in any case, blanks around them
  ignored;
* true: everything else (``"00"``, ``[0]`` and ``"nothing"`` included).

A ``switch`` value picks the case it names (:func:`~nexus.domain.plan.case_name`:
a string trimmed, a boolean as ``true``/``false``, ``null`` as ``null``, a
whole number as its digits), else ``default`` (:func:`pick_case`).

The decision reads only the folded state, so a replay makes it again and
records the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from nexus.domain.errors import TemplateError
from nexus.domain.plan import DEFAULT_CASE, case_name
from nexus.templating import TemplateLimitError, render_value

__all__ = ["FALSE_WORDS", "describe", "evaluate", "pick_case", "truthy"]


#: Strings that count as false (compared trimmed and lower-cased).
FALSE_WORDS = frozenset({"false", "no", "off", "0", "null", "none"})

#: How much of a value a skip's reason quotes.
_SHOWN = 200


def truthy(value: Any) -> bool:
    """Whether a condition's value counts as true (see the module docstring)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        text = value.strip()
        return bool(text) and text.lower() not in FALSE_WORDS
    if isinstance(value, list | tuple | dict):
        return len(value) > 0
    return True


def evaluate(source: str, context: dict[str, Any], *, where: str) -> Any:
    """The value of the condition ``source`` in ``context``.

    Raises:
        TemplateError: the template does not render (a missing key, say);
            the decider fails the task with it.
    """
    try:
        return render_value(source, context, where=where)
    except TemplateLimitError:
        raise  # names ``where`` already, and the decider counts it
    except TemplateError as exc:
        raise TemplateError(f"{where}: {exc.message}") from exc


def describe(value: Any) -> str:
    """A value as a skip's reason quotes it: JSON, cut at 200 characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except ValueError:
        text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def pick_case(value: Any, cases: Mapping[str, Any]) -> str | None:
    """The case of ``cases`` that ``value`` picks: the one it names, else ``default``
    (None: neither is there)."""
    name = case_name(value)
    if name is not None and name in cases:
        return name
    return DEFAULT_CASE if DEFAULT_CASE in cases else None
