"""Behaviour-tree step overhead: one action of a ``bt`` task versus one plain task.

Two runs do the same N tool calls of one no-op tool:

* **plain**: a chain of N tool tasks (each needs the one before it);
* **bt**: one task whose tree is a ``sequence`` of N actions (each a node,
  each an attempt of the task, each recorded as a ``bt.ticked``, the root's
  end one more).

Each is run with the tool pure (run inline, no commit before it: the engine's
own cost per step shows) and not pure (a worker task after a durable commit:
what a real, side-effecting step sees). The figures are the wall time of
``Engine.start`` divided by N, the process CPU time it took divided by N (less
swayed by other work on a shared machine), and the events per step. A third figure folds
the bt run's log (``RunState.fold``), per step, which is what a resume or a
replay pays before it ticks on.

Usage: ``python bench/bt_overhead.py [--quick] [--runs N] [--json PATH]``
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from _common import Metric, parser, repeat, report, runs_for
from _plans import PURE_NOOP, WORKER_NOOP, chain_plan, worker_tools
from nexus.domain.bt import BtNode, BtSpec
from nexus.domain.plan import Plan, TaskSpec
from nexus.domain.state import RunState
from nexus.engine import Engine
from nexus.store.sqlite import SQLiteStore


def bt_plan(n: int, tool: str, *, workspace: Path) -> Plan:
    """One task: a sequence of ``n`` actions calling ``tool``."""
    actions = tuple(
        BtNode(id=f"a{i:04d}", kind="action", tool=tool, args={"i": i}) for i in range(n)
    )
    tree = BtSpec(root=BtNode(id="root", kind="sequence", children=actions), max_steps=n)
    return Plan(
        name=f"bt-{n}", tasks={"tree": TaskSpec(id="tree", bt=tree)}, workspace=str(workspace)
    )


async def one_run(n: int, tree: bool, pure: bool) -> tuple[float, int, float, float]:
    """Seconds of ``Engine.start`` per step, events, fold seconds per step, CPU s per step."""
    tool = PURE_NOOP if pure else WORKER_NOOP
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        home = Path(tmp)
        store = SQLiteStore.open(home / "nexus.db")
        try:
            engine = Engine(store, tools=worker_tools())
            if tree:
                plan = bt_plan(n, tool, workspace=home)
            else:
                plan = chain_plan(n, tool, workspace=home, args=lambda i: {"i": i})
            start, cpu = time.perf_counter(), time.process_time()
            result = await engine.start(plan)
            took, cpu = time.perf_counter() - start, time.process_time() - cpu
            if result.status != "succeeded":
                raise RuntimeError(f"the run ended {result.status}")
            events = await store.load(result.run_id)
            start = time.perf_counter()
            RunState.fold(events)
            fold = time.perf_counter() - start
        finally:
            await store.close()
    return took / n, len(events), fold / n, cpu / n


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    n = 100 if args.quick else 1000
    runs = runs_for(args, 5)
    asyncio.run(one_run(50, tree=True, pure=True))  # warm-up, not measured
    metrics: list[Metric] = []
    info: dict[str, object] = {"steps per run": n}
    for pure in (True, False):
        label = "pure tool, inline" if pure else "non-pure tool, after a commit"
        plain = repeat(runs, lambda pure=pure: asyncio.run(one_run(n, tree=False, pure=pure)))
        tree = repeat(runs, lambda pure=pure: asyncio.run(one_run(n, tree=True, pure=pure)))
        metrics.append(
            Metric(f"plain task, {label}", "ms/step", [r[0] * 1000 for r in plain], False)
        )
        metrics.append(Metric(f"bt action, {label}", "ms/step", [r[0] * 1000 for r in tree], False))
        metrics.append(
            Metric(f"  plain task CPU, {label}", "ms/step", [r[3] * 1000 for r in plain], False)
        )
        metrics.append(
            Metric(f"  bt action CPU, {label}", "ms/step", [r[3] * 1000 for r in tree], False)
        )
        metrics.append(
            Metric(
                f"  bt over plain, {label}",
                "ms/step",
                [(t[0] - p[0]) * 1000 for t, p in zip(tree, plain, strict=True)],
                False,
            )
        )
        if pure:
            metrics.append(
                Metric("fold, plain chain", "us/step", [r[2] * 1e6 for r in plain], False)
            )
            metrics.append(Metric("fold, bt task", "us/step", [r[2] * 1e6 for r in tree], False))
            info["events per step, plain / bt"] = f"{plain[0][1] / n:.2f} / {tree[0][1] / n:.2f}"
    report("bt_overhead", metrics, args, started, info)


if __name__ == "__main__":
    main()
