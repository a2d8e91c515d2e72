"""The ambiguities a SpecMap lists: what a document leaves open, found cheaply and never guessed.

* ``placeholder`` -- TBD, TBC, TODO, FIXME, ``???``;
* ``vague`` -- a hedge ("should probably", "if possible", "etc.") anywhere, or an
  unquantified adjective ("fast", "scalable", "user-friendly") in a text with
  no number in it (code spans are not read);
* ``no_level`` -- a requirement without MUST/SHOULD/MAY;
* ``no_criteria`` -- a MUST (or MUST NOT) with no acceptance criteria;
* ``duplicate`` -- two requirements with the same normalised text;
* ``contradiction`` -- the same sentence with MUST and with MUST NOT (or
  SHOULD and SHOULD NOT), keywords aside.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Sequence

from nexus.missions.spec._model import Ambiguity, Constraint, Requirement, normalise
from nexus.missions.spec._text import strip_keywords

__all__ = ["find_ambiguities", "vague_words"]

_PLACEHOLDER = re.compile(r"\b(?:TBD|TBC|TODO|FIXME|XXX)\b|\?{2,}")
_HEDGE = re.compile(
    r"\b(?:should probably|probably|possibly|maybe|perhaps|if possible|where possible"
    r"|as needed|as appropriate|and so on)\b|\betc\b\.?",
    re.IGNORECASE,
)
_UNQUANTIFIED = re.compile(
    r"\b(?:fast|faster|quick|quickly|slow|efficient|efficiently|responsive|performant"
    r"|scalable|lightweight|large|small|big|huge|many|few|several|soon|reasonable"
    r"|reasonably|adequate|appropriate|user[- ]friendly|intuitive|easy|simple|robust"
    r"|seamless|seamlessly|minimal|optimal)\b",
    re.IGNORECASE,
)
_CODE_SPAN = re.compile(r"`+[^`]*`+")
_DIGIT = re.compile(r"\d")


def vague_words(text: str) -> tuple[list[str], list[str]]:
    """The placeholders, and the hedges and unquantified words, in ``text`` (in order, once)."""
    prose = _CODE_SPAN.sub(" ", text)
    placeholders = list(dict.fromkeys(m.group(0) for m in _PLACEHOLDER.finditer(prose)))
    vague = [m.group(0) for m in _HEDGE.finditer(prose)]
    if not _DIGIT.search(prose):
        vague += [m.group(0) for m in _UNQUANTIFIED.finditer(prose)]
    return placeholders, list(dict.fromkeys(vague))


def _quoted(words: Sequence[str]) -> str:
    return ", ".join(f"'{w}'" for w in words)


def _wording(rid: str, text: str, line: int, what: str) -> Iterator[Ambiguity]:
    placeholders, vague = vague_words(text)
    if placeholders:
        yield Ambiguity(
            kind="placeholder",
            message=f"{what} says {_quoted(placeholders)}: a decision not taken yet",
            refs=(rid,),
            line=line,
        )
    if vague:
        yield Ambiguity(
            kind="vague",
            message=f"{what} says {_quoted(vague)}: how much, exactly? (a number, a unit, a list)",
            refs=(rid,),
            line=line,
        )


def find_ambiguities(
    requirements: Sequence[Requirement], constraints: Sequence[Constraint] = ()
) -> list[Ambiguity]:
    """Every ambiguity of the requirements and constraints, in document order per kind."""
    found: list[Ambiguity] = []
    for req in requirements:
        line = req.lines[0]
        found.extend(_wording(req.id, req.text, line, req.id))
        for criterion in req.criteria:
            found.extend(
                _wording(req.id, criterion.text, criterion.line, f"a criterion of {req.id}")
            )
        if req.level is None:
            found.append(
                Ambiguity(
                    kind="no_level",
                    message=f"{req.id} has no MUST, SHOULD or MAY: how binding is it?",
                    refs=(req.id,),
                    line=line,
                )
            )
        elif req.level in ("MUST", "MUST NOT") and not req.criteria:
            found.append(
                Ambiguity(
                    kind="no_criteria",
                    message=f"{req.id} is a {req.level} with no acceptance criteria: "
                    "how is it checked?",
                    refs=(req.id,),
                    line=line,
                )
            )
    for con in constraints:
        found.extend(_wording(con.id, con.text, con.lines[0], con.id))
    found.extend(_duplicates(requirements))
    found.extend(_contradictions([*requirements, *constraints]))
    return found


def _duplicates(requirements: Sequence[Requirement]) -> Iterator[Ambiguity]:
    same: defaultdict[str, list[Requirement]] = defaultdict(list)
    for req in requirements:
        same[normalise(req.text)].append(req)
    for group in same.values():
        if len(group) > 1:
            lines = ", ".join(str(r.lines[0]) for r in group)
            yield Ambiguity(
                kind="duplicate",
                message=f"the same requirement is written {len(group)} times (lines {lines})",
                refs=tuple(r.id for r in group),
                line=group[1].lines[0],
            )


def _contradictions(items: Sequence[Requirement | Constraint]) -> Iterator[Ambiguity]:
    by_subject: defaultdict[str, list[Requirement | Constraint]] = defaultdict(list)
    for item in items:
        if item.level is not None and item.level != "MAY":
            by_subject[normalise(strip_keywords(item.text))].append(item)
    for group in by_subject.values():
        yes = [i for i in group if i.level is not None and not i.level.endswith("NOT")]
        no = [i for i in group if i.level is not None and i.level.endswith("NOT")]
        if yes and no:
            a, b = yes[0], no[0]
            yield Ambiguity(
                kind="contradiction",
                message=f"{a.id} says {a.level} and {b.id} says {b.level} "
                f"(lines {a.lines[0]} and {b.lines[0]})",
                refs=(a.id, b.id),
                line=max(a.lines[0], b.lines[0]),
            )
