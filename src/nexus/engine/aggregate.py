"""Aggregation: a fan-out's items, answering the same question, made into one answer.

Pure functions over the items' recorded outputs (the decider calls them when
a fan-out's items have ended), so a replay tallies exactly as the run did.

An item's *answer* is what is compared: its output's ``data`` (a structured
agent answer), else its ``text`` (a plain agent answer, surrounding blanks
trimmed), else the whole output (a tool's); ``key`` -- a dotted path such as
``verdict`` or ``scores.0`` -- picks one field of that. Two answers are equal
when their canonical JSON texts are. An item whose output has no such field
gave no answer: it is listed, not counted.

The tallies list each distinct answer with its count and the items that gave
it, most given first and, among equals, the one given first in item order:
``tallies[0]`` is the ``vote`` winner, ties broken deterministically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from nexus.domain.canonical import canonical_json
from nexus.domain.plan import AggregatePolicy

__all__ = [
    "ANSWER_PREVIEW",
    "TALLIES_KEPT",
    "Decision",
    "answer_of",
    "decide",
    "preview",
    "tally",
]

#: An answer is recorded in the tallies as at most this many characters of its JSON.
ANSWER_PREVIEW: Final = 200
#: The tallies record at most this many distinct answers (the rest are counted).
TALLIES_KEPT: Final = 20
#: A failed task's message lists at most this many items or answers.
_LISTED: Final = 5

_NO_ANSWER: Final = object()


def answer_of(output: Any, key: str | None, *, agent: bool) -> Any:
    """The answer an item's output gives (see the module docstring); a sentinel when none.

    ``agent``: the items are agent tasks, whose model answers come as
    ``{text, model, usage[, data]}`` (a function agent's output is taken whole).
    """
    base = output
    if agent and isinstance(output, dict) and "text" in output and "model" in output:
        # a model's answer: its structured data, else its text
        if "data" in output:
            base = output["data"]
        else:
            text = output["text"]
            base = text.strip() if isinstance(text, str) else text
    if key is None:
        return base
    for part in key.split("."):
        if isinstance(base, dict) and part in base:
            base = base[part]
        elif isinstance(base, list) and part.isdigit() and int(part) < len(base):
            base = base[int(part)]
        else:
            return _NO_ANSWER
    return base


def preview(text: str) -> str:
    """An answer's JSON text as the tallies record it: cut at :data:`ANSWER_PREVIEW`."""
    if len(text) <= ANSWER_PREVIEW:
        return text
    return f"{text[:ANSWER_PREVIEW]}... ({len(text)} chars)"


@dataclass(frozen=True, slots=True)
class Tally:
    """One distinct answer: its JSON text and the items (indexes) that gave it."""

    text: str
    items: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.items)

    def to_data(self) -> dict[str, Any]:
        return {"answer": preview(self.text), "count": self.count, "items": list(self.items)}

    def describe(self) -> str:
        shown = ", ".join(str(i) for i in self.items[:_LISTED])
        more = f", +{self.count - _LISTED}" if self.count > _LISTED else ""
        return f"{_short(self.text)} x{self.count} (items {shown}{more})"


def tally(answers: list[tuple[int, Any]]) -> list[Tally]:
    """The distinct answers among ``(item index, answer)`` pairs, winner first.

    Ordered by count (most first), then by the first item that gave the answer
    (lowest first): the order is a function of the answers alone.
    """
    by_text: dict[str, list[int]] = {}
    for index, answer in answers:
        by_text.setdefault(canonical_json(answer), []).append(index)
    found = [Tally(text, tuple(sorted(items))) for text, items in by_text.items()]
    found.sort(key=lambda t: (-t.count, t.items[0]))
    return found


@dataclass(frozen=True, slots=True)
class Decision:
    """What a fan-out's items add up to: a ``winner`` item (its output is the task's),
    or a ``reason`` the task fails; ``record`` is the ``aggregate`` of its event."""

    winner: int | None
    reason: str | None
    record: dict[str, Any]


def decide(
    policy: AggregatePolicy,
    outputs: list[tuple[int, Any]],
    failed: list[int],
    items: int,
    *,
    agent: bool,
) -> Decision:
    """Combine the outputs of the items that succeeded (``(index, output)``, in item order).

    ``failed`` are the items that did not succeed; ``items`` how many there are;
    ``agent``: they are agent tasks (see :func:`answer_of`).
    For ``vote``, ``majority`` and ``consensus`` (``first_success`` is decided
    as items succeed, not here, except when none did).
    """
    method = policy.method
    answers: list[tuple[int, Any]] = []
    unanswered: list[int] = []
    for index, output in outputs:
        answer = answer_of(output, policy.key, agent=agent)
        if answer is _NO_ANSWER:
            unanswered.append(index)
        else:
            answers.append((index, answer))
    tallies = tally(answers)
    record: dict[str, Any] = {
        "method": method,
        "items": items,
        "answers": len(answers),
        "tallies": [t.to_data() for t in tallies[:TALLIES_KEPT]],
    }
    if len(tallies) > TALLIES_KEPT:
        record["more_answers"] = len(tallies) - TALLIES_KEPT
    if policy.key is not None:
        record["key"] = policy.key
    if failed:
        record["failed"] = failed
    if unanswered:
        record["unanswered"] = unanswered
    if method == "first_success":
        return Decision(None, f"first_success: none of the {items} items succeeded", record)
    if len(answers) < policy.quorum:
        short = _short_of_quorum(policy, len(answers), items, failed, unanswered)
        return Decision(None, short, record)
    best = tallies[0]
    if method == "majority" and best.count * 2 <= len(answers):
        return Decision(
            None,
            f"majority: no answer has more than half of the {len(answers)} answers: "
            + _listing(tallies),
            record,
        )
    if method == "consensus" and len(tallies) > 1:
        return Decision(
            None,
            f"consensus: the {len(answers)} answers disagree: " + _listing(tallies),
            record,
        )
    record["winner"] = best.items[0]
    return Decision(best.items[0], None, record)


def _short_of_quorum(
    policy: AggregatePolicy, answers: int, items: int, failed: list[int], unanswered: list[int]
) -> str:
    why = []
    if failed:
        why.append(f"{len(failed)} failed (items {_indexes(failed)})")
    if unanswered:
        field = f"no {policy.key!r}" if policy.key is not None else "no answer"
        why.append(f"{len(unanswered)} gave {field} (items {_indexes(unanswered)})")
    need = f"quorum is {policy.quorum}" if policy.quorum > 1 else "none to count"
    reasons = f": {'; '.join(why)}" if why else ""
    return f"{policy.method}: {answers} of {items} items answered, {need}{reasons}"


def _listing(tallies: list[Tally]) -> str:
    shown = "; ".join(t.describe() for t in tallies[:_LISTED])
    more = f"; +{len(tallies) - _LISTED} more answers" if len(tallies) > _LISTED else ""
    return shown + more


def _indexes(items: list[int]) -> str:
    shown = ", ".join(str(i) for i in items[:_LISTED])
    return shown + (f", +{len(items) - _LISTED}" if len(items) > _LISTED else "")


def _short(text: str) -> str:
    return text if len(text) <= 60 else f"{text[:57]}..."
