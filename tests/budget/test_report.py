"""``nexus cost`` of logs recorded by an earlier release: the same report as then.

The expected reports in ``tests/fixtures/events/cost/`` were written by the
cost report as it read events by string keys, before it read them through the
typed payload models; they must not change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nexus.budget.report import cost_report
from nexus.domain.canonical import GENESIS_HASH
from nexus.domain.events import Draft, Event, EventType, seal

FIXTURES = Path(__file__).parents[1] / "fixtures" / "events"
BUNDLES = sorted(FIXTURES.glob("*.json"))


def _events(path: Path) -> list[Event]:
    events: list[Event] = []
    prev = GENESIS_HASH
    for row in json.loads(path.read_text(encoding="utf-8"))["events"]:
        draft = Draft(EventType(row["type"]), row["at"], row["data"])
        events.append(seal(row["run_id"], row["seq"], draft, prev))
        prev = events[-1].hash
    return events


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.stem)
def test_cost_report_of_a_recorded_log_is_unchanged(path: Path) -> None:
    expected: dict[str, Any] = json.loads((FIXTURES / "cost" / path.name).read_text())
    assert json.loads(json.dumps(cost_report(_events(path)))) == expected


def test_the_reports_cover_model_calls_tool_calls_and_budget_events() -> None:
    budget = json.loads((FIXTURES / "cost" / "budget.json").read_text())
    agent = json.loads((FIXTURES / "cost" / "agent.json").read_text())
    assert agent["total"]["calls"] == 3
    assert agent["tool_calls"] == 1
    # 80 % of 2 tool calls, 100 %, then 80 % again of the limit raised to 5
    assert [e["type"] for e in budget["budget_events"]] == [
        "budget.warning",
        "budget.exceeded",
        "budget.warning",
    ]
