"""Budget values: spend arithmetic, limits from workflow files, scopes, crossings, errors."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexus.domain.budget import (
    BudgetLimitExceeded,
    Crossing,
    Limits,
    Scope,
    Spend,
    budget_exceeded_error,
    crossings,
    describe,
    fraction,
    money_text,
    wall_exceeded_error,
)
from nexus.domain.errors import BudgetExceeded, ErrorKind, UserError

D = Decimal
RUN = Scope("run", "r1")
CODER = Scope("agent", "coder")

# -- Spend ----------------------------------------------------------------------------------


def test_spend_adds_and_subtracts_every_dimension() -> None:
    a = Spend(D("0.0125"), 100, 1)
    b = Spend(D("0.0075"), 50, 2)
    assert a + b == Spend(D("0.0200"), 150, 3)
    assert a - b == Spend(D("0.0050"), 50, -1)
    assert (a - b).is_negative
    assert not a.is_negative


def test_spend_default_is_zero_and_int_usd_becomes_decimal() -> None:
    assert Spend() == Spend(D(0), 0, 0)
    assert isinstance(Spend(3).usd, Decimal)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0.1, True, "0.1"])
def test_spend_refuses_float_bool_and_text_money(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"Spend\.usd must be a Decimal"):
        Spend(bad)


def test_spend_dict_round_trip_keeps_money_exact() -> None:
    spend = Spend(D("0.00000001"), 12, 3)
    data = spend.to_dict()
    assert data == {"usd": "0.00000001", "tokens": 12, "tool_calls": 3}
    assert Spend.from_dict(data) == spend
    assert Spend.from_dict({}) == Spend()


def test_spend_sum_is_exact_where_float_is_not() -> None:
    total = sum((Spend(D("0.1")) for _ in range(10)), Spend())
    assert total.usd == D("1.0")
    assert sum(0.1 for _ in range(10)) != 1.0


def test_spend_arithmetic_beyond_exact_precision_raises_instead_of_rounding() -> None:
    huge = Spend(D("1E+70"))
    with pytest.raises(ArithmeticError):
        _ = huge + Spend(D("0.1"))


money = st.decimals(min_value=0, max_value=10**6, places=8, allow_nan=False)
spends = st.builds(Spend, money, st.integers(0, 10**9), st.integers(0, 10**6))


@given(st.lists(spends, max_size=30), spends)
def test_spend_arithmetic_is_exact(items: list[Spend], other: Spend) -> None:
    total = sum(items, Spend())
    assert Fraction(total.usd) == sum((Fraction(s.usd) for s in items), Fraction(0))
    assert total.tokens == sum(s.tokens for s in items)
    assert total.tool_calls == sum(s.tool_calls for s in items)
    assert total + other - other == total
    assert Spend.from_dict(total.to_dict()) == total


# -- Limits ---------------------------------------------------------------------------------


def test_limits_read_the_workflow_form() -> None:
    limits = Limits.from_dict(
        {"usd": "5.00", "tokens": 100_000, "tool_calls": 200, "wall": 600}, "budget"
    )
    assert limits == Limits(D("5.00"), 100_000, 200, 600.0)
    assert limits.to_dict() == {"usd": "5", "tokens": 100_000, "tool_calls": 200, "wall": 600}
    assert Limits.from_dict(limits.to_dict(), "budget") == limits


@pytest.mark.parametrize(
    ("usd", "expected"),
    [(5, D(5)), ("5.00", D(5)), (0.5, D("0.5")), ("$0.25", D("0.25")), (0, D(0))],
)
def test_limits_usd_forms(usd: Any, expected: Decimal) -> None:
    assert Limits.from_dict({"usd": usd}, "budget").usd == expected


@pytest.mark.parametrize(
    ("wall", "seconds"),
    [(600, 600.0), (1.5, 1.5), ("30s", 30.0), ("10m", 600.0), ("2h", 7200.0), ("1h30m", 5400.0),
     ("250ms", 0.25), ("90", 90.0), (" 1.5 d ", 129_600.0)],
)  # fmt: skip
def test_limits_wall_forms(wall: Any, seconds: float) -> None:
    assert Limits.from_dict({"wall": wall}, "budget").wall_s == seconds


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        ({"usd": -1}, "usd", "non-negative amount"),
        ({"usd": True}, "usd", "non-negative amount"),
        ({"usd": "five"}, "usd", "non-negative amount"),
        ({"usd": "NaN"}, "usd", "non-negative amount"),
        ({"usd": float("inf")}, "usd", "non-negative amount"),
        ({"usd": [5]}, "usd", "non-negative amount"),
        ({"tokens": -5}, "tokens", "whole number >= 0"),
        ({"tokens": 1.5}, "tokens", "whole number >= 0"),
        ({"tokens": False}, "tokens", "whole number >= 0"),
        ({"tool_calls": "many"}, "tool_calls", "whole number >= 0"),
        ({"wall": -3}, "wall", "a positive duration, not -3"),
        ({"wall": 0}, "wall", "a positive duration, not 0"),
        ({"wall": "-1m"}, "wall", "a number of seconds or a duration like '90s'.*, not '-1m'"),
        ({"wall": "soon"}, "wall", "a number of seconds or a duration like '90s'.*, not 'soon'"),
        ({"wall": True}, "wall", "a number of seconds or a duration .*, not True"),
        ({"wall": [60]}, "wall", "a number of seconds or a duration .*, not \\[60\\]"),
        ({"wall": 10**400}, "wall", "a positive duration"),
    ],
)
def test_limits_bad_values_name_where_and_field(
    data: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(UserError, match=rf"^agents\.coder\.budget\.{field}: must be .*{problem}"):
        Limits.from_dict(data, "agents.coder.budget")


def test_limits_unknown_key_lists_the_allowed_ones() -> None:
    with pytest.raises(UserError) as info:
        Limits.from_dict({"dollars": 5}, "budget")
    assert info.value.message == (
        "budget: unknown key 'dollars' (allowed: usd, tokens, tool_calls, wall)"
    )


def test_limits_must_be_a_mapping() -> None:
    with pytest.raises(UserError, match=r"^budget: must be a mapping"):
        Limits.from_dict(5, "budget")


def test_limits_none_and_null_keys_are_unset() -> None:
    assert Limits.from_dict(None, "budget").is_empty
    assert Limits.from_dict({}, "budget").is_empty
    limits = Limits.from_dict({"usd": None, "tokens": "1_000"}, "budget")
    assert limits == Limits(tokens=1000)
    assert limits.to_dict() == {"tokens": 1000}
    assert not limits.is_empty
    assert not Limits(wall_s=1.0).is_empty


def test_limits_merged_overrides_only_what_the_other_sets() -> None:
    base = Limits(usd=D("1"), tokens=1000, tool_calls=10, wall_s=60.0)
    raised = base.merged(Limits(usd=D("2"), wall_s=120.0))
    assert raised == Limits(usd=D("2"), tokens=1000, tool_calls=10, wall_s=120.0)
    assert base.merged(Limits()) == base
    assert Limits().merged(base) == base


def test_limits_get_by_dimension() -> None:
    limits = Limits(usd=D("1"), tool_calls=3)
    assert (limits.get("usd"), limits.get("tokens"), limits.get("tool_calls")) == (D(1), None, 3)


# -- scopes, fractions, crossings -----------------------------------------------------------


def test_scope_labels_and_ids() -> None:
    assert Scope("agent", "coder").label == "agent coder"
    assert Scope("run", "r-123").label == "run"
    assert Scope("task", "draft").label == "task draft"
    assert Scope("tenant", "acme").label == "tenant acme"
    assert Scope("agent", "coder").id == "agent:coder"
    assert Scope("task", "draft").to_dict() == {"kind": "task", "key": "draft"}
    with pytest.raises(ValueError, match="unknown budget scope"):
        Scope("team", "x")  # type: ignore[arg-type]


def test_fraction() -> None:
    assert fraction(D("0.08"), D("0.1")) == D("0.8")
    assert fraction(50, 200) == D("0.25")
    assert fraction(0, 0) == 0
    assert fraction(1, 0) == D("Infinity")


def test_crossings_report_80_and_100_percent() -> None:
    limits = Limits(usd=D("0.10"), tokens=1000)
    found = crossings(Spend(D("0.05"), 100), Spend(D("0.08"), 1000), limits, CODER)
    assert found == [
        Crossing(CODER, "usd", D("0.8"), D("0.08"), D("0.10")),
        Crossing(CODER, "tokens", D("0.8"), 1000, 1000),
        Crossing(CODER, "tokens", D("1"), 1000, 1000),
    ]
    assert not found[0].is_limit
    assert found[2].is_limit
    assert found[0].to_dict() == {
        "scope": "agent",
        "key": "coder",
        "dimension": "usd",
        "threshold": "0.8",
        "percent": 80,
        "spent": "0.08",
        "limit": "0.1",
    }
    assert found[2].to_dict()["percent"] == 100


def test_crossings_none_below_threshold_or_already_past_it() -> None:
    limits = Limits(usd=D("1"))
    assert crossings(Spend(D("0.1")), Spend(D("0.79")), limits, RUN) == []
    assert crossings(Spend(D("0.8")), Spend(D("0.9")), limits, RUN) == []
    assert crossings(Spend(D("1")), Spend(D("5")), limits, RUN) == []
    assert crossings(Spend(), Spend(D("5")), Limits(), RUN) == []


def test_crossings_one_jump_over_both_thresholds_reports_both() -> None:
    found = crossings(Spend(), Spend(tool_calls=12), Limits(tool_calls=10), RUN)
    assert [(c.dimension, c.percent) for c in found] == [("tool_calls", 80), ("tool_calls", 100)]


def test_crossings_against_a_zero_limit() -> None:
    limits = Limits(usd=D(0))
    assert crossings(Spend(), Spend(), limits, RUN) == []
    found = crossings(Spend(), Spend(D("0.01")), limits, RUN)
    assert [c.percent for c in found] == [80, 100]
    assert crossings(Spend(D("0.01")), Spend(D("0.02")), limits, RUN) == []


@given(
    st.lists(st.integers(0, 50), max_size=40),
    st.integers(0, 500),
    st.lists(st.decimals(0, 5, places=4, allow_nan=False), max_size=40),
    st.decimals(0, 20, places=2, allow_nan=False),
)
def test_crossings_reported_once_per_threshold_in_a_monotone_sequence(
    token_steps: list[int], token_limit: int, usd_steps: list[Decimal], usd_limit: Decimal
) -> None:
    limits = Limits(usd=usd_limit, tokens=token_limit)
    steps = [Spend(tokens=t) for t in token_steps] + [Spend(usd=u) for u in usd_steps]
    spent = Spend()
    seen: list[tuple[str, int]] = []
    for step in steps:
        found = crossings(spent, spent + step, limits, RUN)
        spent = spent + step
        seen.extend((c.dimension, c.percent) for c in found)
        assert all(c.spent == spent.get(c.dimension) for c in found)
    assert len(seen) == len(set(seen))
    for dimension, limit in (("tokens", token_limit), ("usd", usd_limit)):
        final = spent.get(dimension)  # type: ignore[arg-type]
        for percent, t in ((80, D("0.8")), (100, D(1))):
            reached = final > 0 if limit == 0 else final >= t * limit
            assert ((dimension, percent) in seen) == reached


# -- errors ---------------------------------------------------------------------------------


def test_budget_exceeded_message_and_data() -> None:
    error = budget_exceeded_error(CODER, "usd", D("0.1"), D("0.095"), D(0), D("0.012"))
    assert isinstance(error, BudgetExceeded)
    assert isinstance(error, BudgetLimitExceeded)
    assert error.message == (
        "budget exceeded: agent coder would spend $0.0120 (spent $0.0950 + reserved $0.0000) "
        "over its limit $0.1000"
    )
    assert error.kind is ErrorKind.BUDGET_EXCEEDED
    assert error.retryable is False
    assert error.to_data() == {
        "kind": "budget_exceeded",
        "message": error.message,
        "retryable": False,
        "budget": {
            "scope": "agent",
            "key": "coder",
            "dimension": "usd",
            "limit": "0.1",
            "spent": "0.095",
            "reserved": "0",
            "asked": "0.012",
        },
    }


def test_budget_exceeded_messages_for_counts_and_small_money() -> None:
    tokens = budget_exceeded_error(RUN, "tokens", 100_000, 99_000, 500, 1_200)
    assert tokens.message == (
        "budget exceeded: run would use 1,200 tokens (used 99,000 + reserved 500) "
        "over its limit 100,000 tokens"
    )
    assert tokens.to_data()["budget"] == {
        "scope": "run",
        "key": "r1",
        "dimension": "tokens",
        "limit": 100_000,
        "spent": 99_000,
        "reserved": 500,
        "asked": 1_200,
    }
    calls = budget_exceeded_error(Scope("task", "draft"), "tool_calls", 3, 3, 0, 1)
    assert calls.message == (
        "budget exceeded: task draft would make 1 tool call (made 3 + reserved 0) "
        "over its limit 3 tool calls"
    )
    tiny = budget_exceeded_error(CODER, "usd", D("0.0001"), D("0.00009"), D(0), D("0.00002345"))
    assert "would spend $0.00002345 (spent $0.00009 + reserved $0.0000)" in tiny.message


def test_budget_exceeded_after_the_fact_says_what_was_spent() -> None:
    error = budget_exceeded_error(Scope("tenant", "acme"), "usd", D("10"), D("10.5"))
    assert (
        error.message == "budget exceeded: tenant acme has spent $10.5000, over its limit $10.0000"
    )
    calls = budget_exceeded_error(RUN, "tool_calls", 200, 201)
    assert (
        calls.message
        == "budget exceeded: run has made 201 tool calls, over its limit 200 tool calls"
    )


def test_wall_exceeded_error() -> None:
    error = wall_exceeded_error(RUN, 600.0, 612.25)
    assert error.message == "budget exceeded: run has run 612.2s, over its wall-time limit of 600s"
    assert error.to_data()["budget"] == {
        "scope": "run",
        "key": "r1",
        "dimension": "wall",
        "limit": 600,
        "spent": 612.25,
        "reserved": 0,
        "asked": 0,
    }


def test_describe_and_money_text() -> None:
    assert describe("usd", D("0.012")) == "$0.0120"
    assert describe("tokens", 1) == "1 token"
    assert describe("tool_calls", 2) == "2 tool calls"
    assert money_text(D("5.00")) == "5"
    assert money_text(D("0.00056000")) == "0.00056"
    assert money_text(D("1E+2")) == "100"
    assert money_text(D("-0.0")) == "0"
