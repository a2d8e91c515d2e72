"""The ``scripted`` provider behaves the same for every ``foreach`` item, and across a resume.

Scripted agents are how users and demos run offline, so the line an answer
comes from must not depend on how many *other* items of a fan-out the agent
served before, nor on an attempt that a crash interrupted.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from nexus.domain.events import Event, EventType
from nexus.domain.plan import AgentSpec, Plan, TaskSpec
from nexus.engine.facade import Engine
from nexus.gateway.base import ChatMessage, ModelRequest
from nexus.gateway.scripted import ScriptedProvider
from nexus.store.sqlite import SQLiteStore
from nexus.tools.base import FunctionTool
from nexus.tools.builtins import builtin_tools

E = EventType
ITEMS = ["oslo", "bergen", "tromso", "bodo", "alta"]


def lookup(city: str) -> dict[str, Any]:
    """Look up a city."""
    return {"city": city, "known": True}


def fan_out_plan(ws: Path) -> Plan:
    agent = AgentSpec(
        name="r",
        model="scripted:r",
        tools=("lookup",),
        scripted=(
            '@call lookup {"city": "{{ item }}"}',
            "{{ item if item is defined else 'all' }} looked up",
        ),
    )
    tasks = {
        "each": TaskSpec(id="each", agent="r", prompt="Look up {{ item }}", foreach=ITEMS),
        "after": TaskSpec(id="after", agent="r", prompt="Sum up", needs=("each",)),
    }
    return Plan(name="fan-out", tasks=tasks, agents={"r": agent}, workspace=str(ws))


def run_plan(db: Path, plan: Plan) -> tuple[str, list[Event], bool]:
    async def main() -> tuple[str, list[Event], bool]:
        store = SQLiteStore.open(db)
        tools = builtin_tools()
        tools.add(FunctionTool("lookup", lookup, description="Look up a city."))
        try:
            engine = Engine(store, tools=tools)
            result = await engine.start(plan)
            events = await store.load(result.run_id)
            report = await engine.replay(result.run_id)
            return str(result.status), events, report.identical
        finally:
            await store.close()

    return asyncio.run(main())


def tool_effects(events: list[Event]) -> list[dict[str, Any]]:
    return [e.data for e in events if e.type is E.EFFECT_RECORDED and e.data["kind"] == "tool"]


def test_every_item_of_a_fan_out_gets_the_call_line(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    status, events, identical = run_plan(tmp_path / "db", fan_out_plan(tmp_path / "ws"))

    assert status == "succeeded"
    calls = tool_effects(events)
    assert sorted(c["request"]["args"]["city"] for c in calls) == sorted(ITEMS)
    outputs = {e.data["task"]: e.data["output"] for e in events if e.type is E.ATTEMPT_FINISHED}
    for index, city in enumerate(ITEMS):
        out = outputs[f"each[{index}]"]
        assert out["text"] == f"{city} looked up"
        assert out["tool_calls"] == 1
    # the agent's next task starts one line further, as after any single task
    assert outputs["after"]["text"] == "all looked up"
    assert identical


def test_the_position_comes_from_the_engine_and_falls_back_to_the_turn() -> None:
    from nexus.gateway.scripted import SCRIPT_POSITION

    provider = ScriptedProvider("r", ("zero", "one", "two"))
    request = ModelRequest(model="scripted:r", messages=(ChatMessage("user", "hi"),), turn=2)

    async def main() -> list[str]:
        return [
            (await provider.complete(request, {})).text,
            (await provider.complete(request, {SCRIPT_POSITION: 0})).text,
            (await provider.complete(request, {SCRIPT_POSITION: 1, "item": "x"})).text,
        ]

    assert asyncio.run(main()) == ["two", "zero", "one"]
