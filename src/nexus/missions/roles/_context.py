"""What each role sees: the names its templates are given, from the spec, plan and repository.

One builder per role; each returns exactly the names that role's ``context``
declares, so ``role.render_prompt(**coder_view(spec, item))`` renders. All
text from outside Nexus -- the spec, the repository, a diff, a model's plan,
a checker's summary -- is data in untrusted blocks: the tags the shipped
prompts wrap it in (``<spec>``, ``<context>``, ``<diff>``, ``<conflict>``,
``<feedback>``, ``<checks>``) cannot be closed from inside it, and long
text is cut (:data:`MAX_TEXT_CHARS`), saying so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from nexus.missions.plan import WorkItem
from nexus.missions.spec import Constraint, Interface, Requirement, SpecMap

__all__ = [
    "MAX_FILES",
    "MAX_TEXT_CHARS",
    "architect_view",
    "coder_view",
    "contract_view",
    "integrator_view",
    "reviewer_view",
]

#: The most repository files listed in the architect's prompt.
MAX_FILES = 2000
#: The longest diff, context pack, conflict or feedback text given to a role.
MAX_TEXT_CHARS = 100_000
_CLOSING = re.compile(r"<\s*/\s*(spec|context|diff|conflict|feedback|checks)\b", re.IGNORECASE)


def _data(value: Any) -> Any:
    """``value`` with every closing tag of a data block defused, deep."""
    if isinstance(value, str):
        return _CLOSING.sub(lambda m: "<\\/" + m.group(1), value)
    if isinstance(value, Mapping):
        return {key: _data(sub) for key, sub in value.items()}
    if isinstance(value, list | tuple):
        return [_data(sub) for sub in value]
    return value


def as_data(text: str) -> str:
    """``text`` with every closing tag of a prompt's data blocks defused (see :func:`_data`).

    For text a prompt template adds itself, such as a check's feedback.
    """
    return str(_data(text))


def _names(names: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _data(value) for name, value in names.items()}


def _cut(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit:,} more characters cut]"


def _requirement(req: Requirement) -> dict[str, Any]:
    return {
        "id": req.id,
        "level": req.level or "no level",
        "text": req.text,
        "section": " > ".join(req.section),
        "criteria": [c.text for c in req.criteria],
        "details": list(req.details),
    }


def _interface(interface: Interface) -> dict[str, Any]:
    return {
        "language": interface.language,
        "code": interface.code.rstrip("\n"),
        "section": " > ".join(interface.section),
        "requirement": interface.requirement or "",
    }


def _constraint(constraint: Constraint) -> dict[str, Any]:
    return {
        "id": constraint.id,
        "kind": constraint.kind,
        "level": constraint.level or "no level",
        "text": constraint.text,
    }


def _item(item: WorkItem) -> dict[str, Any]:
    return item.model_dump(mode="json")


def _of_item(spec: SpecMap, item: WorkItem) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The item's requirements, and the interfaces that bind it: its own and the shared ones."""
    claimed = set(item.requirements)
    requirements = [_requirement(r) for r in spec.requirements if r.id in claimed]
    interfaces = [
        _interface(i) for i in spec.interfaces if i.requirement is None or i.requirement in claimed
    ]
    return requirements, interfaces


def architect_view(
    spec: SpecMap,
    *,
    files: Sequence[str],
    checks: Sequence[str],
    index_context: str = "",
    feedback: str = "",
    max_items: int = 50,
) -> dict[str, Any]:
    """The architect's names: the spec, the repository's files, the checks, a rejection's feedback.

    Args:
        spec: the mission's SpecMap.
        files: the repository's files; the first :data:`MAX_FILES` are listed.
        checks: the checks a work item may name.
        index_context: ranked repository context (``ContextPack.render()``).
        feedback: :meth:`PlanRejected.feedback` of the last answer, or empty.
        max_items: the most work items a plan may have.
    """
    return _names(
        {
            "title": spec.title,
            "requirements": [_requirement(r) for r in spec.requirements],
            "constraints": [_constraint(c) for c in spec.constraints],
            "interfaces": [_interface(i) for i in spec.interfaces],
            "files": list(files[:MAX_FILES]),
            "files_omitted": max(0, len(files) - MAX_FILES),
            "index_context": _cut(index_context),
            "checks": list(checks),
            "max_items": max_items,
            "feedback": _cut(feedback),
        }
    )


def coder_view(
    spec: SpecMap, item: WorkItem, *, context: str = "", feedback: str = ""
) -> dict[str, Any]:
    """The coder's names: its item, its requirements and criteria, context, the gate's feedback."""
    requirements, interfaces = _of_item(spec, item)
    return _names(
        {
            "item": _item(item),
            "requirements": requirements,
            "interfaces": interfaces,
            "context": _cut(context),
            "feedback": _cut(feedback),
        }
    )


def contract_view(spec: SpecMap, item: WorkItem, *, feedback: str = "") -> dict[str, Any]:
    """The tester's names: the contract only (item, requirements, interfaces), never code."""
    requirements, interfaces = _of_item(spec, item)
    return _names(
        {
            "item": _item(item),
            "requirements": requirements,
            "interfaces": interfaces,
            "feedback": _cut(feedback),
        }
    )


def reviewer_view(
    spec: SpecMap, item: WorkItem, *, diff: str, checks: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The reviewer's names: the item, its requirements, the diff, the check results.

    Args:
        checks: one mapping per check run, with ``name``, ``verdict`` and
            ``summary`` (missing keys are empty).
    """
    requirements, _ = _of_item(spec, item)
    results = [
        {key: str(check.get(key, "")) for key in ("name", "verdict", "summary")} for check in checks
    ]
    return _names(
        {"item": _item(item), "requirements": requirements, "diff": _cut(diff), "checks": results}
    )


def integrator_view(
    item: WorkItem, *, conflicts: Mapping[str, str], feedback: str = ""
) -> dict[str, Any]:
    """The integrator's names: the item being merged, each conflicted file's text with markers."""
    return _names(
        {
            "item": _item(item),
            "conflicts": [{"path": p, "text": _cut(t)} for p, t in sorted(conflicts.items())],
            "feedback": _cut(feedback),
        }
    )
