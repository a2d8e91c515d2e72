"""The run controller: owns one run's log, folds it, decides, and drives workers.

One controller per run and process, one writer per run (guarded by the
store's lease). The loop::

    wait for inputs (worker results, timers, cancel) -> for each input:
        append it, apply it, let the decider react (decisions are appended too)
    -> commit the batch (group commit)
    -> only then start the attempts and timers the batch decided

so no side effect starts before the decision that asked for it is durable,
and a crash loses at most decisions whose effects never began. Attempts go
to workers through the dispatch port (:mod:`nexus.engine.dispatch`); their
reports come back through the inbox.

In replay mode the same loop consumes the *recorded* inputs in their
recorded order (worker results are re-computed by re-executing the workers
against :class:`~nexus.engine.effects.ReplayEffects`, then released in the
recorded order), and each appended event is compared with the original.

A run with secret inputs (or ``[redaction] pii``) has a redactor: every event
passes through it before it is sealed, so no event holds a secret value. The
state folds what was sealed; only the workers get an attempt's real
arguments and prompt (kept aside, never recorded).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from nexus.domain.events import Draft, Event, EventType, JSONDict, format_time, parse_time, seal
from nexus.domain.payload_data import (
    AttemptFinishedData,
    AttemptStartedData,
    EffectRecordData,
    PlanCachedData,
)
from nexus.domain.payloads import (
    ApprovalAnswered,
    ApprovalRequested,
    ApprovalTimedOut,
    AttemptInterrupted,
    BarrierArmed,
    BarrierTimedOut,
    CancelRequested,
    PauseRequested,
    RetryScheduled,
    RunContinued,
    TaskEndedUnrun,
    TimerFired,
)
from nexus.domain.plan import SCRIPT_POSITION
from nexus.domain.state import RunState, RunStatus, TaskStatus
from nexus.engine.decider import Decider
from nexus.engine.dispatch import Dispatcher, InProcessDispatcher
from nexus.engine.effects import Clock
from nexus.engine.plan_cache import CachedPlan
from nexus.engine.reactions import template_context
from nexus.engine.worker import Assignment, AttemptDone, EffectDone, TokenDelta, Worker
from nexus.redaction import Redactor
from nexus.store.base import Store

if TYPE_CHECKING:
    from nexus.planning.workflow import WorkflowContext

Observer = Callable[[Sequence[Event], RunState], None]
#: Receives the text models stream, live (task, attempt, text); never recorded.
DeltaListener = Callable[[TokenDelta], None]

#: Commit at least this often when a step produces many events.
MAX_BATCH = 4096
#: How often a live controller looks for commands (cancel, pause, approvals) from other processes.
COMMAND_POLL_S = 0.2
#: How often a replay waiting for its workers' next report checks that any is still at work.
REPLAY_POLL_S = 0.02
#: How long a replay waits for workers that are still at work but report nothing.
REPLAY_STALL_S = 30.0


@dataclass(frozen=True, slots=True)
class TimerDue:
    task: str
    attempt: int


@dataclass(frozen=True, slots=True)
class CancelDue:
    reason: str
    #: who asked (``nexus stop --all``); None: nobody was named
    by: str | None = None


@dataclass(frozen=True, slots=True)
class PauseDue:
    """A person asked the run to pause (``nexus pause`` from another process)."""

    by: str
    reason: str


@dataclass(frozen=True, slots=True)
class BarrierDue:
    """The deadline of a task's barrier ``wait`` (armed by ``barrier.armed``) passed."""

    task: str


@dataclass(frozen=True, slots=True)
class CachedPlanDue:
    """An attempt the plan cache answers: record ``plan.cached`` instead of starting it."""

    task: str
    attempt: int


@dataclass(frozen=True, slots=True)
class ContinueDue:
    """The decider stopped a step early (template limits): go on after other inputs."""


@dataclass(frozen=True, slots=True)
class ApprovalDue:
    """A person's answer (``granted``) or, with ``timed_out``, its deadline passing."""

    task: str
    granted: bool = False
    timed_out: bool = False
    by: str = ""
    reason: str = ""


Message = (
    EffectDone
    | AttemptDone
    | TimerDue
    | CancelDue
    | PauseDue
    | ApprovalDue
    | ContinueDue
    | BarrierDue
    | CachedPlanDue
)


class RunController:
    """Drives one run to its end (or until cancelled)."""

    def __init__(
        self,
        store: Store,
        state: RunState,
        worker: Worker,
        clock: Clock,
        *,
        observers: Sequence[Observer] = (),
        replay_of: list[Event] | None = None,
        sink: list[Event] | None = None,
        on_delta: DeltaListener | None = None,
        redactor: Redactor | None = None,
        cached_plans: Mapping[str, CachedPlan] | None = None,
    ) -> None:
        self.store = store
        self.state = state
        self.run_id = state.run_id
        self.worker = worker
        self.clock = clock
        # Unbounded on purpose: the controller is its own consumer (inline
        # attempts put into it), and max_parallel bounds what is in flight.
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._observers = list(observers)
        self._decider = Decider(state, self._emit, self._extension_context)
        self._buffer: list[Event] = []
        #: attempts decided but not started yet (their ``attempt.started`` data)
        self._launch: list[AttemptStartedData] = []
        self._inline: list[AttemptStartedData] = []
        self._seen_upto: dict[str, int] = {}
        self._timers: list[Event] = []
        self._dispatcher: Dispatcher | None = None
        self._replay = replay_of
        self._sink = sink
        self.divergence: dict[str, Any] | None = None
        self.workspace = Path(state.workspace)
        self._on_delta = on_delta
        self._redactor = redactor
        #: (task, attempt) -> the attempt.started data before redaction, for its worker
        self._unredacted: dict[tuple[str, int], AttemptStartedData] = {}
        #: the plans this run may take from the cache (looked up when it started), by task
        self._cached_plans: Mapping[str, CachedPlan] = cached_plans or {}
        #: a replay: the attempts the log answered from the plan cache (no worker runs them)
        self._replayed_hits = {
            (hit.data["task"], hit.data["attempt"])
            for hit in replay_of or ()
            if hit.type is EventType.PLAN_CACHED
        }

    @property
    def redactor(self) -> Redactor | None:
        """What every event of this run passes through (None: nothing to redact)."""
        return self._redactor

    # -- event plumbing ---------------------------------------------------
    # Every task passes here three times or more (attempt.started, its effects,
    # attempt.finished), so the controller reads an attempt.started as the fold
    # does: the stored dict, typed by its stored form (AttemptStartedData). A
    # payload view would cost an object and a Python call per field read.
    def _emit(self, draft: Draft) -> Event:
        state = self.state
        if self._redactor is not None:
            data = self._redactor.redact(draft.data)
            if data != draft.data:
                if draft.type is EventType.ATTEMPT_STARTED:
                    # both built by the decider from the model (redaction changes values)
                    recorded: AttemptStartedData = data
                    real: Any = draft.data
                    self._unredacted[(recorded["task"], recorded["attempt"])] = real
                draft = Draft(draft.type, draft.at, data)
        event = seal(self.run_id, state.seq + 1, draft, state.last_hash)
        state.apply(event)
        self._buffer.append(event)
        if event.type in _FOLLOWED:
            self._follow(event)
        if self._replay is not None:
            self._check_replay(event)
        return event

    def _follow(self, event: Event) -> None:
        """Do what an applied event asks of the controller: queue an attempt, arm a
        timer, answer from the plan cache, or stop a dispatched attempt."""
        kind = event.type
        if kind is _ATTEMPT_STARTED:
            stored: Any = event.data
            started: AttemptStartedData = stored  # its shape checked by state.apply
            self._seen_upto[started["task"]] = self.state.finished_count
            queue = self._inline if self._is_pure(started) else self._launch
            queue.append(started)
        elif (
            kind is EventType.RETRY_SCHEDULED
            or kind is EventType.BARRIER_ARMED
            or (
                kind is EventType.APPROVAL_REQUESTED
                and ApprovalRequested.of(event.data).timeout_ms is not None
            )
        ):
            self._timers.append(event)
        elif kind is EventType.PLAN_CACHED:
            # the cached answer finishes the attempt, as a worker's report would
            hit: Any = event.data
            cached: PlanCachedData = hit
            done = AttemptDone(cached["task"], cached["attempt"], cached["output"], None)
            self.inbox.put_nowait(done)
        elif self._dispatcher is not None:
            if kind is EventType.TASK_CANCELLED:
                self._dispatcher.cancel(TaskEndedUnrun.of(event.data).task)
            elif kind is EventType.ATTEMPT_INTERRUPTED:
                self._dispatcher.cancel(AttemptInterrupted.of(event.data).task)

    def _extension_context(self) -> WorkflowContext:
        """What the tasks a plan extension adds are checked against: the run's tools.

        An MCP server's tools are left to their names (``server.tool``), as in the
        workflow file: a replay connects no server, and must check alike.
        """
        from nexus.planning.workflow import WorkflowContext, tool_infos

        servers = tuple(self.state.plan.mcp_servers)
        tools = {
            name: info
            for name, info in tool_infos(self.worker.tools).items()
            if name.partition(".")[0] not in servers
        }
        return WorkflowContext(tools=tools, mcp_servers=servers)

    def begin(self, first: Event) -> None:
        """React to an input that is already sealed and stored (``run.started``)."""
        self._decider.react(first)

    def _is_pure(self, started: AttemptStartedData) -> bool:
        name = started.get("tool")
        return (
            self._replay is None
            and name is not None
            and name in self.worker.tools
            and self.worker.tools.get(name).pure
        )

    def step(self, draft: Draft) -> None:
        """Append one input and everything the decider makes of it."""
        event = self._emit(draft)
        self._decider.react(event)

    async def flush(self) -> None:
        """Commit the buffered events, tell observers, then start what they decided."""
        if self._buffer:
            batch, self._buffer = self._buffer, []
            if self._sink is not None:
                self._sink.extend(batch)
            else:
                status = str(self.state.status)
                await self.store.append(self.run_id, batch, status)
            for observer in self._observers:
                observer(batch, self.state)
        launch, self._launch = self._launch, []
        if self._inline:  # left over from a full batch: run them now
            await self._run_inline()
        for started in launch:
            task = self.state.tasks[started["task"]]
            if task.status is TaskStatus.RUNNING and task.attempts == started["attempt"]:
                self._start_worker(started)
        timers, self._timers = self._timers, []
        if self._replay is None:
            for event in timers:
                self._arm(event)
            if self._decider.deferred:
                # queued on the loop's next turn, behind whatever else comes in (a
                # cancel); recorded as an input, so replay keeps the same order
                self._decider.deferred = False
                asyncio.get_running_loop().call_soon(self.inbox.put_nowait, ContinueDue())

    # -- live inputs ------------------------------------------------------
    def _now(self) -> str:
        return format_time(self.clock.now())

    def handle(self, message: Message) -> None:
        """Turn a message into an input event, if it still matters."""
        state = self.state
        if state.status.terminal:
            return
        if isinstance(message, EffectDone | AttemptDone):  # two of every task's: first
            self._reported(message)
            return
        if isinstance(message, CancelDue):
            if not state.cancel_requested:
                cancel = CancelRequested(reason=message.reason)
                if message.by is not None:
                    cancel.by = message.by
                self.step(Draft(EventType.CANCEL_REQUESTED, self._now(), cancel.to_data()))
            return
        if isinstance(message, PauseDue):
            if state.hold is None and state.status is RunStatus.RUNNING:
                pause = PauseRequested(by=message.by, reason=message.reason)
                self.step(Draft(EventType.PAUSE_REQUESTED, self._now(), pause.to_data()))
            return
        if isinstance(message, ApprovalDue):
            self._approval(message)
            return
        if isinstance(message, ContinueDue):
            go_on = RunContinued(reason="template_limits")
            self.step(Draft(EventType.RUN_CONTINUED, self._now(), go_on.to_data()))
            return
        if isinstance(message, BarrierDue):
            self._barrier_due(message.task)
            return
        task = state.tasks.get(message.task)
        if task is None or task.attempts != message.attempt:
            return
        if isinstance(message, CachedPlanDue):
            hit = self._cached_plans.get(task.id)
            if hit is not None and task.status is TaskStatus.RUNNING:
                cached = hit.payload(message.attempt)
                self.step(Draft(EventType.PLAN_CACHED, self._now(), cached.to_data()))
            return
        if isinstance(message, TimerDue) and task.status is TaskStatus.RETRY_WAIT:
            fired = TimerFired(task=task.id)
            self.step(Draft(EventType.TIMER_FIRED, self._now(), fired.to_data()))

    def _reported(self, message: EffectDone | AttemptDone) -> None:
        """Record a worker's report, if its attempt is still the task's running one."""
        task = self.state.tasks.get(message.task)
        if task is None or task.attempts != message.attempt or task.status is not _RUNNING:
            return
        if isinstance(message, EffectDone):
            self.step(Draft(_EFFECT_RECORDED, self._now(), message.record))
        else:
            self.step(Draft(_ATTEMPT_FINISHED, self._now(), _finished(message)))

    def _approval(self, message: ApprovalDue) -> None:
        task = self.state.tasks.get(message.task)
        if task is None or task.status is not TaskStatus.AWAITING_APPROVAL:
            return
        if message.timed_out:
            if task.approval_deadline is not None:
                late = ApprovalTimedOut(task=task.id)
                self.step(Draft(EventType.APPROVAL_TIMED_OUT, self._now(), late.to_data()))
            return
        kind = EventType.APPROVAL_GRANTED if message.granted else EventType.APPROVAL_REJECTED
        answer = ApprovalAnswered(task=task.id, by=message.by, reason=message.reason)
        self.step(Draft(kind, self._now(), answer.to_data()))

    def _barrier_due(self, tid: str) -> None:
        """Record a barrier's deadline passing, if the task still waits on it."""
        state = self.state
        task = state.tasks.get(tid)
        if (
            task is None
            or task.status is not TaskStatus.PENDING
            or task.barrier_deadline is None
            or task.barrier_expired
            or state.barrier_standing(task).verdict != "waiting"
        ):
            return  # it started, ended, or is ready and waits only for a free slot
        late = BarrierTimedOut(task=tid)
        self.step(Draft(EventType.BARRIER_TIMED_OUT, self._now(), late.to_data()))

    # -- workers ----------------------------------------------------------
    def _assignment(self, started: AttemptStartedData) -> Assignment:
        tid = started["task"]
        attempt = started["attempt"]
        secret = self._unredacted.pop((tid, attempt), None)
        upto = self._seen_upto.pop(tid, None)
        agent = None
        context: dict[str, Any] = {}
        name = started.get("agent")
        if name is not None:  # tools got their arguments rendered by the decider
            agent = self.state.plan.agents[name]
            context = template_context(self.state, self.state.tasks[tid], upto)
            context["tasks"] = dict(context["tasks"])  # plain values: it may travel
            position = self.state.script_positions.get(tid)
            if position is not None and agent.scripted:
                context[SCRIPT_POSITION] = position  # read (and removed) by the scripted provider
        return Assignment(
            run_id=self.run_id,
            task=tid,
            attempt=attempt,
            workspace=str(self.workspace),
            # the worker gets the real arguments and prompt, never recorded
            started=started if secret is None else secret,
            agent=agent,
            context=context,
        )

    async def _report(self, message: EffectDone | AttemptDone | TokenDelta) -> None:
        if isinstance(message, TokenDelta):
            # live text: shown, never recorded (the model effect records it whole)
            if self._on_delta is not None and self._replay is None:
                self._on_delta(message)
            return
        await self.inbox.put(message)

    def _start_worker(self, started: AttemptStartedData) -> None:
        assert self._dispatcher is not None
        key = (started["task"], started["attempt"])
        if self._replay is not None and key in self._replayed_hits:
            return  # the recorded plan.cached answers it (see _emit)
        if self._replay is None and started["attempt"] == 1 and key[0] in self._cached_plans:
            # the plan cache answers a planner's first attempt; a retry or a re-plan,
            # told what went wrong, asks the model
            self.inbox.put_nowait(CachedPlanDue(*key))
            return
        self._dispatcher.submit(self._assignment(started))

    async def _work(self, started: AttemptStartedData) -> None:
        """Execute an attempt here and now (pure tools)."""
        await self.worker.execute(self._assignment(started), self._report)

    def _arm(self, event: Event) -> None:
        loop = asyncio.get_running_loop()
        message: Message
        delay: int
        if event.type is EventType.APPROVAL_REQUESTED:
            request = ApprovalRequested.of(event.data)
            if request.timeout_ms is None:
                return  # waits without a deadline
            message, delay = ApprovalDue(request.task, timed_out=True), request.timeout_ms
        elif event.type is EventType.BARRIER_ARMED:
            armed = BarrierArmed.of(event.data)
            message, delay = BarrierDue(armed.task), armed.timeout_ms
        else:
            retry = RetryScheduled.of(event.data)
            message, delay = TimerDue(retry.task, retry.attempt), retry.delay_ms
        loop.call_later(delay / 1000, self.inbox.put_nowait, message)

    def rearm_timers(self) -> None:
        """After a resume: re-arm the timers the previous process had set (retries,
        approval deadlines, barrier waits)."""
        now = self.clock.now()
        loop = asyncio.get_running_loop()
        for task in self.state.tasks_in(TaskStatus.RETRY_WAIT):
            assert task.not_before is not None
            delay = max(0.0, (parse_time(task.not_before) - now).total_seconds())
            loop.call_later(delay, self.inbox.put_nowait, TimerDue(task.id, task.attempts))
        for task in self.state.tasks_in(TaskStatus.AWAITING_APPROVAL):
            if task.approval_deadline is not None:
                delay = max(0.0, (parse_time(task.approval_deadline) - now).total_seconds())
                message = ApprovalDue(task.id, timed_out=True)
                loop.call_later(delay, self.inbox.put_nowait, message)
        for task in self.state.tasks_in(TaskStatus.PENDING):
            if task.barrier_deadline is not None and not task.barrier_expired:
                delay = max(0.0, (parse_time(task.barrier_deadline) - now).total_seconds())
                loop.call_later(delay, self.inbox.put_nowait, BarrierDue(task.id))

    # -- the loop ---------------------------------------------------------
    async def run(self, first: Draft | None = None) -> RunState:
        """Drive the run until it ends. ``first`` is the input that (re)starts it."""
        async with (
            InProcessDispatcher(self.worker, self._report) as dispatcher,
            asyncio.TaskGroup() as tg,
        ):
            self._dispatcher = dispatcher
            poller = tg.create_task(self._poll_commands()) if self._replay is None else None
            try:
                if self._replay is not None:
                    await self._replay_loop()
                else:
                    if first is not None:
                        self.step(first)
                    self.rearm_timers()
                    await self.flush()
                    await self._live_loop()
            finally:
                if poller is not None:
                    poller.cancel()
        return self.state

    async def _run_inline(self) -> None:
        """Run pure tools' attempts in the controller itself.

        A pure tool has no effect outside its result, so it need not wait for
        the commit that guards real side effects; its effect is recorded
        exactly like any other (compare Temporal's local activities).
        """
        inline, self._inline = self._inline, []
        for started in inline:
            await self._work(started)

    async def _live_loop(self) -> None:
        inbox = self.inbox
        while self.state.status is _RUN_RUNNING:
            message = await inbox.get()
            self.handle(message)
            while len(self._buffer) < MAX_BATCH:
                if not inbox.empty():
                    self.handle(inbox.get_nowait())
                elif self._inline:
                    await self._run_inline()
                else:
                    break
            await self.flush()

    async def _poll_commands(self) -> None:
        while True:
            await asyncio.sleep(COMMAND_POLL_S)
            for command in await self.store.take_commands(self.run_id):
                payload = command.payload
                if command.kind == "cancel":
                    by = payload.get("by")
                    reason = str(payload.get("reason", "cancel"))
                    await self.inbox.put(CancelDue(reason, by if isinstance(by, str) else None))
                elif command.kind == "pause":
                    pause = PauseDue(str(payload.get("by", "")), str(payload.get("reason", "")))
                    await self.inbox.put(pause)
                elif command.kind in ("approve", "reject"):
                    answer = ApprovalDue(
                        task=str(payload.get("task", "")),
                        granted=command.kind == "approve",
                        by=str(payload.get("by", "")),
                        reason=str(payload.get("reason", "")),
                    )
                    await self.inbox.put(answer)

    # -- replay -----------------------------------------------------------
    def _check_replay(self, event: Event) -> None:
        assert self._replay is not None
        if self.divergence is not None:
            return
        index = event.seq - 1
        if index >= len(self._replay):
            self.divergence = {"seq": event.seq, "expected": None, "actual": event.to_dict()}
        elif self._replay[index].hash != event.hash:
            self.divergence = {
                "seq": event.seq,
                "expected": self._replay[index].to_dict(),
                "actual": event.to_dict(),
            }

    async def _replay_loop(self) -> None:
        assert self._replay is not None
        inputs = deque(e for e in self._replay[self.state.seq :] if e.type in _REPLAY_INPUTS)
        pending: dict[tuple[str, str, int, str], Message] = {}
        await self.flush()
        while inputs and self.divergence is None:
            expected = inputs.popleft()
            if expected.type in _WORKER_INPUTS:
                key = _expect_key(expected)
                while key not in pending:
                    message = await self._next_report()
                    if message is None:
                        self.divergence = {
                            "seq": expected.seq,
                            "expected": expected.to_dict(),
                            "actual": None,
                            "reason": self._unreported(key, pending),
                        }
                        return
                    pending[_message_key(message)] = message
                message = pending.pop(key)
                self._replay_input(expected, message)
            else:
                self.step(Draft(expected.type, expected.at, expected.data))
            await self.flush()

    def _workers_alive(self) -> bool:
        return self._dispatcher is not None and self._dispatcher.busy()

    async def _next_report(self) -> Message | None:
        """The replayed workers' next report; None once none is at work and none is
        left to read (nothing more will come), or when they stall.

        A worker that cannot start (its agent cannot be loaded) reports at once
        and ends, so this returns within :data:`REPLAY_POLL_S` of it, never
        after :data:`REPLAY_STALL_S`.
        """
        loop = asyncio.get_running_loop()
        stall_at = loop.time() + REPLAY_STALL_S
        while self._workers_alive() or not self.inbox.empty():
            try:
                async with asyncio.timeout(REPLAY_POLL_S):
                    return await self.inbox.get()
            except TimeoutError:
                if loop.time() >= stall_at:
                    return None
        return None

    def _unreported(
        self, key: tuple[str, str, int, str], pending: dict[tuple[str, str, int, str], Message]
    ) -> str:
        """Why the workers' report ``key`` never came: what its attempt did instead."""
        if self._workers_alive():
            return (
                f"timed out waiting for the replayed workers: still at work, no report in "
                f"{REPLAY_STALL_S:g} s"
            )
        _, task, attempt, _ = key
        done = pending.get(("finished", task, attempt, ""))
        if isinstance(done, AttemptDone):
            if done.error is not None:
                error = f"{done.error.get('kind', 'error')}: {done.error.get('message', '')}"
                return (
                    f"task '{task}' attempt {attempt} ended with an error before the "
                    f"effect the run recorded here: {error}"
                )
            return f"task '{task}' attempt {attempt} ended before the effect the run recorded here"
        return "the replayed workers never produced this input"

    def _replay_input(self, expected: Event, message: Message) -> None:
        if isinstance(message, EffectDone):
            self.step(Draft(EventType.EFFECT_RECORDED, expected.at, message.record))
        elif isinstance(message, AttemptDone):
            self.step(Draft(EventType.ATTEMPT_FINISHED, expected.at, _finished(message)))


def _finished(message: AttemptDone) -> JSONDict:
    """The ``attempt.finished`` data of a worker's report: its output, or its error.

    Written as its stored form (:class:`AttemptFinishedData`, which a test holds
    to the model), not through the model's view: this runs once per task.
    """
    done: AttemptFinishedData = {"task": message.task, "attempt": message.attempt}
    if message.error is None:
        done["output"] = message.output
    else:
        done["error"] = message.error
    return cast("JSONDict", done)


# The statuses and event types a task's path compares with, as module constants
# (``EventType.X`` in CPython 3.11 goes through ``EnumType.__getattr__``: ~10x a
# global; see nexus.domain.state).
_RUNNING = TaskStatus.RUNNING
_RUN_RUNNING = RunStatus.RUNNING
_ATTEMPT_STARTED = EventType.ATTEMPT_STARTED
_EFFECT_RECORDED = EventType.EFFECT_RECORDED
_ATTEMPT_FINISHED = EventType.ATTEMPT_FINISHED
#: What the controller acts on once it applied it (see ``_follow``); most events are not.
_FOLLOWED = frozenset(
    {
        EventType.ATTEMPT_STARTED,
        EventType.RETRY_SCHEDULED,
        EventType.BARRIER_ARMED,
        EventType.APPROVAL_REQUESTED,
        EventType.PLAN_CACHED,
        EventType.TASK_CANCELLED,
        EventType.ATTEMPT_INTERRUPTED,
    }
)
_WORKER_INPUTS = frozenset({EventType.EFFECT_RECORDED, EventType.ATTEMPT_FINISHED})
_REPLAY_INPUTS = frozenset(
    {
        EventType.BUDGET_RAISED,
        EventType.INTERRUPTS_RESET,
        EventType.RUN_CONTINUED,
        EventType.APPROVAL_GRANTED,
        EventType.APPROVAL_REJECTED,
        EventType.APPROVAL_TIMED_OUT,
        EventType.BARRIER_TIMED_OUT,
        EventType.PLAN_CACHED,
        EventType.RUN_RESUMED,
        EventType.CANCEL_REQUESTED,
        EventType.PAUSE_REQUESTED,
        EventType.TIMER_FIRED,
        EventType.EFFECT_RECORDED,
        EventType.ATTEMPT_FINISHED,
    }
)


def _expect_key(event: Event) -> tuple[str, str, int, str]:
    data: Any = event.data  # a recorded input: the replay folded the log, which checked it
    if event.type is EventType.EFFECT_RECORDED:
        record: EffectRecordData = data
        return ("effect", record["task"], record["attempt"], record["key"])
    finished: AttemptFinishedData = data
    return ("finished", finished["task"], finished["attempt"], "")


def _message_key(message: Message) -> tuple[str, str, int, str]:
    if isinstance(message, EffectDone):
        data: Any = message.record
        record: EffectRecordData = data
        return ("effect", message.task, message.attempt, record["key"])
    if isinstance(message, AttemptDone):
        return ("finished", message.task, message.attempt, "")
    return ("other", "", 0, "")
