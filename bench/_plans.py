"""Plans, tools and store instrumentation shared by the engine benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nexus.domain.events import Event
from nexus.domain.plan import Plan, TaskSpec
from nexus.store.sqlite import SQLiteStore
from nexus.tools.base import FunctionTool, ToolRegistry
from nexus.tools.builtins import builtin_tools

#: The built-in no-op: ``pure=True``, so the controller runs it inline (no commit first).
PURE_NOOP = "noop"
#: A no-op registered as an ordinary tool: it runs as a worker task, after a commit.
WORKER_NOOP = "noop_worker"


def _noop(**kwargs: Any) -> dict[str, Any]:
    return kwargs


def worker_tools(*extra: FunctionTool) -> ToolRegistry:
    """The built-in tools plus the non-pure ``noop_worker`` (and any ``extra``)."""
    registry = builtin_tools()
    registry.add(FunctionTool(name=WORKER_NOOP, fn=_noop, pure=False))
    for tool in extra:
        registry.add(tool)
    return registry


def task_id(i: int) -> str:
    return f"t{i:05d}"


def chain_plan(
    n: int,
    tool: str,
    *,
    workspace: Path,
    args: Callable[[int], dict[str, Any]] | None = None,
    max_parallel: int = 16,
) -> Plan:
    """``n`` tasks, each depending on the one before it."""
    tasks = {
        task_id(i): TaskSpec(
            id=task_id(i),
            tool=tool,
            args=args(i) if args is not None else {},
            needs=(task_id(i - 1),) if i else (),
        )
        for i in range(n)
    }
    return Plan(name=f"chain-{n}", tasks=tasks, workspace=str(workspace), max_parallel=max_parallel)


def fan_plan(n: int, tool: str, *, workspace: Path, max_parallel: int = 16) -> Plan:
    """``n`` independent tasks."""
    tasks = {task_id(i): TaskSpec(id=task_id(i), tool=tool) for i in range(n)}
    return Plan(name=f"fan-{n}", tasks=tasks, workspace=str(workspace), max_parallel=max_parallel)


class CommitMeter:
    """Wraps a store's ``append`` to count commits and time spent awaiting them.

    The time is measured on the event loop around ``await append(...)``: it
    includes the hand-off to the store's writer thread and back.
    """

    def __init__(self, store: SQLiteStore) -> None:
        self.commits = 0
        self.events = 0
        self.seconds = 0.0
        self.durations: list[float] = []
        self.ends: list[float] = []  # perf_counter() when each commit returned
        inner = store.append

        async def append(run_id: str, batch: Sequence[Event], status: str | None) -> None:
            start = time.perf_counter()
            try:
                await inner(run_id, batch, status)
            finally:
                end = time.perf_counter()
                took = end - start
                self.commits += 1
                self.events += len(batch)
                self.seconds += took
                self.durations.append(took)
                self.ends.append(end)

        store.append = append  # type: ignore[method-assign]
