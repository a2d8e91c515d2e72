"""The evidence records of a mission, as frozen pydantic models.

One :class:`WorkItemEvidence` per work item says which requirements it claims
(ids from the :class:`~nexus.missions.spec.SpecMap`), the hash of its patch,
the commit it landed as, every attempt (the checks that ran with their
outputs, calls and cost) and how it ended. :func:`trace` turns the spec and
the items into one :class:`RequirementStatus` per requirement: met by a merged
item whose last attempt passed its checks, or unmet with the reason.
:class:`EvidenceDocument` is what ``evidence.json`` holds.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nexus.missions.spec import Level, SpecMap

__all__ = [
    "EVIDENCE_FORMAT",
    "Attempt",
    "CheckRun",
    "CheckVerdict",
    "EvidenceDocument",
    "Outcome",
    "RequirementStatus",
    "Verdict",
    "WorkItemEvidence",
    "patch_hash",
    "trace",
]

#: The ``format`` field of ``evidence.json``.
EVIDENCE_FORMAT = "nexus-evidence/1"

CheckVerdict = Literal["pass", "fail", "error", "skipped"]
Outcome = Literal["merged", "rejected", "unmet"]

_SHA256 = r"^[0-9a-f]{64}$"
#: Work item ids name folders of the bundle: no separators, no dot-dot, no spaces.
_ITEM_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def patch_hash(diff: bytes | str) -> str:
    """The sha256 (hex) of a work item's diff, as :attr:`WorkItemEvidence.patch_sha256` holds it."""
    data = diff.encode("utf-8") if isinstance(diff, str) else diff
    return hashlib.sha256(data).hexdigest()


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CheckRun(_Frozen):
    """One check run in an attempt: its verdict and the file holding its output."""

    name: str = Field(min_length=1, description="the checker: tests, lint, types, npm test ...")
    verdict: CheckVerdict
    output_file: str = Field(
        min_length=1,
        description="its output: a path on disk when recorded, the bundle path in a bundle",
    )
    output_sha256: str = Field(pattern=_SHA256, description="sha256 (hex) of the output's bytes")
    duration_ms: int = Field(ge=0)
    summary: str = Field(default="", description="one line of diagnosis, shown in the report")
    required: bool = Field(
        default=True,
        description="false for an advisory check: its failure is reported, not held against "
        "the attempt",
    )

    @classmethod
    def from_file(
        cls,
        name: str,
        verdict: CheckVerdict,
        path: Path,
        duration_ms: int,
        summary: str = "",
    ) -> CheckRun:
        """The record of a check whose output is the file at ``path`` (hashed now).

        Raises:
            OSError: the file cannot be read.
        """
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return cls(
            name=name,
            verdict=verdict,
            output_file=str(path),
            output_sha256=digest,
            duration_ms=duration_ms,
            summary=summary,
        )


class Attempt(_Frozen):
    """One attempt at a work item: the checks it ran, the calls it made, what it cost."""

    number: int = Field(ge=1, description="1 for the first attempt")
    checks: tuple[CheckRun, ...] = ()
    model_calls: int = Field(default=0, ge=0)
    tool_calls: int = Field(default=0, ge=0)
    tokens: int = Field(default=0, ge=0)
    cost_usd: str = Field(default="0", description="a decimal number as text: exact, no float")

    @field_validator("cost_usd")
    @classmethod
    def _decimal(cls, value: str) -> str:
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a decimal number") from None
        if not amount.is_finite() or amount < 0:
            raise ValueError(f"{value!r} is not a finite amount >= 0")
        return value

    @property
    def passed(self) -> bool:
        """Every required check passed or was skipped, and at least one passed.

        An advisory check's failure (``required`` false) does not count.
        """
        verdicts = {c.verdict for c in self.checks if c.required}
        return "pass" in verdicts and verdicts <= {"pass", "skipped"}


class Verdict(_Frozen):
    """How a work item ended: merged, rejected by the gate, or given up as unmet."""

    outcome: Outcome
    reason: str = Field(default="", description="why, for rejected and unmet (required there)")

    @model_validator(mode="after")
    def _reason(self) -> Verdict:
        if self.outcome != "merged" and not self.reason.strip():
            raise ValueError(f"a {self.outcome} work item needs a reason")
        return self


class WorkItemEvidence(_Frozen):
    """Everything a mission can show about one work item."""

    id: str = Field(pattern=_ITEM_ID)
    title: str = ""
    requirements: tuple[str, ...] = Field(default=(), description="ids it claims to satisfy")
    patch_sha256: str | None = Field(default=None, pattern=_SHA256)
    commit: str | None = Field(default=None, min_length=1)
    attempts: tuple[Attempt, ...] = ()
    verdict: Verdict

    @model_validator(mode="after")
    def _consistent(self) -> WorkItemEvidence:
        numbers = [a.number for a in self.attempts]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"attempts must be numbered 1, 2, ... in order (got {numbers})")
        if self.verdict.outcome == "merged":
            missing = [
                name
                for name, value in (
                    ("commit", self.commit),
                    ("patch_sha256", self.patch_sha256),
                    ("attempts", self.attempts),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"a merged work item needs {', '.join(missing)}")
        if len(set(self.requirements)) != len(self.requirements):
            raise ValueError("a requirement is listed twice")
        return self

    @property
    def passing(self) -> bool:
        """Merged, and its last attempt passed its checks."""
        return self.verdict.outcome == "merged" and self.attempts[-1].passed


class RequirementStatus(_Frozen):
    """One requirement of the spec, met or not, and by which work items."""

    id: str
    text: str
    level: Level | None
    status: Literal["met", "unmet"]
    items: tuple[str, ...] = Field(default=(), description="the work items that claim it")
    met_by: tuple[str, ...] = Field(default=(), description="those merged with passing checks")
    reason: str = Field(default="", description="why it is unmet")

    @model_validator(mode="after")
    def _explained(self) -> RequirementStatus:
        if self.status == "met" and not self.met_by:
            raise ValueError(f"{self.id} is met by no work item")
        if self.status == "unmet" and not self.reason.strip():
            raise ValueError(f"{self.id} is unmet without a reason")
        return self


class EvidenceDocument(_Frozen):
    """What ``evidence.json`` holds: the spec, the work items, each requirement's status."""

    format: Literal["nexus-evidence/1"] = "nexus-evidence/1"
    spec: SpecMap
    items: tuple[WorkItemEvidence, ...]
    requirements: tuple[RequirementStatus, ...]


def _why_not(item: WorkItemEvidence) -> str:
    if item.verdict.outcome != "merged":
        return f"{item.id} {item.verdict.outcome}: {item.verdict.reason}"
    failing = [f"{c.name} {c.verdict}" for c in item.attempts[-1].checks if c.verdict != "pass"]
    shown = ", ".join(failing) if failing else "no check ran"
    return f"{item.id} merged without passing checks ({shown})"


def trace(spec: SpecMap, items: tuple[WorkItemEvidence, ...]) -> tuple[RequirementStatus, ...]:
    """Each requirement of ``spec``, in its order, with the work items that meet it or why not.

    A requirement is met when a work item claiming it was merged and its last
    attempt passed its checks; otherwise it is unmet, and the reason names
    each claiming item's verdict (or says that no work item claims it).
    """
    statuses = []
    for req in spec.requirements:
        claiming = [item for item in items if req.id in item.requirements]
        met_by = tuple(item.id for item in claiming if item.passing)
        if met_by:
            reason = ""
        elif claiming:
            reason = "; ".join(_why_not(item) for item in claiming)
        else:
            reason = "no work item claims it"
        statuses.append(
            RequirementStatus(
                id=req.id,
                text=req.text,
                level=req.level,
                status="met" if met_by else "unmet",
                items=tuple(item.id for item in claiming),
                met_by=met_by,
                reason=reason,
            )
        )
    return tuple(statuses)
