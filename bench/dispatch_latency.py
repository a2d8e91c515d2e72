"""Scheduler dispatch latency: from a dependency's end to its dependent's start.

A chain of N tasks runs a non-pure ``FunctionTool`` (``stamp``) that records
``time.perf_counter()`` as its first action (the attempt began executing) and
again as its last (its result is about to be handed back). For task i,

    latency(i) = start(i) - end(i - 1)

which covers everything the engine does between the two: recording the
effect and the end of attempt i-1, the decider making task i ready and
emitting its ``attempt.started``, the group commit of those events (a durable
commit before a side-effecting attempt may begin), and the worker task
starting. The commit is part of it on purpose: that is the latency a real,
side-effecting task sees. The same chain with a *pure* stamping tool (run
inline, no commit before it) is reported alongside, and so is the cost of a
bare ``store.append`` of a 4-event batch, the floor the durable path stands on.

Usage: ``python bench/dispatch_latency.py [--quick] [--runs N] [--json PATH]``
"""

from __future__ import annotations

import asyncio
import bisect
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import Metric, parser, percentile, repeat, report, runs_for
from _plans import CommitMeter, chain_plan, task_id, worker_tools
from nexus.domain.canonical import GENESIS_HASH
from nexus.domain.events import Draft, EventType, seal
from nexus.engine import Engine
from nexus.store.base import RunRecord
from nexus.store.sqlite import SQLiteStore
from nexus.tools.base import FunctionTool

FLOOR_P95_MS = 2.0
QUANTILES = (50, 95, 99)


@dataclass(frozen=True)
class Latencies:
    total_ms: list[float]  # sorted
    commit_ms: list[float]  # sorted, the commits that fell inside each gap
    rest_ms: list[float]  # sorted, total minus commit


class Stamps:
    def __init__(self, n: int) -> None:
        self.starts = [0.0] * n
        self.ends = [0.0] * n

    def stamp(self, i: int) -> int:
        self.starts[i] = time.perf_counter()
        self.ends[i] = time.perf_counter()
        return i


async def one_run(n: int, pure: bool) -> Latencies:
    stamps = Stamps(n)
    tool = FunctionTool(name="stamp", fn=stamps.stamp, pure=pure)
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        home = Path(tmp)
        store = SQLiteStore.open(home / "nexus.db")
        try:
            meter = CommitMeter(store)
            engine = Engine(store, tools=worker_tools(tool))
            plan = chain_plan(n, "stamp", workspace=home, args=lambda i: {"i": i})
            result = await engine.start(plan)
            if result.status != "succeeded":
                raise RuntimeError(f"the chain ended {result.status}")
        finally:
            await store.close()
    # the commits awaited inside each gap: those that both began and ended in it
    total: list[float] = []
    commit: list[float] = []
    ends_of_commits = meter.ends
    for i in range(1, n):
        gap_start, gap_end = stamps.ends[i - 1], stamps.starts[i]
        lo = bisect.bisect_left(ends_of_commits, gap_start)
        hi = bisect.bisect_right(ends_of_commits, gap_end)
        inside = sum(
            d
            for d, e in zip(meter.durations[lo:hi], ends_of_commits[lo:hi], strict=True)
            if e - d >= gap_start
        )
        total.append((gap_end - gap_start) * 1000)
        commit.append(inside * 1000)
    rest = sorted(t - c for t, c in zip(total, commit, strict=True))
    return Latencies(sorted(total), sorted(commit), rest)


async def bare_appends(n: int) -> list[float]:
    """Milliseconds each ``await store.append`` of a 4-event batch takes, sorted."""
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        store = SQLiteStore.open(Path(tmp) / "nexus.db")
        try:
            run_id = "01BENCHAPPEND0000000000000"
            at = "2026-01-01T00:00:00.000000Z"
            first = seal(run_id, 1, Draft(EventType.RUN_STARTED, at, {}), GENESIS_HASH)
            record = RunRecord(run_id, "bare", "x", "running", at, at, None, tmp, 1)
            await store.create_run(record, first)
            prev, seq = first.hash, 1
            took: list[float] = []
            for i in range(n):
                batch = []
                for kind, data in (
                    (EventType.EFFECT_RECORDED, {"task": task_id(i), "key": str(i)}),
                    (EventType.ATTEMPT_FINISHED, {"task": task_id(i), "attempt": 1}),
                    (EventType.TASK_SUCCEEDED, {"task": task_id(i), "attempt": 1}),
                    (EventType.ATTEMPT_STARTED, {"task": task_id(i + 1), "attempt": 1}),
                ):
                    seq += 1
                    event = seal(run_id, seq, Draft(kind, at, data), prev)
                    prev = event.hash
                    batch.append(event)
                start = time.perf_counter()
                await store.append(run_id, batch, "running")
                took.append((time.perf_counter() - start) * 1000)
            return sorted(took)
        finally:
            await store.close()


def quantile_metrics(label: str, runs: list[list[float]], floor: float | None) -> list[Metric]:
    out = []
    for q in QUANTILES:
        out.append(
            Metric(
                f"{label} p{q}",
                "ms",
                [percentile(r, q) for r in runs],
                higher_is_better=False,
                floor=floor if q == 95 else None,
            )
        )
    return out


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    n = 300 if args.quick else 2000
    runs = runs_for(args, 5)
    asyncio.run(one_run(200, pure=False))  # warm-up, not measured
    durable = repeat(runs, lambda: asyncio.run(one_run(n, pure=False)))
    inline = repeat(runs, lambda: asyncio.run(one_run(n, pure=True)))
    bare = repeat(runs, lambda: asyncio.run(bare_appends(n)))
    metrics = [
        *quantile_metrics(
            "durable dispatch (non-pure tool)", [r.total_ms for r in durable], FLOOR_P95_MS
        ),
        *quantile_metrics("  of which awaiting the commit", [r.commit_ms for r in durable], None),
        *quantile_metrics("  of which the rest", [r.rest_ms for r in durable], None),
        *quantile_metrics(
            "inline dispatch (pure tool, no commit)", [r.total_ms for r in inline], None
        ),
        *quantile_metrics("bare store.append, 4 events", bare, None),
    ]
    # all samples of all runs together: the tail over ~runs*n dispatches
    pooled = sorted(x for r in durable for x in r.total_ms)
    over = sum(x >= FLOOR_P95_MS for x in pooled) / len(pooled)
    info = {
        "chain length": n,
        "pooled durable dispatches": len(pooled),
        "pooled durable p50/p95/p99/max ms": " / ".join(
            f"{percentile(pooled, q):.3f}" for q in (50, 95, 99, 100)
        ),
        "share of durable dispatches over 2 ms": f"{over:.1%}",
    }
    report("dispatch_latency", metrics, args, started, info)


if __name__ == "__main__":
    main()
