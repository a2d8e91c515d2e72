"""Routing: which agent takes an agent task.

Capability match first; among the capable agents with a free slot, the least
loaded (running attempts in this run); ties by name. Pure and deterministic:
the decision, with the reason and the candidates, is part of the
``attempt.started`` event, so replay re-derives it and audit can explain it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nexus.domain.plan import AgentSpec, TaskSpec


@dataclass(frozen=True, slots=True)
class Route:
    agent: str | None
    candidates: tuple[str, ...]
    reason: str


def route(
    task: TaskSpec,
    agents: Mapping[str, AgentSpec],
    load: Mapping[str, int],
    *,
    item_agent: str | None = None,
) -> Route:
    """Pick the agent for ``task`` (``agent`` None: every candidate is at its limit).

    ``item_agent``: an item of an ``agents:`` fan-out, which runs on its own agent.
    """
    if item_agent is not None:
        candidates: tuple[str, ...] = (item_agent,)
        basis = f"fan-out agent '{item_agent}'"
    elif task.agent is not None:
        candidates = (task.agent,)
        basis = f"named agent '{task.agent}'"
    else:
        candidates = tuple(
            sorted(n for n, a in agents.items() if task.capability in a.capabilities)
        )
        basis = f"capability '{task.capability}'"
    free = [
        n
        for n in candidates
        if agents[n].max_concurrency == 0 or load.get(n, 0) < agents[n].max_concurrency
    ]
    if not free:
        return Route(None, candidates, f"{basis}: every candidate is at its concurrency limit")
    best = min(free, key=lambda n: (load.get(n, 0), n))
    return Route(
        best, candidates, f"{basis}; least loaded of {len(free)} ({load.get(best, 0)} running)"
    )
