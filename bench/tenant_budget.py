"""Tenant budget overhead: what sharing a tenant's budget through the store adds per call.

With a tenant budget set, every model or tool call takes a hold before it runs
(one ``BEGIN IMMEDIATE`` write transaction that sweeps expired holds, reads the
tenant's spend and live holds, and inserts the hold) and settles after it (one
write transaction that drops the hold and adds the spend). Three figures:

* **reserve + settle**: the two store round trips of one call, back to back,
  through :class:`~nexus.budget.tenant.TenantBudget` (event loop to the
  store's thread and back, twice).
* **per model call, end to end**: a run of N agent tasks on an instant model,
  one call at a time (``max_parallel: 1``) and eight at a time, with no budget,
  with a run budget only (the in-process ledger: what estimating and holding a
  call costs without the store) and with a tenant budget; the difference
  between the last two is what sharing the tenant's budget adds per call.
* **first hold of a tenant with history**: the one-time start of the tenant's
  account from the calls its runs recorded (``Store.tenant_spend``).

Usage: ``python bench/tenant_budget.py [--quick] [--runs N] [--json PATH]``
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from _common import Metric, parser, percentile, repeat, report, runs_for
from nexus.budget.tenant import TenantBudget
from nexus.domain.budget import Limits, Spend
from nexus.domain.plan import AgentSpec, Plan, TaskSpec
from nexus.engine import Engine
from nexus.gateway.base import Usage
from nexus.gateway.pricing import PricingTable
from nexus.store.sqlite import SQLiteStore
from nexus.testing import Reply, TestModel

PRICING = PricingTable.from_mapping(
    {"currency": "USD", "models": {"fast:*": {"input": "0.5", "output": "1.5"}}}
)
BIG = Limits(usd=Decimal(10**9))
LABELS = {"none": "no budget", "run": "run budget", "tenant": "tenant budget"}


def fast_model() -> TestModel:
    """The kit's model, answering at once with 12 prompt and 3 completion tokens."""
    usage = Usage(prompt_tokens=12, completion_tokens=3)
    return TestModel(Reply("ok", usage=usage, finish_reason=None), record=False)


def calls_plan(n: int, folder: Path, max_parallel: int, budget: Limits | None = None) -> Plan:
    tasks = {f"t{i:05d}": TaskSpec(id=f"t{i:05d}", agent="a", prompt="go") for i in range(n)}
    agent = AgentSpec(name="a", model="fast:m", max_tokens=16)
    return Plan(
        name="calls",
        tasks=tasks,
        agents={"a": agent},
        workspace=str(folder),
        max_parallel=max_parallel,
        budget=None if budget is None else budget.to_dict(),
    )


async def round_trips(n: int) -> list[float]:
    """Microseconds of each reserve + settle, sorted."""
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        store = SQLiteStore.open(Path(tmp) / "nexus.db")
        try:
            budget = TenantBudget(store, "acme", BIG)
            amount, actual = Spend(Decimal("0.0001"), 40), Spend(Decimal("0.00003"), 15)
            took: list[float] = []
            for _ in range(n):
                start = time.perf_counter()
                hold = await budget.reserve(amount, run_id="R")
                await hold.settle(actual)
                took.append((time.perf_counter() - start) * 1e6)
            return sorted(took)
        finally:
            await store.close()


async def per_call(n: int, budget: str, max_parallel: int) -> float:
    """Milliseconds of wall time per model call over a run of ``n`` calls.

    ``budget`` is ``"none"``, ``"run"`` (a run budget) or ``"tenant"`` (a tenant budget).
    """
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        store = SQLiteStore.open(Path(tmp) / "nexus.db")
        try:
            engine = Engine(
                store,
                providers=fast_model().registry("fast"),
                pricing=PRICING,
                tenant="acme",
                tenant_budget=BIG if budget == "tenant" else None,
            )
            plan = calls_plan(n, Path(tmp), max_parallel, BIG if budget == "run" else None)
            start = time.perf_counter()
            result = await engine.start(plan, force=True)
            took = time.perf_counter() - start
            if result.status != "succeeded":
                raise RuntimeError(f"the run ended {result.status}")
            return took * 1000 / n
        finally:
            await store.close()


async def first_hold(history: int) -> float:
    """Milliseconds of the first hold of a tenant whose runs recorded ``history`` calls."""
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        store = SQLiteStore.open(Path(tmp) / "nexus.db")
        try:
            engine = Engine(
                store,
                providers=fast_model().registry("fast"),
                pricing=PRICING,
                tenant="acme",
            )
            await engine.start(calls_plan(history, Path(tmp), 16))
            budget = TenantBudget(store, "acme", BIG)
            start = time.perf_counter()
            hold = await budget.reserve(Spend(Decimal("0.0001"), 40), run_id="R")
            took = time.perf_counter() - start
            await hold.release()
            return took * 1000
        finally:
            await store.close()


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    n_trips = 300 if args.quick else 3000
    n_calls = 200 if args.quick else 1000
    history = 500 if args.quick else 5000
    runs = runs_for(args, 5)
    asyncio.run(round_trips(100))  # warm-up, not measured
    trips = repeat(runs, lambda: asyncio.run(round_trips(n_trips)))
    metrics = [
        Metric(f"reserve + settle p{q}", "us", [percentile(t, q) for t in trips], False)
        for q in (50, 95, 99)
    ]
    for parallel in (1, 8):
        figures = {
            budget: repeat(runs, lambda b=budget, p=parallel: asyncio.run(per_call(n_calls, b, p)))
            for budget in ("none", "run", "tenant")
        }
        medians = {budget: statistics.median(samples) for budget, samples in figures.items()}
        metrics += [
            Metric(f"per call, {LABELS[budget]} (parallel {parallel})", "ms", samples, False)
            for budget, samples in figures.items()
        ]
        metrics.append(
            Metric(
                f"  tenant minus run budget (parallel {parallel}, medians)",
                "ms",
                [medians["tenant"] - medians["run"]],
                False,
            )
        )
    firsts = repeat(max(1, runs // 2), lambda: asyncio.run(first_hold(history)))
    metrics.append(Metric(f"first hold, {history} recorded calls", "ms", firsts, False))
    info = {"round trips per run": n_trips, "calls per run": n_calls, "history": history}
    report("tenant_budget", metrics, args, started, info)


if __name__ == "__main__":
    main()
