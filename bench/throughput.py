"""Durable no-op throughput: tasks/s of ``Engine.start`` on a fresh SQLite store.

Shapes: a chain of N tasks (each needs the one before) and a fan-out of N
independent tasks (the plan's default ``max_parallel`` and 256). The timed
region is ``await engine.start(plan)``: planning the run, committing
``run.started``, driving every task and committing every event (group commit).
Each run gets a new store in a new temporary directory; one small unmeasured
run of each tool warms the process up first.

Two tools are measured, and reported apart:

* ``noop`` (built in, ``pure=True``): the controller runs it inline, without
  waiting for a commit before the attempt starts; its events are still
  committed before ``start`` returns. This is what the floor is stated for.
* ``noop_worker`` (a ``FunctionTool`` with ``pure=False``): the ordinary path
  of a tool with side effects: the ``attempt.started`` decision is committed,
  then the attempt runs as a worker task. A chain therefore pays one commit
  per task.

Usage: ``python bench/throughput.py [--quick] [--runs N] [--json PATH]``
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from _common import Metric, parser, repeat, report, runs_for
from _plans import PURE_NOOP, WORKER_NOOP, CommitMeter, chain_plan, fan_plan, worker_tools
from nexus.domain.plan import Plan
from nexus.engine import Engine
from nexus.store.sqlite import SQLiteStore

FLOOR_TASKS_PER_S = 5000.0


@dataclass(frozen=True)
class Sample:
    seconds: float
    events: int
    commits: int
    commit_seconds: float


@dataclass(frozen=True)
class Case:
    label: str
    shape: str  # "chain" or "fan"
    tool: str
    max_parallel: int


CASES = (
    Case("chain", "chain", PURE_NOOP, 16),
    Case("fan-out mp=16", "fan", PURE_NOOP, 16),
    Case("fan-out mp=256", "fan", PURE_NOOP, 256),
    Case("chain", "chain", WORKER_NOOP, 16),
    Case("fan-out mp=16", "fan", WORKER_NOOP, 16),
    Case("fan-out mp=256", "fan", WORKER_NOOP, 256),
)


def build(case: Case, n: int, workspace: Path) -> Plan:
    if case.shape == "chain":
        return chain_plan(n, case.tool, workspace=workspace, max_parallel=case.max_parallel)
    return fan_plan(n, case.tool, workspace=workspace, max_parallel=case.max_parallel)


async def one_run(case: Case, n: int) -> Sample:
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        home = Path(tmp)
        store = SQLiteStore.open(home / "nexus.db")
        try:
            meter = CommitMeter(store)
            engine = Engine(store, tools=worker_tools())
            plan = build(case, n, home)
            start = time.perf_counter()
            result = await engine.start(plan)
            seconds = time.perf_counter() - start
            if result.status != "succeeded":
                raise RuntimeError(f"{case}: run ended {result.status}")
            record = await store.get_run(result.run_id)
            assert record is not None
            return Sample(seconds, record.events, meter.commits, meter.seconds)
        finally:
            await store.close()


def run_case(case: Case, n: int) -> Sample:
    return asyncio.run(one_run(case, n))


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    n = 1000 if args.quick else 10_000
    metrics: list[Metric] = []
    info: dict[str, object] = {"tasks": n}
    # warm-up, not measured: imports, SQLAlchemy's statement caches, the allocator
    for case in (CASES[0], CASES[3]):
        run_case(case, 500)
    for case in CASES:
        runs = runs_for(args, 3)
        samples = repeat(runs, partial(run_case, case, n))
        pure = case.tool == PURE_NOOP
        path = "noop (pure, inline)" if pure else "noop_worker (non-pure, worker)"
        name = f"{path} {case.label}"
        events = samples[0].events
        rate = Metric(
            f"{name}: tasks/s",
            "tasks/s",
            [n / s.seconds for s in samples],
            higher_is_better=True,
            floor=FLOOR_TASKS_PER_S if pure else None,
            extra={"events_per_task": events / n, "events": events},
        )
        if not pure:
            share = rate.median / FLOOR_TASKS_PER_S
            rate.note = f"floor not claimed for this path; median is {share:.0%} of 5,000"
        metrics.append(rate)
        metrics.append(
            Metric(
                f"{name}: events/s",
                "events/s",
                [s.events / s.seconds for s in samples],
                higher_is_better=True,
            )
        )
        info[f"{name}: events/task"] = round(events / n, 4)
        info[f"{name}: commits/run"] = samples[0].commits
        waiting = statistics.median(s.commit_seconds / s.seconds for s in samples)
        info[f"{name}: share of wall time awaiting commits (median)"] = f"{waiting:.1%}"
    report("throughput", metrics, args, started, info)


if __name__ == "__main__":
    main()
