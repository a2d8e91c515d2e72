"""A replay whose workers cannot do what the run did reports it at once, with the cause.

``Engine.replay`` checks before it starts that every function agent the run
used can be loaded (registered with the engine, or imported from the
``module:function`` its plan recorded) and that every model it used can be
served (a cassette file); otherwise it raises a ``UserError`` naming the agent
and what to do. A replayed worker that ends differently from the record (its
code changed) is a divergence reported as soon as the worker is done, with its
error, never after a timeout.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nexus.agents.base import AgentCall, AgentContext, FunctionAgent
from nexus.agents.resolver import AgentResolver, entrypoint_of
from nexus.domain.errors import UserError
from nexus.domain.plan import AgentSpec, Plan, TaskSpec
from nexus.gateway.base import ProviderRegistry
from nexus.testing import temp_engine

QUICK = 10.0


async def review(call: AgentCall, ctx: AgentContext) -> dict[str, Any]:
    verdict = await ctx.effect("review", {"prompt": call.prompt}, lambda: _verdict(call.prompt))
    return {"verdict": verdict}


async def _verdict(prompt: str) -> str:
    return "looks right" if "9" in prompt else "wrong"


REVIEWER = FunctionAgent("reviewer", review, ("review",))


def plan(ws: Path, spec: AgentSpec | None = None) -> Plan:
    ws.mkdir(parents=True, exist_ok=True)
    agent = spec or REVIEWER.spec()
    task = TaskSpec(id="review", agent="reviewer", prompt="is 9 right?")
    agents = {"reviewer": agent}
    return Plan(name="reviewed", tasks={"review": task}, agents=agents, workspace=str(ws))


def test_a_replay_without_the_function_agent_is_refused_before_it_starts(tmp_path: Path) -> None:
    async def go() -> None:
        async with temp_engine(function_agents=[REVIEWER]) as engine:
            result = await engine.start(plan(tmp_path))
            assert result.status == "succeeded"
            bare = type(engine)(engine.store)  # knows no function agent
            began = time.monotonic()
            with pytest.raises(UserError) as caught:
                await bare.replay(result.run_id)
            assert time.monotonic() - began < QUICK
            message = caught.value.message
            assert message.startswith(f"cannot replay run {result.run_id}: agent 'reviewer'")
            assert "function_agents=" in message

    asyncio.run(go())


def test_a_replay_imports_the_recorded_entrypoint(tmp_path: Path) -> None:
    spec = AgentSpec(
        name="reviewer",
        role="function",
        model="function:reviewer",
        capabilities=("review",),
        entrypoint=f"{__name__}:REVIEWER",
    )

    async def go() -> None:
        async with temp_engine(function_agents=[REVIEWER]) as engine:
            result = await engine.start(plan(tmp_path, spec))
            assert result.status == "succeeded"
            report = await type(engine)(engine.store).replay(result.run_id)
            assert report.identical, report.first_divergence

    asyncio.run(go())


def test_a_replayed_worker_that_ends_otherwise_diverges_at_once_with_its_error(
    tmp_path: Path,
) -> None:
    async def changed(call: AgentCall, ctx: AgentContext) -> Any:
        raise RuntimeError("the agent's code changed since the run")

    async def go() -> None:
        async with temp_engine(function_agents=[REVIEWER]) as engine:
            result = await engine.start(plan(tmp_path))
            other = type(engine)(
                engine.store, function_agents=[FunctionAgent("reviewer", changed, ("review",))]
            )
            began = time.monotonic()
            report = await other.replay(result.run_id)
            assert time.monotonic() - began < QUICK
            assert not report.identical
            divergence = report.first_divergence or {}
            assert divergence["seq"] == 3  # the effect the agent no longer asked for
            assert "task 'review' attempt 1 ended" in divergence["reason"]
            assert "the agent's code changed since the run" in divergence["reason"]
            assert "timed out" not in divergence["reason"]

    asyncio.run(go())


# -- entrypoints -----------------------------------------------------------------------------


def test_entrypoint_of_names_a_module_level_agent_and_nothing_else() -> None:
    assert entrypoint_of(REVIEWER) == f"{__name__}:review"  # the function, wrapped again

    def local(call: AgentCall, ctx: AgentContext) -> str:
        return "x"

    assert entrypoint_of(FunctionAgent("local", local)) is None  # defined in a function
    main = FunctionAgent("m", lambda call, ctx: "x")
    assert entrypoint_of(main) is None  # a lambda has no importable name


def test_entrypoint_of_refuses_main(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(review, "__module__", "__main__")
    monkeypatch.setitem(sys.modules["__main__"].__dict__, "review", review)
    assert entrypoint_of(FunctionAgent("reviewer", review)) is None


def test_the_resolver_loads_an_entrypoint_and_names_what_it_cannot_load() -> None:
    resolver = AgentResolver(ProviderRegistry())
    spec = AgentSpec(name="r", model="function:reviewer", entrypoint=f"{__name__}:REVIEWER")
    assert resolver.resolve(spec) is REVIEWER
    for entrypoint, problem in (
        ("no_such_module_here:x", "No module named 'no_such_module_here'"),
        (f"{__name__}:absent", f"module '{__name__}' has no attribute 'absent'"),
        (f"{__name__}:QUICK", "is not a function agent or a function"),
        ("no colon", "is not written module:function"),
    ):
        bad = AgentSpec(name="r", model="function:other", entrypoint=entrypoint)
        with pytest.raises(UserError) as caught:
            resolver.resolve(bad)
        assert problem in caught.value.message
        assert "agent 'r'" in caught.value.message
