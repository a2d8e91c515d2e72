"""The kit through a real engine: test models named in a workflow, temp stores, engine helpers."""

from __future__ import annotations

import asyncio
import dataclasses
import doctest
import importlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import nexus.testing
from nexus.domain.errors import UserError
from nexus.domain.events import EventType
from nexus.engine import Engine
from nexus.gateway.pricing import PricingTable
from nexus.planning.workflow import compile_workflow
from nexus.store.sqlite import SQLiteStore
from nexus.testing import (
    Call,
    EngineOptions,
    Fault,
    ManualClock,
    Reply,
    TestModel,
    model_registry,
    sqlite_engine,
    temp_engine,
    temp_store,
)
from nexus.tools.base import FunctionTool, ToolRegistry

SCHEMA = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}},
    "required": ["approved"],
}


def review_workflow(**extra: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "review",
        "agents": {
            "writer": {"model": "test:writer", "capabilities": ["write"]},
            "critic": {
                "model": "test:critic",
                "capabilities": ["review"],
                "tools": ["lookup"],
            },
        },
        "tasks": {
            "draft": {"capability": "write", "prompt": "Draft the notes."},
            "review": {
                "needs": ["draft"],
                "capability": "review",
                "prompt": "Review: {{ tasks.draft.output.text }}",
                "output_schema": SCHEMA,
            },
        },
        **extra,
    }


def lookup_tools() -> ToolRegistry:
    registry = ToolRegistry()
    registry.add(FunctionTool("lookup", lambda city: f"{city}: 700000 people"))
    return registry


def test_a_workflow_names_its_test_models_and_the_run_is_replayable() -> None:
    writer = TestModel("Faster, safer.")
    critic = TestModel(
        Reply(calls=[Call("lookup", {"city": "Oslo"})]),
        "not json",  # rejected by the schema: the agent asks again
        {"approved": True},
    )
    plan = compile_workflow(review_workflow())

    async def main() -> tuple[str, Any, bool]:
        registry = model_registry({"writer": writer, "critic": critic})
        async with temp_engine(providers=registry, tools=lookup_tools()) as engine:
            result = await engine.start(plan)
            state, _ = await engine.load_state(result.run_id)
            report = await engine.replay(result.run_id)
            return result.status, state.tasks["review"].output, report.identical

    status, review, identical = asyncio.run(main())
    assert status == "succeeded"
    assert review["data"] == {"approved": True}
    assert identical
    assert writer.calls == 1
    assert critic.calls == 3  # replay served the record: no call reached the models again
    assert critic.requests[0].messages[-1].content == "Review: Faster, safer."
    tool_answer = critic.requests[1].messages[-1]
    assert tool_answer.role == "tool"
    assert "Oslo: 700000 people" in tool_answer.content
    assert "rejected" in critic.requests[2].messages[-1].content


def test_a_model_the_registry_does_not_have_stops_the_run_before_it_starts() -> None:
    plan = compile_workflow(review_workflow())

    async def main() -> list[Any]:
        async with temp_engine(providers=model_registry({"writer": TestModel()})) as engine:
            with pytest.raises(UserError, match="'test:critic' is not a registered test model"):
                await engine.start(plan)
            return await engine.store.list_runs()

    assert asyncio.run(main()) == []


def test_usage_is_priced_and_a_budget_is_held() -> None:
    pricing = PricingTable.from_mapping(
        {"currency": "USD", "models": {"test:*": {"input": "0", "output": "1000000"}}}
    )
    model = TestModel(Reply("ok", usage=None), usage=None)  # counted: 1 completion token = $1
    doc = {
        "version": 1,
        "name": "spend",
        "budget": {"usd": 2},
        "agents": {"a": {"model": "test:m", "max_tokens": 1}},
        "tasks": {f"t{i}": {"agent": "a", "prompt": "go"} for i in range(4)},
        "max_parallel": 1,
    }

    async def main() -> tuple[Any, list[Any]]:
        async with temp_engine(providers=model.registry(), pricing=pricing) as engine:
            result = await engine.start(compile_workflow(doc), force=True)
            return result, await engine.store.load(result.run_id)

    result, events = asyncio.run(main())
    effects = [e.data for e in events if e.type is EventType.EFFECT_RECORDED]
    paid = [e for e in effects if e["error"] is None]
    assert [e["spend"]["usd"] for e in paid] == ["1", "1"]
    exceeded = [e.data for e in events if e.type is EventType.BUDGET_EXCEEDED]
    assert [(e["scope"], e["limit"]) for e in exceeded] == [("run", "2")]
    assert result.status == "paused"
    assert model.calls == 2
    assert sum(Decimal(e["spend"]["usd"]) for e in paid) == Decimal(2)


def run_one(model: TestModel) -> tuple[Any, Any]:
    """One task of an agent on ``test:m`` answered by ``model``; the result and its state."""
    doc = {
        "version": 1,
        "name": "one",
        "agents": {"a": {"model": "test:m"}},
        "tasks": {"t": {"agent": "a", "prompt": "go", "retries": 2, "backoff": {"initial": 0}}},
    }

    async def main() -> tuple[Any, Any]:
        async with temp_engine(providers=model.registry()) as engine:
            result = await engine.start(compile_workflow(doc))
            state, _ = await engine.load_state(result.run_id)
            return result, state.tasks["t"]

    return asyncio.run(main())


def test_provider_faults_take_the_engines_retry_path() -> None:
    flaky = TestModel(Fault("rate_limited", retry_after=0.001), "recovered")
    result, task = run_one(flaky)
    assert result.tasks["t"] == {"status": "succeeded", "attempts": 2}
    assert task.output["text"] == "recovered"
    assert flaky.calls == 2

    broken = TestModel(Fault("auth", status=401))
    result, task = run_one(broken)
    assert result.tasks["t"] == {"status": "failed", "attempts": 1}  # auth is not retried
    assert (task.error["kind"], task.error["status"]) == ("auth", 401)
    assert broken.calls == 1


# -- stores and engines -------------------------------------------------------------------


def test_temp_store_is_a_real_store_removed_on_exit() -> None:
    async def main() -> tuple[Path, SQLiteStore]:
        async with temp_store() as store:
            folder = Path(store._engine.url.database or "").parent
            assert (folder / "nexus.db").is_file()
            assert await store.list_runs() == []
        return folder, store

    folder, store = asyncio.run(main())
    assert not folder.exists()
    assert store._closed


def test_temp_store_signed_makes_a_key_for_its_folder() -> None:
    async def main() -> bool:
        async with temp_store(signed=True) as store:
            folder = Path(store._engine.url.database or "").parent
            return any((folder / "keys").iterdir())

    assert asyncio.run(main())


def test_temp_engine_takes_the_engines_options() -> None:
    clock = ManualClock()

    async def main() -> tuple[Engine, bool]:
        async with temp_engine(clock=clock, tenant="acme", pii=True) as engine:
            assert isinstance(engine.store, SQLiteStore)
            return engine, engine.store._closed

    engine, closed_inside = asyncio.run(main())
    assert (engine.clock, engine.tenant, engine.pii) == (clock, "acme", True)
    assert not closed_inside
    assert isinstance(engine.store, SQLiteStore)
    assert engine.store._closed


def test_engine_options_are_the_engines_fields_but_its_store() -> None:
    fields = {f.name for f in dataclasses.fields(Engine)} - {"store"}
    assert set(EngineOptions.__annotations__) == fields


def test_sqlite_engine_opens_the_homes_store_and_refuses_unknown_options(tmp_path: Path) -> None:
    async def main() -> None:
        engine = sqlite_engine(tmp_path, tenant="acme")
        try:
            assert engine.tenant == "acme"
        finally:
            await engine.store.close()

    asyncio.run(main())
    assert (tmp_path / "nexus.db").is_file()
    with pytest.raises(TypeError, match="tenants"):
        sqlite_engine(tmp_path, tenants="acme")  # type: ignore[call-arg]


# -- the pytest plugin (listed in tests/conftest.py) ----------------------------------------


def test_the_plugins_store_and_clock(nexus_store: SQLiteStore, nexus_clock: ManualClock) -> None:
    plan = compile_workflow(
        {
            "version": 1,
            "name": "plugin",
            "agents": {"a": {"model": "test:a"}},
            "tasks": {"t": {"agent": "a", "prompt": "go"}},
        }
    )
    engine = Engine(nexus_store, providers=TestModel("done").registry(), clock=nexus_clock)
    result = asyncio.run(engine.start(plan))
    assert result.status == "succeeded"
    events = asyncio.run(nexus_store.load(result.run_id))
    assert {e.at for e in events} == {"2026-01-01T00:00:00.000000Z"}  # the clock never moved


# -- the examples in the kit's docstrings -------------------------------------------------


@pytest.mark.parametrize(
    "module",
    [
        "nexus.testing",
        "nexus.testing._clock",
        "nexus.testing._model",
        "nexus.testing._registry",
        "nexus.testing._stores",
    ],
)
def test_the_kits_examples_run(module: str) -> None:
    failures, tried = doctest.testmod(importlib.import_module(module), verbose=False)
    assert tried > 0
    assert failures == 0


def test_the_kit_exports_what_it_documents() -> None:
    for name in nexus.testing.__all__:
        assert getattr(nexus.testing, name) is not None
