"""A small mission's evidence, built the way a mission records it (shared by the evidence tests)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from nexus.missions.evidence import (
    Attempt,
    CheckRun,
    CheckVerdict,
    Verdict,
    WorkItemEvidence,
    patch_hash,
)
from nexus.missions.spec import SpecMap, parse_spec
from nexus.security.signing import AuditKey

SPEC_TEXT = """\
# Durations

## Requirements

- R1: `parse` MUST read "1h30m" as 5400 seconds.
- R2: `format` MUST write seconds back as the shortest text.
- R3: Negative durations MUST be refused with a ValueError.
- R4: The page SHOULD show <script>alert("x")</script> & friends | escaped.
"""

CREATED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

#: The key every test bundle is signed with (generated once, held in memory).
KEY = AuditKey.generate()


def spec() -> SpecMap:
    return parse_spec(SPEC_TEXT, source="specs/durations.md")


def check(tmp: Path, name: str, verdict: CheckVerdict, text: str, ms: int = 120) -> CheckRun:
    """A check whose output the checker wrote to a file."""
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{hashlib.sha256((name + text).encode()).hexdigest()[:12]}.log"
    path.write_text(text, encoding="utf-8")
    return CheckRun.from_file(name, verdict, path, ms, summary=f"{name}: {verdict}")


def items(tmp: Path) -> list[WorkItemEvidence]:
    """W1 merged on its second attempt; W2 merged first time; W3 rejected. R4: no item."""
    out = tmp / "outputs"
    w1 = WorkItemEvidence(
        id="W1",
        title="parse and format",
        requirements=("R1", "R2"),
        patch_sha256=patch_hash("diff --git a/d.py b/d.py\n+def parse(): ...\n"),
        commit="4f2a9c1e0b",
        attempts=(
            Attempt(
                number=1,
                checks=(
                    check(out, "lint", "pass", "All checks passed!\n"),
                    check(out, "tests", "fail", "FAILED test_parse - assert 5300 == 5400\n"),
                ),
                model_calls=3,
                tool_calls=5,
                tokens=4100,
                cost_usd="0.0123",
            ),
            Attempt(
                number=2,
                checks=(
                    check(out, "lint", "pass", "All checks passed!\n"),
                    check(out, "tests", "pass", "4 passed in 0.02s\n"),
                ),
                model_calls=2,
                tool_calls=4,
                tokens=2900,
                cost_usd="0.0081",
            ),
        ),
        verdict=Verdict(outcome="merged"),
    )
    w2 = WorkItemEvidence(
        id="W2",
        title="refuse negatives",
        requirements=("R3",),
        patch_sha256=patch_hash("+raise ValueError\n"),
        commit="9e8d7c6b5a",
        attempts=(
            Attempt(
                number=1,
                checks=(check(out, "tests", "pass", "2 passed\n"),),
                model_calls=1,
                tool_calls=2,
                tokens=1200,
                cost_usd="0.004",
            ),
        ),
        verdict=Verdict(outcome="merged"),
    )
    w3 = WorkItemEvidence(
        id="W3",
        title="second try at R3",
        requirements=("R3",),
        attempts=(Attempt(number=1, checks=(check(out, "scope", "fail", "touches setup.py\n"),)),),
        verdict=Verdict(
            outcome="rejected", reason="scope: changed setup.py, which it does not own"
        ),
    )
    return [w1, w2, w3]
