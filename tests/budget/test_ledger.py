"""The budget ledger: reserve before a call, settle after, never overspend -- even in a race."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

from nexus.budget.ledger import BudgetLedger, Reservation
from nexus.domain.budget import (
    DIMENSIONS,
    BudgetLimitExceeded,
    Limits,
    Scope,
    Spend,
    crossings,
)
from nexus.domain.errors import InternalError

D = Decimal
RUN = Scope("run", "r1")
CODER = Scope("agent", "coder")
TESTER = Scope("agent", "tester")
DRAFT = Scope("task", "draft")
CENT = Spend(D("0.01"))


def test_limits_set_read_replace_and_remove() -> None:
    ledger = BudgetLedger({RUN: Limits(usd=D("1"))})
    assert ledger.limits(RUN) == Limits(usd=D("1"))
    assert ledger.limits(CODER) == Limits()
    ledger.set_limits(RUN, Limits(tokens=10))
    assert ledger.limits(RUN) == Limits(tokens=10)
    ledger.set_limits(RUN, Limits())
    assert ledger.limits(RUN).is_empty
    ledger.reserve([RUN], Spend(D("100"), 10**9, 10**6))  # no limits: anything fits


def test_reserve_holds_on_every_scope_and_settle_records_actual() -> None:
    ledger = BudgetLedger({RUN: Limits(usd=D("1")), CODER: Limits(usd=D("0.5"))})
    held = ledger.reserve([RUN, CODER, DRAFT], Spend(D("0.2"), 100, 1))
    for scope in (RUN, CODER, DRAFT):
        assert ledger.reserved(scope) == Spend(D("0.2"), 100, 1)
        assert ledger.spent(scope) == Spend()
    assert ledger.open_reservations() == 1
    assert ledger.settle(held, Spend(D("0.15"), 90, 1)) == []
    for scope in (RUN, CODER, DRAFT):
        assert ledger.reserved(scope) == Spend()
        assert ledger.spent(scope) == Spend(D("0.15"), 90, 1)
    assert ledger.open_reservations() == 0


def test_reserve_counts_spent_and_reserved_and_is_all_or_nothing() -> None:
    ledger = BudgetLedger({RUN: Limits(usd=D("1")), CODER: Limits(usd=D("0.10"))})
    ledger.seed(CODER, Spend(D("0.095")))
    with pytest.raises(BudgetLimitExceeded) as info:
        ledger.reserve([RUN, CODER], Spend(D("0.012")))
    assert info.value.message == (
        "budget exceeded: agent coder would spend $0.0120 (spent $0.0950 + reserved $0.0000) "
        "over its limit $0.1000"
    )
    assert info.value.retryable is False
    assert ledger.reserved(RUN) == Spend()  # nothing held on the scope that had room
    first = ledger.reserve([RUN, CODER], Spend(D("0.004")))
    with pytest.raises(BudgetLimitExceeded, match=r"\(spent \$0\.0950 \+ reserved \$0\.0040\)"):
        ledger.reserve([RUN, CODER], Spend(D("0.002")))
    ledger.release(first)
    ledger.reserve([RUN, CODER], Spend(D("0.005")))  # exactly at the limit fits


def test_reserve_names_the_first_scope_and_dimension_over() -> None:
    ledger = BudgetLedger(
        {RUN: Limits(tokens=100, tool_calls=1), CODER: Limits(usd=D(0), tokens=10)}
    )
    with pytest.raises(BudgetLimitExceeded) as info:
        ledger.reserve([RUN, CODER], Spend(D("0.01"), 200, 2))
    assert (info.value.scope, info.value.dimension) == (RUN, "tokens")
    with pytest.raises(BudgetLimitExceeded) as info:
        ledger.reserve([CODER, RUN], Spend(D("0.01"), 200, 2))
    assert (info.value.scope, info.value.dimension) == (CODER, "usd")
    with pytest.raises(BudgetLimitExceeded) as info:
        ledger.reserve([RUN], Spend(tool_calls=2))
    assert info.value.message == (
        "budget exceeded: run would make 2 tool calls (made 0 + reserved 0) "
        "over its limit 1 tool call"
    )


def test_duplicate_scopes_are_charged_once() -> None:
    ledger = BudgetLedger({RUN: Limits(usd=D("0.02"))})
    held = ledger.reserve([RUN, RUN], CENT)
    assert held.scopes == (RUN,)
    assert ledger.reserved(RUN) == CENT
    ledger.settle(held, CENT)
    assert ledger.spent(RUN) == CENT


def test_overspend_is_recorded_and_later_reserves_fail() -> None:
    ledger = BudgetLedger({RUN: Limits(usd=D("0.10"))})
    held = ledger.reserve([RUN], Spend(D("0.05")))
    found = ledger.settle(held, Spend(D("0.12")))
    assert ledger.spent(RUN) == Spend(D("0.12"))
    assert [(c.percent, c.spent) for c in found] == [(80, D("0.12")), (100, D("0.12"))]
    assert found[1].is_limit
    with pytest.raises(BudgetLimitExceeded):
        ledger.reserve([RUN], Spend())  # even a free call: the run is over its limit
    ledger.set_limits(RUN, Limits(usd=D("1")))  # raised: work continues
    ledger.reserve([RUN], CENT)


def test_settle_reports_80_then_100_percent_once_each() -> None:
    ledger = BudgetLedger({RUN: Limits(usd=D("0.10")), CODER: Limits(tokens=100)})
    percents: list[tuple[str, int]] = []
    for _ in range(10):
        held = ledger.reserve([RUN, CODER], Spend(D("0.01"), 10))
        percents += [(c.scope.label, c.percent) for c in ledger.settle(held, Spend(D("0.01"), 10))]
    assert percents == [("run", 80), ("agent coder", 80), ("run", 100), ("agent coder", 100)]


def test_release_frees_the_hold_and_is_idempotent() -> None:
    ledger = BudgetLedger({RUN: Limits(usd=D("0.01"))})
    held = ledger.reserve([RUN], CENT)
    ledger.release(held)
    ledger.release(held)
    assert ledger.reserved(RUN) == Spend()
    assert ledger.spent(RUN) == Spend()
    settled = ledger.reserve([RUN], CENT)
    ledger.settle(settled, CENT)
    ledger.release(settled)  # safe in a finally block after settle
    assert ledger.spent(RUN) == CENT
    assert ledger.reserved(RUN) == Spend()


def test_settle_twice_or_after_release_raises() -> None:
    ledger = BudgetLedger({RUN: Limits(usd=D("1"))})
    held = ledger.reserve([RUN], CENT)
    ledger.settle(held, CENT)
    with pytest.raises(InternalError, match="already settled or released"):
        ledger.settle(held, CENT)
    released = ledger.reserve([RUN], CENT)
    ledger.release(released)
    with pytest.raises(InternalError, match="already settled or released"):
        ledger.settle(released, CENT)
    assert ledger.spent(RUN) == CENT


def test_foreign_reservations_and_negative_amounts_are_bugs() -> None:
    ledger, other = BudgetLedger(), BudgetLedger()
    theirs = other.reserve([RUN], CENT)
    with pytest.raises(InternalError, match="not from this ledger"):
        ledger.settle(theirs, CENT)
    with pytest.raises(InternalError, match="not from this ledger"):
        ledger.release(Reservation(1, (RUN,), CENT))
    with pytest.raises(InternalError, match="negative"):
        ledger.reserve([RUN], Spend(tokens=-1))
    mine = ledger.reserve([RUN], CENT)
    with pytest.raises(InternalError, match="negative"):
        ledger.settle(mine, Spend(D("-0.01")))
    with pytest.raises(InternalError, match="negative"):
        ledger.seed(RUN, Spend(tool_calls=-1))


def test_seed_replaces_spend_from_the_log() -> None:
    ledger = BudgetLedger({RUN: Limits(usd=D("0.10"))})
    ledger.seed(RUN, Spend(D("0.09"), 500, 3))
    ledger.seed(RUN, Spend(D("0.09"), 500, 3))  # folding the log twice changes nothing
    assert ledger.spent(RUN) == Spend(D("0.09"), 500, 3)
    with pytest.raises(BudgetLimitExceeded):
        ledger.reserve([RUN], Spend(D("0.02")))
    held = ledger.reserve([RUN], CENT)
    assert [c.percent for c in ledger.settle(held, CENT)] == [100]  # 80% was crossed before


def test_check_wall() -> None:
    ledger = BudgetLedger({RUN: Limits(wall_s=600.0)})
    ledger.check_wall(RUN, 599.9)
    ledger.check_wall(CODER, 10**6)  # no limit
    with pytest.raises(BudgetLimitExceeded) as info:
        ledger.check_wall(RUN, 600.0)
    assert info.value.dimension == "wall"
    assert "over its wall-time limit of 600s" in info.value.message


def test_snapshot_is_json_per_scope() -> None:
    ledger = BudgetLedger({RUN: Limits(usd=D("0.50"), wall_s=60.0)})
    ledger.settle(ledger.reserve([RUN, CODER], CENT), Spend(D("0.008"), 40))
    ledger.reserve([RUN], Spend(D("0.02"), 0, 1))
    assert ledger.snapshot() == {
        "agent:coder": {
            "scope": "agent",
            "key": "coder",
            "limits": {},
            "spent": {"usd": "0.008", "tokens": 40, "tool_calls": 0},
            "reserved": {"usd": "0", "tokens": 0, "tool_calls": 0},
        },
        "run:r1": {
            "scope": "run",
            "key": "r1",
            "limits": {"usd": "0.5", "wall": 60},
            "spent": {"usd": "0.008", "tokens": 40, "tool_calls": 0},
            "reserved": {"usd": "0.02", "tokens": 0, "tool_calls": 1},
        },
    }


# -- races ----------------------------------------------------------------------------------


def test_fifty_concurrent_tasks_against_a_budget_for_ten() -> None:
    ledger = BudgetLedger({RUN: Limits(usd=D("0.10"))})
    rng = random.Random(7)
    admitted: list[int] = []
    refused: list[BudgetLimitExceeded] = []

    async def call(i: int) -> None:
        try:
            held = ledger.reserve([RUN, Scope("agent", f"a{i % 5}")], CENT)
        except BudgetLimitExceeded as exc:
            refused.append(exc)
            return
        admitted.append(i)
        await asyncio.sleep(rng.uniform(0, 0.005))  # the provider call
        ledger.settle(held, CENT)

    async def main() -> None:
        async with asyncio.TaskGroup() as group:
            for i in range(50):
                group.create_task(call(i))

    asyncio.run(main())
    assert len(admitted) == 10
    assert len(refused) == 40
    assert ledger.spent(RUN).usd == D("0.10")
    assert ledger.reserved(RUN) == Spend()
    assert all(exc.scope == RUN for exc in refused)


def test_fifty_threads_against_a_budget_for_ten() -> None:
    ledger = BudgetLedger({RUN: Limits(usd=D("0.10"))})
    start = threading.Barrier(50, timeout=60)
    peak = [Spend()]
    peak_lock = threading.Lock()

    def call(i: int) -> bool:
        start.wait()
        try:
            held = ledger.reserve([RUN], CENT)
        except BudgetLimitExceeded:
            return False
        with peak_lock:
            peak[0] = max(peak[0], ledger.reserved(RUN), key=lambda s: s.usd)
        time.sleep(random.uniform(0, 0.005))
        ledger.settle(held, CENT)
        return True

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(call, range(50)))
    assert results.count(True) <= 10
    assert results.count(True) + results.count(False) == 50
    assert ledger.spent(RUN).usd <= D("0.10")
    assert ledger.spent(RUN).usd == D("0.01") * results.count(True)
    assert peak[0].usd <= D("0.10")
    # every admission was settled, so with a budget for exactly 10 the run spent it all
    assert results.count(True) == 10


# -- property: concurrent reservations never exceed a budget --------------------------------

SCOPES = (
    RUN,
    Scope("agent", "a0"),
    Scope("agent", "a1"),
    *(Scope("task", f"t{i}") for i in range(4)),
)


def _path(task: int) -> list[Scope]:
    """The scopes a call in task ``t<task>`` is charged to: run, its agent, the task."""
    return [RUN, SCOPES[1 + task % 2], SCOPES[3 + task]]


limits_strategy = st.builds(
    Limits,
    usd=st.none() | st.decimals(0, 1, places=2, allow_nan=False),
    tokens=st.none() | st.integers(0, 500),
    tool_calls=st.none() | st.integers(0, 6),
)
amounts = st.builds(
    Spend, st.decimals(0, D("0.3"), places=3, allow_nan=False), st.integers(0, 150),
    st.integers(0, 2),
)  # fmt: skip


class LedgerMachine(RuleBasedStateMachine):
    """Random reserve / settle (actual <= reserved) / release over nested scopes."""

    held = Bundle("held")

    def __init__(self) -> None:
        super().__init__()
        self.ledger = BudgetLedger()
        self.open = 0

    @rule(index=st.integers(0, len(SCOPES) - 1), limits=limits_strategy)
    def set_limits(self, index: int, limits: Limits) -> None:
        scope = SCOPES[index]
        # lowering a limit below spend is legal but breaks the invariant by design; keep >= spend
        spent_plus = self.ledger.spent(scope) + self.ledger.reserved(scope)
        for dimension in DIMENSIONS:
            limit = limits.get(dimension)
            if limit is not None and limit < spent_plus.get(dimension):
                return
        self.ledger.set_limits(scope, limits)

    @rule(target=held, task=st.integers(0, 3), amount=amounts)
    def reserve(self, task: int, amount: Spend) -> Reservation | None:
        refused: BudgetLimitExceeded | None = None
        try:
            reservation = self.ledger.reserve(_path(task), amount)
        except BudgetLimitExceeded as exc:
            refused = exc
        if refused is not None:  # a refusal must be justified by the figures it reports
            total = refused.spent + refused.reserved + refused.asked  # type: ignore[operator]
            assert total > refused.limit
            return None
        self.open += 1
        return reservation

    @rule(reservation=consumes(held), data=st.data())
    def settle(self, reservation: Reservation | None, data: st.DataObject) -> None:
        if reservation is None:
            return
        amount = reservation.amount
        actual = Spend(
            data.draw(st.decimals(0, amount.usd, places=3, allow_nan=False)),
            data.draw(st.integers(0, amount.tokens)),
            data.draw(st.integers(0, amount.tool_calls)),
        )
        expected = []  # the thresholds crossed, from the figures before and after
        for scope in reservation.scopes:
            before = self.ledger.spent(scope)
            limits = self.ledger.limits(scope)
            if not limits.is_empty:
                expected += crossings(before, before + actual, limits, scope)
        assert self.ledger.settle(reservation, actual) == expected
        self.open -= 1

    @rule(reservation=consumes(held))
    def release(self, reservation: Reservation | None) -> None:
        if reservation is None:
            return
        self.ledger.release(reservation)
        self.open -= 1

    @precondition(lambda self: self.open == 0)
    @invariant()
    def nothing_held_when_nothing_open(self) -> None:
        for scope in SCOPES:
            assert self.ledger.reserved(scope) == Spend()

    @invariant()
    def spent_plus_reserved_within_limits(self) -> None:
        assert self.ledger.open_reservations() == self.open
        for scope in SCOPES:
            limits = self.ledger.limits(scope)
            total = self.ledger.spent(scope) + self.ledger.reserved(scope)
            for dimension in DIMENSIONS:
                limit = limits.get(dimension)
                if limit is not None:
                    assert total.get(dimension) <= limit, (scope, dimension)


LedgerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestLedgerProperties = LedgerMachine.TestCase
