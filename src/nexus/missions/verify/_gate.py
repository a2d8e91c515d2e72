"""The gate: accept or reject a change from its check results, and say why.

A work item's *envelope* names the checks that must pass; without one, every
required check must. The :class:`Verdict` keeps the diagnostics of each
failing check and renders them as Markdown feedback -- what the coder reads
on its next attempt -- bounded so that a check that prints ten thousand
errors cannot crowd out the others: at most :data:`PER_CHECK` diagnostics per
check, :data:`MESSAGE_CHARS` characters per message and
:data:`FEEDBACK_CHARS` characters in all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nexus.domain.errors import UserError
from nexus.missions.verify._model import CheckResult, Diagnostic

__all__ = ["FEEDBACK_CHARS", "MESSAGE_CHARS", "PER_CHECK", "Verdict", "gate"]

#: Diagnostics shown per failing check in the feedback.
PER_CHECK = 8
#: Characters of one diagnostic's message shown in the feedback.
MESSAGE_CHARS = 600
#: Characters of the whole feedback.
FEEDBACK_CHARS = 12_000


@dataclass(slots=True)
class Verdict:
    """The gate's decision on one attempt.

    Attributes:
        accepted: whether every check of the envelope passed.
        failed: the envelope's checks that failed (or did not run), in order.
        diagnostics: the diagnostics of every failing check, envelope or not.
        feedback: Markdown for the next attempt (see the module docstring).
        advisory: checks outside the envelope that failed; they do not reject.
    """

    accepted: bool
    failed: list[str]
    diagnostics: dict[str, list[Diagnostic]]
    feedback: str
    advisory: list[str] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        """The verdict as JSON-safe data."""
        return {
            "accepted": self.accepted,
            "failed": list(self.failed),
            "advisory": list(self.advisory),
            "diagnostics": {k: [d.to_data() for d in v] for k, v in self.diagnostics.items()},
            "feedback": self.feedback,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Verdict:
        """The verdict :meth:`to_data` gave.

        Raises:
            UserError: a field is missing or of the wrong type.
        """
        try:
            return cls(
                accepted=bool(data["accepted"]),
                failed=[str(n) for n in data["failed"]],
                diagnostics={
                    str(k): [Diagnostic.from_data(d) for d in v]
                    for k, v in data["diagnostics"].items()
                },
                feedback=str(data["feedback"]),
                advisory=[str(n) for n in data.get("advisory", ())],
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"gate verdict: missing or invalid field {exc}") from None


def gate(results: Sequence[CheckResult], envelope: Sequence[str] | None = None) -> Verdict:
    """Accept the change when every check of ``envelope`` passed.

    Args:
        results: what :func:`~nexus.missions.verify.run_checks` gave.
        envelope: the names of the checks that must pass; ``None`` means
            every check whose spec is ``required``. A name with no result
            counts as failed (the check did not run).

    Returns:
        The verdict, with feedback for the next attempt.

    Example:
        >>> from nexus.missions.verify import CheckResult
        >>> ok = CheckResult("lint", "lint", True, None, [], "", "0" * 64, 0, 0.1)
        >>> gate([ok]).accepted
        True
    """
    by_name = {r.name: r for r in results}
    must = list(envelope) if envelope is not None else [r.name for r in results if r.required]
    failed: list[str] = []
    diagnostics: dict[str, list[Diagnostic]] = {}
    for name in dict.fromkeys(must):
        result = by_name.get(name)
        if result is None:
            failed.append(name)
            diagnostics[name] = [
                Diagnostic(name, None, None, "not-run", "the envelope requires this check, "
                           "but it did not run")
            ]  # fmt: skip
        elif not result.passed:
            failed.append(name)
            diagnostics[name] = list(result.diagnostics)
    advisory = [r.name for r in results if not r.passed and r.name not in must]
    for name in advisory:
        diagnostics[name] = list(by_name[name].diagnostics)
    feedback = _feedback(results, failed, advisory, diagnostics)
    return Verdict(not failed, failed, diagnostics, feedback, advisory)


def _line(d: Diagnostic) -> str:
    where = f"`{d.where()}` " if d.file else ""
    code = f"[{d.code}] " if d.code else ""
    message = d.message.strip()
    if len(message) > MESSAGE_CHARS:
        message = message[: MESSAGE_CHARS - 3] + "..."
    if "\n" in message:
        first, rest = message.split("\n", 1)
        body = "\n".join("    " + line for line in rest.splitlines())
        return f"- {where}{code}{first}\n  ```\n{body}\n  ```"
    return f"- {where}{code}{message}"


def _section(name: str, kind: str, found: list[Diagnostic], skipped: str | None) -> list[str]:
    lines = [f"### {name} ({kind})"]
    if skipped:
        lines.append(f"Skipped: {skipped}.")
    lines += [_line(d) for d in found[:PER_CHECK]]
    if len(found) > PER_CHECK:
        lines.append(f"- ... and {len(found) - PER_CHECK} more")
    if not found and not skipped:
        lines.append("- failed without a diagnostic (see its output)")
    return [*lines, ""]


def _feedback(
    results: Sequence[CheckResult],
    failed: list[str],
    advisory: list[str],
    diagnostics: dict[str, list[Diagnostic]],
) -> str:
    by_name = {r.name: r for r in results}
    if failed:
        lines = [
            "## The gate rejected this attempt",
            "",
            f"{len(failed)} required check(s) failed: {', '.join(failed)}. Fix what is listed "
            "below and keep the other checks passing.",
            "",
        ]
    else:
        passed = [r.name for r in results if r.passed]
        lines = ["## The gate accepted this attempt", "", f"Passed: {', '.join(passed)}.", ""]
    for name in failed:
        result = by_name.get(name)
        kind = result.kind if result else "did not run"
        lines += _section(name, kind, diagnostics[name], result.skipped if result else None)
    if advisory:
        lines += ["## Advisory (these do not reject the change)", ""]
        for name in advisory:
            result = by_name[name]
            lines += _section(name, result.kind, diagnostics[name], result.skipped)
    text = "\n".join(lines).rstrip() + "\n"
    if len(text) > FEEDBACK_CHARS:
        cut = text.rfind("\n", 0, FEEDBACK_CHARS - 60)
        text = text[: max(cut, 0)] + "\n\n(feedback cut: fix the problems above first)\n"
    return text
