"""The cost of a run, read from its event log: what ``nexus cost RUN`` shows.

Every model call's ``effect.recorded`` event carries its usage and the spend
computed when it ran (``{"usd", "tokens"}``), so the report is a pure fold of
the log -- exact (Decimal) and the same however often it is read. It breaks
the spend down per call, task, agent and model, puts the preflight estimate
recorded at start next to the actual figure, and reports what the response
cache saved -- and the plan cache: a planner whose plan came from an earlier
run (``plan.cached``) made no model call, and what making that plan cost
there is the saving.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nexus.domain.budget import Scope, money_text
from nexus.domain.events import Event, EventType
from nexus.domain.payloads import AttemptStarted, EffectRecord, PlanCached, RunStarted
from nexus.domain.state import RunState
from nexus.gateway.base import ModelResponse, Usage
from nexus.gateway.pricing import PricingTable
from nexus.store.base import SpendRow


@dataclass(slots=True)
class _Sum:
    usd: Decimal = Decimal(0)
    calls: int = 0
    usage: Usage = field(default_factory=Usage)

    def add(self, usd: Decimal, usage: Usage) -> None:
        self.usd += usd
        self.calls += 1
        self.usage = self.usage + usage

    def to_dict(self) -> dict[str, Any]:
        return {
            "usd": money_text(self.usd),
            "calls": self.calls,
            "tokens": self.usage.total_tokens,
            **self.usage.to_dict(),
        }


def cost_report(events: Sequence[Event], pricing: PricingTable | None = None) -> dict[str, Any]:
    """The cost breakdown of one run, as JSON-ready data.

    Args:
        events: the run's whole log (``run.started`` first).
        pricing: prices for the cache-savings figure (the default table when None).
    """
    from nexus.budget.estimate import compare
    from nexus.gateway.cache import savings

    state = RunState.fold(list(events))
    agent_of: dict[tuple[str, int], str] = {}
    calls: list[dict[str, Any]] = []
    total = _Sum()
    by_task: dict[str, _Sum] = {}
    by_agent: dict[str, _Sum] = {}
    by_model: dict[str, _Sum] = {}
    cached: list[ModelResponse] = []
    unpriced: set[str] = set()
    tool_calls = 0
    budget_events: list[dict[str, Any]] = []
    plan_hits: list[dict[str, Any]] = []
    for event in events:
        if event.type is EventType.ATTEMPT_STARTED:
            attempt = AttemptStarted.of(event.data)
            if attempt.agent is not None:
                agent_of[(attempt.task, attempt.attempt)] = attempt.agent
        elif event.type is EventType.PLAN_CACHED:
            hit = PlanCached.of(event.data)
            plan_hits.append(
                {
                    "task": hit.task,
                    "attempt": hit.attempt,
                    "source_run": hit.source_run,
                    "usd": str(hit.saved.get("usd", "0")),
                    "tokens": int(hit.saved.get("tokens", 0)),
                    "calls": int(hit.saved.get("calls", 0)),
                }
            )
        elif event.type in (EventType.BUDGET_WARNING, EventType.BUDGET_EXCEEDED):
            budget_events.append({"type": str(event.type), "at": event.at, **event.data})
        elif event.type is EventType.EFFECT_RECORDED:
            record = EffectRecord.of(event.data)
            if record.kind == "tool":
                tool_calls += 1
                continue
            if record.kind != "model" or record.error is not None:
                continue
            response = ModelResponse.from_dict(record.response)
            spend = record.spend or {}
            usd = Decimal(str(spend.get("usd", "0")))
            if spend.get("unpriced"):
                unpriced.add(response.model)
            if response.cache:
                cached.append(response)
            agent = agent_of.get((record.task, record.attempt), "")
            calls.append(
                {
                    "task": record.task,
                    "attempt": record.attempt,
                    "agent": agent,
                    "model": response.model,
                    "usd": money_text(usd),
                    **response.usage.to_dict(),
                    **({"cache_hit": True} if response.cache else {}),
                }
            )
            total.add(usd, response.usage)
            for groups, key in (
                (by_task, record.task),
                (by_agent, agent),
                (by_model, response.model),
            ):
                groups.setdefault(key, _Sum()).add(usd, response.usage)
    started = RunStarted.from_event(events[0])
    report: dict[str, Any] = {
        "run_id": state.run_id,
        "name": state.plan.name,
        "status": str(state.status),
        "tenant": started.tenant if started.tenant is not None else "default",
        "total": total.to_dict(),
        "tool_calls": tool_calls,
        "by_agent": {k: v.to_dict() for k, v in sorted(by_agent.items())},
        "by_task": {k: v.to_dict() for k, v in sorted(by_task.items())},
        "by_model": {k: v.to_dict() for k, v in sorted(by_model.items())},
        "calls": calls,
        "unpriced_models": sorted(unpriced),
        "cache": savings(cached, pricing).to_dict(),
        "budget_events": budget_events,
        "budgets": _budgets(state),
    }
    if plan_hits:  # only then: reports of runs without the plan cache keep their shape
        report["plan_cache"] = {
            "hits": plan_hits,
            "saved": {
                "usd": money_text(sum((Decimal(h["usd"]) for h in plan_hits), Decimal(0))),
                "tokens": sum(h["tokens"] for h in plan_hits),
                "calls": sum(h["calls"] for h in plan_hits),
            },
        }
    estimate = started.estimate
    if estimate is not None:
        report["estimate"] = {
            **estimate,
            "vs_actual": compare(Decimal(str(estimate["usd"])), total.usd),
        }
    return report


def _budgets(state: RunState) -> dict[str, Any]:
    scopes = [Scope("run")] + [Scope("agent", a) for a in state.plan.agents]
    found: dict[str, Any] = {}
    for scope in scopes:
        limits = state.limits(scope)
        if limits.is_empty:
            continue
        found[scope.label] = {"limits": limits.to_dict(), "spent": state.spend(scope).to_dict()}
    return found


def tenant_report(tenant: str, rows: Sequence[SpendRow]) -> dict[str, Any]:
    """A tenant's total spend, from :meth:`Store.tenant_spend` rows."""
    usd, tokens, calls, tools = Decimal(0), 0, 0, 0
    for row in rows:
        if row.kind == "model" and row.usd is not None:
            usd += Decimal(row.usd)
            tokens += row.tokens or 0
            calls += 1
        elif row.kind == "tool" and row.error != "budget_exceeded":
            tools += 1
    return {
        "tenant": tenant,
        "usd": money_text(usd),
        "tokens": tokens,
        "calls": calls,
        "tool_calls": tools,
    }
