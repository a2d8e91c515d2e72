"""The one time format events use: RFC 3339 UTC with microseconds, and back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from nexus.domain.events import format_time, parse_time

zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-9, minutes=-30))]
)
moments = st.datetimes(
    min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones
)


def test_examples() -> None:
    assert format_time(datetime(2026, 11, 21, 9, 5, tzinfo=UTC)) == "2026-11-21T09:05:00.000000Z"
    plus_two = datetime(2026, 1, 1, 1, 0, 0, 7, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(plus_two) == "2025-12-31T23:00:00.000007Z"


@given(moments)
def test_same_text_as_strftime_and_it_reads_back(moment: datetime) -> None:
    text = format_time(moment)
    # the format events were always written in (format_time used strftime before)
    assert text == moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert parse_time(text) == moment
