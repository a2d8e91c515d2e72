"""The dispatch port: how assignments reach workers.

The controller never runs a worker itself; it submits assignments to a
:class:`Dispatcher` and receives reports in its inbox. The in-process
dispatcher runs each assignment as a task of its own ``TaskGroup``; a
distributed one (NATS JetStream) publishes the assignment as an envelope and
feeds the workers' reports back -- the controller does not change.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Protocol

from nexus.engine.worker import Assignment, Report, Worker


class Dispatcher(Protocol):
    """Where attempts go to be executed."""

    def submit(self, assignment: Assignment) -> None:
        """Start executing ``assignment``; its reports go to the controller."""

    def cancel(self, task: str) -> None:
        """Stop the attempt of ``task`` if it is still executing."""

    def busy(self) -> bool:
        """True while any submitted attempt is still executing."""


class InProcessDispatcher:
    """Runs assignments as asyncio tasks in this process.

    Use as ``async with InProcessDispatcher(worker, report) as dispatcher``;
    leaving the block cancels what is still running and waits for it.
    """

    def __init__(self, worker: Worker, report: Report) -> None:
        self._worker = worker
        self._report = report
        self._group = asyncio.TaskGroup()
        self._running: dict[str, asyncio.Task[None]] = {}

    async def __aenter__(self) -> InProcessDispatcher:
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for running in self._running.values():
            running.cancel()
        self._running.clear()
        await self._group.__aexit__(exc_type, exc, tb)

    def submit(self, assignment: Assignment) -> None:
        task = self._group.create_task(
            self._worker.execute(assignment, self._report), name=f"attempt {assignment.task}"
        )
        self._running[assignment.task] = task
        task.add_done_callback(lambda done: self._forget(assignment.task, done))

    def _forget(self, tid: str, done: asyncio.Task[None]) -> None:
        if self._running.get(tid) is done:
            del self._running[tid]

    def cancel(self, task: str) -> None:
        running = self._running.pop(task, None)
        if running is not None:
            running.cancel()

    def busy(self) -> bool:
        return bool(self._running)
