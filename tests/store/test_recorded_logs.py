"""Logs recorded by an earlier release still verify and replay byte for byte.

The bundles in ``tests/fixtures/events/`` were exported (``nexus export``) from
runs made with the code of the day by ``tests/fixtures/events/record.py``:
shell tools, a foreach, a retry, a failure, an LLM agent's tool loop with
structured output, a budget warning/exceeded/pause then ``resume --budget``,
approvals granted, rejected, timed out and escalated from another process, a
cancel, ``kill -9`` of a run four times in one task then
``resume --retry-interrupted``, an agent answered from a cassette
(``cassette.yaml``, kept next to its bundle) by a ``replay:`` model, and
control flow (a switch, a loop, a false ``when``), writes (declared writes
serialised, an undeclared concurrent write detected), fan-outs that
aggregate their items (a majority over agents, a consensus that fails, a
first_success that cancels the others), state machines (one ending in a
terminal state with an output, one in a ``fail`` state), a saga (a failed
step compensated, one compensation failing after its retry) and barriers
(``needs_any``, a ``wait`` that continues at its deadline), and a goal mission
whose plan came from the plan cache (``plan.cached``). They are never
re-recorded to make this test pass: a change that needs that has changed the
log's bytes.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from nexus.domain.canonical import GENESIS_HASH
from nexus.domain.events import Draft, Event, EventType, seal
from nexus.domain.payloads import RunStarted
from nexus.engine import Engine
from nexus.store.audit import verify_chain
from nexus.store.base import RunRecord
from nexus.store.sqlite import SQLiteStore

FIXTURES = Path(__file__).parents[1] / "fixtures" / "events"
BUNDLES = sorted(FIXTURES.glob("*.json"))

#: Agent runs recorded before the built-in tools got descriptions (ac2edab)
#: replay too: a replayed model call offers the tools as the run recorded them.
REPLAYS = [pytest.param(p, id=p.stem) for p in BUNDLES]


def _bundle(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert doc["format"] == "nexus-run-export/1"
    return doc


def _resealed(doc: dict[str, Any]) -> list[Event]:
    """The recorded events, sealed again by today's code, link by link."""
    events: list[Event] = []
    prev = GENESIS_HASH
    for row in doc["events"]:
        draft = Draft(EventType(row["type"]), row["at"], row["data"])
        event = seal(row["run_id"], row["seq"], draft, prev)
        assert event.prev_hash == row["prev_hash"], f"seq {row['seq']}: prev_hash differs"
        assert event.hash == row["hash"], f"seq {row['seq']} ({row['type']}): hash differs"
        events.append(event)
        prev = event.hash
    return events


def test_every_scenario_is_recorded() -> None:
    assert {p.stem for p in BUNDLES} >= {
        "agent",
        "aggregate",
        "approval",
        "barrier",
        "bt",
        "budget",
        "cancel",
        "cassette",
        "control",
        "escalated",
        "failing",
        "fsm",
        "interrupted",
        "plancache",
        "rejected",
        "saga",
        "tools",
        "writes",
    }
    types = {row["type"] for p in BUNDLES for row in _bundle(p)["events"]}
    # every type but run.continued (a decider-internal nudge no CLI run shows)
    assert types == {str(t) for t in EventType} - {"run.continued"}


async def _load(store: SQLiteStore, doc: dict[str, Any], events: list[Event]) -> None:
    """Store the recorded events in a fresh store, as the run's process did."""
    first = events[0]
    started = RunStarted.of(first.data)
    record = RunRecord(
        run_id=first.run_id,
        name=started.name,
        plan_hash=started.plan_hash,
        status="running",
        created_at=first.at,
        updated_at=first.at,
        source=started.source,
        workspace=started.workspace,
        events=1,
    )
    await store.create_run(record, first)
    await store.append(first.run_id, events[1:], doc["run"]["status"])


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: p.stem)
def test_recorded_log_reseals_and_verifies(path: Path, tmp_path: Path) -> None:
    doc = _bundle(path)
    events = _resealed(doc)
    run_id = events[0].run_id

    async def go() -> Any:
        store = SQLiteStore.open(tmp_path / "nexus.db")
        try:
            await _load(store, doc, events)
            return await asyncio.to_thread(verify_chain, store.chain(run_id), {run_id: len(events)})
        finally:
            await store.close()

    audit = asyncio.run(go())
    assert audit.ok, audit.problems
    assert audit.events == len(events)


@pytest.mark.parametrize("path", REPLAYS)
def test_recorded_log_verifies_and_replays_identically(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES)  # where the engine's default providers find cassettes
    doc = _bundle(path)
    events = _resealed(doc)
    run_id = events[0].run_id

    async def go() -> tuple[list[Event], Any, Any]:
        store = SQLiteStore.open(tmp_path / "nexus.db")
        try:
            await _load(store, doc, events)
            stored = await store.load(run_id)
            audit = await asyncio.to_thread(
                verify_chain, store.chain(run_id), {run_id: len(events)}
            )
            report = await Engine(store).replay(run_id)
            return stored, audit, report
        finally:
            await store.close()

    stored, audit, report = asyncio.run(go())
    assert [e.body for e in stored] == [e.body for e in events]
    assert [e.hash for e in stored] == [row["hash"] for row in doc["events"]]
    assert audit.ok, audit.problems
    assert audit.events == len(events)
    assert report.identical, report.first_divergence
    assert report.complete
    assert report.tools_executed == 0
    assert report.replayed_events == len(events)
