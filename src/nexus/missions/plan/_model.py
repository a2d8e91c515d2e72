"""A mission plan: work items with owned files, dependencies, requirements and checks.

The architect answers with data in the shape :func:`plan_schema` gives; the
constraint compiler (:func:`nexus.missions.plan.compile_plan`) turns an answer
that keeps every rule into a :class:`MissionPlan`, or raises
:class:`PlanRejected` listing every problem, which :meth:`PlanRejected.feedback`
words for the architect's next try.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nexus.domain.errors import UserError
from nexus.missions.plan._paths import matches

__all__ = [
    "ITEM_ID",
    "MAX_FEEDBACK_CHARS",
    "MissionPlan",
    "PlanProblem",
    "PlanRejected",
    "Unmet",
    "WorkItem",
    "plan_schema",
]

#: A work item's id: a lowercase slug, at most 40 characters.
ITEM_ID = r"^[a-z][a-z0-9-]{0,39}$"
#: The longest :meth:`PlanRejected.feedback`.
MAX_FEEDBACK_CHARS = 8000
#: The most problems a rejection's message lists (:attr:`PlanRejected.problems` has all).
_LISTED = 50


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WorkItem(_Frozen):
    """One unit of work: what it changes, what it needs first, what it satisfies."""

    id: str = Field(pattern=ITEM_ID)
    title: str = Field(min_length=1)
    summary: str = ""
    owns: tuple[str, ...] = Field(
        default=(), description="repository-relative files or globs the coder may change"
    )
    tests: tuple[str, ...] = Field(
        default=(), description="test files the tester writes; owned by this item too"
    )
    needs: tuple[str, ...] = Field(default=(), description="items that must be merged first")
    requirements: tuple[str, ...] = Field(default=(), description="SpecMap ids it satisfies")
    checks: tuple[str, ...] = Field(default=(), description="checks that must pass (its envelope)")

    def owns_path(self, path: str) -> bool:
        """True when the (normalised, repository-relative) ``path`` is this item's to change.

        Both its ``owns`` and its ``tests`` count; the scope check asks this
        of every file a change touches.
        """
        return any(matches(pattern, path) for pattern in (*self.owns, *self.tests))


class Unmet(_Frozen):
    """A requirement the plan leaves unmet, and why."""

    requirement: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class MissionPlan(_Frozen):
    """An accepted plan: work items in a dependency order, and what it leaves unmet.

    ``items`` are ordered so that every item comes after the items it needs;
    among items free to go, the architect's order is kept.
    """

    items: tuple[WorkItem, ...]
    unmet: tuple[Unmet, ...] = ()

    def item(self, item_id: str) -> WorkItem:
        """The work item with id ``item_id``.

        Raises:
            KeyError: no item has that id.
        """
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def order(self) -> tuple[tuple[str, ...], ...]:
        """The items in waves: each wave's items need only items of earlier waves.

        The items of one wave may run at the same time; each wave keeps the
        plan's order.
        """
        wave_of: dict[str, int] = {}
        for item in self.items:  # items are in dependency order already
            wave_of[item.id] = 1 + max((wave_of[need] for need in item.needs), default=-1)
        waves: list[list[str]] = [[] for _ in range(max(wave_of.values(), default=-1) + 1)]
        for item in self.items:
            waves[wave_of[item.id]].append(item.id)
        return tuple(tuple(wave) for wave in waves)

    def owner_of(self, path: str) -> str | None:
        """The id of the item that owns ``path`` (normalised), or None."""
        for item in self.items:
            if item.owns_path(path):
                return item.id
        return None

    def to_data(self) -> dict[str, Any]:
        """The plan as JSON data, in the shape the architect answers in (:func:`plan_schema`)."""
        return self.model_dump(mode="json")


@dataclass(frozen=True, slots=True)
class PlanProblem:
    """One rule a plan breaks: which item (None: the plan), which field, what is wrong."""

    item: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.item is not None:
            where.append(f"item {self.item!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return (", ".join(where) + ": " if where else "") + self.message


class PlanRejected(UserError):
    """A plan breaks the constraint compiler's rules; :attr:`problems` lists every one.

    Args:
        problems: each broken rule (at least one), in the order found.
    """

    def __init__(self, problems: Sequence[PlanProblem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = "the plan is rejected: " + ("1 problem" if count == 1 else f"{count} problems")
        listed = "".join(f"\n- {problem}" for problem in self.problems[:_LISTED])
        if count > _LISTED:
            listed += f"\n... and {count - _LISTED} more"
        super().__init__(head + listed)

    def feedback(self, limit: int = MAX_FEEDBACK_CHARS) -> str:
        """Markdown for the architect: what to fix, a problem a line, at most ``limit`` chars.

        Problems that do not fit are counted, not dropped silently.
        """
        head = (
            "## Your plan was rejected\n\n"
            "Fix every problem below and answer with the whole plan again, "
            "in the same JSON shape.\n\n"
        )
        lines: list[str] = []
        used = len(head)
        for n, problem in enumerate(self.problems):
            line = f"- {problem}\n"
            tail = f"\n... and {len(self.problems) - n} more problems.\n"
            if used + len(line) + len(tail) > limit:
                lines.append(tail)
                break
            lines.append(line)
            used += len(line)
        return head + "".join(lines)


def _strings(*, enum: Sequence[str] | None = None, pattern: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "string"}
    if enum is not None:
        item["enum"] = sorted(set(enum))
    if pattern is not None:
        item["pattern"] = pattern
    return {"type": "array", "items": item}


def plan_schema(
    *,
    checks: Sequence[str],
    requirements: Sequence[str] | None = None,
    max_items: int = 50,
) -> dict[str, Any]:
    """The JSON schema of the architect's answer: ``{"items": [...], "unmet": [...]}``.

    Strict (every property required, no other allowed), so providers' strict
    structured-output modes accept it. The schema is the shape; the rules
    between items (ownership, cycles, coverage) are :func:`compile_plan`'s.

    Args:
        checks: the check names an item's ``checks`` may use.
        requirements: when given, the requirement ids the answer may name.
        max_items: the most work items the answer may have.
    """
    item_checks: dict[str, Any] = _strings(enum=checks) if checks else {**_strings(), "maxItems": 0}
    ids = _strings(enum=requirements) if requirements else _strings()
    requirement: dict[str, Any] = (
        {"type": "string", "enum": sorted(set(requirements))}
        if requirements
        else {"type": "string"}
    )
    item = {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "title", "summary", "owns", "tests", "needs", "requirements", "checks"],
        "properties": {
            "id": {"type": "string", "pattern": ITEM_ID},
            "title": {"type": "string", "minLength": 1},
            "summary": {"type": "string"},
            "owns": _strings(),
            "tests": _strings(),
            "needs": _strings(pattern=ITEM_ID),
            "requirements": ids,
            "checks": item_checks,
        },
    }
    unmet = {
        "type": "object",
        "additionalProperties": False,
        "required": ["requirement", "reason"],
        "properties": {"requirement": requirement, "reason": {"type": "string", "minLength": 1}},
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["items", "unmet"],
        "properties": {
            "items": {"type": "array", "items": item, "minItems": 1, "maxItems": max_items},
            "unmet": {"type": "array", "items": unmet},
        },
    }
