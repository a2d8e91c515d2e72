"""What the spec reader recognises in a line of text: RFC 2119 keywords, explicit ids, labels.

Patterns over one paragraph's text at a time; the document's structure
comes from the Markdown parse (:mod:`._markdown`), not from these.
"""

from __future__ import annotations

import re
from typing import Literal

from nexus.missions.spec._model import ConstraintKind, Level

__all__ = [
    "SectionRole",
    "constraint_kind",
    "explicit_id",
    "is_boilerplate",
    "is_label",
    "level_of",
    "split_label",
    "strip_keywords",
]

# longest first, so "MUST NOT" is one keyword and not "MUST" then "NOT"
_KEYWORD = re.compile(
    r"\b(MUST NOT|SHALL NOT|SHOULD NOT|NOT RECOMMENDED|MUST|SHALL|REQUIRED|SHOULD"
    r"|RECOMMENDED|MAY|OPTIONAL)\b"
)
_LEVEL: dict[str, Level] = {
    "MUST NOT": "MUST NOT",
    "SHALL NOT": "MUST NOT",
    "MUST": "MUST",
    "SHALL": "MUST",
    "REQUIRED": "MUST",
    "SHOULD NOT": "SHOULD NOT",
    "NOT RECOMMENDED": "SHOULD NOT",
    "SHOULD": "SHOULD",
    "RECOMMENDED": "SHOULD",
    "MAY": "MAY",
    "OPTIONAL": "MAY",
}
_STRENGTH: dict[Level, int] = {"MUST": 3, "MUST NOT": 3, "SHOULD": 2, "SHOULD NOT": 2, "MAY": 1}
_EMPHASIS = r"(?:\*\*|__|\*|_)?"
_EXPLICIT = re.compile(
    rf"^\s*{_EMPHASIS}\[?(?P<id>(?:REQ|NFR|FR|R)-?\d+(?:\.\d+)*)\]?{_EMPHASIS}"
    rf"(?:\s*[:.)]|\s+[-\u2013\u2014]|(?=\s)){_EMPHASIS}\s*"
)
_LABEL = re.compile(
    rf"^\s*{_EMPHASIS}(?:acceptance criteria|acceptance tests?|criteria){_EMPHASIS}"
    rf"\s*:?\s*{_EMPHASIS}\s*$",
    re.IGNORECASE,
)
_BOILERPLATE = re.compile(r"\b(?:RFC ?2119|RFC ?8174|BCP ?14)\b", re.IGNORECASE)
_CODE_SPAN = re.compile(r"`+[^`]*`+")

_CRITERIA_HEADING = re.compile(r"\b(?:acceptance|criteria)\b", re.IGNORECASE)
_INTERFACE_HEADING = re.compile(r"\b(?:interfaces?|apis?|signatures?)\b", re.IGNORECASE)
_REQUIREMENTS_HEADING = re.compile(r"\brequirements?\b", re.IGNORECASE)
_CONSTRAINT_HEADINGS: tuple[tuple[ConstraintKind | Literal["general"], re.Pattern[str]], ...] = (
    ("performance", re.compile(r"\b(?:performance|latency|throughput|scalab\w*)", re.I)),
    ("security", re.compile(r"\b(?:security|privacy|threat|safety)", re.I)),
    ("compatibility", re.compile(r"\b(?:compatib\w*|portab\w*|platforms?|interoperab\w*)", re.I)),
    ("general", re.compile(r"\b(?:non[- ]?functional|constraints?|quality attributes?)", re.I)),
)
_CONSTRAINT_WORDS: tuple[tuple[ConstraintKind, re.Pattern[str]], ...] = (
    (
        "performance",
        re.compile(
            r"\b(?:ms|milliseconds?|seconds?|latency|throughput|memory|[KMG]i?B|per second"
            r"|fast|slow|cpu|time)\b",
            re.I,
        ),
    ),
    (
        "security",
        re.compile(
            r"\b(?:secrets?|passwords?|tokens?|credentials?|encrypt\w*|inject\w*|sanitiz\w*"
            r"|auth\w*|permissions?|sandbox\w*|untrusted|tls|https)\b",
            re.I,
        ),
    ),
    (
        "compatibility",
        re.compile(
            r"\b(?:python \d[\d.]*|versions?|compatib\w*|platforms?|linux|macos|windows"
            r"|backward\w*)\b",
            re.I,
        ),
    ),
)


def level_of(text: str) -> Level | None:
    """The strongest RFC 2119 keyword in ``text`` (upper case only, as RFC 8174 asks)."""
    best: Level | None = None
    for match in _KEYWORD.finditer(_CODE_SPAN.sub(" ", text)):
        level = _LEVEL[match.group(1)]
        if best is None or _STRENGTH[level] > _STRENGTH[best]:
            best = level
    return best


def strip_keywords(text: str) -> str:
    """``text`` with its RFC 2119 keywords replaced by one marker (the subject of a rule)."""
    return _KEYWORD.sub("<rfc2119>", text)


def explicit_id(text: str) -> tuple[str | None, str]:
    """The explicit id a text starts with (``R1:``, ``REQ-3``, ``**NFR-2**``), and the rest."""
    match = _EXPLICIT.match(text)
    if match is None:
        return None, text.strip()
    rest = text[match.end() :].strip()
    return match.group("id"), rest or text.strip()


def is_label(text: str) -> bool:
    """Whether ``text`` is an "Acceptance criteria:" label introducing a list."""
    return bool(_LABEL.match(text))


def split_label(text: str) -> tuple[str, bool]:
    """``text`` without a trailing "Acceptance criteria:" line, and whether it had one."""
    head, sep, last = text.rstrip().rpartition("\n")
    if sep and is_label(last):
        return head, True
    return text, False


def is_boilerplate(text: str) -> bool:
    """The RFC 2119 conventions paragraph ("The key words MUST ... are to be interpreted...")."""
    return bool(_BOILERPLATE.search(text))


class SectionRole:
    """What the headings above a block make of it.

    Attributes:
        criteria: under an "Acceptance criteria" heading: its lists are criteria.
        constraint: under a performance/security/compatibility (or general
            non-functional) heading: its items are constraints.
        interface: under an "Interface"/"API" heading: its fenced blocks are interfaces.
        requirements: under a "Requirements" heading: every top-level item is a
            requirement, keyword or not.
    """

    __slots__ = ("constraint", "criteria", "interface", "requirements")

    def __init__(self, path: tuple[str, ...]) -> None:
        nearest = path[-1] if path else ""
        self.criteria = bool(_CRITERIA_HEADING.search(nearest))
        self.constraint: ConstraintKind | Literal["general"] | None = None
        for heading in reversed(path):
            for kind, pattern in _CONSTRAINT_HEADINGS:
                if pattern.search(heading):
                    self.constraint = kind
                    break
            if self.constraint is not None:
                break
        self.interface = any(_INTERFACE_HEADING.search(h) for h in path)
        self.requirements = any(_REQUIREMENTS_HEADING.search(h) for h in path)


def constraint_kind(text: str, heading_kind: ConstraintKind | Literal["general"]) -> ConstraintKind:
    """A constraint's kind: its heading's, or under a general heading, what its words say."""
    if heading_kind != "general":
        return heading_kind
    for kind, pattern in _CONSTRAINT_WORDS:
        if pattern.search(text):
            return kind
    return "other"
