"""Conditions over a run's state: ``when:`` (and the truthiness every condition uses).

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

The decision reads only the folded state, so a replay makes it again and
records the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

from nexus.domain.errors import TemplateError
from nexus.templating import TemplateLimitError, render_value

__all__ = ["FALSE_WORDS", "describe", "evaluate", "truthy"]

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
