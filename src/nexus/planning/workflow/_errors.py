"""How a workflow's problems are reported, and the words messages use.

A :class:`Reporter` gathers every problem of one file, each a
:class:`~nexus.domain.errors.WorkflowError` naming the file and, where they
are known, the task and the field. A check that cannot go on raises its
problem (:meth:`Reporter.error`); the compiler catches it at the end of the
step it belongs to (:meth:`Reporter.step`: one input, agent field or task
field) and goes on with the next step, so one compilation finds every
problem. A check that can go on records it (:meth:`Reporter.add`). A limit
passed stops compiling at once (:meth:`Reporter.stop`: every further template
would pass it too), and so do :data:`MAX_PROBLEMS` problems.

The helpers below phrase what a message says about a value (:func:`kind`),
the names that would have been valid (:func:`known`, :func:`suggest`) and a
long template (:func:`snippet`).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from typing import Any, NoReturn

from nexus.domain.errors import WorkflowError

__all__ = ["MAX_PROBLEMS", "Reporter", "Step", "Stop", "kind", "known", "snippet", "suggest"]

_LIST_KNOWN = 10  # list the known names in a message when there are at most this many

#: The most problems one compilation reports; then it stops (fix these first).
MAX_PROBLEMS = 100


class Stop(Exception):  # a signal to the compiler, never seen outside it
    """Compiling cannot go on: the problems so far are all there is to report."""


class Step:
    """One step of the checks (:meth:`Reporter.step`): ``ok`` unless it raised a problem.

    A problem raised inside is recorded and not propagated; a class, not a
    generator, because a 10,000-task file goes through 30,000 of them.
    """

    __slots__ = ("_report", "ok")

    def __init__(self, report: Reporter) -> None:
        self._report = report
        self.ok = True

    def __enter__(self) -> Step:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        if not isinstance(exc, WorkflowError):
            return False
        self.ok = False
        self._report.record(exc)
        return True


class Reporter:
    """The problems of one workflow file, in the order they were found."""

    __slots__ = ("file", "problems")

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[WorkflowError] = []

    def problem(
        self, message: str, *, task: str | None = None, field: str | None = None
    ) -> WorkflowError:
        """The error for ``message`` (to raise, or to record)."""
        return WorkflowError(message, file=self.file, task=task, field=field)

    def error(self, message: str, *, task: str | None = None, field: str | None = None) -> NoReturn:
        """Stop the current step: ``message`` is what is wrong with ``field`` of ``task``."""
        raise self.problem(message, task=task, field=field)

    def add(self, message: str, *, task: str | None = None, field: str | None = None) -> None:
        """Record a problem and go on checking."""
        self.record(self.problem(message, task=task, field=field))

    def record(self, error: WorkflowError) -> None:
        """Record ``error``; past :data:`MAX_PROBLEMS` problems, stop compiling."""
        self.problems.append(error)
        if len(self.problems) >= MAX_PROBLEMS:
            self.problems.append(
                self.problem(f"stopped after {MAX_PROBLEMS} problems; fix these first")
            )
            raise Stop

    def stop(self, message: str, *, task: str | None = None, field: str | None = None) -> NoReturn:
        """Record a problem that ends compilation (a limit passed)."""
        self.problems.append(self.problem(message, task=task, field=field))
        raise Stop

    def step(self) -> Step:
        """Run one step of the checks: ``with report.step() as step: ...``."""
        return Step(self)


def known(label: str, names: Collection[str]) -> str:
    """``"known tools: a, b"``; the first few when there are many; a phrase when none."""
    if not names:
        return f"no {label.split(' ', 1)[-1]} are defined"
    ordered = sorted(names)
    if len(ordered) > _LIST_KNOWN:
        return f"{label}: " + ", ".join(ordered[:_LIST_KNOWN]) + f", ... ({len(ordered)} in all)"
    return f"{label}: " + ", ".join(ordered)


def suggest(name: str, names: Collection[str], label: str) -> str:
    """``"did you mean 'x'?"`` for a close name, else the known names (see :func:`known`)."""
    close = difflib.get_close_matches(name, sorted(names), n=1)
    return f"did you mean {close[0]!r}?" if close else known(label, names)


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
