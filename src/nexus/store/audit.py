"""Audit verification: the hash chain, the projection, the signed heads, published heads.

Each stored link is checked for: contiguous ``seq`` from 1, ``prev_hash``
equal to the previous link's ``hash`` (the genesis hash first), ``hash`` equal
to ``sha256(prev_hash || body)``, and a body that belongs to this run and seq.
The run projection must agree with the chain: as many events, and a run it
says ended must end with that event.

An unkeyed chain only shows tampering by someone who did not recompute it, so
:func:`verify_store` also checks each run's signed head (see
:mod:`nexus.store.heads`): the signature under the home's key, the hash at the
signed seq, and that the log neither ends before nor goes on after it. Heads
documents -- the store manifest and any published with ``--against`` -- name
runs that must still be there, at least as long, with the same hash at the
published seq, in the same store (a swapped or emptied database has another id).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nexus.domain.canonical import GENESIS_HASH
from nexus.security.signing import PublicKey
from nexus.store.base import AuditSnapshot, ChainRow
from nexus.store.heads import HeadsDocument, heads_root

_TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(slots=True)
class AuditReport:
    ok: bool = True
    runs: int = 0
    events: int = 0
    first_bad: dict[str, Any] | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    signed: int = 0
    unsigned: list[str] = field(default_factory=list)
    key_id: str | None = None
    root: str | None = None
    # what the chain holds, as read: each run's last (seq, hash), its last event
    # type, and the hashes at the seqs asked for (signed and published heads)
    heads: dict[str, tuple[int, str]] = field(default_factory=dict, repr=False)
    last_type: dict[str, str] = field(default_factory=dict, repr=False)
    marked: dict[tuple[str, int], str] = field(default_factory=dict, repr=False)

    def bad(self, run_id: str | None, seq: int | None, reason: str) -> None:
        problem = {"run_id": run_id, "seq": seq, "reason": reason}
        self.ok = False
        self.problems.append(problem)
        if self.first_bad is None:
            self.first_bad = problem

    def has_problem(self, run_id: str) -> bool:
        return any(p["run_id"] == run_id for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "runs": self.runs,
            "events": self.events,
            "first_bad": self.first_bad,
            "problems": self.problems,
            "warnings": self.warnings,
            "signed": self.signed,
            "unsigned": self.unsigned,
            "key_id": self.key_id,
            "root": self.root,
        }


def _event_type(body: str) -> str:
    start = body.find(',"type":"')
    return "" if start < 0 else body[start + 9 : body.find('"', start + 9)]


def verify_chain(
    rows: Iterable[ChainRow],
    expected_counts: Mapping[str, int] | None = None,
    *,
    marks: Mapping[str, frozenset[int]] | None = None,
) -> AuditReport:
    """Verify links in (run, seq) order, reporting every broken link of every run.

    After a bad link the check goes on from it: the next link may follow either
    its stored hash or the hash its content gives (an altered event, or an
    altered hash), and an event after a gap starts a new stretch. So one edit
    is reported once, and a second edit further on is reported too.

    Args:
        expected_counts: the projection's event count per run; a log shorter
            than its count was cut at its tail.
        marks: per run, the seqs whose hashes to keep in ``report.marked``.
    """
    report = AuditReport()
    sha = hashlib.sha256
    run: str | None = None
    prev = GENESIS_HASH
    alt: str | None = None  # after an altered event: the hash its content gives
    want = 1
    counts = report.heads
    marks = marks or {}
    marked = report.marked
    wanted: frozenset[int] = frozenset()
    last: ChainRow | None = None
    bad = report.bad

    for row in rows:
        if row.run_id != run:
            if last is not None:
                report.last_type[last.run_id] = _event_type(last.body)
            run, prev, alt, want = row.run_id, GENESIS_HASH, None, 1
            wanted = marks.get(run, frozenset())
            report.runs += 1
        last = row
        report.events += 1
        counts[row.run_id] = (row.seq, row.hash)
        if row.seq in wanted:
            marked[(row.run_id, row.seq)] = row.hash
        reason = None
        where = row.seq
        if alt is not None:
            if row.prev_hash == alt:
                prev = alt
            alt = None
        if row.seq != want:
            reason = f"expected seq {want}, found {row.seq} (an event is missing)"
            where = want  # name the missing event, as for a log cut short below
        elif row.prev_hash != prev:
            reason = "prev_hash does not match the previous event's hash"
        else:
            computed = sha(prev.encode("ascii") + row.body.encode("utf-8")).hexdigest()
            if computed != row.hash:
                reason = "hash does not match the event's content (the event was altered)"
                alt = computed
            elif f',"run_id":"{row.run_id}","seq":{row.seq},"type":"' not in row.body:
                reason = "the event's body belongs to another run or position"
        if reason is not None:
            bad(row.run_id, where, reason)
        prev = row.hash
        want = row.seq + 1
    if last is not None:
        report.last_type[last.run_id] = _event_type(last.body)
    for run_id, expected in sorted((expected_counts or {}).items()):
        seen = counts.get(run_id, (0, ""))[0]
        if seen < expected:
            bad(run_id, seen + 1, f"the log ends at seq {seen} but {expected} events were recorded")
    return report


def verify_store(
    snapshot: AuditSnapshot,
    key: PublicKey | None,
    *,
    anchors: Sequence[HeadsDocument] = (),
    require_signed: bool = False,
    whole_store: bool = True,
) -> AuditReport:
    """Verify a store: its chains, projection, signed heads, and the heads documents given.

    Args:
        key: the public key heads are signed with (None: the home has no key).
        anchors: the store manifest and any published heads, each a promise of
            runs that must still be there, as long and with the same hashes.
        require_signed: a run without a signed head fails instead of warning.
        whole_store: the snapshot holds every run (not one run's): runs that
            are missing from it are reported.
    """
    projections = snapshot.projections
    marks: dict[str, set[int]] = {}
    for head in snapshot.signed.values():
        marks.setdefault(head.run_id, set()).add(head.seq)
    for doc in anchors:
        for head in doc.heads.values():
            marks.setdefault(head.run_id, set()).add(head.seq)
    report = verify_chain(
        snapshot.rows,
        {r: p.events for r, p in projections.items()},
        marks={r: frozenset(s) for r, s in marks.items()},
    )
    report.key_id = None if key is None else key.key_id
    report.root = heads_root(snapshot.signed.values())
    _check_projection(report, snapshot, whole_store)
    _check_signed(report, snapshot, key, require_signed)
    for doc in anchors:
        _check_anchor(report, snapshot, doc, whole_store)
    return report


def _check_projection(report: AuditReport, snapshot: AuditSnapshot, whole_store: bool) -> None:
    for run_id, (seq, _) in sorted(report.heads.items()):
        proj = snapshot.projections.get(run_id)
        if proj is None:
            if whole_store:
                report.bad(run_id, 1, "the log holds a run the run projection does not know")
            continue
        if seq > proj.events:
            report.bad(
                run_id,
                proj.events + 1,
                f"the log goes on to seq {seq} but the run's projection records {proj.events} "
                "events: events were added outside Nexus",
            )
        elif (
            seq == proj.events  # a shorter log was reported as cut by verify_chain
            and proj.status in _TERMINAL
            and report.last_type.get(run_id) != f"run.{proj.status}"
        ):
            report.bad(
                run_id,
                seq,
                f"the run's projection says {proj.status} but its last event (seq {seq}) is "
                f"{report.last_type.get(run_id)}: events were added after the run ended",
            )


def _check_signed(
    report: AuditReport, snapshot: AuditSnapshot, key: PublicKey | None, require_signed: bool
) -> None:
    store_id = snapshot.store_id or ""
    runs = sorted(set(report.heads) | set(snapshot.signed))
    for run_id in runs:
        head = snapshot.signed.get(run_id)
        if head is None:
            report.unsigned.append(run_id)
            if require_signed:
                report.bad(run_id, None, "the run has no signed head (--require-signed)")
            continue
        if key is None:
            continue
        report.signed += 1
        seq, _ = report.heads.get(run_id, (0, ""))
        if not head.valid(key, store_id):
            report.bad(
                run_id,
                head.seq,
                f"the signed head (seq {head.seq}) is not signed by this home's audit key "
                f"({key.key_id}): the heads were forged, or the database comes from another "
                "home or store",
            )
        elif seq < head.seq:
            report.bad(
                run_id,
                seq + 1,
                f"the log ends at seq {seq} but its signed head is at seq {head.seq}: "
                "the tail was cut",
            )
        elif report.marked.get((run_id, head.seq)) != head.hash:
            report.bad(
                run_id,
                head.seq,
                f"the chain's hash at seq {head.seq} differs from the signed head's: the log "
                "was rewritten and its hashes recomputed",
            )
        elif seq > head.seq:
            report.bad(
                run_id,
                head.seq + 1,
                f"the log goes on to seq {seq} past its signed head (seq {head.seq}): "
                "events were appended without the audit key",
            )
    if key is None and snapshot.signed:
        report.warnings.append(
            f"{len(snapshot.signed)} run(s) have signed heads but no public key is at hand "
            "to check them (no audit key in this home)"
        )
    if report.unsigned and not require_signed:
        report.warnings.append(
            f"{len(report.unsigned)} run(s) have no signed head (recorded before signing, or "
            "without a key); `nexus audit sign` signs them"
        )


def _check_anchor(
    report: AuditReport, snapshot: AuditSnapshot, doc: HeadsDocument, whole_store: bool
) -> None:
    if snapshot.store_id != doc.store_id:
        report.bad(
            None,
            None,
            f"the database is not the store {doc.source} records (store id {doc.store_id}, "
            f"found {snapshot.store_id}): it was swapped for another database or emptied",
        )
    for run_id, head in sorted(doc.heads.items()):
        if not whole_store and run_id not in snapshot.projections:
            continue
        seq, _ = report.heads.get(run_id, (0, ""))
        if seq == 0:
            report.bad(run_id, None, f"{doc.source} names run {run_id}, which is not in the store")
        elif seq < head.seq:
            report.bad(
                run_id,
                seq + 1,
                f"{doc.source} records {head.seq} events of run {run_id}; the store has {seq}",
            )
        elif report.marked.get((run_id, head.seq)) != head.hash:
            report.bad(
                run_id,
                head.seq,
                f"the hash at seq {head.seq} of run {run_id} differs from {doc.source}'s",
            )
