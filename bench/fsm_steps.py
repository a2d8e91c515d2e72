"""FSM step overhead: the time of one step of an ``fsm`` task against one plain task.

Three runs of N units of work each, on a fresh SQLite store, timed around
``await engine.start(plan)`` (planning, every event committed):

* ``plain chain``: N tasks, each needing the one before, each one tool call;
* ``fsm``: one task whose machine has one state calling the tool, with two
  transitions (``done`` when ``{{ fsm.step >= N }}``, else back to itself),
  ``max_steps`` N: N steps, each an attempt, a rendered ``with``, two
  conditions judged and an ``fsm.transitioned`` event;
* ``fsm, 2 states``: the same N steps alternating between two states (a
  state's body spec is built once per state and reused).

A ``loop`` task of N iterations is measured too, as the nearest construct.
The figure is seconds per unit (a task, a step, an iteration), and the ratio
of a step to a plain task. Both tools are measured: the built-in ``noop``
(pure: run inline, no commit before the attempt) and ``noop_worker`` (a
worker task after a commit, the path of a tool with side effects).
N is 1,000 (``max_steps`` and ``max_iterations`` allow no more).

Usage: ``python bench/fsm_steps.py [--quick] [--runs N] [--json PATH]``
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from _common import Metric, parser, report, runs_for
from _plans import PURE_NOOP, WORKER_NOOP, chain_plan, worker_tools
from nexus.domain.plan import (
    FsmPolicy,
    FsmState,
    FsmTransition,
    LoopPolicy,
    Plan,
    TaskSpec,
)
from nexus.engine import Engine
from nexus.store.sqlite import SQLiteStore


def plain(n: int, tool: str, workspace: Path) -> Plan:
    return chain_plan(n, tool, workspace=workspace, args=lambda i: {"i": i})


def machine(n: int, tool: str, workspace: Path, states: int = 1) -> Plan:
    names = [f"s{i}" for i in range(states)]
    body = {
        name: FsmState(
            tool=tool,
            args={"i": "{{ fsm.step }}"},
            transitions=(
                FsmTransition(to="done", when=f"{{{{ fsm.step >= {n} }}}}"),
                FsmTransition(to=names[(k + 1) % states]),
            ),
        )
        for k, name in enumerate(names)
    }
    fsm = FsmPolicy(initial=names[0], max_steps=n, states={**body, "done": FsmState(terminal=True)})
    task = TaskSpec(id="m", fsm=fsm)
    return Plan(name=f"fsm-{n}", tasks={"m": task}, workspace=str(workspace))


def looped(n: int, tool: str, workspace: Path) -> Plan:
    task = TaskSpec(
        id="l",
        tool=tool,
        args={"i": "{{ loop.iteration }}"},
        loop=LoopPolicy(until=f"{{{{ loop.iteration >= {n} }}}}", max_iterations=n),
    )
    return Plan(name=f"loop-{n}", tasks={"l": task}, workspace=str(workspace))


async def one_run(build: Callable[[Path], Plan]) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        home = Path(tmp)
        store = SQLiteStore.open(home / "nexus.db")
        try:
            engine = Engine(store, tools=worker_tools())
            plan = build(home)
            start, cpu = time.perf_counter(), time.process_time()
            result = await engine.start(plan)
            seconds = time.perf_counter() - start
            cpu = time.process_time() - cpu
            if result.status != "succeeded":
                raise RuntimeError(f"{plan.name}: run ended {result.status}")
            record = await store.get_run(result.run_id)
            assert record is not None
            return seconds, cpu, record.events
        finally:
            await store.close()


def timed(build: Callable[[Path], Plan]) -> tuple[float, float, int]:
    return asyncio.run(one_run(build))


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    n = 200 if args.quick else 1000
    metrics: list[Metric] = []
    for tool in (PURE_NOOP, WORKER_NOOP):
        timed(partial(machine, 50, tool))  # warm-up, not measured
        timed(partial(plain, 50, tool))
        cases = {
            "plain chain, per task": partial(plain, n, tool),
            "fsm, per step": partial(machine, n, tool),
            "fsm 2 states, per step": partial(machine, n, tool, states=2),
            "loop, per iteration": partial(looped, n, tool),
        }
        wall: dict[str, list[float]] = {label: [] for label in cases}
        cpu: dict[str, list[float]] = {label: [] for label in cases}
        events: dict[str, float] = {}
        # rounds of every case in turn: the machine's noise falls on all of them alike
        for _ in range(runs_for(args, 5)):
            for label, build in cases.items():
                gc.collect()
                seconds, cpu_seconds, count = timed(build)
                wall[label].append(seconds / n * 1e6)
                cpu[label].append(cpu_seconds / n * 1e6)
                events[label] = count / n
        for label in cases:
            extra = {"events_per_unit": events[label]}
            metrics.append(Metric(f"{tool} {label}", "us", wall[label], False, extra=extra))
            metrics.append(Metric(f"  {tool} {label}, CPU", "us", cpu[label], False))
        base = statistics.median(cpu["plain chain, per task"])
        for label in ("fsm, per step", "fsm 2 states, per step", "loop, per iteration"):
            metrics.append(
                Metric(
                    f"{tool} {label.split(',')[0]} / plain (CPU)",
                    "x",
                    [c / base for c in cpu[label]],
                    higher_is_better=False,
                    note="each CPU sample over the plain chain's median CPU",
                )
            )
    report("fsm_steps", metrics, args, started, {"units": n})


if __name__ == "__main__":
    main()
