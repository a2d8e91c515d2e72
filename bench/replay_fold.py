"""Replay and fold of a 10,000-task chain: ``Engine.replay``, ``store.load``, ``RunState.fold``.

One run of a 10,000-task ``noop`` chain (40,002 events) is made once, not
timed. Then, each repeated:

* ``store.load(run_id)``: read the run's events and decode their bodies;
* ``RunState.fold(events)``: rebuild the run's state from them (what every
  ``status``/``inspect``/resume does after the load); its rate is also given
  per second of the process's CPU time, which a busy machine disturbs less
  than the wall clock (the fold is single-threaded and does no IO);
* ``Engine.replay(run_id)``: load, fold, and re-execute the run against its
  recorded effects in memory, comparing every new event's hash with the
  original (nothing is written). It must report ``identical``.

For an instruction counter (``valgrind --tool=callgrind``), ``--folds K``
makes the run, folds its events K times and stops, timing nothing, and
``--tasks N`` sets the chain's length: the difference of ``--folds 6`` and
``--folds 1`` over 5 is one fold, and the difference of ``--tasks 1100
--folds 0`` and ``--tasks 100 --folds 0`` over 1,000 is one task run by the
engine (see docs/benchmarks.md, event payload models).

Usage: ``python bench/replay_fold.py [--quick] [--runs N] [--json PATH] [--tasks N] [--folds K]``
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from _common import Metric, parser, repeat, report, runs_for
from _plans import PURE_NOOP, chain_plan
from nexus.domain.events import Event
from nexus.domain.state import RunState
from nexus.engine import Engine
from nexus.store.sqlite import SQLiteStore


async def make_run(engine: Engine, n: int, home: Path) -> str:
    result = await engine.start(chain_plan(n, PURE_NOOP, workspace=home))
    if result.status != "succeeded":
        raise RuntimeError(f"the chain ended {result.status}")
    return result.run_id


def main() -> None:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--tasks", type=int, default=None, help="the chain's length")
    cli.add_argument("--folds", type=int, default=None, help="only fold K times (no timing)")
    args = cli.parse_args()
    started = time.perf_counter()
    n = args.tasks or (1000 if args.quick else 10_000)
    runs = runs_for(args, 3, quick=2)
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        home = Path(tmp)
        loop = asyncio.new_event_loop()
        store = SQLiteStore.open(home / "nexus.db")
        engine = Engine(store)
        try:
            run_id = loop.run_until_complete(make_run(engine, n, home))
            events: list[Event] = loop.run_until_complete(store.load(run_id))
            if args.folds is not None:
                for _ in range(args.folds):
                    RunState.fold(events)
                return

            def load() -> float:
                start = time.perf_counter()
                loaded = loop.run_until_complete(store.load(run_id))
                seconds = time.perf_counter() - start
                assert len(loaded) == len(events)
                return seconds

            def fold() -> tuple[float, float]:
                start, cpu = time.perf_counter(), time.process_time()
                state = RunState.fold(events)
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
                assert str(state.status) == "succeeded"
                return seconds, cpu

            def replay() -> float:
                start = time.perf_counter()
                result = loop.run_until_complete(engine.replay(run_id))
                seconds = time.perf_counter() - start
                if not result.identical or result.replayed_events != len(events):
                    raise RuntimeError(f"replay diverged: {result.to_dict()}")
                return seconds

            load_s = repeat(runs, load)
            fold_s, fold_cpu = (list(column) for column in zip(*repeat(runs, fold), strict=True))
            replay_s = repeat(runs, replay)
        finally:
            loop.run_until_complete(store.close())
            loop.close()
    count = len(events)
    metrics = [
        Metric("Engine.replay (load + fold + re-execute)", "s", replay_s, False),
        Metric("  replay rate", "events/s", [count / s for s in replay_s], True),
        Metric("store.load(run_id)", "s", load_s, False),
        Metric("RunState.fold(events)", "s", fold_s, False),
        Metric("  fold rate", "events/s", [count / s for s in fold_s], True),
        Metric("  fold rate per CPU second", "events/s", [count / s for s in fold_cpu], True),
    ]
    report("replay_fold", metrics, args, started, {"tasks": n, "events": count})


if __name__ == "__main__":
    main()
