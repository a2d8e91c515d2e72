"""The one duration parser: budgets' ``wall``, ``nexus.toml`` and WASM tools read with it."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexus.domain.durations import BAD_DURATION, NOT_POSITIVE, parse_seconds

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (45, 45.0),
        (1.5, 1.5),
        (Decimal("0.5"), 0.5),
        ("90", 90.0),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("250ms", 0.25),
        ("90s", 90.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("2d", 172_800.0),
        ("1h30m", 5400.0),
        ("1m1ms", 60.001),
        ("1s1s", 2.0),  # parts add up, in any order
        ("10M", 600.0),  # case is ignored
        (" 1.5 d ", 129_600.0),  # spaces too
        ("0.5s", 0.5),
    ],
)
def test_durations_users_write(value: object, seconds: float) -> None:
    assert parse_seconds(value) == seconds


@pytest.mark.parametrize(
    "value",
    ["", " ", "m", "ten minutes", "10x", "10 minutes", "-5s", "1h-30m", ".5s", "5.s",
     "1,5s", "s10", True, False, None, [60], {"s": 1}],
)  # fmt: skip
def test_what_is_not_a_duration(value: object) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(BAD_DURATION)}$"):
        parse_seconds(value)


@pytest.mark.parametrize(
    "value",
    [0, 0.0, -1, -0.5, "0", "0s", "0ms", "-5", "inf", "nan", "1e400", float("inf"),
     float("nan"), 10**400, Decimal("-1"), Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity")],
)  # fmt: skip
def test_durations_must_be_positive_and_finite(value: object) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(NOT_POSITIVE)}$"):
        parse_seconds(value)


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(sorted(UNITS))), min_size=1, max_size=5
    ).filter(lambda parts: any(n for n, _ in parts))
)
def test_parts_add_up(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    expected = sum(float(n) * UNITS[unit] for n, unit in parts)
    assert parse_seconds(text) == pytest.approx(expected)


@given(st.floats(min_value=1e-6, max_value=1e9))
def test_a_number_and_its_text_agree(seconds: float) -> None:
    assert parse_seconds(seconds) == parse_seconds(repr(seconds)) == seconds
