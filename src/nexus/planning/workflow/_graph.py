"""The task graph: ``needs`` name existing tasks without cycles, and reads follow needs.

A template that reads ``tasks.<id>`` must run after that task, so the reader
must depend on it, directly or through other tasks. :func:`check_refs` checks
what one task's reads show on their own and queues the indirect ones;
:func:`check_needs` checks the dependency lists; :func:`check_reads` then
proves every queued read transitive in one pass over the graph. Every
problem is reported (the first of each task's reads).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from nexus.domain.graph import find_cycle, topological_order
from nexus.planning.workflow._errors import Reporter, known

__all__ = ["Reads", "check_needs", "check_reads", "check_refs"]

#: Per task, the tasks its templates read that are not among its direct needs,
#: each with the field that reads it.
Reads = dict[str, list[tuple[str, str]]]


def check_refs(
    tid: str,
    needs: tuple[str, ...],
    refs: list[tuple[str, str]],
    tasks: Mapping[str, object],
    reads: Reads,
    report: Reporter,
) -> None:
    """Check what can be checked locally; queue indirect reads for :func:`check_reads`."""
    direct = set(needs)
    for ref, field in refs:
        if ref in direct:
            continue
        if ref == tid:
            report.error(
                f"reads its own output (tasks.{ref}); a task can only read the tasks it depends on",
                task=tid,
                field=field,
            )
        if ref not in tasks:
            hyphenated = [t for t in tasks if t.startswith(ref + "-")]
            hint = (
                f"; to read '{hyphenated[0]}' write tasks['{hyphenated[0]}']" if hyphenated else ""
            )
            report.error(
                f"reads tasks.{ref} but there is no task {ref!r}{hint}",
                task=tid,
                field=field,
            )
        reads.setdefault(tid, []).append((ref, field))


def check_needs(needs: dict[str, tuple[str, ...]], report: Reporter) -> bool:
    """Every dependency names another task, once, and the graph has no cycle.

    Returns:
        Whether the graph is sound (the reads can be checked over it).
    """
    found = len(report.problems)
    for tid, deps in needs.items():
        seen: set[str] = set()
        for dep in deps:
            if dep == tid:
                report.add("depends on itself", task=tid, field="needs")
            elif dep not in needs:
                close = difflib.get_close_matches(dep, needs, n=1)
                hint = f"did you mean {close[0]!r}?" if close else known("known tasks", needs)
                report.add(f"needs unknown task {dep!r} ({hint})", task=tid, field="needs")
            elif dep in seen:
                report.add(f"lists {dep!r} twice", task=tid, field="needs")
            seen.add(dep)
    if len(report.problems) > found:
        return False
    cycle = find_cycle(needs)
    if cycle is not None:
        report.add(
            "dependency cycle: " + " -> ".join(cycle) + " (each task needs the next)",
            task=cycle[0],
            field="needs",
        )
        return False
    return True


def check_reads(needs: dict[str, tuple[str, ...]], reads: Reads, report: Reporter) -> None:
    """Every task read by a template must be a transitive dependency of the reader.

    One pass in topological order carries, per task, a bit mask of the read
    targets among its ancestors (only tasks read other than through a direct
    ``needs`` entry get a bit). A mask is dropped once all its dependents
    have been visited, so at most the graph's width of masks are alive. Each
    reader's first stray read is reported, in document order.
    """
    targets = sorted({ref for pending in reads.values() for ref, _ in pending})
    bit = {ref: 1 << i for i, ref in enumerate(targets)}
    waiting: dict[str, int] = dict.fromkeys(needs, 0)
    for deps in needs.values():
        for dep in deps:
            waiting[dep] += 1
    masks: dict[str, int] = {}
    failures: list[tuple[str, str, str]] = []
    for tid in topological_order(needs):
        mask = 0
        for dep in needs[tid]:
            mask |= masks[dep] | bit.get(dep, 0)
            waiting[dep] -= 1
            if not waiting[dep]:
                del masks[dep]
        if waiting[tid]:
            masks[tid] = mask
        for ref, field in reads.get(tid, ()):
            if not mask & bit[ref]:
                failures.append((tid, ref, field))
                break
    position = {tid: i for i, tid in enumerate(needs)}
    for tid, ref, field in sorted(failures, key=lambda failure: position[failure[0]]):
        report.add(
            f"reads tasks.{ref} but does not depend on it; add it to needs",
            task=tid,
            field=field,
        )
