"""Live terminal progress, read from the event stream (never from engine internals)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from nexus.domain.events import Event, EventType
from nexus.domain.payloads import ErrorRecord, RetryScheduled, RunStarted, TaskFailed, task_of
from nexus.domain.state import RunState, TaskStatus

_STYLE = {
    "pending": "dim",
    "running": "cyan",
    "retry_wait": "yellow",
    "expanded": "cyan",
    "awaiting_approval": "bold yellow",
    "succeeded": "green",
    "failed": "bold red",
    "skipped": "dim",
    "cancelled": "magenta",
}
_SHOWN_TASKS = 12


class Progress:
    """An observer that shows per-task state, attempts and elapsed time.

    On a terminal it keeps a live table; elsewhere (CI, pipes) it prints one
    line per task that ends, so logs stay readable.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()
        self.task_started: dict[str, float] = {}
        self.task_ended: dict[str, float] = {}
        self.recent: deque[str] = deque(maxlen=_SHOWN_TASKS)
        self.state: RunState | None = None
        self.live: Live | None = None
        if console.is_terminal:
            self.live = Live(console=console, refresh_per_second=8, transient=False)

    def __enter__(self) -> Progress:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.update(self.render())
            self.live.__exit__(None, None, None)

    def __call__(self, events: Sequence[Event], state: RunState) -> None:
        self.state = state
        now = time.monotonic()
        for event in events:
            task = task_of(event)
            if event.type is EventType.RUN_STARTED:
                started = RunStarted.from_event(event)
                self.console.print(
                    f"[bold]run[/] {event.run_id}  [dim]{escape(started.name)}  "
                    f"plan {started.plan_hash[:12]}[/]"
                )
            elif event.type is EventType.RUN_RESUMED:
                self.console.print(f"[bold]resumed[/] {event.run_id}")
            elif event.type is EventType.APPROVAL_REQUESTED:
                tid = escape(str(task))
                self.console.print(
                    f"[bold yellow]awaiting approval[/] {tid}: "
                    f"nexus approve {event.run_id} {tid}  (or: nexus reject ... --reason ...)"
                )
            if task is None:
                continue
            if event.type in (EventType.ATTEMPT_STARTED, EventType.TASK_EXPANDED):
                self.task_started.setdefault(task, now)
                if task in self.recent:
                    self.recent.remove(task)
                self.recent.append(task)
            elif (
                event.type
                in (
                    EventType.TASK_SUCCEEDED,
                    EventType.TASK_FAILED,
                    EventType.TASK_CANCELLED,
                )
                or event.type is EventType.RETRY_SCHEDULED
            ):
                if event.type is not EventType.RETRY_SCHEDULED:
                    self.task_ended[task] = now
                if self.live is None:
                    self._line(state, task, event)
        if self.live is not None:
            self.live.update(self.render())

    def _line(self, state: RunState, task: str, event: Event) -> None:
        ts = state.tasks[task]
        status = "retrying" if event.type is EventType.RETRY_SCHEDULED else str(ts.status)
        style = _STYLE.get(str(ts.status), "none")
        detail = ""
        recorded: dict[str, Any] | None = None
        if event.type is EventType.TASK_FAILED:
            recorded = TaskFailed.of(event.data).error
        elif event.type is EventType.RETRY_SCHEDULED:
            recorded = RetryScheduled.of(event.data).error
        if recorded is not None:
            error = ErrorRecord.of(recorded)
            detail = f"  [dim]{escape(error.kind)}: {escape(error.message)}[/]"
        tries = f"{len(ts.children)} items" if ts.children else f"attempt {ts.attempts}"
        self.console.print(f"  [{style}]{status:<10}[/] {escape(task)}  [dim]{tries}[/]{detail}")

    def render(self) -> Group:
        state = self.state
        if state is None:
            return Group(Text("starting..."))
        counts: dict[str, int] = {}
        for task in state.tasks.values():
            counts[str(task.status)] = counts.get(str(task.status), 0) + 1
        elapsed = time.monotonic() - self.started
        summary = "  ".join(
            f"[{_STYLE.get(k, 'none')}]{k} {v}[/]" for k, v in sorted(counts.items())
        )
        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        table.add_column("task")
        table.add_column("state")
        table.add_column("attempts", justify="right")
        table.add_column("elapsed", justify="right")
        now = time.monotonic()
        shown = [t for t in state.tasks.values() if t.status is TaskStatus.RUNNING]
        shown += [state.tasks[t] for t in self.recent if state.tasks[t] not in shown]
        for task in shown[:_SHOWN_TASKS]:
            begun = self.task_started.get(task.id)
            took = "" if begun is None else f"{self.task_ended.get(task.id, now) - begun:.1f}s"
            style = _STYLE.get(str(task.status), "none")
            table.add_row(escape(task.id), f"[{style}]{task.status}[/]", str(task.attempts), took)
        head = Text.from_markup(f"[bold]{state.plan.name}[/]  {state.status}  {elapsed:.1f}s  ")
        head.append_text(Text.from_markup(summary))
        return Group(head, table)
