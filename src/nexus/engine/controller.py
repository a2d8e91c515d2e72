"""The run controller: owns one run's log, folds it, decides, and drives workers.

One controller per run and process, one writer per run (guarded by the
store's lease). The loop::

    wait for inputs (worker results, timers, cancel) -> for each input:
        append it, apply it, let the decider react (decisions are appended too)
    -> commit the batch (group commit)
    -> only then start the attempts and timers the batch decided

so no side effect starts before the decision that asked for it is durable,
and a crash loses at most decisions whose effects never began. Workers run
as tasks of the controller's ``TaskGroup``; cancelling the run cancels them.

In replay mode the same loop consumes the *recorded* inputs in their
recorded order (worker results are re-computed by re-executing the workers
against :class:`~nexus.engine.effects.ReplayEffects`, then released in the
recorded order), and each appended event is compared with the original.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus.agents.base import AgentCall, AgentResolver
from nexus.domain.errors import ErrorKind
from nexus.domain.events import Draft, Event, EventType, format_time, parse_time, seal
from nexus.domain.ids import effect_key
from nexus.domain.state import RunState, TaskStatus
from nexus.engine.decider import Decider, template_context
from nexus.engine.effects import (
    Clock,
    EffectCall,
    EffectFailed,
    Effects,
    error_record,
    to_json,
)
from nexus.store.base import Store
from nexus.tools.base import ToolContext, ToolRegistry

Observer = Callable[[Sequence[Event], RunState], None]

#: Commit at least this often when a step produces many events.
MAX_BATCH = 4096
#: How often a live controller looks for commands (cancel) from other processes.
COMMAND_POLL_S = 0.2


@dataclass(frozen=True, slots=True)
class EffectDone:
    task: str
    attempt: int
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AttemptDone:
    task: str
    attempt: int
    output: Any
    error: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class TimerDue:
    task: str
    attempt: int


@dataclass(frozen=True, slots=True)
class CancelDue:
    reason: str


Message = EffectDone | AttemptDone | TimerDue | CancelDue


@dataclass(slots=True)
class Services:
    """What workers need: tools, agents, the clock."""

    tools: ToolRegistry
    agents: AgentResolver
    clock: Clock


class AttemptContext:
    """One attempt's view of the world; every effect goes through it."""

    def __init__(
        self,
        controller: RunController,
        task: str,
        attempt: int,
        template_context: dict[str, Any],
        deadline: float | None,
    ) -> None:
        self._controller = controller
        self._task = task
        self._attempt = attempt
        self._template_context = template_context
        self._deadline = deadline
        self._calls = 0

    @property
    def task(self) -> str:
        return self._task

    @property
    def attempt(self) -> int:
        return self._attempt

    @property
    def template_context(self) -> dict[str, Any]:
        return self._template_context

    async def effect(self, kind: str, request: dict[str, Any], fn: Callable[[], Any]) -> Any:
        controller = self._controller
        call = EffectCall(
            key=effect_key(controller.run_id, self._task, self._attempt, self._calls),
            kind=kind,
            task=self._task,
            attempt=self._attempt,
            request=to_json(request, f"the {kind} request"),
            deadline=self._deadline,
        )
        self._calls += 1
        record = await controller.effects.perform(call, fn)
        await controller.inbox.put(EffectDone(self._task, self._attempt, record))
        if record["error"] is not None:
            raise EffectFailed(record["error"])
        return record["response"]


class RunController:
    """Drives one run to its end (or until cancelled)."""

    def __init__(
        self,
        store: Store,
        state: RunState,
        services: Services,
        effects: Effects,
        *,
        observers: Sequence[Observer] = (),
        replay_of: list[Event] | None = None,
        sink: list[Event] | None = None,
    ) -> None:
        self.store = store
        self.state = state
        self.run_id = state.run_id
        self.services = services
        self.effects = effects
        # Unbounded on purpose: the controller is its own consumer (inline
        # attempts put into it), and max_parallel bounds what is in flight.
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._observers = list(observers)
        self._decider = Decider(state, self._emit)
        self._buffer: list[Event] = []
        self._launch: list[Event] = []
        self._inline: list[Event] = []
        self._seen_upto: dict[str, int] = {}
        self._timers: list[Event] = []
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._replay = replay_of
        self._sink = sink
        self.divergence: dict[str, Any] | None = None
        self.workspace = Path(state.workspace)

    # -- event plumbing ---------------------------------------------------
    def _emit(self, draft: Draft) -> Event:
        state = self.state
        event = seal(self.run_id, state.seq + 1, draft, state.last_hash)
        state.apply(event)
        self._buffer.append(event)
        kind = event.type
        if kind is EventType.ATTEMPT_STARTED:
            self._seen_upto[event.data["task"]] = state.finished_count
            (self._inline if self._is_pure(event) else self._launch).append(event)
        elif kind is EventType.RETRY_SCHEDULED:
            self._timers.append(event)
        elif kind in (EventType.TASK_CANCELLED, EventType.ATTEMPT_INTERRUPTED):
            worker = self._workers.pop(event.data["task"], None)
            if worker is not None:
                worker.cancel()
        if self._replay is not None:
            self._check_replay(event)
        return event

    def begin(self, first: Event) -> None:
        """React to an input that is already sealed and stored (``run.started``)."""
        self._decider.react(first)

    def _is_pure(self, event: Event) -> bool:
        name = event.data.get("tool")
        return (
            self._replay is None
            and name is not None
            and name in self.services.tools
            and self.services.tools.get(name).pure
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
        for event in launch:
            task = self.state.tasks[event.data["task"]]
            if task.status is TaskStatus.RUNNING and task.attempts == event.data["attempt"]:
                self._start_worker(event)
        timers, self._timers = self._timers, []
        if self._replay is None:
            for event in timers:
                self._arm(event)

    # -- live inputs ------------------------------------------------------
    def _now(self) -> str:
        return format_time(self.services.clock.now())

    def handle(self, message: Message) -> None:
        """Turn a message into an input event, if it still matters."""
        state = self.state
        if state.status.terminal:
            return
        if isinstance(message, CancelDue):
            if not state.cancel_requested:
                self.step(
                    Draft(EventType.CANCEL_REQUESTED, self._now(), {"reason": message.reason})
                )
            return
        task = state.tasks.get(message.task)
        if task is None or task.attempts != message.attempt:
            return
        if isinstance(message, TimerDue):
            if task.status is TaskStatus.RETRY_WAIT:
                self.step(Draft(EventType.TIMER_FIRED, self._now(), {"task": task.id}))
            return
        if task.status is not TaskStatus.RUNNING:
            return
        if isinstance(message, EffectDone):
            self.step(Draft(EventType.EFFECT_RECORDED, self._now(), message.record))
        else:
            self._workers.pop(task.id, None)
            data: dict[str, Any] = {"task": task.id, "attempt": message.attempt}
            if message.error is None:
                data["output"] = message.output
            else:
                data["error"] = message.error
            self.step(Draft(EventType.ATTEMPT_FINISHED, self._now(), data))

    # -- workers ----------------------------------------------------------
    def _start_worker(self, event: Event) -> None:
        assert self._tg is not None
        tid = event.data["task"]
        self._workers[tid] = self._tg.create_task(self._work(event), name=f"attempt {tid}")

    async def _work(self, event: Event) -> None:
        data = event.data
        tid, attempt = data["task"], data["attempt"]
        task = self.state.tasks[tid]
        timeout_ms = data.get("timeout_ms")
        loop = asyncio.get_running_loop()
        deadline = None if timeout_ms is None else loop.time() + timeout_ms / 1000
        # tools get their arguments rendered by the decider; only agents see the context
        upto = self._seen_upto.pop(tid, None)
        context = template_context(self.state, task, upto) if "agent" in data else {}
        ctx = AttemptContext(self, tid, attempt, context, deadline)
        output: Any = None
        error: dict[str, Any] | None = None
        try:
            if "tool" in data:
                tool_ctx = ToolContext(self.run_id, tid, attempt, self.workspace)
                request = {"tool": data["tool"], "args": data["args"]}

                async def call_tool() -> Any:
                    # looked up inside the effect: a replay needs no tool at all
                    tool = self.services.tools.get(data["tool"])
                    return await tool(data["args"], tool_ctx)

                output = await ctx.effect("tool", request, call_tool)
            else:
                spec = self.state.plan.agents[data["agent"]]
                agent = self.services.agents.resolve(spec)
                call = AgentCall(
                    agent=data["agent"],
                    prompt=data["prompt"],
                    instructions=data["instructions"],
                    model=data["model"],
                    turn=data["turn"],
                )
                if deadline is None:
                    result = await agent.run(call, ctx)
                else:
                    async with asyncio.timeout_at(deadline + 0.5):
                        result = await agent.run(call, ctx)
                output = to_json(result, f"the output of task '{tid}'")
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            error = {
                "kind": str(ErrorKind.TIMEOUT),
                "message": f"task '{tid}' exceeded its timeout of {timeout_ms} ms",
                "retryable": True,
            }
        except Exception as exc:
            error = to_json(error_record(exc), "error")
        await self.inbox.put(AttemptDone(tid, attempt, output, error))

    def _arm(self, event: Event) -> None:
        data = event.data
        loop = asyncio.get_running_loop()
        message = TimerDue(data["task"], data["attempt"])
        loop.call_later(data["delay_ms"] / 1000, self.inbox.put_nowait, message)

    def rearm_timers(self) -> None:
        """After a resume: re-arm the retry timers the previous process had set."""
        now = self.services.clock.now()
        loop = asyncio.get_running_loop()
        for task in self.state.tasks_in(TaskStatus.RETRY_WAIT):
            assert task.not_before is not None
            delay = max(0.0, (parse_time(task.not_before) - now).total_seconds())
            loop.call_later(delay, self.inbox.put_nowait, TimerDue(task.id, task.attempts))

    # -- the loop ---------------------------------------------------------
    async def run(self, first: Draft | None = None) -> RunState:
        """Drive the run until it ends. ``first`` is the input that (re)starts it."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
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
                for worker in self._workers.values():
                    worker.cancel()
                self._workers.clear()
        return self.state

    async def _run_inline(self) -> None:
        """Run pure tools' attempts in the controller itself.

        A pure tool has no effect outside its result, so it need not wait for
        the commit that guards real side effects; its effect is recorded
        exactly like any other (compare Temporal's local activities).
        """
        inline, self._inline = self._inline, []
        for event in inline:
            await self._work(event)

    async def _live_loop(self) -> None:
        inbox = self.inbox
        while not self.state.status.terminal:
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
                if command.kind == "cancel":
                    await self.inbox.put(CancelDue(str(command.payload.get("reason", "cancel"))))

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
                    if not self._workers_alive() and self.inbox.empty():
                        self.divergence = {
                            "seq": expected.seq,
                            "expected": expected.to_dict(),
                            "actual": None,
                            "reason": "the replayed workers never produced this input",
                        }
                        return
                    try:
                        async with asyncio.timeout(30):
                            message = await self.inbox.get()
                    except TimeoutError:
                        self.divergence = {
                            "seq": expected.seq,
                            "expected": expected.to_dict(),
                            "actual": None,
                            "reason": "timed out waiting for the replayed workers",
                        }
                        return
                    pending[_message_key(message)] = message
                message = pending.pop(key)
                self._replay_input(expected, message)
            else:
                self.step(Draft(expected.type, expected.at, expected.data))
            await self.flush()

    def _workers_alive(self) -> bool:
        return any(not w.done() for w in self._workers.values())

    def _replay_input(self, expected: Event, message: Message) -> None:
        if isinstance(message, EffectDone):
            self.step(Draft(EventType.EFFECT_RECORDED, expected.at, message.record))
        elif isinstance(message, AttemptDone):
            self._workers.pop(message.task, None)
            data: dict[str, Any] = {"task": message.task, "attempt": message.attempt}
            if message.error is None:
                data["output"] = message.output
            else:
                data["error"] = message.error
            self.step(Draft(EventType.ATTEMPT_FINISHED, expected.at, data))


_WORKER_INPUTS = frozenset({EventType.EFFECT_RECORDED, EventType.ATTEMPT_FINISHED})
_REPLAY_INPUTS = frozenset(
    {
        EventType.RUN_RESUMED,
        EventType.CANCEL_REQUESTED,
        EventType.TIMER_FIRED,
        EventType.EFFECT_RECORDED,
        EventType.ATTEMPT_FINISHED,
    }
)


def _expect_key(event: Event) -> tuple[str, str, int, str]:
    data = event.data
    if event.type is EventType.EFFECT_RECORDED:
        return ("effect", data["task"], data["attempt"], data["key"])
    return ("finished", data["task"], data["attempt"], "")


def _message_key(message: Message) -> tuple[str, str, int, str]:
    if isinstance(message, EffectDone):
        return ("effect", message.task, message.attempt, message.record["key"])
    if isinstance(message, AttemptDone):
        return ("finished", message.task, message.attempt, "")
    return ("other", "", 0, "")
