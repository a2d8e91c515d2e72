"""The plan cache (``cache: plans``): an extending agent task re-uses a recorded plan.

A goal mission's planner (or any agent task with ``extend``) costs a model
call that, for the same goal, agents and inputs, gives a plan already made.
With ``cache: plans`` a run looks, before it starts, for an earlier run of
the same plan in this store -- the same :func:`plan_key`, which covers the
goal and every input, the agents and their models, the planner's prompt and
the plan schema (its ``output_schema``), everything of the plan but its
``cache`` setting and workspace -- in which the task extended the plan once
and succeeded (the plan worked; a plan that had to be re-planned is not
re-used). The task's first attempt is then answered from it: a
``plan.cached`` input records the answer, where it came from and what making
it cost, and the ``attempt.finished`` that follows carries the answer, which
is checked like any planner's answer before it extends the plan. No model is
called. A retry or a re-plan asks the model as usual.

The lookup is the only IO, done once when the run starts or resumes; the
rest is in the log, so a replay serves the answer from ``plan.cached`` and is
byte-identical with no model call. Only runs of the same tenant are read,
and a plan with secret inputs is never cached (its key cannot see their
values, so two runs with different secrets would look alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from nexus.domain.budget import money_text
from nexus.domain.canonical import digest
from nexus.domain.events import Event, EventType, JSONDict
from nexus.domain.payloads import (
    ABSENT,
    AttemptFinished,
    EffectRecord,
    PlanCached,
    PlanExtended,
    RunStarted,
    task_of,
)
from nexus.domain.plan import Plan
from nexus.store.base import RunFilter, Store

__all__ = ["PLAN_CACHE_SCAN", "CachedPlan", "cacheable_tasks", "find_cached_plans", "plan_key"]

#: How many of the newest runs of the same name the lookup reads.
PLAN_CACHE_SCAN = 20
#: The version of :func:`plan_key` (a change of what it covers starts afresh).
_KEY_VERSION = 1


@dataclass(frozen=True, slots=True)
class CachedPlan:
    """A recorded planner answer the run may take for ``task``'s first attempt."""

    task: str
    source_run: str
    key: str
    output: Any
    #: what making the plan cost: ``{"usd", "tokens", "calls"}``
    saved: JSONDict

    def payload(self, attempt: int) -> PlanCached:
        """The ``plan.cached`` input of ``attempt``."""
        return PlanCached(
            task=self.task,
            attempt=attempt,
            source_run=self.source_run,
            key=self.key,
            output=self.output,
            saved=dict(self.saved),
        )


def plan_key(plan: JSONDict, task: str) -> str:
    """The cache key of ``task`` in ``plan`` (the plan as ``run.started`` records it).

    It is the digest of the whole plan but its workspace and ``cache`` setting,
    with the task's id: the goal and the other inputs, the agents (models,
    instructions, capabilities), the task's prompt and plan schema, the tools'
    arguments -- whatever differs, the key does.
    """
    covered = {k: v for k, v in plan.items() if k not in ("workspace", "cache")}
    return digest({"plan_cache": _KEY_VERSION, "plan": covered, "task": task})


def cacheable_tasks(plan: Plan) -> list[str]:
    """The tasks of ``plan`` whose plans may come from the cache: none unless the plan
    says ``cache: plans`` and has no secret input; then its extending agent tasks."""
    if "plans" not in plan.cache or plan.secret_inputs:
        return []
    return [
        tid
        for tid, spec in plan.tasks.items()
        if spec.extend is not None and spec.tool is None and spec.foreach is None
    ]


async def find_cached_plans(
    store: Store, plan: Plan, recorded: JSONDict, tenant: str, *, exclude: str | None = None
) -> dict[str, CachedPlan]:
    """The recorded plans this run may re-use, by task (empty: none, or no cache).

    Args:
        store: where earlier runs are read.
        plan: the plan the run runs.
        recorded: the plan as ``run.started`` records it (what keys are made of).
        tenant: the run's tenant; only its runs are read.
        exclude: a run not to read (the run itself, on resume).
    """
    tasks = cacheable_tasks(plan)
    if not tasks:
        return {}
    keys = {tid: plan_key(recorded, tid) for tid in tasks}
    found: dict[str, CachedPlan] = {}
    for run in await store.search_runs(RunFilter(name=plan.name, limit=PLAN_CACHE_SCAN)):
        if run.run_id == exclude or run.name != plan.name:
            continue
        events = await store.load(run.run_id)
        if not events or events[0].type is not EventType.RUN_STARTED:
            continue
        started = RunStarted.from_event(events[0])
        if (started.tenant or "default") != tenant:
            continue  # another tenant's plans are not this one's to see
        for tid in tasks:
            if tid in found or plan_key(started.plan, tid) != keys[tid]:
                continue
            answer = _answer(events, tid)
            if answer is not None:
                output, saved = answer
                found[tid] = CachedPlan(tid, run.run_id, keys[tid], output, saved)
        if len(found) == len(tasks):
            break
    return found


def _answer(events: Sequence[Event], task: str) -> tuple[Any, JSONDict] | None:
    """The answer with which ``task`` extended the plan in a run, and what it cost;
    None unless it extended the plan exactly once and then succeeded."""
    extended: list[PlanExtended] = []
    finished: dict[int, AttemptFinished] = {}
    cached: dict[int, PlanCached] = {}
    succeeded = False
    spent, tokens, calls = Decimal(0), 0, 0
    for event in events:
        if task_of(event) != task:
            continue
        kind = event.type
        if kind is EventType.PLAN_EXTENDED:
            extended.append(PlanExtended.from_event(event))
        elif kind is EventType.PLAN_REPLANNING:
            return None  # the first plan did not work as it was
        elif kind is EventType.ATTEMPT_FINISHED:
            done = AttemptFinished.from_event(event)
            finished[done.attempt] = done
        elif kind is EventType.PLAN_CACHED:
            hit = PlanCached.from_event(event)
            cached[hit.attempt] = hit
        elif kind is EventType.TASK_SUCCEEDED:
            succeeded = True
        elif kind is EventType.EFFECT_RECORDED:
            record = EffectRecord.of(event.data)
            if record.kind == "model":
                spend = record.spend or {}
                spent += Decimal(str(spend.get("usd", "0")))
                tokens += int(spend.get("tokens", 0) or 0)
                calls += 1
    if len(extended) != 1 or not succeeded:
        return None
    attempt = extended[0].attempt
    answer = finished.get(attempt)
    if answer is None or answer.error is not None or answer.output is ABSENT:
        return None
    if attempt in cached:  # itself from the cache: what the plan first cost
        return answer.output, dict(cached[attempt].saved)
    return answer.output, {"usd": money_text(spent), "tokens": tokens, "calls": calls}
