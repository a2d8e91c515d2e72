"""``nexus events``: one line per event that says what it holds, read through the payload views."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cli_support import WORKFLOWS, nexus

from nexus.cli.summaries import WIDTH, summary
from nexus.domain.canonical import GENESIS_HASH
from nexus.domain.events import Draft, Event, EventType, seal
from nexus.domain.payloads import MODELS

FIXTURES = Path(__file__).parents[1] / "fixtures" / "events"
BUNDLES = sorted(FIXTURES.glob("*.json"))


def recorded(name: str) -> list[Event]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    events, prev = [], GENESIS_HASH
    for row in doc["events"]:
        event = seal(
            row["run_id"], row["seq"], Draft(EventType(row["type"]), row["at"], row["data"]), prev
        )
        events.append(event)
        prev = event.hash
    return events


def test_every_payload_model_is_summarised() -> None:
    from nexus.cli.summaries import _DESCRIBE

    assert set(MODELS) == set(_DESCRIBE)


@pytest.mark.parametrize("path", BUNDLES, ids=[p.stem for p in BUNDLES])
def test_every_recorded_event_has_a_one_line_summary(path: Path) -> None:
    for event in recorded(path.name):
        text = summary(event)
        assert text, (event.seq, event.type)
        assert "\n" not in text
        assert len(text) <= WIDTH


def by_type(events: list[Event], kind: str) -> list[str]:
    return [summary(e) for e in events if e.type == kind]


def test_what_the_summaries_say() -> None:
    agent = recorded("agent.json")
    assert by_type(agent, "attempt.started")[0] == "draft attempt 1 agent writer (scripted:writer)"
    effects = by_type(agent, "effect.recorded")
    assert effects[0] == "draft attempt 1: model scripted:writer, 10 tokens"
    assert 'review attempt 1: tool file.list {"path": "."}' in effects
    assert by_type(agent, "run.succeeded") == ["2 succeeded"]
    budget = recorded("budget.json")
    assert by_type(budget, "budget.exceeded") == ["run tool_calls 100%: 2 of 2 (task look)"]
    assert by_type(budget, "budget.raised") == ["run: tool_calls=5"]
    assert by_type(recorded("approval.json"), "approval.granted") == ["deploy by ana"]


def test_events_command_shows_the_summaries(tmp_path: Path) -> None:
    shutil.copy(WORKFLOWS / "failing.yaml", tmp_path / "failing.yaml")
    home = tmp_path / "home"
    assert nexus(home, "run", tmp_path / "failing.yaml").code == 1
    out = nexus(home, "events", "latest")
    assert out.code == 0, out.text
    lines = out.stdout.splitlines()
    assert lines[0].split()[2:] == [
        "run.started",
        "failing,",
        "3",
        "tasks,",
        "plan",
        lines[0].split()[-1],
    ]
    failed = next(line for line in lines if " task.failed " in line)
    assert failed.endswith("boom after 1 attempt: transient: command exited with 7")
    # what a task printed is data, never terminal markup
    loud = next(line for line in lines if " effect.recorded " in line and "loud" in line)
    assert "echo '[/x] [bold]not bold[/bold]'" in loud
