"""A task paused by its budget continues from its recorded steps (issue 11, bug 3).

An agent asks for a tool, then another, then answers. Its run's budget allows
one tool call, so the second is refused and the run pauses. ``nexus resume
--budget`` must not start the agent over: the attempt that follows is served
the paused attempt's model answers and tool results from the log, in order,
and calls the model and the tool again only from the call that was refused.
It must hold when the process dies during that attempt, when the budget runs
out a second time, and under replay; and a request that differs from the
recorded one goes live from there, saying why.

The model is the test kit's ``TestModel`` matched by conversation step, so an
agent that started over would walk its script from the top again (as a real
model would answer the same conversation the same way); the tool appends to a
file, so every execution shows.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from nexus.domain.budget import Limits, Scope
from nexus.domain.events import Event, EventType
from nexus.domain.payloads import AttemptStarted, EffectRecord
from nexus.domain.plan import AgentSpec, Plan, TaskSpec
from nexus.domain.state import RunState
from nexus.engine.facade import Engine
from nexus.store.base import Lease
from nexus.store.sqlite import SQLiteStore
from nexus.testing import Call, Fault, Reply, TestModel
from nexus.tools.base import FunctionTool, ToolRegistry

E = EventType
RUN = Scope("run")


class Notes:
    """The ``note`` tool: appends its text to ``notes.txt``, so every execution shows.

    ``hold`` makes the execution for that text wait (after writing) until it is
    cancelled, unless ``release()`` came first: the moment a test "kills" the
    process.
    """

    def __init__(self, ws: Path) -> None:
        self.path = ws / "notes.txt"
        self.hold: str | None = None
        self.holding = False
        self._released = False

    def written(self) -> list[str]:
        return self.path.read_text().split() if self.path.exists() else []

    def release(self) -> None:
        self._released = True

    def tools(self) -> ToolRegistry:
        async def note(text: str) -> str:
            with self.path.open("a") as fh:
                fh.write(text + "\n")
            if text == self.hold and not self._released:
                self.holding = True
                await asyncio.Event().wait()  # until the "kill" cancels it
            return f"noted {text}"

        registry = ToolRegistry()
        registry.add(FunctionTool("note", note, description="Append a line to the notes."))
        return registry


def writer(*texts: str) -> TestModel:
    """A model that asks to note each of ``texts`` in turn, then answers ``done``."""
    script: list[Any] = [Reply(calls=[Call("note", {"text": t})]) for t in texts]
    return TestModel(*script, "done", match="step")


def plan(ws: Path, tool_calls: int) -> Plan:
    agent = AgentSpec(name="scribe", model="test:scribe", tools=("note",), max_steps=8)
    task = TaskSpec(id="job", agent="scribe", prompt="Note a, then b.")
    return Plan(
        name="notes",
        tasks={"job": task},
        agents={"scribe": agent},
        workspace=str(ws),
        budget={"tool_calls": tool_calls},
    )


def run(db: Path, fn: Callable[[SQLiteStore], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        store = SQLiteStore.open(db)
        try:
            return await asyncio.wait_for(fn(store), 60)
        finally:
            await store.close()

    return asyncio.run(main())


def engine(store: SQLiteStore, model: TestModel, notes: Notes) -> Engine:
    return Engine(store, tools=notes.tools(), providers=model.registry())


def started(events: list[Event]) -> list[AttemptStarted]:
    return [AttemptStarted.of(e.data) for e in events if e.type is E.ATTEMPT_STARTED]


def effects(events: list[Event], attempt: int) -> list[EffectRecord]:
    records = [EffectRecord.of(e.data) for e in events if e.type is E.EFFECT_RECORDED]
    return [r for r in records if r.attempt == attempt]


def replays_without_calling_anything(db: Path, run_id: str, notes: Notes) -> None:
    untouchable = TestModel(Fault("internal", message="replay must not call the model"))
    report = run(db, lambda store: engine(store, untouchable, notes).replay(run_id))
    assert report.identical, report.first_divergence
    assert report.tools_executed == 0
    assert untouchable.calls == 0


def test_resume_after_a_budget_pause_continues_from_the_recorded_steps(tmp_path: Path) -> None:
    notes = Notes(tmp_path)
    model = writer("a", "b")

    async def main(store: SQLiteStore) -> tuple[str, str, list[Event]]:
        nexus = engine(store, model, notes)
        paused = await nexus.start(plan(tmp_path, tool_calls=1))
        assert notes.written() == ["a"]
        assert model.calls == 2
        resumed = await nexus.resume(paused.run_id, budget={RUN: Limits(tool_calls=5)})
        return paused.status, resumed.status, await store.load(paused.run_id)

    paused, resumed, events = run(tmp_path / "db", main)
    assert (paused, resumed) == ("paused", "succeeded")
    # the model answered 3 steps in all (not 2 + 3) and "a" was noted once
    assert model.calls == 3
    assert notes.written() == ["a", "b"]
    # the resumed attempt takes the paused one up, and says so
    assert [s.continues for s in started(events)] == [None, [1]]
    first, second = effects(events, 1), effects(events, 2)
    assert [r.kind for r in first] == ["model", "tool", "model", "tool"]
    assert first[-1].error is not None
    assert first[-1].error["kind"] == "budget_exceeded"
    assert first[-1].error["resumable"] is True
    # only the calls made live are recorded again, numbered where the conversation is
    assert [r.key.rsplit("/", 2)[1:] for r in second] == [["2", "3"], ["2", "4"]]
    assert second[0].kind == "tool"
    assert second[0].request == {"args": {"text": "b"}, "call": "call_1_0", "tool": "note"}
    assert second[0].continued == {
        "served": 3,
        "why": "call 3 of attempt 1 was refused budget",
    }
    assert second[1].continued is None
    # the live step saw the whole conversation, served steps included
    last = model.requests[-1]
    roles = ["system", "user", "assistant", "tool", "assistant", "tool"]
    assert [m.role for m in last.messages] == roles
    assert "noted a" in last.messages[3].content
    assert "noted b" in last.messages[5].content
    # each tool call is counted once
    state = RunState.fold(events)
    assert state.spend(RUN).tool_calls == 2
    replays_without_calling_anything(tmp_path / "db", events[0].run_id, notes)


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_continuing_attempt_killed_mid_call_is_continued_again(tmp_path: Path) -> None:
    notes = Notes(tmp_path)
    model = writer("a", "b")
    db = tmp_path / "db"

    async def pause(store: SQLiteStore) -> str:
        return (await engine(store, model, notes).start(plan(tmp_path, tool_calls=1))).run_id

    run_id = run(db, pause)
    notes.hold = "b"

    async def resume_and_kill(store: SQLiteStore) -> None:
        budget = {RUN: Limits(tool_calls=5)}
        driver = asyncio.create_task(engine(store, model, notes).resume(run_id, budget=budget))
        deadline = time.monotonic() + 20
        while not notes.holding:
            assert time.monotonic() < deadline, "the refused call never went live"
            assert not driver.done(), driver
            await asyncio.sleep(0.01)
        driver.cancel()  # kill -9: the lease is left behind by a dead process
        with pytest.raises(asyncio.CancelledError):
            await driver
        host = socket.gethostname()
        dead = Lease(owner="killed", host=host, pid=dead_pid(), heartbeat=time.time())
        assert await store.swap_lease(run_id, dead, None)

    run(db, resume_and_kill)
    assert notes.written() == ["a", "b"]
    assert model.calls == 2
    notes.release()

    async def resume(store: SQLiteStore) -> tuple[str, list[Event]]:
        result = await engine(store, model, notes).resume(run_id)
        return result.status, await store.load(run_id)

    status, events = run(db, resume)
    assert status == "succeeded"
    # "a" was never noted again; "b" was under way at the kill, so it ran twice
    assert notes.written() == ["a", "b", "b"]
    assert model.calls == 3
    assert [s.continues for s in started(events)] == [None, [1], [1]]
    interrupted = [e for e in events if e.type is E.ATTEMPT_INTERRUPTED]
    assert [(e.data["task"], e.data["attempt"]) for e in interrupted] == [("job", 2)]
    third = effects(events, 3)
    assert [r.key.rsplit("/", 1)[1] for r in third] == ["3", "4"]
    assert third[0].continued == {"served": 3, "why": "call 3 of attempt 1 was refused budget"}
    notes.hold = None
    replays_without_calling_anything(db, run_id, notes)


def test_a_task_paused_twice_continues_from_both_pauses(tmp_path: Path) -> None:
    notes = Notes(tmp_path)
    model = writer("a", "b", "c")

    async def main(store: SQLiteStore) -> tuple[list[str], list[Event]]:
        nexus = engine(store, model, notes)
        first = await nexus.start(plan(tmp_path, tool_calls=1))
        second = await nexus.resume(first.run_id, budget={RUN: Limits(tool_calls=2)})
        third = await nexus.resume(first.run_id, budget={RUN: Limits(tool_calls=5)})
        statuses = [first.status, second.status, third.status]
        return statuses, await store.load(first.run_id)

    statuses, events = run(tmp_path / "db", main)
    assert statuses == ["paused", "paused", "succeeded"]
    assert notes.written() == ["a", "b", "c"]
    assert model.calls == 4
    assert [s.continues for s in started(events)] == [None, [1], [2, 1]]
    assert [r.key.rsplit("/", 1)[1] for r in effects(events, 2)] == ["3", "4", "5"]
    third = effects(events, 3)
    assert [r.key.rsplit("/", 1)[1] for r in third] == ["5", "6"]
    assert third[0].continued == {"served": 5, "why": "call 5 of attempt 2 was refused budget"}
    replays_without_calling_anything(tmp_path / "db", events[0].run_id, notes)


def test_a_request_that_differs_from_the_record_goes_live_from_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = Notes(tmp_path)
    model = writer("a", "b")

    async def pause(store: SQLiteStore) -> str:
        return (await engine(store, model, notes).start(plan(tmp_path, tool_calls=1))).run_id

    run_id = run(tmp_path / "db", pause)
    # the resuming release words the agent's instructions differently: the first
    # request is no longer the one recorded, so nothing recorded may answer it
    import nexus.agents.llm as llm

    original = llm.system_prompt
    monkeypatch.setattr(
        llm, "system_prompt", lambda *a, **k: (original(*a, **k) + "\n\nBe brief.").strip()
    )

    async def resume(store: SQLiteStore) -> tuple[str, list[Event]]:
        nexus = engine(store, model, notes)
        result = await nexus.resume(run_id, budget={RUN: Limits(tool_calls=5)})
        return result.status, await store.load(run_id)

    status, events = run(tmp_path / "db", resume)
    assert status == "succeeded"
    assert model.calls == 2 + 3
    assert notes.written() == ["a", "a", "b"]
    second = effects(events, 2)
    assert second[0].key.endswith("/job/2/0")
    assert second[0].continued == {
        "served": 0,
        "why": "the request differs from call 0 of attempt 1",
    }
    # (no replay here: no one release asks both attempts' first requests)


def test_a_run_recorded_before_continuations_still_resumes_from_the_start(
    tmp_path: Path,
) -> None:
    """A refusal recorded without ``resumable`` (older releases) is not continued."""
    notes = Notes(tmp_path)
    model = writer("a", "b")

    async def main(store: SQLiteStore) -> list[Event]:
        nexus = engine(store, model, notes)
        paused = await nexus.start(plan(tmp_path, tool_calls=1))
        return await store.load(paused.run_id)

    events = run(tmp_path / "db", main)
    refusal = next(
        e for e in events if e.type is E.ATTEMPT_FINISHED and e.data.get("error") is not None
    )
    state = RunState.fold(events)
    assert state.tasks["job"].continues == [1]
    older = dict(refusal.data)
    older["error"] = {k: v for k, v in refusal.data["error"].items() if k != "resumable"}
    state = RunState.fold([e if e is not refusal else _with(e, older) for e in events])
    assert state.tasks["job"].continues is None


def _with(event: Event, data: dict[str, Any]) -> Event:
    from dataclasses import replace

    return replace(event, data=data)
