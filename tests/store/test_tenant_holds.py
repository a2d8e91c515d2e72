"""The Store contract for tenant budgets: holds, settling, expiry, and where spend starts.

Every test runs once per adapter of ``conftest.BACKENDS``. Calling
the factory twice opens two stores (two connections) on one database, which is
how two processes of one tenant see each other.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, text
from test_contract import (
    RUN_A,
    RUN_B,
    RUN_C,
    StoreFactory,
    chain_of,
    history,
    record,
    using,
)

from nexus.domain.budget import Limits, Spend
from nexus.store import migrate
from nexus.store.base import Hold, Store, TenantFigures, spend_of
from nexus.store.sqlite import SQLiteStore

D = Decimal
NONE = Spend()
LATER = 3600.0  # a hold that outlives the test


def hold(
    hold_id: str,
    amount: Spend,
    *,
    tenant: str = "acme",
    run_id: str = RUN_A,
    expires_in: float = LATER,
) -> Hold:
    return Hold(hold_id, tenant, run_id, amount, time.time() + expires_in)


def usd(amount: str) -> Spend:
    return Spend(usd=D(amount))


async def record_history(store: Store, run_id: str, tenant: str | None) -> None:
    events = chain_of(run_id, 4, history(tenant))
    await store.create_run(record(run_id), events[0])
    await store.append(run_id, events[1:], None)


# -- reserve ------------------------------------------------------------------------------


def test_holds_are_admitted_until_the_limit_then_refused_with_the_figures(
    store_factory: StoreFactory,
) -> None:
    limits = Limits(usd=D("1"), tool_calls=3)

    async def go(store: Store) -> None:
        assert await store.tenant_reserve(hold("h1", usd("0.6")), limits) is None
        assert await store.tenant_reserve(hold("h2", usd("0.4")), limits) is None
        # exactly at the limit fits; a cent more does not, and takes nothing
        refused = await store.tenant_reserve(hold("h3", usd("0.01")), limits)
        assert refused == TenantFigures(spent=NONE, held=usd("1"))
        assert await store.tenant_figures("acme") == TenantFigures(NONE, usd("1"))
        # other dimensions are limited on their own; zero asks fit while nothing is over
        assert await store.tenant_reserve(hold("h4", Spend(tool_calls=3)), limits) is None
        assert await store.tenant_reserve(hold("h5", NONE), limits) is None
        refused = await store.tenant_reserve(hold("h6", Spend(tool_calls=1)), limits)
        assert refused is not None
        assert refused.held == Spend(D("1"), 0, 3)
        # another tenant's budget is its own
        assert await store.tenant_reserve(hold("o1", usd("1"), tenant="other"), limits) is None

    using(store_factory, go)


def test_unlimited_dimensions_are_counted_but_never_refuse(store_factory: StoreFactory) -> None:
    async def go(store: Store) -> TenantFigures:
        big = Spend(D("1000"), 10**9, 10**6)
        assert await store.tenant_reserve(hold("h1", big), Limits(usd=D("1000"))) is None
        await store.tenant_settle(hold("h1", big), big)
        return await store.tenant_figures("acme")

    assert using(store_factory, go) == TenantFigures(Spend(D("1000"), 10**9, 10**6), NONE)


# -- settle and release -------------------------------------------------------------------


def test_settle_records_the_actual_spend_exactly_and_drops_the_hold(
    store_factory: StoreFactory,
) -> None:
    limits = Limits(usd=D("2000000"))
    tiny = D("0.000000000000000000000000001")  # beyond a float, and beyond 28 digits

    async def go(store: Store) -> None:
        h1, h2, h3 = hold("h1", usd("0.5")), hold("h2", usd("0.5")), hold("h3", usd("1000000"))
        for each in (h1, h2, h3):
            assert await store.tenant_reserve(each, limits) is None
        assert await store.tenant_settle(h1, Spend(D("0.1"), 7, 0)) == Spend(D("0.1"), 7, 0)
        assert await store.tenant_settle(h2, Spend(D("0.2"), 3, 1)) == Spend(D("0.3"), 10, 1)
        # a call may cost more than it held: recorded in full
        after = await store.tenant_settle(h3, usd("1000000") + Spend(usd=tiny))
        assert after.usd == D("1000000.300000000000000000000000001")
        figures = await store.tenant_figures("acme")
        assert figures == TenantFigures(
            Spend(D("1000000.300000000000000000000000001"), 10, 1), NONE
        )
        assert str(figures.spent.usd) == "1000000.300000000000000000000000001"

    using(store_factory, go)


def test_settling_an_expired_hold_still_records_the_spend(store_factory: StoreFactory) -> None:
    async def go(store: Store) -> TenantFigures:
        gone = hold("h1", usd("1"), expires_in=-1)
        assert await store.tenant_reserve(gone, Limits(usd=D("1"))) is None
        assert await store.tenant_reserve(hold("h2", usd("1")), Limits(usd=D("1"))) is None
        await store.tenant_settle(gone, usd("0.75"))  # money spent is never dropped
        return await store.tenant_figures("acme")

    assert using(store_factory, go) == TenantFigures(usd("0.75"), usd("1"))


def test_release_frees_the_hold_and_is_idempotent(store_factory: StoreFactory) -> None:
    limits = Limits(usd=D("1"))

    async def go(store: Store) -> None:
        first = hold("h1", usd("1"))
        assert await store.tenant_reserve(first, limits) is None
        assert await store.tenant_reserve(hold("h2", usd("1")), limits) is not None
        await store.tenant_release(first)
        await store.tenant_release(first)
        assert await store.tenant_figures("acme") == TenantFigures(NONE, NONE)
        assert await store.tenant_reserve(hold("h3", usd("1")), limits) is None

    using(store_factory, go)


def test_a_resumed_run_drops_the_holds_it_left(store_factory: StoreFactory) -> None:
    limits = Limits(tool_calls=10)

    async def go(store: Store) -> None:
        for i, run_id in enumerate((RUN_A, RUN_A, RUN_B)):
            each = hold(f"h{i}", Spend(tool_calls=2), run_id=run_id)
            assert await store.tenant_reserve(each, limits) is None
        theirs = hold("x", Spend(tool_calls=2), tenant="other")
        assert await store.tenant_reserve(theirs, limits) is None
        assert await store.tenant_release_run("acme", RUN_A) == 2
        assert await store.tenant_release_run("acme", RUN_A) == 0
        assert await store.tenant_figures("acme") == TenantFigures(NONE, Spend(tool_calls=2))
        assert await store.tenant_figures("other") == TenantFigures(NONE, Spend(tool_calls=2))

    using(store_factory, go)


# -- expiry -------------------------------------------------------------------------------


def test_an_expired_hold_does_not_count(store_factory: StoreFactory) -> None:
    limits = Limits(usd=D("1"))

    async def go(store: Store) -> None:
        # a process died holding the whole budget; its hold expired
        assert await store.tenant_reserve(hold("dead", usd("1"), expires_in=-1), limits) is None
        assert await store.tenant_figures("acme") == TenantFigures(NONE, NONE)
        assert await store.tenant_reserve(hold("h1", usd("1")), limits) is None
        # a hold that expires soon counts until it does
        assert await store.tenant_release_run("acme", RUN_A) == 1  # the expired one was swept
        soon = hold("soon", usd("1"), expires_in=0.3)
        assert await store.tenant_reserve(soon, limits) is None
        assert await store.tenant_reserve(hold("h2", usd("1")), limits) is not None
        await asyncio.sleep(0.4)
        assert await store.tenant_reserve(hold("h3", usd("1")), limits) is None

    using(store_factory, go)


# -- where spend starts -------------------------------------------------------------------


def test_spend_starts_from_the_calls_the_tenants_runs_recorded(
    store_factory: StoreFactory,
) -> None:
    async def go(store: Store) -> None:
        for run_id, tenant in ((RUN_A, "acme"), (RUN_B, None), (RUN_C, "acme")):
            await record_history(store, run_id, tenant)
        recorded = spend_of(await store.tenant_spend("acme"))
        assert recorded == Spend(D("0.5"), 20, 2)
        # read before the first hold: nothing is written
        assert await store.tenant_figures("acme") == TenantFigures(recorded, NONE)
        assert await store.tenant_figures("default") == TenantFigures(Spend(D("0.25"), 10, 1), NONE)
        refused = await store.tenant_reserve(hold("h1", usd("0.6")), Limits(usd=D("1")))
        assert refused == TenantFigures(recorded, NONE)
        assert await store.tenant_reserve(hold("h2", usd("0.5")), Limits(usd=D("1"))) is None
        await store.tenant_settle(hold("h2", usd("0.5")), usd("0.5"))
        assert await store.tenant_figures("acme") == TenantFigures(Spend(D("1"), 20, 2), NONE)

    using(store_factory, go)


def test_two_connections_share_one_budget(store_factory: StoreFactory) -> None:
    """Many holds racing from two stores on one database: never more than the limit."""
    limits = Limits(usd=D("7"))

    async def go() -> None:
        stores = (store_factory(), store_factory())
        try:
            asks = [
                stores[i % 2].tenant_reserve(hold(f"h{i:02}", usd("1")), limits) for i in range(30)
            ]
            answers = await asyncio.gather(*asks)
            assert sum(answer is None for answer in answers) == 7
            for answer in answers:
                assert answer is None or answer.spent + answer.held == usd("7")
            assert await stores[0].tenant_figures("acme") == TenantFigures(NONE, usd("7"))
        finally:
            for store in stores:
                await store.close()

    asyncio.run(go())


# -- SQLite: a home migrated from before tenant budgets -----------------------------------


def test_a_migrated_home_keeps_the_tenants_history(tmp_path: Path) -> None:
    """Runs recorded at revision 0001 count once the store is at head."""
    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        migrate.upgrade(engine, "0001")
        with engine.begin() as conn:
            for run_id in (RUN_A, RUN_B):
                for event in chain_of(run_id, 4, history("acme")):
                    conn.execute(
                        text(
                            "INSERT INTO events (run_id, seq, type, at, task, prev_hash, hash,"
                            " body) VALUES (:r, :s, :t, :a, NULL, :p, :h, :b)"
                        ),
                        {
                            "r": run_id,
                            "s": event.seq,
                            "t": str(event.type),
                            "a": event.at,
                            "p": event.prev_hash,
                            "h": event.hash,
                            "b": event.body,
                        },
                    )
    finally:
        engine.dispose()

    async def go() -> tuple[TenantFigures | None, TenantFigures]:
        store = SQLiteStore.open(path)  # migrates to head
        try:
            refused = await store.tenant_reserve(hold("h1", usd("0.6")), Limits(usd=D("1")))
            return refused, await store.tenant_figures("acme")
        finally:
            await store.close()

    refused, figures = asyncio.run(go())
    assert refused == TenantFigures(Spend(D("0.5"), 20, 2), NONE)
    assert figures == TenantFigures(Spend(D("0.5"), 20, 2), NONE)
