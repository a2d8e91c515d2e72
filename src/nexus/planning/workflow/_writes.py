"""A task's ``writes:`` and the workflow's ``conflicts:``, checked.

Each literal entry is put in its canonical form here (see
:mod:`nexus.domain.writes`: a path outside the workspace, a glob or a bad key
is a problem naming the task and ``writes[i]``); a templated entry is checked
as a template (it reads what the task's body may read) and judged by the
decider when an attempt starts.

With ``conflicts: reject`` two tasks whose literal writes overlap must be
ordered by ``needs`` (one depends on the other, directly or through other
tasks); otherwise the problem names both tasks and the resources. Templated
entries cannot be judged before the run: the engine serialises them (as it
does under ``serialize``), and so it does the items of one ``foreach`` task.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import islice

from nexus.domain.graph import topological_order
from nexus.domain.plan import TaskSpec
from nexus.domain.writes import MAX_WRITES, WritesError, directories, resource
from nexus.planning.workflow._errors import MAX_PROBLEMS, Reporter
from nexus.templating import is_template

__all__ = ["check_conflicts", "compile_writes"]


def compile_writes(tid: str, entries: list[str], report: Reporter) -> tuple[str, ...]:
    """The task's writes as the plan holds them: canonical literals (each once), templates as
    written. Every bad entry is reported."""
    if len(entries) > MAX_WRITES:
        report.error(
            f"declares {len(entries)} resources; the limit is {MAX_WRITES} (name the "
            "directory that holds them)",
            task=tid,
            field="writes",
        )
    out: dict[str, None] = {}
    for index, entry in enumerate(entries):
        if is_template(entry):
            out[entry] = None
            continue
        try:
            out[resource(entry)] = None
        except WritesError as exc:
            report.add(str(exc), task=tid, field=f"writes[{index}]")
    return tuple(out)


def check_conflicts(tasks: Mapping[str, TaskSpec], report: Reporter) -> None:
    """Under ``conflicts: reject``: report each pair of tasks not ordered by ``needs`` whose
    literal writes overlap, naming both tasks and the resources (the later task in the file
    carries the problem; problems in file order, at most :data:`MAX_PROBLEMS`)."""
    owners: dict[str, list[str]] = {}
    for tid, spec in tasks.items():
        for entry in spec.writes:
            if not is_template(entry):
                owners.setdefault(entry, []).append(tid)
    if not owners:
        return
    position = {tid: index for index, tid in enumerate(tasks)}
    found = sorted(islice(_conflicts(owners, position, tasks), MAX_PROBLEMS))
    for _, _, task, message in found:
        report.add(message, task=task, field="writes")


def _conflicts(
    owners: dict[str, list[str]], position: dict[str, int], tasks: Mapping[str, TaskSpec]
) -> Iterator[tuple[int, int, str, str]]:
    """Each pair of unordered tasks with overlapping writes, once: (later, earlier, the later
    task, the problem)."""
    # a barrier's needs order it only when they must have ended before it starts
    order = _Order({tid: spec.settled_needs for tid, spec in tasks.items()})
    seen: set[tuple[str, str]] = set()
    for path in sorted(owners):
        # what overlaps ``path``: the same resource, or a directory that holds it
        for holder in (path, *directories(path)):
            for a in owners.get(holder, ()):
                for b in owners[path]:
                    pair = (a, b) if position[a] < position[b] else (b, a)
                    if a == b or pair in seen or order.ordered(a, b):
                        continue
                    seen.add(pair)
                    what = (
                        f"both write {path!r}"
                        if holder == path
                        else f"{b!r} writes {path!r}, inside {holder!r}, which {a!r} writes"
                    )
                    message = (
                        f"tasks {pair[0]!r} and {pair[1]!r} may run at the same time and {what} "
                        "(conflicts: reject): order them with needs, or set conflicts: "
                        "serialize to run them one at a time"
                    )
                    yield position[pair[1]], position[pair[0]], pair[1], message


class _Order:
    """Whether ``needs`` orders two tasks: each task's transitive dependencies as a bit set
    over the topological order (one pass; a query is two ANDs)."""

    __slots__ = ("below", "bit")

    def __init__(self, needs: Mapping[str, tuple[str, ...]]) -> None:
        order = topological_order(needs)
        self.bit = {tid: 1 << index for index, tid in enumerate(order)}
        self.below: dict[str, int] = {}
        for tid in order:
            mask = 0
            for dep in needs[tid]:
                mask |= self.below[dep] | self.bit[dep]
            self.below[tid] = mask

    def ordered(self, a: str, b: str) -> bool:
        """Whether one of ``a``, ``b`` needs the other, directly or not."""
        return bool(self.below[b] & self.bit[a] or self.below[a] & self.bit[b])
