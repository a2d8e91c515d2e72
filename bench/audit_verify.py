"""Audit verify throughput: events/s of ``verify_chain`` over a store of >= 200k events.

The store is built once, by running 10,000-task no-op fan-outs through the
engine (4 events per task, so 5 runs make 200,010 events with real bodies).
Then, each repeated:

* ``verify_chain(store.chain(), counts)`` -- what ``nexus audit verify`` does in
  process: read every (run, seq) link through SQLAlchemy and check it. This is
  the figure the floor is stated for.
* the read alone (iterate ``store.chain()``) and the check alone (``verify_chain``
  over rows already in memory), to show where the time goes.
* ``nexus audit verify`` as a subprocess with ``NEXUS_HOME`` set: end to end,
  interpreter start and imports included; and the same on an empty home, the
  fixed start-up cost.

Usage: ``python bench/audit_verify.py [--quick] [--runs N] [--json PATH]``
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, Metric, parser, repeat, report, runs_for
from _plans import PURE_NOOP, fan_plan
from nexus.engine import Engine
from nexus.store.audit import verify_chain
from nexus.store.base import ChainRow
from nexus.store.sqlite import SQLiteStore

FLOOR_EVENTS_PER_S = 200_000.0


async def build(home: Path, runs: int, tasks: int) -> int:
    store = SQLiteStore.open(home / "nexus.db")
    try:
        engine = Engine(store)
        for _ in range(runs):
            result = await engine.start(fan_plan(tasks, PURE_NOOP, workspace=home))
            if result.status != "succeeded":
                raise RuntimeError(f"build run ended {result.status}")
        return sum(r.events for r in await store.list_runs(limit=1 << 30))
    finally:
        await store.close()


async def counts_of(store: SQLiteStore) -> dict[str, int]:
    return {r.run_id: r.events for r in await store.list_runs(limit=1 << 62)}


def cli(home: Path) -> float:
    exe = Path(sys.executable).with_name("nexus")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "nexus.cli"]
    env = {**os.environ, "NEXUS_HOME": str(home)}
    start = time.perf_counter()
    done = subprocess.run(
        [*command, "audit", "verify"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0 or "chain intact" not in done.stdout:
        raise RuntimeError(f"nexus audit verify failed ({done.returncode}): {done.stderr}")
    return seconds


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    build_runs, tasks = (1, 2000) if args.quick else (5, 10_000)
    runs = runs_for(args, 5, quick=2)
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        home = Path(tmp) / "home"
        empty = Path(tmp) / "empty"
        t0 = time.perf_counter()
        total = asyncio.run(build(home, build_runs, tasks))
        build_s = time.perf_counter() - t0
        store = SQLiteStore.open(home / "nexus.db")
        counts = asyncio.run(counts_of(store))

        def verify_db() -> float:
            start = time.perf_counter()
            result = verify_chain(store.chain(), counts)
            seconds = time.perf_counter() - start
            if not result.ok or result.events != total:
                raise RuntimeError(f"verify failed: {result.to_dict()}")
            return seconds

        def read_only() -> float:
            start = time.perf_counter()
            n = sum(1 for _ in store.chain())
            seconds = time.perf_counter() - start
            assert n == total
            return seconds

        rows: list[ChainRow] = list(store.chain())

        def check_only() -> float:
            start = time.perf_counter()
            result = verify_chain(rows, counts)
            seconds = time.perf_counter() - start
            assert result.ok
            return seconds

        full = repeat(runs, verify_db)
        read = repeat(runs, read_only)
        check = repeat(runs, check_only)
        rows.clear()
        asyncio.run(store.close())
        cli_runs = runs_for(args, 3)
        cli_full = repeat(cli_runs, lambda: cli(home))
        cli_empty = repeat(cli_runs, lambda: cli(empty))
        size_mb = (home / "nexus.db").stat().st_size / 1e6
    metrics = [
        Metric(
            "verify_chain(store.chain(), counts)",
            "events/s",
            [total / s for s in full],
            higher_is_better=True,
            floor=FLOOR_EVENTS_PER_S,
        ),
        Metric("  read alone (iterate store.chain())", "rows/s", [total / s for s in read], True),
        Metric("  check alone (rows in memory)", "events/s", [total / s for s in check], True),
        Metric("nexus audit verify (CLI, end to end)", "s", cli_full, higher_is_better=False),
        Metric("  CLI on an empty home (start-up)", "s", cli_empty, higher_is_better=False),
        Metric(
            "CLI verify throughput (end to end)",
            "events/s",
            [total / s for s in cli_full],
            higher_is_better=True,
        ),
    ]
    info = {
        "events in store": total,
        "runs in store": build_runs,
        "database size MB": round(size_mb, 1),
        "store build seconds (not timed)": round(build_s, 1),
    }
    report("audit_verify", metrics, args, started, info)


if __name__ == "__main__":
    main()
