"""A tenant's budget shared through the store: processes and engines cannot overspend it together.

The model here sleeps, so the admitted calls are in flight together while the
others ask; the pricing makes each call cost exactly what it reserves ($1 a
completion token, ``max_tokens: 1``), so a tenant budget of $N fits exactly N
calls, whichever run (or process) makes them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.budget.tenant import GRACE_S, TenantBudget
from nexus.domain.budget import BudgetLimitExceeded, Limits, Spend
from nexus.domain.errors import BudgetExceeded, InternalError
from nexus.domain.events import Event, EventType
from nexus.domain.plan import AgentSpec, Plan, TaskSpec
from nexus.engine.facade import Engine, RunResult
from nexus.gateway.base import Usage
from nexus.gateway.pricing import PricingTable
from nexus.store.audit import verify_chain
from nexus.store.base import Hold, TenantFigures, spend_of
from nexus.store.sqlite import SQLiteStore
from nexus.testing import Reply, TestModel

E = EventType
D = Decimal
NONE = Spend()
#: $1 per completion token, prompts free: a call's reservation is its max_tokens in dollars.
PRICING = PricingTable.from_mapping(
    {"currency": "USD", "models": {"slow:*": {"input": "0", "output": "1000000"}}}
)


def slow_model(delay: float) -> TestModel:
    """Answers after ``delay`` seconds with one completion token ($1)."""
    return TestModel(Reply("ok", delay=delay, usage=Usage(prompt_tokens=3, completion_tokens=1)))


def wide_plan(name: str, tasks: int, folder: Path) -> Plan:
    spec = AgentSpec(name="a", model="slow:m", max_tokens=1)
    return Plan(
        name=name,
        tasks={f"t{i:02}": TaskSpec(id=f"t{i:02}", agent="a", prompt="go") for i in range(tasks)},
        agents={"a": spec},
        workspace=str(folder),
        max_parallel=tasks,
    )


def engine(store: SQLiteStore, usd: int | None, model: TestModel | None = None) -> Engine:
    return Engine(
        store,
        providers=(model or slow_model(0.0)).registry("slow"),
        pricing=PRICING,
        tenant="acme",
        tenant_budget=None if usd is None else Limits(usd=D(usd)),
    )


def model_effects(evs: list[Event]) -> list[dict[str, Any]]:
    return [e.data for e in evs if e.type is E.EFFECT_RECORDED and e.data["kind"] == "model"]


async def check_the_log(store: SQLiteStore, run_ids: list[str], calls: int) -> None:
    """Exactly ``calls`` calls were paid across the runs; each refusal is recorded and
    paused its task; the tenant's account matches its log and holds nothing."""
    paid = 0
    for run_id in run_ids:
        evs = await store.load(run_id)
        effects = model_effects(evs)
        admitted = [e for e in effects if e["error"] is None]
        refused = [e for e in effects if e["error"] is not None]
        assert all(e["spend"] == {"usd": "1", "tokens": 4} for e in admitted)
        assert {e["error"]["kind"] for e in refused} <= {"budget_exceeded"}
        assert {e["error"]["budget"]["scope"] for e in refused} <= {"tenant"}
        paused = [e for e in evs if e.type is E.TASK_PAUSED]
        assert len(paused) == len(refused)
        if refused:
            (exceeded,) = [e.data for e in evs if e.type is E.BUDGET_EXCEEDED]
            assert (exceeded["scope"], exceeded["key"]) == ("tenant", "acme")
        paid += len(admitted)
    assert paid == calls
    total = Spend(D(calls), 4 * calls, 0)
    assert spend_of(await store.tenant_spend("acme")) == total
    assert await store.tenant_figures("acme") == TenantFigures(total, NONE)
    assert verify_chain(store.chain()).ok


# -- across processes ---------------------------------------------------------------------

#: One process spending for tenant "acme": a run of N tasks, three calls in flight at a time
#: (so two processes' calls interleave), started when the file ``go`` appears.
SPENDER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from decimal import Decimal
    from pathlib import Path

    from nexus.domain.budget import Limits
    from nexus.domain.plan import AgentSpec, Plan, TaskSpec
    from nexus.engine.facade import Engine
    from nexus.gateway.base import Usage
    from nexus.gateway.pricing import PricingTable
    from nexus.store.sqlite import SQLiteStore
    from nexus.testing import Reply, TestModel

    db, folder, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    tasks, budget = int(sys.argv[4]), sys.argv[5]
    PRICING = PricingTable.from_mapping(
        {"currency": "USD", "models": {"slow:*": {"input": "0", "output": "1000000"}}}
    )
    stamps = []

    def slow(request):
        stamps.append(time.time())
        return Reply("ok", delay=0.1, usage=Usage(prompt_tokens=3, completion_tokens=1))

    async def main():
        store = SQLiteStore.open(db)
        try:
            engine = Engine(store, providers=TestModel(slow).registry("slow"),
                            pricing=PRICING, tenant="acme",
                            tenant_budget=Limits(usd=Decimal(budget)))
            plan = Plan(
                name=name,
                tasks={f"t{i:02}": TaskSpec(id=f"t{i:02}", agent="a", prompt="go")
                       for i in range(tasks)},
                agents={"a": AgentSpec(name="a", model="slow:m", max_tokens=1)},
                workspace=str(folder), max_parallel=3,
            )
            (folder / f"{name}.ready").touch()
            while not (folder / "go").exists():
                await asyncio.sleep(0.005)
            result = await engine.start(plan, force=True)
            print(json.dumps({**result.to_dict(), "calls": stamps}))
        finally:
            await store.close()

    asyncio.run(main())
    """
)


@pytest.mark.slow
def test_two_processes_cannot_overspend_the_tenant_together(tmp_path: Path) -> None:
    budget, tasks = 7, 10  # each run alone wants more than the tenant can pay
    script = tmp_path / "spender.py"
    script.write_text(SPENDER, encoding="utf-8")
    db = tmp_path / "nexus.db"
    SQLiteStore.open(db).engine.dispose()  # created (and migrated) before the race
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(db), str(tmp_path), name, str(tasks), str(budget)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("one", "two")
    ]
    try:
        limit = time.monotonic() + 60
        while not all((tmp_path / f"{n}.ready").exists() for n in ("one", "two")):
            assert time.monotonic() < limit, "the spenders did not get ready"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.01)
        (tmp_path / "go").touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], outputs
    results = [json.loads(out) for out, _ in outputs]
    assert [r["status"] for r in results] == ["paused", "paused"]
    admitted = [len(r["calls"]) for r in results]
    assert sum(admitted) == budget, admitted
    run_ids = [r["run_id"] for r in results]

    async def after() -> list[RunResult]:
        store = SQLiteStore.open(db)
        try:
            await check_the_log(store, run_ids, budget)
            # a raised tenant budget lets both go on to the end
            raised = engine(store, 2 * tasks)
            resumed = [await raised.resume(run_id) for run_id in run_ids]
            await check_the_log(store, run_ids, 2 * tasks)
            return resumed
        finally:
            await store.close()

    assert [r.status for r in asyncio.run(after())] == ["succeeded", "succeeded"]


# -- engines in one process ---------------------------------------------------------------


def test_two_engines_on_two_connections_admit_no_more_than_the_budget(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"
    models = (slow_model(0.1), slow_model(0.1))

    async def main() -> None:
        stores = (SQLiteStore.open(db), SQLiteStore.open(db))
        try:
            engines = [engine(store, 9, model) for store, model in zip(stores, models, strict=True)]
            plans = [wide_plan(f"run{i}", 12, tmp_path) for i in range(2)]
            results = await asyncio.wait_for(
                asyncio.gather(
                    *(e.start(p, force=True) for e, p in zip(engines, plans, strict=True))
                ),
                60,
            )
            assert [r.status for r in results] == ["paused", "paused"]
            assert models[0].calls + models[1].calls == 9
            run_ids = [r.run_id for r in results]
            await check_the_log(stores[0], run_ids, 9)

            # replay runs no calls and takes no holds: the account does not move
            account = await stores[1].tenant_figures("acme")
            for run_id in run_ids:
                report = await engines[0].replay(run_id)
                assert report.identical, report.first_divergence
            assert await stores[1].tenant_figures("acme") == account
        finally:
            for store in stores:
                await store.close()

    asyncio.run(main())


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limit=st.integers(min_value=0, max_value=12),
    calls=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=1),  # which store asks
            st.integers(min_value=1, max_value=4),  # dollars reserved
            st.integers(min_value=0, max_value=4),  # dollars it really cost (at most reserved)
            st.booleans(),  # failed before spending: released
        ),
        min_size=1,
        max_size=24,
    ),
)
def test_concurrent_holds_from_two_stores_never_exceed_the_limit(
    limit: int, calls: list[tuple[int, int, int, bool]]
) -> None:
    async def main(db: Path) -> None:
        stores = (SQLiteStore.open(db), SQLiteStore.open(db))
        budgets = [TenantBudget(store, "acme", Limits(usd=D(limit))) for store in stores]
        committed = D(0)  # spent + held as this test counts it: never above the store's view
        peak = D(0)
        expected = D(0)

        async def call(which: int, asked: int, cost: int, fails: bool) -> None:
            nonlocal committed, peak, expected
            refused: BudgetLimitExceeded | None = None
            try:
                hold = await budgets[which].reserve(Spend(usd=D(asked)), run_id="R")
            except BudgetLimitExceeded as refusal:
                refused = refusal
            if refused is not None:
                assert refused.scope == budgets[which].scope
                assert D(refused.spent) + D(refused.reserved) + asked > limit
                return
            committed += asked
            peak = max(peak, committed)
            await asyncio.sleep(0.001 * asked)
            actual = 0 if fails else min(cost, asked)
            committed -= asked - actual  # before the store frees it
            expected += actual
            if fails:
                await hold.release()
            else:
                await hold.settle(Spend(usd=D(actual)))

        try:
            await asyncio.gather(*(call(*c) for c in calls))
            assert peak <= limit
            figures = await stores[0].tenant_figures("acme")
            assert figures == TenantFigures(Spend(usd=expected), NONE)
        finally:
            for store in stores:
                await store.close()

    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(main(Path(folder) / "nexus.db"))


# -- the tenant budget's own rules --------------------------------------------------------


def test_a_refusal_names_the_tenant_and_its_figures(tmp_path: Path) -> None:
    async def main() -> BudgetLimitExceeded:
        store = SQLiteStore.open(tmp_path / "nexus.db")
        try:
            budget = TenantBudget(store, "acme", Limits(usd=D("1"), tokens=100))
            await budget.reserve(Spend(D("0.25"), 10), run_id="R")
            with pytest.raises(BudgetLimitExceeded) as refused:
                await budget.reserve(Spend(D("0.5"), 95), run_id="R")
            with pytest.raises(InternalError, match="negative"):
                await budget.reserve(Spend(D("-1")), run_id="R")
            return refused.value
        finally:
            await store.close()

    error = asyncio.run(main())
    assert (error.scope.label, error.dimension) == ("tenant acme", "tokens")
    assert (error.limit, error.spent, error.reserved, error.asked) == (100, 0, 10, 95)
    assert error.message == (
        "budget exceeded: tenant acme would use 95 tokens (used 0 + reserved 10) over its limit "
        "100 tokens"
    )
    assert error.to_data()["kind"] == "budget_exceeded"


def test_settle_is_exact_reports_each_crossing_once_and_release_frees(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"

    async def main() -> None:
        stores = (SQLiteStore.open(db), SQLiteStore.open(db))
        try:
            one, two = (TenantBudget(s, "acme", Limits(usd=D("10"))) for s in stores)
            first = await one.reserve(Spend(usd=D("8")), run_id="R")
            second = await two.reserve(Spend(usd=D("2")), run_id="S")
            # 7.9 crosses nothing; the other process's 0.2 crosses 80%
            assert await first.settle(Spend(D("7.9"), 5)) == []
            (warning,) = await second.settle(Spend(D("0.2"), 1))
            assert (warning.percent, warning.spent, warning.limit) == (80, D("8.1"), D("10"))
            with pytest.raises(InternalError, match="already settled"):
                await first.settle(Spend(usd=D("1")))
            await first.release()  # a no-op after settling
            assert await one.figures() == TenantFigures(Spend(D("8.1"), 6), NONE)

            held = await two.reserve(Spend(usd=D("1.9")), run_id="S")
            with pytest.raises(BudgetLimitExceeded):
                await one.reserve(Spend(usd=D("0.01")), run_id="R")
            await held.release()
            await held.release()
            last = await one.reserve(Spend(usd=D("1.9")), run_id="R")
            (limit,) = await last.settle(Spend(usd=D("1.9000000000000000000000000000001")))
            assert limit.percent == 100
            assert limit.spent == D("10.0000000000000000000000000000001")
        finally:
            for store in stores:
                await store.close()

    asyncio.run(main())


def test_a_dead_processs_hold_expires(tmp_path: Path) -> None:
    async def main() -> None:
        store = SQLiteStore.open(tmp_path / "nexus.db")
        try:
            limits = Limits(usd=D("1"))
            dead = TenantBudget(store, "acme", limits, hold_s=0.3)
            await dead.reserve(Spend(usd=D("1")), run_id="R")  # then the process died
            alive = TenantBudget(store, "acme", limits)
            with pytest.raises(BudgetLimitExceeded):
                await alive.reserve(Spend(usd=D("1")), run_id="S")
            await asyncio.sleep(0.4)
            await alive.reserve(Spend(usd=D("1")), run_id="S")

            # with a deadline, a hold lasts until it, plus a grace
            loop = asyncio.get_running_loop()
            before = time.time()
            timed = await alive.reserve(NONE, run_id="S", deadline=loop.time() + 5)
            assert before + 5 + GRACE_S <= timed.hold.expires_at <= time.time() + 5 + GRACE_S
        finally:
            await store.close()

    asyncio.run(main())


def test_resuming_a_run_drops_the_holds_its_dead_process_left(tmp_path: Path) -> None:
    db = tmp_path / "nexus.db"

    async def main() -> None:
        store = SQLiteStore.open(db)
        try:
            paused = await engine(store, 2).start(wide_plan("p", 4, tmp_path), force=True)
            assert paused.status == "paused"
            # its process "died" holding the tenant's whole (raised) budget
            ghost = Hold("01GHOST0000000000000000000", "acme", paused.run_id, Spend(D(4)), 1e12)
            assert await store.tenant_reserve(ghost, Limits(usd=D(100))) is None
            other = await store.tenant_figures("acme")
            assert other.held == Spend(D(4))
            resumed = await engine(store, 4).resume(paused.run_id)
            assert resumed.status == "succeeded"
            await check_the_log(store, [paused.run_id], 4)
        finally:
            await store.close()

    asyncio.run(main())


def test_spend_recorded_without_a_tenant_budget_counts_when_one_is_set(tmp_path: Path) -> None:
    async def main() -> None:
        store = SQLiteStore.open(tmp_path / "nexus.db")
        try:
            unbudgeted = await engine(store, None).start(wide_plan("free", 3, tmp_path))
            assert unbudgeted.status == "succeeded"
            budgeted = engine(store, 5)
            # the preflight sees the $3 already spent: $2 left, the plan wants $3
            with pytest.raises(BudgetExceeded, match="tenant acme"):
                await budgeted.start(wide_plan("capped", 3, tmp_path))
            capped = await budgeted.start(wide_plan("capped", 3, tmp_path), force=True)
            assert capped.status == "paused"
            await check_the_log(store, [unbudgeted.run_id, capped.run_id], 5)
        finally:
            await store.close()

    asyncio.run(main())


def test_tenant_thresholds_are_warned_from_the_log_and_replayed(tmp_path: Path) -> None:
    """80% warns and 100% stops for the tenant as for a run: once, from the recorded call."""
    plan = wide_plan("serial", 12, tmp_path)
    plan = Plan(
        name=plan.name,
        tasks=plan.tasks,
        agents=plan.agents,
        workspace=plan.workspace,
        max_parallel=1,
    )

    async def main(store: SQLiteStore) -> tuple[RunResult, list[Event], bool]:
        nexus = engine(store, 10)
        result = await nexus.start(plan, force=True)
        report = await nexus.replay(result.run_id)
        return result, await store.load(result.run_id), report.identical

    async def with_store() -> tuple[RunResult, list[Event], bool]:
        store = SQLiteStore.open(tmp_path / "nexus.db")
        try:
            return await asyncio.wait_for(main(store), 60)
        finally:
            await store.close()

    result, evs, identical = asyncio.run(with_store())
    assert result.status == "paused"
    crossings = [e for e in evs if e.type in (E.BUDGET_WARNING, E.BUDGET_EXCEEDED)]
    assert [(e.type, e.data["percent"], e.data["spent"]) for e in crossings] == [
        (E.BUDGET_WARNING, 80, "8"),
        (E.BUDGET_EXCEEDED, 100, "10"),
    ]
    assert all((e.data["scope"], e.data["key"], e.data["limit"]) == ("tenant", "acme", "10")
               for e in crossings)  # fmt: skip
    # each came from the call that crossed it, recorded with the call
    crossed = [e.data["tenant_budget"] for e in evs if "tenant_budget" in e.data]
    assert [c[0]["threshold"] for c in crossed] == ["0.8", "1"]
    assert identical
