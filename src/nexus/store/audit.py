"""Audit verification of the hash chain: names the first tampered event.

Each stored link is checked for: contiguous ``seq`` from 1, ``prev_hash``
equal to the previous link's ``hash`` (the genesis hash first), ``hash`` equal
to ``sha256(prev_hash || body)``, and a body that belongs to this run and seq.
The run projection's event count catches a log cut short at its tail, which
a chain alone cannot show.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nexus.domain.canonical import GENESIS_HASH
from nexus.store.base import ChainRow


@dataclass(slots=True)
class AuditReport:
    ok: bool = True
    runs: int = 0
    events: int = 0
    first_bad: dict[str, Any] | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "runs": self.runs,
            "events": self.events,
            "first_bad": self.first_bad,
            "problems": self.problems,
        }


def verify_chain(
    rows: Iterable[ChainRow], expected_counts: Mapping[str, int] | None = None
) -> AuditReport:
    """Verify links in (run, seq) order. One problem is reported per run: its first."""
    report = AuditReport()
    sha = hashlib.sha256
    run: str | None = None
    prev = GENESIS_HASH
    want = 1
    broken = False
    counts: dict[str, int] = {}

    def bad(row_run: str, seq: int, reason: str) -> None:
        problem = {"run_id": row_run, "seq": seq, "reason": reason}
        report.ok = False
        report.problems.append(problem)
        if report.first_bad is None:
            report.first_bad = problem

    for row in rows:
        if row.run_id != run:
            run, prev, want, broken = row.run_id, GENESIS_HASH, 1, False
            report.runs += 1
        report.events += 1
        counts[row.run_id] = row.seq
        if broken:
            continue
        reason = None
        where = row.seq
        if row.seq != want:
            reason = f"expected seq {want}, found {row.seq} (an event is missing)"
            where = want  # name the missing event, as for a log cut short below
        elif row.prev_hash != prev:
            reason = "prev_hash does not match the previous event's hash"
        elif sha(prev.encode("ascii") + row.body.encode("utf-8")).hexdigest() != row.hash:
            reason = "hash does not match the event's content (the event was altered)"
        elif f',"run_id":"{row.run_id}","seq":{row.seq},"type":"' not in row.body:
            reason = "the event's body belongs to another run or position"
        if reason is not None:
            bad(row.run_id, where, reason)
            broken = True
            continue
        prev = row.hash
        want += 1
    for run_id, expected in sorted((expected_counts or {}).items()):
        seen = counts.get(run_id, 0)
        if seen < expected and not any(p["run_id"] == run_id for p in report.problems):
            bad(run_id, seen + 1, f"the log ends at seq {seen} but {expected} events were recorded")
    return report
