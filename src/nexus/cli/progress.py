"""Live terminal progress, read from the event stream (never from engine internals).

One observer, two ways to show a run:

* on a terminal, a live table (task, state, attempts, elapsed, why) redrawn a
  few times a second, so its clocks run also while no event comes (a task
  waiting for approval, a long tool call). The table is drawn from a snapshot
  taken when events arrive: the refresh thread never reads the run's state
  while the engine changes it;
* elsewhere (CI, pipes), and with ``nexus run --stream``, one line per task
  that ends or retries, with the one-line reason of a failure or a skip.

A task a plan extension added is marked ``+`` with the task that added it
("added by plan"), and the extension itself gets a line; a skipped task shows
with the reason it was skipped (a false ``when``, a case not taken, a need
that failed), so a plan that grew or was cut short reads as such. The tasks
of a sub-workflow (``build/compile``) show indented under the task that runs
it (``build``), which shows as running while they do, with how many ended.

Streamed model text (``--stream``, :meth:`Progress.delta`) shares the line
mode's console: a header per task, then the text as it comes; a status line
(a task failed, an approval is awaited) always starts on a fresh line, so
neither hides the other.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from nexus.domain.events import Event, EventType
from nexus.domain.payloads import (
    ErrorRecord,
    PlanCached,
    PlanExtended,
    RetryScheduled,
    RunStarted,
    TaskEndedUnrun,
    TaskFailed,
    TaskPaused,
    TaskSucceeded,
    task_of,
)
from nexus.domain.plan import SCOPE_SEP, enclosing
from nexus.domain.state import RunState, TaskStatus
from nexus.engine.worker import TokenDelta

_STYLE = {
    "pending": "dim",
    "running": "cyan",
    "retry_wait": "yellow",
    "expanded": "cyan",
    "awaiting_approval": "bold yellow",
    "paused": "yellow",
    "succeeded": "green",
    "failed": "bold red",
    "skipped": "dim",
    "cancelled": "magenta",
}
_SHOWN_TASKS = 12
#: the longest reason the table shows (the rest is in `nexus inspect`)
_REASON_CHARS = 120
#: tasks whose clock runs: they are being worked on, or waited for
_ACTIVE = (TaskStatus.RUNNING, TaskStatus.AWAITING_APPROVAL, TaskStatus.RETRY_WAIT)


def one_line(text: str, limit: int = _REASON_CHARS) -> str:
    """``text`` on one line, at most ``limit`` characters (an ellipsis marks a cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def error_line(error: dict[str, Any]) -> str:
    """A recorded error as ``kind: message``, on one line."""
    record = ErrorRecord.of(error)
    return one_line(f"{record.kind}: {record.message}")


#: what marks a task a plan extension added, in the table and in lines
ADDED_MARK = "+"


@dataclass(frozen=True, slots=True)
class _Row:
    task: str
    status: str
    attempts: int
    begun: float | None
    ended: float | None
    why: str
    #: the task whose plan extension added this one (None: the workflow's own)
    added_by: str | None = None
    #: how many sub-workflows it is in (its row is indented under theirs)
    depth: int = 0


@dataclass(frozen=True, slots=True)
class _Snapshot:
    name: str
    status: str
    counts: dict[str, int]
    rows: tuple[_Row, ...]


class Progress:
    """An observer that shows per-task state, attempts, elapsed time and why.

    Args:
        console: where to draw (stderr in the CLI).
        live: draw a live table; default: when ``console`` is a terminal.
            ``nexus run --stream`` asks for lines, which streamed text can
            interleave with.
        clock: seconds, monotonic (tests pass a controllable one).
    """

    def __init__(
        self,
        console: Console,
        *,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.clock = clock
        self.started = clock()
        self.run_id: str | None = None
        self.task_started: dict[str, float] = {}
        self.task_ended: dict[str, float] = {}
        #: the one-line reason shown next to a task (failure, retry, skip, approval)
        self.reasons: dict[str, str] = {}
        self.recent: deque[str] = deque(maxlen=_SHOWN_TASKS)
        self._waiting: set[str] = set()
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        #: the task whose streamed text is on the current line, if any
        self._streaming: str | None = None
        self._midline = False
        self.live: Live | None = None
        if console.is_terminal if live is None else live:
            self.live = Live(
                console=console,
                get_renderable=self.render,
                refresh_per_second=4,
                transient=False,
            )

    def __enter__(self) -> Progress:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.refresh()
            self.live.__exit__(None, None, None)
        self._end_line()

    # -- events -------------------------------------------------------------------------

    def __call__(self, events: Sequence[Event], state: RunState) -> None:
        now = self.clock()
        for event in events:
            self._note(event, state, now)
        snapshot = self._take(state)
        with self._lock:
            self._snapshot = snapshot
        if self.live is not None:
            self.live.refresh()

    def _note(self, event: Event, state: RunState, now: float) -> None:
        task = task_of(event)
        kind = event.type
        if kind is EventType.RUN_STARTED:
            self.run_id = event.run_id
            started = RunStarted.from_event(event)
            self._say(
                f"[bold]run[/] {event.run_id}  [dim]{escape(started.name)}  "
                f"plan {started.plan_hash[:12]}[/]"
            )
        elif kind is EventType.RUN_RESUMED:
            self.run_id = event.run_id
            self._say(f"[bold]resumed[/] {event.run_id}")
        if task is None:
            return
        if kind is EventType.PLAN_EXTENDED:
            extended = PlanExtended.from_event(event)
            ids = [str(t.get("id")) for t in extended.tasks]
            shown = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
            self._say(
                f"  [cyan]{'extended':<10}[/] {escape(task)}  [dim]added {len(ids)} "
                f"task{'' if len(ids) == 1 else 's'} (depth {extended.depth})"
                + (f": {escape(shown)}" if ids else "")
                + "[/]"
            )
        elif kind is EventType.PLAN_CACHED:
            cached = PlanCached.from_event(event)
            self._say(
                f"  [cyan]{'cached':<10}[/] {escape(task)}  [dim]the plan of run "
                f"{cached.source_run}, no planner call[/]"
            )
        elif kind is EventType.APPROVAL_REQUESTED:
            tid = escape(task)
            self._say(
                f"[bold yellow]awaiting approval[/] {tid}: "
                f"nexus approve {event.run_id} {tid}  (or: nexus reject ... --reason ...)"
            )
            self.reasons[task] = f"nexus approve {event.run_id} {task}"
            self._waiting.add(task)
            self._touch(task, now, restart=True)
        elif kind in (EventType.ATTEMPT_STARTED, EventType.TASK_EXPANDED):
            self.reasons.pop(task, None)
            # an approved task's clock restarts: the wait is over, the work begins
            self._touch(task, now, restart=task in self._waiting)
            self._waiting.discard(task)
        elif kind is EventType.RETRY_SCHEDULED:
            self.reasons[task] = "retrying: " + error_line(RetryScheduled.from_event(event).error)
            if self.live is None:
                self._line(state, task, event)
        elif kind is EventType.TASK_FAILED:
            self.reasons[task] = error_line(TaskFailed.from_event(event).error)
            # one whose template failed never started an attempt: show it all the same
            self._touch(task, now, restart=False)
            self._ended(state, task, event, now)
        elif kind in (EventType.TASK_SKIPPED, EventType.TASK_CANCELLED):
            self.reasons[task] = one_line(TaskEndedUnrun.from_event(event).reason)
            if kind is EventType.TASK_SKIPPED:
                # it never ran (no clock), yet why it did not is worth a row of its own
                self._show(task)
            self._ended(state, task, event, now)
        elif kind is EventType.TASK_PAUSED:
            self.reasons[task] = one_line(TaskPaused.from_event(event).reason)
        elif kind is EventType.TASK_SUCCEEDED:
            self.reasons.pop(task, None)
            self._ended(state, task, event, now)

    def _touch(self, task: str, now: float, *, restart: bool) -> None:
        """``task`` is worked on (or waited for) from ``now``: it shows in the table."""
        if restart:
            self.task_started[task] = now
            self.task_ended.pop(task, None)
        else:
            self.task_started.setdefault(task, now)
        self._show(task)

    def _show(self, task: str) -> None:
        """``task`` is among the latest the table shows."""
        if task in self.recent:
            self.recent.remove(task)
        self.recent.append(task)

    def _ended(self, state: RunState, task: str, event: Event, now: float) -> None:
        self.task_ended[task] = now
        if self.live is None:
            self._line(state, task, event)

    def _take(self, state: RunState) -> _Snapshot:
        counts: dict[str, int] = {}
        for task in state.tasks.values():
            counts[str(task.status)] = counts.get(str(task.status), 0) + 1
        shown = [t for t in state.tasks.values() if t.status in _ACTIVE]
        shown += [state.tasks[t] for t in self.recent if state.tasks[t] not in shown]
        rows = tuple(self._row(state, tid) for tid in nested([t.id for t in shown[:_SHOWN_TASKS]]))
        return _Snapshot(state.plan.name, str(state.status), dict(sorted(counts.items())), rows)

    def _row(self, state: RunState, tid: str) -> _Row:
        task = state.tasks[tid]
        status, why = str(task.status), self.reasons.get(tid, "")
        if task.spec.workflow is not None:
            # the task that ends a sub-workflow waits while its tasks run: show theirs
            inside = [t for t in state.tasks.values() if t.id.startswith(tid + SCOPE_SEP)]
            ended = sum(1 for t in inside if t.status.terminal)
            if task.status is TaskStatus.PENDING and any(
                t.status is not TaskStatus.PENDING for t in inside
            ):
                status = "running"
            why = why or f"sub-workflow {task.spec.workflow.name}: {ended}/{len(inside)} ended"
        return _Row(
            task=tid,
            status=status,
            attempts=task.attempts,
            begun=self.task_started.get(tid),
            ended=self.task_ended.get(tid),
            why=why,
            added_by=task.extended_by,
            depth=len(enclosing(tid)),
        )

    # -- lines (no live table) -----------------------------------------------------------

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
        elif event.type is EventType.TASK_SKIPPED:
            detail = f"  [dim]{escape(self.reasons.get(task, ''))}[/]"
        if ts.extended_by is not None:
            detail = f"  [dim]added by {escape(ts.extended_by)}[/]{detail}"
        if ts.children:
            tries = f"{len(ts.children)} items"
            aggregate = _aggregate_of(event)
            if aggregate is not None and aggregate.get("winner") is not None:
                tries += f", {aggregate.get('method')}: item {aggregate['winner']}"
        elif ts.spec.switch is not None and isinstance(ts.output, dict):
            tries = f"case {ts.output['case']}"  # a switch runs no attempt: what it picked
        elif ts.status is TaskStatus.SKIPPED:
            tries = "not run"
        else:
            tries = f"attempt {ts.attempts}"
        name = escape(_marked(task, ts.extended_by))
        self._say(f"  [{style}]{status:<10}[/] {name}  [dim]{tries}[/]{detail}")

    def _say(self, markup: str) -> None:
        """Print a status line, on a line of its own (after any streamed text)."""
        self._end_line()
        self.console.print(markup)

    def _end_line(self) -> None:
        if self._midline:
            self.console.out("", highlight=False)
            self._midline = False
        self._streaming = None

    def delta(self, delta: TokenDelta) -> None:
        """Show streamed model text: a header when the task changes, then the text."""
        if delta.task != self._streaming:
            self._end_line()
            self.console.print(f"[bold cyan]{escape(delta.task)}[/] ", end="")
            self._streaming = delta.task
            self._midline = True
        if delta.text:
            self.console.out(delta.text, end="", highlight=False)
            self._midline = not delta.text.endswith("\n")

    # -- the live table ------------------------------------------------------------------

    def render(self) -> Group:
        """The table as of the last events, its clocks as of now."""
        with self._lock:
            snapshot = self._snapshot
        if snapshot is None:
            return Group(Text("starting..."))
        now = self.clock()
        summary = "  ".join(
            f"[{_STYLE.get(k, 'none')}]{k} {v}[/]" for k, v in snapshot.counts.items()
        )
        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        table.add_column("task", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column("attempts", justify="right")
        table.add_column("elapsed", justify="right")
        table.add_column("why", overflow="ellipsis", no_wrap=True)
        for row in snapshot.rows:
            end = now if row.ended is None else row.ended
            took = "" if row.begun is None else f"{end - row.begun:.1f}s"
            style = _STYLE.get(row.status, "none")
            why = row.why
            if row.added_by is not None:
                why = f"added by {row.added_by}" + (f"; {why}" if why else "")
            name = row.task.rpartition(SCOPE_SEP)[2] if row.depth else row.task
            table.add_row(
                "  " * row.depth + escape(_marked(name, row.added_by)),
                f"[{style}]{row.status}[/]",
                str(row.attempts),
                took,
                f"[dim]{escape(why)}[/]" if why else "",
            )
        elapsed = now - self.started
        head = Text.from_markup(
            f"[bold]{escape(snapshot.name)}[/]  {snapshot.status}  {elapsed:.1f}s  "
        )
        head.append_text(Text.from_markup(summary))
        return Group(head, table)


def nested(ids: Sequence[str]) -> list[str]:
    """``ids`` with the tasks of a sub-workflow under the task that runs it.

    Each task inside a sub-workflow (``build/compile``) brings the tasks
    running the sub-workflows it is in (``build``), and follows them; groups
    keep the order their first task had.
    """
    first: dict[str, int] = {}
    for index, tid in enumerate(ids):
        for part in (*enclosing(tid), tid):
            first.setdefault(part, index)
    return sorted(first, key=lambda tid: [first[p] for p in (*enclosing(tid), tid)])


def _marked(task: str, added_by: str | None) -> str:
    """A task's name as shown: ``+ name`` when a plan extension added it."""
    return task if added_by is None else f"{ADDED_MARK} {task}"


def _aggregate_of(event: Event) -> dict[str, Any] | None:
    """The ``aggregate`` a fan-out's end recorded (None for any other event)."""
    if event.type is EventType.TASK_SUCCEEDED:
        return TaskSucceeded.of(event.data).aggregate
    if event.type is EventType.TASK_FAILED:
        return TaskFailed.of(event.data).aggregate
    return None
