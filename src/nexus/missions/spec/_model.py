"""The SpecMap: what a design document asks for, as frozen pydantic models.

A :class:`SpecMap` is the one shape both readers produce -- the deterministic
Markdown parser and the model-backed extraction -- and what the rest of a
mission (planning, evidence) reads. Its JSON schema (:func:`spec_schema`) is
what ``nexus spec --json`` output validates against.

Ids are never chosen by hand or by a model: :func:`requirement_id` derives
one from the text, unless the document gives an explicit one (``R1:``,
``REQ-3``), which is kept.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nexus.domain.errors import UserError

__all__ = [
    "Ambiguity",
    "AmbiguityKind",
    "Constraint",
    "ConstraintKind",
    "Criterion",
    "Interface",
    "Level",
    "Requirement",
    "SpecError",
    "SpecMap",
    "normalise",
    "requirement_id",
    "spec_schema",
]

#: The strength of a requirement, from its RFC 2119 keyword (SHALL reads as MUST,
#: REQUIRED as MUST, RECOMMENDED as SHOULD, OPTIONAL as MAY).
Level = Literal["MUST", "MUST NOT", "SHOULD", "SHOULD NOT", "MAY"]
ConstraintKind = Literal["performance", "security", "compatibility", "other"]
AmbiguityKind = Literal[
    "vague",  # an unquantified adjective or a hedge: "fast", "should probably", "etc."
    "placeholder",  # TBD, TODO, ???: a decision not taken yet
    "no_level",  # in a requirements section, but no MUST/SHOULD/MAY says how strong it is
    "no_criteria",  # a MUST with no acceptance criteria: how would it be checked?
    "duplicate",  # the same requirement twice
    "contradiction",  # the same subject with MUST and MUST NOT
    "orphan_criteria",  # acceptance criteria with no requirement to attach them to
]


class SpecError(UserError):
    """A design spec cannot be read: the message names the file and, where known, the line.

    Args:
        message: what is wrong and what the reader expected.
        file: the document.
        line: the 1-based line, when the problem has one.
    """

    def __init__(self, message: str, *, file: str, line: int | None = None) -> None:
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {message}")
        self.file = file
        self.line = line


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Criterion(_Frozen):
    """One acceptance criterion of a requirement."""

    text: str = Field(min_length=1)
    line: int = Field(ge=1, description="1-based line in the document")


class Requirement(_Frozen):
    """One requirement: what must hold, how strongly, where it was written."""

    id: str = Field(min_length=1, description="explicit (R1, REQ-3) or R- + 8 hex of its text")
    text: str = Field(min_length=1, description="as written, without its explicit id")
    level: Level | None = Field(description="its RFC 2119 keyword; null when it has none")
    section: tuple[str, ...] = Field(description="the headings it sits under, outermost first")
    lines: tuple[int, int] = Field(description="first and last 1-based line")
    criteria: tuple[Criterion, ...] = ()
    details: tuple[str, ...] = Field(
        default=(), description="nested items that are neither criteria nor requirements"
    )


class Interface(_Frozen):
    """A fenced code block that states an interface (a signature, a schema, an API)."""

    language: str = Field(description="the fence's language tag; empty when it has none")
    code: str
    symbols: tuple[str, ...] = Field(
        default=(), description="names the block declares (def/class/function/type ...)"
    )
    section: tuple[str, ...]
    lines: tuple[int, int]
    requirement: str | None = Field(default=None, description="the requirement it belongs to")


class Constraint(_Frozen):
    """A non-functional constraint: performance, security, compatibility."""

    id: str = Field(min_length=1, description="explicit (NFR-1) or C- + 8 hex of its text")
    kind: ConstraintKind
    text: str = Field(min_length=1)
    level: Level | None
    section: tuple[str, ...]
    lines: tuple[int, int]


class Ambiguity(_Frozen):
    """Something the document leaves open; listed for a human, never guessed."""

    kind: AmbiguityKind
    message: str
    refs: tuple[str, ...] = Field(default=(), description="ids of what it concerns")
    line: int | None = None


class SpecMap(_Frozen):
    """A design document read into requirements, interfaces, constraints and open questions."""

    title: str
    source: str = Field(description="the document's path as given")
    extracted_by: Literal["parser", "model"] = "parser"
    requirements: tuple[Requirement, ...]
    interfaces: tuple[Interface, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    ambiguities: tuple[Ambiguity, ...] = ()

    def requirement(self, rid: str) -> Requirement:
        """The requirement with id ``rid``.

        Raises:
            KeyError: no requirement has that id.
        """
        for req in self.requirements:
            if req.id == rid:
                return req
        raise KeyError(rid)


def spec_schema() -> dict[str, Any]:
    """The JSON schema of :class:`SpecMap` (what ``nexus spec --json`` prints)."""
    return SpecMap.model_json_schema()


def normalise(text: str) -> str:
    """Whitespace collapsed and case folded: the form an id is derived from."""
    return " ".join(text.split()).casefold()


def requirement_id(text: str, prefix: str = "R") -> str:
    """The stable id of a requirement: ``prefix-`` + the first 8 hex of sha256 of its text.

    Only the text counts (normalised by :func:`normalise`), so a requirement
    keeps its id when others are added, moved or edited, and when it moves.

    Example:
        >>> requirement_id("The cache MUST expire  entries.") == requirement_id(
        ...     "the cache must expire entries."
        ... )
        True
    """
    digest = hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()
    return f"{prefix}-{digest[:8]}"
