"""How a workflow problem is reported, and the words messages use.

Compilation stops at the first problem: :class:`Reporter` raises it as a
:class:`~nexus.domain.errors.WorkflowError` that names the file and, where they
are known, the task and the field. The helpers below phrase what a message
says about a value (:func:`kind`), the names that would have been valid
(:func:`known`) and a long template (:func:`snippet`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NoReturn

from nexus.domain.errors import WorkflowError

__all__ = ["Reporter", "kind", "known", "snippet"]

_LIST_KNOWN = 10  # list the known names in a message when there are at most this many


class Reporter:
    """The errors of one workflow file."""

    __slots__ = ("file",)

    def __init__(self, file: str) -> None:
        self.file = file

    def problem(
        self, message: str, *, task: str | None = None, field: str | None = None
    ) -> WorkflowError:
        """The error to raise (for ``raise ... from None`` where a cause is not worth showing)."""
        return WorkflowError(message, file=self.file, task=task, field=field)

    def error(self, message: str, *, task: str | None = None, field: str | None = None) -> NoReturn:
        """Stop compiling: ``message`` is what is wrong with ``field`` of ``task``."""
        raise self.problem(message, task=task, field=field)


def known(label: str, names: Collection[str]) -> str:
    """``"known tools: a, b"``; the first few when there are many; a phrase when none."""
    if not names:
        return f"no {label.split(' ', 1)[-1]} are defined"
    ordered = sorted(names)
    if len(ordered) > _LIST_KNOWN:
        return f"{label}: " + ", ".join(ordered[:_LIST_KNOWN]) + f", ... ({len(ordered)} in all)"
    return f"{label}: " + ", ".join(ordered)


def kind(value: Any) -> str:
    """What ``value`` is, in the words of a YAML author: "a mapping", "a list", "null"..."""
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}
    for type_, name in names.items():
        if isinstance(value, type_):
            return name
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__} value"


def snippet(source: str, limit: int = 60) -> str:
    """The start of a long text, quoted, to show where a problem is."""
    return repr(source if len(source) <= limit else source[: limit - 3] + "...")
