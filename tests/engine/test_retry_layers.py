"""Retries do not multiply: a failure is retried by one layer (issue 11, bug 5).

A task with ``retries: 1`` whose model call fails every time went through the
gateway's retry loop (3 attempts) once per engine attempt: 6 requests. The
rule now: a model call's error that the gateway already retried (its record
says ``attempts`` > 1) is recorded as not retryable, ``retried_by: gateway``,
and the engine starts no other attempt for it. An error the gateway did not
retry (one attempt: it asked for a wait longer than the gateway waits, or the
gateway retries nothing) is the task's to retry, as before.

The model is the test kit's ``TestModel`` behind the gateway's real
``ResilientProvider`` (no sleeping: its waits are virtual).
"""

from __future__ import annotations

import asyncio
from typing import Any

from nexus.domain.events import Event, EventType
from nexus.domain.payloads import AttemptStarted, EffectRecord
from nexus.domain.plan import AgentSpec, Plan, RetryPolicy, TaskSpec
from nexus.engine.effects import provider_requests, retried_once
from nexus.gateway import ProviderRegistry
from nexus.gateway.resilience import Backoff, ResilientProvider
from nexus.testing import Fault, TestModel, temp_engine

E = EventType


async def _no_wait(_seconds: float) -> None:
    return None


def gateway(model: TestModel, attempts: int) -> ProviderRegistry:
    """``test:*`` served by ``model`` behind the gateway's retry loop of ``attempts`` calls."""
    backoff = Backoff(max_attempts=attempts, initial=0.01, max_retry_after=0.01)
    provider = ResilientProvider(model, backoff=backoff, sleep=_no_wait)
    return ProviderRegistry({"test": lambda _agent: provider})


def plan(retries: int) -> Plan:
    agent = AgentSpec("writer", model="test:writer")
    retry = RetryPolicy(retries=retries, initial=0.01, maximum=0.05)
    task = TaskSpec("notes", agent="writer", prompt="Write the notes.", retry=retry)
    return Plan("notes", {"notes": task}, {"writer": agent})


def run(model: TestModel, attempts: int, retries: int) -> tuple[str, list[Event]]:
    async def main() -> tuple[str, list[Event]]:
        async with temp_engine(providers=gateway(model, attempts)) as engine:
            result = await engine.start(plan(retries))
            report = await engine.replay(result.run_id)
            assert report.identical, report.first_divergence
            return result.status, await engine.store.load(result.run_id)

    return asyncio.run(main())


def model_errors(events: list[Event]) -> list[dict[str, Any]]:
    records = [EffectRecord.of(e.data) for e in events if e.type is E.EFFECT_RECORDED]
    return [r.error for r in records if r.kind == "model" and r.error is not None]


def attempts_of(events: list[Event]) -> list[int]:
    return [AttemptStarted.of(e.data).attempt for e in events if e.type is E.ATTEMPT_STARTED]


def test_an_error_the_gateway_retried_is_not_retried_by_the_task() -> None:
    model = TestModel(Fault("transient", reason="overloaded", status=503))
    status, events = run(model, attempts=3, retries=1)
    assert status == "failed"
    assert model.calls == 3  # one engine attempt of 3 provider attempts, not 2 x 3
    assert attempts_of(events) == [1]
    (error,) = model_errors(events)
    assert (error["kind"], error["attempts"]) == ("transient", 3)
    assert error["retryable"] is False
    assert error["retried_by"] == "gateway"
    failed = next(e for e in events if e.type is E.TASK_FAILED)
    assert failed.data["error"]["retried_by"] == "gateway"


def test_an_error_the_gateway_did_not_retry_is_the_tasks_to_retry() -> None:
    # asked to wait longer than the gateway waits: the gateway gives up at once,
    # and the task retries after the wait (no sooner than Retry-After)
    model = TestModel(Fault("rate_limited", retry_after=0.05), "done")
    status, events = run(model, attempts=3, retries=1)
    assert status == "succeeded"
    assert model.calls == 2
    assert attempts_of(events) == [1, 2]
    (error,) = model_errors(events)
    assert (error["attempts"], error["retryable"]) == (1, True)
    assert "retried_by" not in error


def test_without_gateway_retries_the_task_retries_as_before() -> None:
    model = TestModel(Fault("transient"), Fault("transient"), "done")
    status, events = run(model, attempts=1, retries=2)
    assert status == "succeeded"
    assert model.calls == 3
    assert attempts_of(events) == [1, 2, 3]
    assert all(e["retryable"] is True for e in model_errors(events))


def test_requests_are_counted_over_a_fallback_route() -> None:
    route = [
        {"model": "openai:a", "outcome": "failed", "reason": "transient/overloaded", "attempts": 3},
        {"model": "anthropic:b", "outcome": "skipped", "reason": "no key", "attempts": 0},
        {"model": "openai:c", "outcome": "failed", "reason": "timeout/timeout", "attempts": 1},
    ]
    chained = {"kind": "timeout", "message": "m", "retryable": True, "attempts": 1, "route": route}
    assert provider_requests(chained) == 4
    assert retried_once(chained)["retried_by"] == "gateway"
    once = {"kind": "transient", "message": "m", "retryable": True, "attempts": 1}
    assert retried_once(once) is once
    plain = {"kind": "timeout", "message": "the attempt's timeout expired", "retryable": True}
    assert provider_requests(plain) == 1
    assert retried_once(plain) is plain
    final = {"kind": "auth", "message": "m", "retryable": False, "attempts": 1}
    assert retried_once(final) is final
