"""Run and task state machines, and the fold that rebuilds state from events.

``RunState.apply(event)`` is the only way state changes, live or folded from
the log, so a resumed or replayed run sees exactly what the live run saw. Each
transition is checked against the tables below; an illegal one raises
:class:`~nexus.domain.errors.IntegrityError` (the log and the code disagree).

Task states::

    pending ──attempt.started──> running ──task.succeeded──> succeeded
       │  └─task.expanded──> expanded (foreach parent; ends with its items)
       │                       running ──task.retry_scheduled──> retry_wait ──timer.fired──> pending
       ├─task.skipped──> skipped       running ──task.failed──> failed
       └─task.cancelled──> cancelled   (any non-terminal) ──task.cancelled──> cancelled
    pending|running ──task.paused──> paused ──run.resumed──> pending   (a budget ran out)
    pending ──task.succeeded {case}──> succeeded   (a switch task picked its case)
    expanded ──task.succeeded {aggregate}──> succeeded   (its output: the winning item's;
                 first_success: before its other items end, which are then cancelled)
    running ──task.iterated──> pending   (a loop task's until was false: it runs again)
    running ──bt.ticked {attempt}──> pending   (a bt task's action ended: its next leaf)
    pending ──task.succeeded──> succeeded   (a bt task's tree succeeded between leaves)
    running ──fsm.transitioned──> pending   (an fsm task goes to its next state's body)

A saga (``saga.started``, when a task with ``on_failure: compensate`` failed
for good) adds one task per step as it goes: ``compensation.started`` creates
``<task>.compensate`` pending, and it moves like any task from there; the
saga's steps run one at a time, in order, until ``saga.finished``.

A task with a ``barrier`` (``needs_any``, ``quorum``, ``wait``) is put on the
ready heap each time one of its needs ends, not only after the last: the
decider judges it (:meth:`RunState.barrier_standing`) and starts it, skips it,
or leaves it waiting. ``barrier.armed`` records the deadline of its ``wait``
and ``barrier.timed_out`` its passing (the task is judged again then).

A run whose every remaining task waits on a paused one is ``paused`` (not
ended): ``nexus resume`` after raising the budget continues it. A person may
pause a run too (``run.pause_requested``): the request is the run's
:attr:`RunState.hold` until ``run.resumed`` lifts it, no attempt starts while it
holds, and the run is ``paused`` once nothing runs.

The state also keeps what the scheduler needs incrementally (a ready heap, the
count of unfinished dependencies per task) so each decision costs O(log n),
not a scan of the plan.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from nexus.domain.bt import ACTION, CONDITION, SUCCESS
from nexus.domain.budget import Limits, Scope, Spend
from nexus.domain.errors import IntegrityError
from nexus.domain.events import Event, EventType
from nexus.domain.graph import longest_path_to_sink, topological_order
from nexus.domain.payload_data import (
    ApprovalAnsweredData,
    ApprovalEscalatedData,
    ApprovalRequestedData,
    ApprovalTimedOutData,
    AttemptFinishedData,
    AttemptInterruptedData,
    AttemptStartedData,
    BarrierArmedData,
    BarrierTimedOutData,
    BtTickedData,
    BudgetCrossedData,
    BudgetRaisedData,
    CompensationStartedData,
    ConflictDetectedData,
    EffectRecordData,
    FsmTransitionedData,
    InterruptsResetData,
    PauseRequestedData,
    PlanCachedData,
    PlanExtendedData,
    PlanReplanningData,
    RetryScheduledData,
    SagaFinishedData,
    SagaStartedData,
    TaskEndedUnrunData,
    TaskExpandedData,
    TaskFailedData,
    TaskIteratedData,
    TaskPausedData,
    TaskSucceededData,
    TimerFiredData,
)
from nexus.domain.payloads import PAYLOADS, ErrorRecord, Payload, RunStarted
from nexus.domain.plan import SCOPE_SEP, Plan, TaskSpec, enclosing
from nexus.domain.writes import first_overlap

_Model = TypeVar("_Model", bound=Payload)


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    RETRY_WAIT = "retry_wait"
    EXPANDED = "expanded"
    AWAITING_APPROVAL = "awaiting_approval"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TASK_TERMINAL


class RunStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self is not _RUN_RUNNING and self is not _RUN_PAUSED


# The statuses as module constants: in CPython 3.11 ``EnumType`` defines
# ``__getattr__``, so every ``TaskStatus.RUNNING`` goes through the slow
# attribute hook (~5x the cost of a global). The fold reads these instead.
_PENDING = TaskStatus.PENDING
_RUNNING = TaskStatus.RUNNING
_RETRY_WAIT = TaskStatus.RETRY_WAIT
_EXPANDED = TaskStatus.EXPANDED
_AWAITING = TaskStatus.AWAITING_APPROVAL
_PAUSED = TaskStatus.PAUSED
_SUCCEEDED = TaskStatus.SUCCEEDED
_FAILED = TaskStatus.FAILED
_SKIPPED = TaskStatus.SKIPPED
_CANCELLED = TaskStatus.CANCELLED
_RUN_RUNNING = RunStatus.RUNNING
_RUN_PAUSED = RunStatus.PAUSED
_EFFECT_RECORDED = EventType.EFFECT_RECORDED

_TASK_TERMINAL = frozenset({_SUCCEEDED, _FAILED, _SKIPPED, _CANCELLED})
#: How a task ends that a re-plan may replace.
_UNDONE = frozenset({_FAILED, _CANCELLED})

#: Legal task transitions: (from, to).
TASK_TRANSITIONS: frozenset[tuple[TaskStatus, TaskStatus]] = frozenset(
    {
        (_PENDING, _RUNNING),
        (_PENDING, _EXPANDED),
        (_PENDING, _SKIPPED),
        (_PENDING, _CANCELLED),
        (_PENDING, _FAILED),  # the attempt could not even be prepared (template error)
        (_RUNNING, _SUCCEEDED),
        (_RUNNING, _FAILED),
        (_RUNNING, _RETRY_WAIT),
        (_RUNNING, _CANCELLED),
        (_RETRY_WAIT, _PENDING),
        (_RETRY_WAIT, _CANCELLED),
        (_RETRY_WAIT, _FAILED),
        (_EXPANDED, _SUCCEEDED),
        (_EXPANDED, _FAILED),
        (_EXPANDED, _CANCELLED),
        (_PENDING, _AWAITING),
        (_AWAITING, _PENDING),  # approved: ready to start
        (_AWAITING, _FAILED),  # rejected, or timed out
        (_AWAITING, _CANCELLED),
        (_PENDING, _PAUSED),  # its budget is spent: not started
        (_RUNNING, _PAUSED),  # its attempt was refused more budget
        (_PAUSED, _PENDING),  # resumed
        (_PAUSED, _CANCELLED),
    }
)


#: A ``switch`` task succeeds from ``pending``: it runs no attempt (see ``_routed``).
_ROUTING: frozenset[tuple[TaskStatus, TaskStatus]] = frozenset({(_PENDING, _SUCCEEDED)})
#: A task whose output extended the plan waits for what it added (see ``_plan_extended``).
#: With ``review``, it waits for a person first (see ``_approval_requested``).
#: With ``replan``, it runs again once what it added has ended (see ``_replanning``).
_EXTENDING: frozenset[tuple[TaskStatus, TaskStatus]] = frozenset(
    {(_RUNNING, _EXPANDED), (_EXPANDED, _AWAITING), (_AWAITING, _EXPANDED), (_EXPANDED, _PENDING)}
)
#: A ``loop`` task goes back to ``pending`` for its next iteration (see ``_iterated``).
_ITERATING: frozenset[tuple[TaskStatus, TaskStatus]] = frozenset({(_RUNNING, _PENDING)})
#: A ``bt`` task goes back to ``pending`` after each action (its next leaf starts as a
#: new attempt), and its tree ends between leaves (see ``_bt_ticked``, ``_bt_done``).
_TICKING = _ITERATING
_BT_DONE = _ROUTING


@dataclass(slots=True)
class TaskState:
    """One task instance (a plan task, or one item of a ``foreach``)."""

    id: str
    spec: TaskSpec
    status: TaskStatus = TaskStatus.PENDING
    attempts: int = 0
    agent: str | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    parent: str | None = None
    item: Any = None
    index: int | None = None
    children: list[str] = field(default_factory=list)
    waiting_on: int = 0
    not_before: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    last_output: Any = None
    last_error: dict[str, Any] | None = None
    approved: bool = False
    approval_deadline: str | None = None
    #: the budget-paused attempts the next attempt takes up, latest first (see
    #: ``AttemptStarted.continues``); kept when an attempt is interrupted
    continues: list[int] | None = None
    #: a ``loop`` task: the iteration its next (or running) attempt runs, from 1; an
    #: ``fsm`` task: the step
    iteration: int = 1
    #: a ``loop`` (``fsm``) task: attempts made before this iteration (step); its
    #: retries count from here
    iteration_base: int = 0
    #: a ``loop`` task: the output of the iteration before this one (``loop.output``);
    #: an ``fsm`` task: of the step before this one (``fsm.output`` in a body)
    loop_output: Any = None
    #: a task that extended the plan: the tasks it added (it ends when they have)
    added: list[str] = field(default_factory=list)
    #: a task an extension added: the task whose output added it
    extended_by: str | None = None
    #: 0 for the workflow's tasks; an added task is one deeper than the task that added it
    depth: int = 0
    #: a task whose extension awaits review: what it added starts once it is approved
    reviewing: bool = False
    #: an extending task: the times it was asked to re-plan
    replans: int = 0
    #: an added task that failed and was re-planned: it no longer fails the run
    superseded: bool = False
    #: a ``bt`` task: its ``bt.ticked`` payloads in order (what the engine ticks
    #: the tree from), the latest output of each action that succeeded
    #: (``bt.outputs``), the last of those actions, and the leaves ticked so far
    bt_trace: list[BtTickedData] | None = None
    bt_outputs: dict[str, Any] | None = None
    bt_last: str | None = None
    #: a compensation (``<task>.compensate``): the task it undoes
    compensates: str | None = None
    bt_steps: int = 0
    #: the seq of its latest ``attempt.started`` (when its running attempt began)
    attempt_seq: int = 0
    #: an ``fsm`` task: the state it is in (None: not moved yet, its ``initial``)
    fsm_state: str | None = None
    #: an ``fsm`` task: the latest output of each state whose body ran
    fsm_outputs: dict[str, Any] | None = None
    #: an ``fsm`` task that entered a terminal state with an ``output``: ``(output,)``
    fsm_result: tuple[Any] | None = None
    #: a ``barrier`` with a ``wait``: when its wait ends (set by ``barrier.armed``)
    barrier_deadline: str | None = None
    #: a ``barrier`` whose deadline passed (``barrier.timed_out``): ``on_timeout`` applies
    barrier_expired: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": str(self.status),
            "attempts": self.attempts,
            "agent": self.agent,
            "output": self.output,
            "error": self.error,
            "parent": self.parent,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }


@dataclass(slots=True)
class Saga:
    """A run's saga: the task whose failure started it and the steps it compensates."""

    #: the task that failed with ``on_failure: compensate``
    task: str
    #: the tasks to compensate, in the order their compensations run
    steps: list[str]
    #: how many steps have started (the next one is ``steps[started]``)
    started: int = 0
    #: the compensation task of the step that started last
    current: str | None = None
    finished: bool = False

    @property
    def active(self) -> bool:
        return not self.finished


@dataclass(slots=True)
class RunState:
    """The folded state of one run."""

    run_id: str
    plan: Plan
    status: RunStatus = RunStatus.RUNNING
    inputs: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, TaskState] = field(default_factory=dict)
    seq: int = 0
    last_hash: str = ""
    started_at: str = ""
    ended_at: str | None = None
    cancel_requested: bool = False
    workspace: str = ""
    effects: int = 0
    running: int = 0
    open_tasks: int = 0
    agent_load: dict[str, int] = field(default_factory=dict)
    agent_turns: dict[str, int] = field(default_factory=dict)
    #: where each running attempt stands in its agent's ``scripted`` lines (see
    #: :meth:`_script_start`), by task id
    script_positions: dict[str, int] = field(default_factory=dict)
    paused: int = 0
    #: tasks that failed, and that succeeded (``foreach`` items count, their parent
    #: does not): what a plan's ``max_failures`` / ``max_failure_rate`` is judged on
    failed_tasks: int = 0
    succeeded_tasks: int = 0
    #: a person's request to pause the run (who, why, when), until ``run.resumed``
    hold: dict[str, str] | None = None
    #: the resources each running attempt holds (its ``attempt.started`` ``writes``),
    #: by task id: an attempt whose writes overlap them does not start
    holding: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: the files each running attempt wrote through the file tools (``EffectRecord.wrote``)
    writing: dict[str, set[str]] = field(default_factory=dict)
    #: (file, task, other task) of each ``conflict.detected`` (the two tasks sorted)
    conflicts: set[tuple[str, str, str]] = field(default_factory=set)
    #: money and tokens spent, by scope id (``run:``, ``agent:<name>``, ``task:<id>``)
    spent: dict[str, Spend] = field(default_factory=dict)
    #: tool calls made, by scope id
    tool_calls: dict[str, int] = field(default_factory=dict)
    #: limits raised since the run started, by scope id
    raised: dict[str, Limits] = field(default_factory=dict)
    #: (scope id, dimension, threshold) already reported
    reported: set[tuple[str, str, str]] = field(default_factory=set)
    tenant: str = "default"
    residency: dict[str, Any] | None = None
    #: the deployment's price overrides routing estimates with (see
    #: :func:`nexus.gateway.routing.price_overrides`); None: the shipped prices
    pricing: dict[str, Any] | None = None
    #: whether any scope has limits (the plan's, or raised later)
    has_budgets: bool = False
    #: how many tasks plan extensions have added (``extensions.max_tasks`` bounds it)
    added_tasks: int = 0
    #: the run's saga, once a task with ``on_failure: compensate`` failed for good
    saga: Saga | None = None
    # scheduler bookkeeping, derived from the events
    _rank: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    _dependents: dict[str, list[str]] = field(default_factory=dict)
    _ready: list[tuple[tuple[int, int, int, int], str]] = field(default_factory=list)
    _parents_done: list[str] = field(default_factory=list)
    _finished: list[str] = field(default_factory=list)
    _finished_at: dict[str, int] = field(default_factory=dict)
    _limits: dict[str, Limits] = field(default_factory=dict)  # parsed once per scope
    # file -> task -> (its attempt that wrote it last, the seq that attempt ended at;
    # None while it runs): what :meth:`clashes` judges a write against
    _writers: dict[str, dict[str, tuple[int, int | None]]] = field(default_factory=dict)
    # scripted-line bookkeeping: first position per (agent, task or foreach parent),
    # next free position per agent, attempts that count per (agent, task)
    _script_base: dict[tuple[str, str], int] = field(default_factory=dict)
    _script_next: dict[str, int] = field(default_factory=dict)
    _script_used: dict[tuple[str, str], int] = field(default_factory=dict)

    # -- scripted agents --------------------------------------------------
    def _script_start(self, task: TaskState, agent: str) -> None:
        """Place a starting attempt in ``agent``'s scripted lines.

        A task's first attempt takes the agent's next free position; each
        later attempt the one after (a retry gets the next line). Every item
        of a ``foreach`` starts where the first one did, so all items answer
        alike, and an interrupted attempt does not count (see
        :meth:`_script_interrupted`), so a resumed one starts where it did.
        The agent's next task starts after the furthest position used.
        ``turn`` in ``attempt.started`` keeps its recorded meaning (the
        agent's attempts so far); this is derived state and changes no event.
        """
        base_key = (agent, task.parent or task.id)
        base = self._script_base.get(base_key)
        if base is None:
            base = self._script_base[base_key] = self._script_next.get(agent, 0)
        used_key = (agent, task.id)
        position = base + self._script_used.get(used_key, 0)
        self._script_used[used_key] = self._script_used.get(used_key, 0) + 1
        self._script_next[agent] = max(self._script_next.get(agent, 0), position + 1)
        self.script_positions[task.id] = position

    def _script_interrupted(self, task: TaskState) -> None:
        """An interrupted attempt gives its position back to the task's next attempt."""
        if task.agent is not None:
            key = (task.agent, task.id)
            self._script_used[key] = max(0, self._script_used.get(key, 0) - 1)

    # -- construction -----------------------------------------------------
    @classmethod
    def start(cls, event: Event, plan: Plan | None = None) -> RunState:
        """State right after ``run.started``.

        ``plan`` may be passed when the caller holds the very plan the event
        records (saves rebuilding it from the event's data).
        """
        if event.type is not EventType.RUN_STARTED or event.seq != 1:
            raise IntegrityError(f"run {event.run_id}: first event must be run.started")
        started = RunStarted.from_event(event)
        plan = Plan.from_dict(started.plan) if plan is None else plan
        state = cls(
            run_id=event.run_id,
            plan=plan,
            inputs=started.inputs,
            started_at=event.at,
            workspace=started.workspace,
            tenant=started.tenant if started.tenant is not None else "default",
            residency=started.residency,
            pricing=started.pricing,
        )
        needs = {tid: spec.needs for tid, spec in plan.tasks.items()}
        order = topological_order(needs)
        depth = longest_path_to_sink(needs, order)
        for index, tid in enumerate(order):
            spec = plan.tasks[tid]
            state._rank[tid] = (-spec.priority, -depth[tid], index, -1)
            state.tasks[tid] = TaskState(id=tid, spec=spec, waiting_on=len(spec.needs))
            state._dependents[tid] = []
        for tid, spec in plan.tasks.items():
            for dep in spec.needs:
                state._dependents[dep].append(tid)
        state.open_tasks = len(state.tasks)
        state.has_budgets = (
            plan.budget is not None
            or any(a.budget is not None for a in plan.agents.values())
            or any(t.budget is not None for t in plan.tasks.values())
        )
        for tid in order:
            if state.tasks[tid].waiting_on == 0:
                heapq.heappush(state._ready, (state._rank[tid], tid))
        state.seq = event.seq
        state.last_hash = event.hash
        return state

    @classmethod
    def fold(cls, events: list[Event]) -> RunState:
        """Rebuild a run's state from its events."""
        if not events:
            raise IntegrityError("cannot fold an empty event list")
        state = cls.start(events[0])
        for event in events[1:]:
            state.apply(event)
        return state

    # -- queries ----------------------------------------------------------
    def pop_ready(self) -> TaskState | None:
        """The next task whose dependencies have all ended, highest rank first."""
        while self._ready:
            _, tid = heapq.heappop(self._ready)
            task = self.tasks[tid]
            if task.status is _PENDING:
                return task
        return None

    def push_ready(self, task: TaskState) -> None:
        """Give a task back to the ready heap (it could not start yet)."""
        heapq.heappush(self._ready, (self._rank[task.id], task.id))

    def pop_parent_done(self) -> TaskState | None:
        """A foreach parent whose items have all ended, if any."""
        while self._parents_done:
            task = self.tasks[self._parents_done.pop(0)]
            if task.status is _EXPANDED:
                return task
        return None

    def needs_ok(self, task: TaskState) -> bool:
        """True when every dependency of ``task`` succeeded.

        The task that ends a sub-workflow also takes its own tasks that were
        skipped (a false ``when``, a case not picked): a workflow whose tasks
        were skipped succeeds.
        """
        tasks = self.tasks
        if task.spec.workflow is not None:
            inside = task.id + SCOPE_SEP
            return all(
                tasks[dep].status is _SUCCEEDED
                or (tasks[dep].status is _SKIPPED and dep.startswith(inside))
                for dep in task.spec.needs
            )
        # a loop, not all(<genexpr>): this runs for every task started
        for dep in task.spec.needs:  # noqa: SIM110
            if tasks[dep].status is not _SUCCEEDED:
                return False
        return True

    def holder(self, writes: tuple[str, ...]) -> tuple[str, str, str] | None:
        """The running attempt whose held resources overlap ``writes``, if any: its task,
        our resource and its (the first in the order the attempts started)."""
        for tid, held in self.holding.items():
            found = first_overlap(writes, held)
            if found is not None:
                return tid, found[0], found[1]
        return None

    def clashes(self, tid: str, paths: list[str]) -> list[tuple[str, str, int]]:
        """What a write of ``paths`` by ``tid``'s running attempt conflicts with, not yet
        reported: (file, other task, its attempt) for each other attempt that wrote the
        file and ran at the same time (still running, or ended after this one started)."""
        task = self.tasks.get(tid)
        if task is None or task.status is not _RUNNING:
            return []
        found = []
        for path in dict.fromkeys(paths):
            for other, (attempt, ended) in self._writers.get(path, {}).items():
                if other == tid or (ended is not None and ended <= task.attempt_seq):
                    continue
                pair = (other, tid) if other < tid else (tid, other)
                if (path, *pair) not in self.conflicts:
                    found.append((path, other, attempt))
        return found

    def _wrote(self, tid: str, attempt: int, paths: list[str]) -> None:
        """A running attempt wrote ``paths`` (a late record of an ended attempt is not kept)."""
        task = self.tasks.get(tid)
        if task is None or task.status is not _RUNNING or task.attempts != attempt:
            return
        mine = self.writing.setdefault(tid, set())
        for path in paths:
            mine.add(path)
            self._writers.setdefault(path, {})[tid] = (attempt, None)

    def _stopped_writing(self, task: TaskState) -> None:
        """``task``'s attempt left running: the files it wrote are held against the attempts
        that ran with it (the seq of the event being applied is when it ended)."""
        paths = self.writing.pop(task.id, None)
        if paths:
            ended = self.seq + 1
            for path in paths:
                self._writers[path][task.id] = (task.attempts, ended)

    def barrier_standing(self, task: TaskState) -> BarrierStanding:
        """Where the barrier of ``task`` stands: its needs by outcome, and the verdict.

        A barrier is ready once its required needs (those it does not count)
        and ``quorum`` of the counted ones succeeded, and impossible once a
        required one ended otherwise or too few counted ones are left. With
        ``on_timeout: continue`` a quorum out of reach is no reason to give up:
        the task goes on, once every need ended, with those that succeeded
        (as it would at the deadline).
        """
        barrier = task.spec.barrier
        assert barrier is not None
        tasks = self.tasks
        succeeded: list[str] = []
        unsuccessful: list[str] = []
        still_open: list[str] = []
        for dep in task.spec.needs:
            status = tasks[dep].status
            if status is _SUCCEEDED:
                succeeded.append(dep)
            elif status in _TASK_TERMINAL:
                unsuccessful.append(dep)
            else:
                still_open.append(dep)
        counted = set(barrier.of)
        missing = [d for d in unsuccessful if d not in counted]
        lost = [d for d in unsuccessful if d in counted]
        got = sum(1 for d in succeeded if d in counted)
        verdict, reason = "waiting", ""
        if missing:
            verdict = "impossible"
            reason = f"dependency did not succeed: {', '.join(missing)}"
        elif len(barrier.of) - len(lost) < barrier.quorum:
            if barrier.timeout is None or barrier.on_timeout != "continue":
                verdict = "impossible"
                reason = (
                    f"quorum cannot be reached: {barrier.quorum} of {len(barrier.of)} "
                    f"({', '.join(barrier.of)}) must succeed and {len(lost)} did not: "
                    + ", ".join(lost)
                )
            elif not still_open:  # best effort: it goes on with what succeeded
                verdict = "ready" if succeeded else "impossible"
                reason = "" if succeeded else f"no need succeeded: {', '.join(unsuccessful)}"
        elif got >= barrier.quorum and all(d in counted for d in still_open):
            verdict = "ready"
        return BarrierStanding(
            verdict=verdict,
            reason=reason,
            succeeded=tuple(succeeded),
            unsuccessful=tuple(unsuccessful),
            open=tuple(still_open),
        )

    def tasks_in(self, *statuses: TaskStatus) -> list[TaskState]:
        """Tasks in the given statuses, in schedule order."""
        wanted = set(statuses)
        found = [t for t in self.tasks.values() if t.status in wanted]
        return sorted(found, key=lambda t: self._rank[t.id])

    def outputs(self, upto: int | None = None) -> OutputsView:
        """``tasks.<id>`` for templates: plan tasks that had ended.

        ``upto`` limits the view to the first ``upto`` tasks that ended, so a
        worker sees what its attempt's decision saw, however late it starts.
        Lookups are O(1); nothing is copied.
        """
        return OutputsView(self, len(self._finished) if upto is None else upto)

    # -- budgets ----------------------------------------------------------
    def limits(self, scope: Scope) -> Limits:
        """The limits on ``scope``: the plan's, with any raised since over them."""
        known = self._limits.get(scope.id)
        if known is None:
            known = self._limits[scope.id] = self._read_limits(scope)
        return known

    def _read_limits(self, scope: Scope) -> Limits:
        base: dict[str, Any] | None = None
        if scope.kind == "run":
            base = self.plan.budget
        elif scope.kind == "agent":
            agent = self.plan.agents.get(scope.key)
            base = None if agent is None else agent.budget
        elif scope.kind == "task":
            task = self.tasks.get(scope.key)
            base = None if task is None else task.spec.budget
        limits = Limits.from_dict(base, scope.label) if base else Limits()
        raised = self.raised.get(scope.id)
        return limits if raised is None else limits.merged(raised)

    def spend(self, scope: Scope) -> Spend:
        """What ``scope`` has spent so far (as recorded in the log)."""
        spent = self.spent.get(scope.id, _NO_SPEND)
        calls = self.tool_calls.get(scope.id, 0)
        return spent if not calls else spent + Spend(tool_calls=calls)

    def budget_scopes(self) -> list[Scope]:
        """Every run-level scope that has limits (for seeding a ledger)."""
        scopes = [Scope("run")]
        scopes += [Scope("agent", name) for name in self.plan.agents]
        scopes += [Scope("task", tid) for tid in self.tasks]
        return [s for s in scopes if not self.limits(s).is_empty]

    @property
    def finished_ids(self) -> list[str]:
        """The plan tasks that have ended, in the order they ended (do not change it)."""
        return self._finished

    @property
    def finished_count(self) -> int:
        """How many plan tasks have ended so far."""
        return len(self._finished)

    def pause_summary(self) -> dict[str, str] | None:
        """Why the run is paused, or pausing: ``{"kind": "budget"}``, or for a
        person's pause ``{"kind": "user", "by", "reason", "since"}`` (with
        ``"state": "pausing"`` while attempts it let run are still running).
        None when the run is neither.
        """
        if self.hold is not None and self.status in (_RUN_RUNNING, _RUN_PAUSED):
            summary = {"kind": "user", **self.hold}
            if self.status is _RUN_RUNNING:
                summary["state"] = "pausing"
            return summary
        if self.status is _RUN_PAUSED:
            return {"kind": "budget"}
        return None

    # -- transitions ------------------------------------------------------
    def _move(
        self,
        task: TaskState,
        to: TaskStatus,
        at: str,
        legal: frozenset[tuple[TaskStatus, TaskStatus]] = TASK_TRANSITIONS,
    ) -> None:
        status = task.status
        if (status, to) not in legal:
            raise IntegrityError(
                f"run {self.run_id}: illegal transition of task '{task.id}' from {status} to {to}"
            )
        if status is _RUNNING:
            self.running -= 1
            if task.agent is not None:
                self.agent_load[task.agent] -= 1
            if self.holding:
                self.holding.pop(task.id, None)  # its attempt ended: what it wrote is free
            if self.writing:
                self._stopped_writing(task)
        elif status is _PAUSED:
            self.paused -= 1
        task.status = to
        if to is _PAUSED:
            self.paused += 1
        elif to is _RUNNING:
            self.running += 1
            if task.agent is not None:
                self.agent_load[task.agent] = self.agent_load.get(task.agent, 0) + 1
        if to in _TASK_TERMINAL:
            task.ended_at = at
            self.open_tasks -= 1
            if task.compensates is not None:
                return  # a saga's step: not a task of the plan (no reads, counts, dependents)
            if status is not _EXPANDED:  # a foreach parent ends with its items: not again
                if to is _FAILED:
                    self.failed_tasks += 1
                elif to is _SUCCEEDED:
                    self.succeeded_tasks += 1
            if task.parent is None:
                self._finished_at[task.id] = len(self._finished)
                self._finished.append(task.id)
            self._release(task)

    def _release(self, task: TaskState) -> None:
        """A task ended: unblock its dependents, or count it against its foreach parent
        (an added task against the task that added it, too)."""
        if task.parent is not None:
            parent = self.tasks[task.parent]
            parent.waiting_on -= 1
            if parent.waiting_on == 0:
                self._parents_done.append(parent.id)
            return
        for dep in self._dependents.get(task.id, ()):
            child = self.tasks[dep]
            child.waiting_on -= 1
            # a barrier is judged each time one of its needs ends (it may start early)
            if child.waiting_on == 0 or child.spec.barrier is not None:
                heapq.heappush(self._ready, (self._rank[dep], dep))
        if task.extended_by is not None:
            extender = self.tasks[task.extended_by]
            extender.waiting_on -= 1
            if extender.waiting_on == 0:
                self._parents_done.append(extender.id)

    def approve_extension(self, by: TaskState, at: str) -> None:
        """The extension ``by`` made was approved: what it added may start."""
        self._move(by, _EXPANDED, at, _EXTENDING)
        by.reviewing = False
        by.approval_deadline = None
        for tid in by.added:
            added = self.tasks[tid]
            added.waiting_on -= 1
            if added.waiting_on == 0 and added.status is _PENDING:
                heapq.heappush(self._ready, (self._rank[tid], tid))

    def extend(
        self, by: TaskState, specs: list[TaskSpec], depth: int, at: str, review: bool = False
    ) -> None:
        """Add the tasks ``by``'s output extended the plan with (see ``plan.extended``).

        They may need tasks already in the run and each other, never the other
        way round, so no cycle can close through the run's tasks; they rank
        after every task the run had, in the order given, critical paths first.
        With ``review`` each also waits for the extension's approval (see
        :meth:`approve_extension`).

        Raises:
            IntegrityError: the extension reuses an id, needs an unknown task, has
                a cycle, or is not one level below its task.
        """
        tasks = self.tasks
        new: dict[str, tuple[str, ...]] = {}
        for spec in specs:
            if spec.id in tasks or spec.id in new:
                raise IntegrityError(f"run {self.run_id}: plan extension repeats task '{spec.id}'")
            new[spec.id] = spec.needs
        if depth != by.depth + 1:
            raise IntegrityError(
                f"run {self.run_id}: task '{by.id}' at depth {by.depth} extended the plan "
                f"at depth {depth}"
            )
        inner: dict[str, list[str]] = {}
        for tid, needs in new.items():
            for dep in needs:
                if dep not in new and (dep not in tasks or tasks[dep].parent is not None):
                    raise IntegrityError(
                        f"run {self.run_id}: added task '{tid}' needs unknown task '{dep}'"
                    )
            inner[tid] = [dep for dep in needs if dep in new]
        try:
            order = topological_order(inner)
        except ValueError:
            raise IntegrityError(f"run {self.run_id}: plan extension has a cycle") from None
        to_sink = longest_path_to_sink(inner, order)
        base = len(self._rank)
        self._move(by, _EXPANDED, at, _EXTENDING)
        by.added.extend(new)  # a re-plan adds to what the task added before
        by.waiting_on = len(new)
        for index, spec in enumerate(specs):
            tid = spec.id
            added = TaskState(id=tid, spec=spec, extended_by=by.id, depth=depth)
            tasks[tid] = added
            self._rank[tid] = (-spec.priority, -to_sink[tid], base + index, -1)
            self._dependents[tid] = []
        by.reviewing = review
        for spec in specs:
            added = tasks[spec.id]
            added.waiting_on = 1 if review else 0
            for dep in spec.needs:
                if dep in new or tasks[dep].status not in _TASK_TERMINAL:
                    self._dependents[dep].append(spec.id)
                    added.waiting_on += 1
            # a barrier some of whose needs have ended already is judged now
            if added.waiting_on == 0 or spec.barrier is not None:
                heapq.heappush(self._ready, (self._rank[spec.id], spec.id))
        self.open_tasks += len(specs)
        self.added_tasks += len(specs)
        if any(spec.budget is not None for spec in specs):
            self.has_budgets = True

    def apply(self, event: Event) -> None:
        """Apply one event.

        Raises:
            IntegrityError: an illegal transition, or a payload that does not
                fit its model (a key it does not know, or one it needs missing).
        """
        if event.seq != self.seq + 1:
            raise IntegrityError(f"run {self.run_id}: expected seq {self.seq + 1}, got {event.seq}")
        status = self.status  # not .terminal: a property call per event
        if (
            status is not _RUN_RUNNING
            and status is not _RUN_PAUSED
            and event.type is not _EFFECT_RECORDED
        ):
            raise IntegrityError(f"run {self.run_id}: event {event.type} after the run ended")
        entry = _HANDLERS.get(event.type)
        if entry is None:
            raise IntegrityError(f"run {self.run_id}: unexpected event type {event.type}")
        handler, checked, model = entry
        data = event.data
        if tuple(data) not in checked:  # a shape seen before is a set lookup
            model.check(data, f"run {self.run_id} seq {event.seq}: ")
        handler(self, event, data)
        self.seq = event.seq
        self.last_hash = event.hash

    def payload(self, event: Event, model: type[_Model]) -> _Model:
        """The payload of ``event`` as a ``model`` view (for the decider's rarer paths).

        The fold, and the decider, controller and worker on every task's path,
        read the stored dicts without building views.
        """
        return model.from_event(event)

    def task(self, tid: str) -> TaskState:
        try:
            return self.tasks[tid]
        except KeyError:
            raise IntegrityError(f"run {self.run_id}: unknown task '{tid}'") from None


@dataclass(frozen=True, slots=True)
class BarrierStanding:
    """A barrier's needs by outcome, and what follows: ``ready`` (it may start),
    ``impossible`` (``reason`` says why it never will) or ``waiting``."""

    verdict: str
    reason: str
    succeeded: tuple[str, ...]
    unsuccessful: tuple[str, ...]
    open: tuple[str, ...]


class OutputsView(Mapping[str, dict[str, Any]]):
    """Read-only ``tasks`` mapping for templates: ``{"output": ..., "status": ...}``."""

    __slots__ = ("_state", "_upto")

    def __init__(self, state: RunState, upto: int) -> None:
        self._state = state
        self._upto = upto

    def __getitem__(self, tid: str) -> dict[str, Any]:
        position = self._state._finished_at.get(tid)
        if position is None or position >= self._upto:
            raise KeyError(tid)
        task = self._state.tasks[tid]
        return {"output": task.output, "status": str(task.status)}

    def __iter__(self) -> Iterator[str]:
        return iter(self._state._finished[: self._upto])

    def __len__(self) -> int:
        return self._upto


# -- the handlers: one per event type, reading the stored payload (see apply) ---------


def _approval_requested(state: RunState, event: Event, data: ApprovalRequestedData) -> None:
    task = state.task(data["task"])
    # a task whose extension awaits review waits from ``expanded``
    state._move(task, _AWAITING, event.at, _EXTENDING if task.reviewing else TASK_TRANSITIONS)
    task.approval_deadline = data.get("deadline")


def _approval_granted(state: RunState, event: Event, data: ApprovalAnsweredData) -> None:
    task = state.task(data["task"])
    if task.reviewing:
        state.approve_extension(task, event.at)
        return
    state._move(task, _PENDING, event.at)
    task.approved = True
    task.approval_deadline = None
    state.push_ready(task)


def _approval_answer(
    state: RunState, event: Event, data: ApprovalAnsweredData | ApprovalTimedOutData
) -> None:
    """Rejected or timed out: the decider fails (or escalates) the task."""
    task = state.task(data["task"])
    if task.status is not _AWAITING:
        raise IntegrityError(f"run {state.run_id}: task '{task.id}' is not awaiting approval")


def _approval_escalated(state: RunState, event: Event, data: ApprovalEscalatedData) -> None:
    state.task(data["task"]).approval_deadline = None


def _effect(state: RunState, event: Event, data: EffectRecordData) -> None:
    state.effects += 1
    kind = data["kind"]
    if kind != "model" and kind != "tool":
        return
    tid = data["task"]
    task = state.tasks.get(tid)
    ids = ["run:", f"task:{tid}"]
    if SCOPE_SEP in tid:  # inside a sub-workflow: its budget counts it too
        ids += [f"task:{outer}" for outer in enclosing(tid)]
    if task is not None and task.agent is not None:
        ids.append(f"agent:{task.agent}")
    if kind == "tool":
        error = data["error"]
        if error is not None and ErrorRecord.of(error).kind == "budget_exceeded":
            return  # refused before it ran: not a call
        for sid in ids:
            state.tool_calls[sid] = state.tool_calls.get(sid, 0) + 1
        wrote = data.get("wrote")
        if wrote:
            state._wrote(tid, data["attempt"], wrote)
        return
    spend = data.get("spend")
    if spend:
        amount = Spend.from_dict(spend)
        for sid in ids:
            state.spent[sid] = state.spent.get(sid, _NO_SPEND) + amount


def _resumed(state: RunState, event: Event, data: object) -> None:
    state.hold = None
    if state.status is _RUN_PAUSED:
        state.status = _RUN_RUNNING
    if state.paused:
        for task in state.tasks_in(_PAUSED):
            state._move(task, _PENDING, event.at)
            state.push_ready(task)


def _budget_raised(state: RunState, event: Event, data: BudgetRaisedData) -> None:
    raised = data["scope"]
    scope = Scope(raised["kind"], raised["key"])
    limits = Limits.from_dict(data["limits"], scope.label)
    previous = state.raised.get(scope.id)
    state.raised[scope.id] = limits if previous is None else previous.merged(limits)
    state.has_budgets = True
    state._limits.pop(scope.id, None)
    # thresholds are reported again against the new limits
    state.reported = {r for r in state.reported if r[0] != scope.id}


def _interrupts_reset(state: RunState, event: Event, data: InterruptsResetData) -> None:
    """``nexus resume --retry-interrupted``: the tasks held at the interrupt limit start afresh.

    The count of interruptions lives on the task's last error record (see the
    decider); it is set back to zero, so the next interruption is the first.
    """
    for tid in data["tasks"]:
        task = state.task(tid)
        if task.status is not _RUNNING:
            raise IntegrityError(
                f"run {state.run_id}: interrupts of task '{tid}' reset but it is not running"
            )
        if task.error is not None:
            task.error = {**task.error, "interrupts": 0}


def _budget_reported(state: RunState, event: Event, data: BudgetCrossedData) -> None:
    scope_id = f"{data['scope']}:{data['key']}"  # as BudgetCrossed.scope_id
    state.reported.add((scope_id, data["dimension"], data["threshold"]))


def _task_paused(state: RunState, event: Event, data: TaskPausedData) -> None:
    state._move(state.task(data["task"]), _PAUSED, event.at)


def _run_paused(state: RunState, event: Event, data: object) -> None:
    state.status = _RUN_PAUSED


def _run_continued(state: RunState, event: Event, data: object) -> None:
    """Nothing changes: the decider is asked to schedule on."""


def _cancel_requested(state: RunState, event: Event, data: object) -> None:
    state.cancel_requested = True


def _pause_requested(state: RunState, event: Event, data: PauseRequestedData) -> None:
    state.hold = {"by": data["by"], "reason": data["reason"], "since": event.at}


def _timer_fired(state: RunState, event: Event, data: TimerFiredData) -> None:
    task = state.task(data["task"])
    state._move(task, _PENDING, event.at)
    task.not_before = None
    state.push_ready(task)


def _attempt_started(state: RunState, event: Event, data: AttemptStartedData) -> None:
    tid = data["task"]
    task = state.tasks.get(tid) or state.task(tid)  # task(): the error for an unknown one
    task.agent = agent = data.get("agent")
    if agent is not None:
        state.agent_turns[agent] = state.agent_turns.get(agent, 0) + 1
        state._script_start(task, agent)
    if task.spec.fsm is not None and (
        data.get("state") != fsm_state_of(task) or data.get("step") != task.iteration
    ):
        raise IntegrityError(
            f"run {state.run_id}: attempt {data['attempt']} of fsm task '{task.id}' runs "
            f"state {data.get('state')!r} at step {data.get('step')!r}; the task is in state "
            f"'{fsm_state_of(task)}' at step {task.iteration}"
        )
    state._move(task, _RUNNING, event.at)
    task.attempt_seq = event.seq
    writes = data.get("writes")
    if writes:
        state.holding[tid] = tuple(writes)
    task.attempts = data["attempt"]
    task.last_output = None
    task.last_error = None
    if task.started_at is None:
        task.started_at = event.at


def _attempt_finished(state: RunState, event: Event, data: AttemptFinishedData) -> None:
    tid = data["task"]
    task = state.tasks.get(tid) or state.task(tid)
    attempt = data["attempt"]
    if task.status is not _RUNNING or task.attempts != attempt:
        raise IntegrityError(
            f"run {state.run_id}: attempt {attempt} of task '{task.id}' "
            "finished but was not running"
        )
    task.last_output = data.get("output")
    task.last_error = error = data.get("error")
    if error is not None and error.get("resumable") is True:
        # refused budget before a call: the next attempt takes this one up where it
        # stopped, in the same conversation (and the same scripted lines)
        task.continues = [attempt, *(task.continues or ())]
        state._script_interrupted(task)
    else:
        task.continues = None


def _expanded(state: RunState, event: Event, data: TaskExpandedData) -> None:
    parent = state.task(data["task"])
    state._move(parent, _EXPANDED, event.at)
    parent.started_at = event.at
    items = data["items"]
    parent.waiting_on = len(items)
    if not items:
        state._parents_done.append(parent.id)
    rank = state._rank[parent.id]
    for index, item in enumerate(items):
        cid = f"{parent.id}[{index}]"
        state.tasks[cid] = TaskState(
            id=cid, spec=parent.spec, parent=parent.id, item=item, index=index
        )
        parent.children.append(cid)
        state._rank[cid] = (rank[0], rank[1], rank[2], index)
        state.open_tasks += 1
        heapq.heappush(state._ready, (state._rank[cid], cid))


def _plan_extended(state: RunState, event: Event, data: PlanExtendedData) -> None:
    """A task's output extended the plan: its tasks join the run, and it waits for them."""
    task = state.task(data["task"])
    if (
        task.spec.extend is None
        or task.status is not _RUNNING
        or data["attempt"] != task.attempts
        or task.last_error is not None
    ):
        raise IntegrityError(
            f"run {state.run_id}: task '{task.id}' extended the plan but it is not an "
            "extending task whose attempt succeeded"
        )
    specs = [TaskSpec.from_dict(spec) for spec in data["tasks"]]
    state.extend(task, specs, data["depth"], event.at, data.get("review", False))


def _plan_cached(state: RunState, event: Event, data: PlanCachedData) -> None:
    """The running attempt of an extending agent task is answered from the plan cache
    (its ``attempt.finished`` follows, with the cached answer)."""
    task = state.task(data["task"])
    if (
        task.spec.extend is None
        or task.spec.tool is not None
        or task.status is not _RUNNING
        or data["attempt"] != task.attempts
    ):
        raise IntegrityError(
            f"run {state.run_id}: task '{task.id}' took a cached plan, but it is not an "
            "extending agent task whose attempt is running"
        )


def _replanning(state: RunState, event: Event, data: PlanReplanningData) -> None:
    """What an extending task added failed: it runs again, told what failed."""
    task = state.task(data["task"])
    extend = task.spec.extend
    failed = data["failed"]
    if (
        extend is None
        or task.status is not _EXPANDED
        or task.waiting_on != 0
        or data["round"] != task.replans + 1
        or data["round"] > extend.replan
        or not failed
        or any(tid not in task.added or state.tasks[tid].status not in _UNDONE for tid in failed)
    ):
        raise IntegrityError(
            f"run {state.run_id}: task '{task.id}' re-plans, but it cannot: it must have "
            "re-plans left and every task it names must be one it added that failed"
        )
    for tid in failed:
        state.tasks[tid].superseded = True
    task.replans = data["round"]
    task.error = data["feedback"]  # what its next attempt is told
    task.iteration_base = task.attempts  # its retries count afresh
    state._move(task, _PENDING, event.at, _EXTENDING)
    state.push_ready(task)


def _iterated(state: RunState, event: Event, data: TaskIteratedData) -> None:
    """A ``loop`` task's iteration ended with ``until`` false: it is ready to run again."""
    task = state.task(data["task"])
    if (
        task.spec.loop is None
        or task.status is not _RUNNING
        or data["attempt"] != task.attempts
        or data["iteration"] != task.iteration
        or task.last_error is not None
    ):
        raise IntegrityError(
            f"run {state.run_id}: iteration {data['iteration']} of task '{task.id}' "
            "ended but it is not a loop task whose attempt of that iteration succeeded"
        )
    task.loop_output = task.last_output
    task.iteration += 1
    task.iteration_base = task.attempts
    task.error = None  # a failure of the last iteration is not this one's
    state._move(task, _PENDING, event.at, _ITERATING)
    state.push_ready(task)


def _bt_ticked(state: RunState, event: Event, data: BtTickedData) -> None:
    """A node of a ``bt`` task's tree was ticked; an action's outcome readies the task
    for its next leaf (retries count afresh from there)."""
    task = state.task(data["task"])
    node = data["node"]
    tree = task.spec.bt
    attempt = data.get("attempt")
    leaf = data["kind"] in _LEAVES
    if (
        tree is None
        or (data["kind"] == ACTION) != (attempt is not None)
        or data["step"] != task.bt_steps + (1 if leaf else 0)
    ):
        raise IntegrityError(
            f"run {state.run_id}: node '{node}' of task '{task.id}' ticked out of step "
            "(not a bt task, or a tick its tree cannot make)"
        )
    if attempt is not None:
        if task.status is not _RUNNING or attempt != task.attempts:
            raise IntegrityError(
                f"run {state.run_id}: action '{node}' of task '{task.id}' ended "
                f"but attempt {attempt} was not running"
            )
        if data["status"] == SUCCESS:
            if task.last_error is not None:
                raise IntegrityError(
                    f"run {state.run_id}: action '{node}' of task '{task.id}' succeeded "
                    f"but attempt {attempt} failed"
                )
            if task.bt_outputs is None:
                task.bt_outputs = {}
            task.bt_outputs[node] = task.last_output
            task.bt_last = node
        task.iteration_base = task.attempts
        task.error = None  # the next leaf's retries and feedback start afresh
        state._move(task, _PENDING, event.at, _TICKING)
        state.push_ready(task)
    elif task.status is not _PENDING:
        raise IntegrityError(
            f"run {state.run_id}: node '{node}' of task '{task.id}' ticked while the task "
            f"is {task.status}"
        )
    if leaf:
        task.bt_steps += 1
    if task.started_at is None:
        task.started_at = event.at
    if task.bt_trace is None:
        task.bt_trace = []
    task.bt_trace.append(data)


def _bt_done(state: RunState, task: TaskState, event: Event, data: TaskSucceededData) -> None:
    """A ``bt`` task's root succeeded: its output is its ``output`` (rendered, in
    ``value``) or that of the last action that succeeded."""
    trace = task.bt_trace
    tree = task.spec.bt
    assert tree is not None
    last = trace[-1] if trace else None
    if last is None or last["node"] != tree.root.id or last["status"] != SUCCESS:
        raise IntegrityError(
            f"run {state.run_id}: task '{task.id}' succeeded but its tree's root did not"
        )
    if "value" in data:
        task.output = data["value"]
    else:
        task.output = (task.bt_outputs or {}).get(task.bt_last) if task.bt_last else None
    task.error = None
    state._move(task, _SUCCEEDED, event.at, _BT_DONE)


def fsm_state_of(task: TaskState) -> str:
    """The state an ``fsm`` task is in (its ``initial`` until it moved)."""
    fsm = task.spec.fsm
    assert fsm is not None
    return task.fsm_state if task.fsm_state is not None else fsm.initial


def _transitioned(state: RunState, event: Event, data: FsmTransitionedData) -> None:
    """A step of an ``fsm`` task ended with a transition taken: to a state with a body,
    the task is ready for its attempt; to a terminal one, it stays running until the
    ``task.succeeded`` (or ``task.failed``) that follows ends it."""
    task = state.task(data["task"])
    fsm = task.spec.fsm
    target = None if fsm is None else fsm.states.get(data["to"])
    if (
        fsm is None
        or target is None
        or task.status is not _RUNNING
        or data["attempt"] != task.attempts
        or data["step"] != task.iteration
        or data["state"] != fsm_state_of(task)
        or fsm.states[data["state"]].terminal
        or task.last_error is not None
    ):
        raise IntegrityError(
            f"run {state.run_id}: task '{task.id}' took a transition from state "
            f"'{data['state']}' to '{data['to']}' at step {data['step']} but it is not an fsm "
            "task whose attempt of that state and step succeeded"
        )
    outputs = task.fsm_outputs
    if outputs is None:
        outputs = task.fsm_outputs = {}
    outputs[data["state"]] = task.last_output
    task.fsm_state = data["to"]
    if target.terminal:
        if "output" in data:
            task.fsm_result = (data["output"],)
        return
    task.loop_output = task.last_output
    task.iteration += 1
    task.iteration_base = task.attempts
    task.error = None  # a failure of the last step is not this one's
    state._move(task, _PENDING, event.at, _ITERATING)
    state.push_ready(task)


def _saga_started(state: RunState, event: Event, data: SagaStartedData) -> None:
    """A task with ``on_failure: compensate`` failed: the saga's steps are fixed."""
    task = state.task(data["task"])
    if state.saga is not None or task.status is not _FAILED or task.parent is not None:
        raise IntegrityError(
            f"run {state.run_id}: a saga started for task '{task.id}', which is not a plan "
            "task that failed, or the run had one already"
        )
    steps = data["steps"]
    for tid in steps:
        step = state.task(tid)
        if step.status is not _SUCCEEDED or step.spec.compensate is None or step.parent:
            raise IntegrityError(
                f"run {state.run_id}: the saga compensates task '{tid}', which did not "
                "succeed or has no compensate"
            )
    if len(set(steps)) != len(steps):
        raise IntegrityError(f"run {state.run_id}: the saga lists a task twice")
    state.saga = Saga(task=task.id, steps=list(steps))


def _compensation_started(state: RunState, event: Event, data: CompensationStartedData) -> None:
    """The saga's next step: its compensation becomes a task of the run, ready to start."""
    saga = state.saga
    tid = data["task"]
    if (
        saga is None
        or saga.finished
        or saga.started >= len(saga.steps)
        or saga.steps[saga.started] != tid
        or (saga.current is not None and not state.tasks[saga.current].status.terminal)
    ):
        raise IntegrityError(
            f"run {state.run_id}: the compensation of task '{tid}' started out of its saga's order"
        )
    compensated = state.task(tid).spec  # a plan task, or one a plan extension added
    compensate = compensated.compensate
    assert compensate is not None  # saga.started checked it
    spec = compensate.spec(compensated)
    if data["compensation"] != spec.id or spec.id in state.tasks:
        raise IntegrityError(
            f"run {state.run_id}: the compensation of task '{tid}' is named "
            f"'{data['compensation']}', not '{spec.id}', or started twice"
        )
    saga.started += 1
    saga.current = spec.id
    # after every task of the run in rank (one step is ready at a time in any case)
    rank = (0, 0, len(state._rank), -1)
    state._rank[spec.id] = rank
    state.tasks[spec.id] = TaskState(id=spec.id, spec=spec, compensates=tid)
    state.open_tasks += 1
    heapq.heappush(state._ready, (rank, spec.id))


def _saga_finished(state: RunState, event: Event, data: SagaFinishedData) -> None:
    saga = state.saga
    if (
        saga is None
        or saga.finished
        or (saga.current is not None and not state.tasks[saga.current].status.terminal)
        or (saga.started < len(saga.steps) and not state.cancel_requested)
    ):
        raise IntegrityError(f"run {state.run_id}: a saga finished before its steps ended")
    saga.finished = True


def _barrier_armed(state: RunState, event: Event, data: BarrierArmedData) -> None:
    """A barrier with a ``wait`` saw its first need end: its deadline is set."""
    task = state.task(data["task"])
    barrier = task.spec.barrier
    if (
        barrier is None
        or barrier.timeout is None
        or task.parent is not None
        or task.status is not _PENDING
        or task.barrier_deadline is not None
    ):
        raise IntegrityError(
            f"run {state.run_id}: barrier of task '{task.id}' armed but it is not a pending "
            "task with a barrier wait not armed yet"
        )
    task.barrier_deadline = data["deadline"]


def _barrier_timed_out(state: RunState, event: Event, data: BarrierTimedOutData) -> None:
    """A barrier's deadline passed: the task is judged again, its ``on_timeout`` applying."""
    task = state.task(data["task"])
    if task.status is not _PENDING or task.barrier_deadline is None or task.barrier_expired:
        raise IntegrityError(
            f"run {state.run_id}: barrier of task '{task.id}' timed out but it is not a "
            "pending task waiting on an armed barrier"
        )
    task.barrier_expired = True
    state.push_ready(task)


def _retry_scheduled(state: RunState, event: Event, data: RetryScheduledData) -> None:
    task = state.task(data["task"])
    task.error = data["error"]
    task.not_before = data["not_before"]
    state._move(task, _RETRY_WAIT, event.at)


def _interrupted(state: RunState, event: Event, data: AttemptInterruptedData) -> None:
    task = state.task(data["task"])
    if task.status is not _RUNNING:
        raise IntegrityError(f"run {state.run_id}: task '{task.id}' interrupted but not running")
    task.last_error = data["error"]
    state._script_interrupted(task)


def _conflict_detected(state: RunState, event: Event, data: ConflictDetectedData) -> None:
    task, other = data["task"], data["other"]
    pair = (other, task) if other < task else (task, other)
    state.conflicts.add((data["path"], *pair))


def _succeeded(state: RunState, event: Event, data: TaskSucceededData) -> None:
    tid = data["task"]
    task = state.tasks.get(tid) or state.task(tid)
    if "case" in data:
        _routed(state, task, event, data)
        return
    if task.status is _PENDING and task.spec.bt is not None:
        _bt_done(state, task, event, data)
        return
    if task.status is _EXPANDED and not task.added:
        if task.spec.aggregate is not None or "aggregate" in data:
            _aggregated(state, task, data)
        else:
            task.output = [state.tasks[c].output for c in task.children]
    elif task.spec.fsm is not None:
        task.output = _fsm_output(state, task)
    else:
        task.output = task.last_output
    task.error = None
    state._move(task, _SUCCEEDED, event.at)


def _aggregated(state: RunState, task: TaskState, data: TaskSucceededData) -> None:
    """A fan-out with ``aggregate`` succeeded: its output is its winning item's."""
    record = data.get("aggregate")
    winner = record.get("winner") if isinstance(record, dict) else None
    children = task.children
    if (
        task.spec.aggregate is None
        or type(winner) is not int
        or not 0 <= winner < len(children)
        or state.tasks[children[winner]].status is not _SUCCEEDED
    ):
        raise IntegrityError(
            f"run {state.run_id}: task '{task.id}' aggregated its items, but it has no "
            "aggregate or its winner is not an item that succeeded"
        )
    task.output = state.tasks[children[winner]].output


def _fsm_output(state: RunState, task: TaskState) -> Any:
    """An ``fsm`` task succeeds in a terminal state it entered, not a ``fail`` one: its
    output is that state's ``output``, else its last body's output."""
    fsm = task.spec.fsm
    assert fsm is not None
    current = fsm.states[fsm_state_of(task)]
    if not current.terminal or current.fail:
        raise IntegrityError(
            f"run {state.run_id}: fsm task '{task.id}' succeeded in state "
            f"'{fsm_state_of(task)}', which is not a terminal state that succeeds"
        )
    return task.last_output if task.fsm_result is None else task.fsm_result[0]


def _routed(state: RunState, task: TaskState, event: Event, data: TaskSucceededData) -> None:
    """A ``switch`` task picked its case: it succeeds without an attempt, its output
    the case and the value that picked it."""
    if task.spec.switch is None or task.parent is not None:
        raise IntegrityError(f"run {state.run_id}: task '{task.id}' has no switch to pick a case")
    task.output = {"case": data["case"], "value": data.get("value")}
    task.started_at = event.at
    state._move(task, _SUCCEEDED, event.at, _ROUTING)


def _failed(state: RunState, event: Event, data: TaskFailedData) -> None:
    task = state.task(data["task"])
    task.error = data["error"]
    state._move(task, _FAILED, event.at)


def _ended_unrun(to: TaskStatus) -> _Handler:
    def handler(state: RunState, event: Event, data: TaskEndedUnrunData) -> None:
        state._move(state.task(data["task"]), to, event.at)

    return handler


def _run_ended(to: RunStatus) -> _Handler:
    def handler(state: RunState, event: Event, data: object) -> None:
        state.status = to
        state.ended_at = event.at

    return handler


_NO_SPEND = Spend()
_LEAVES = frozenset({ACTION, CONDITION})

#: A handler reads the payload as its model's stored form (``nexus.domain.payload_data``).
_Handler = Callable[[RunState, Event, Any], None]

_BY_TYPE: dict[EventType, _Handler] = {
    EventType.RUN_RESUMED: _resumed,
    EventType.BUDGET_RAISED: _budget_raised,
    EventType.INTERRUPTS_RESET: _interrupts_reset,
    EventType.RUN_CONTINUED: _run_continued,
    EventType.BUDGET_WARNING: _budget_reported,
    EventType.BUDGET_EXCEEDED: _budget_reported,
    EventType.TASK_PAUSED: _task_paused,
    EventType.RUN_PAUSED: _run_paused,
    EventType.SAGA_STARTED: _saga_started,
    EventType.COMPENSATION_STARTED: _compensation_started,
    EventType.SAGA_FINISHED: _saga_finished,
    EventType.APPROVAL_REQUESTED: _approval_requested,
    EventType.APPROVAL_GRANTED: _approval_granted,
    EventType.APPROVAL_REJECTED: _approval_answer,
    EventType.APPROVAL_TIMED_OUT: _approval_answer,
    EventType.APPROVAL_ESCALATED: _approval_escalated,
    EventType.CANCEL_REQUESTED: _cancel_requested,
    EventType.PAUSE_REQUESTED: _pause_requested,
    EventType.TIMER_FIRED: _timer_fired,
    EventType.EFFECT_RECORDED: _effect,
    EventType.ATTEMPT_FINISHED: _attempt_finished,
    EventType.TASK_EXPANDED: _expanded,
    EventType.TASK_ITERATED: _iterated,
    EventType.PLAN_EXTENDED: _plan_extended,
    EventType.PLAN_REPLANNING: _replanning,
    EventType.PLAN_CACHED: _plan_cached,
    EventType.BT_TICKED: _bt_ticked,
    EventType.CONFLICT_DETECTED: _conflict_detected,
    EventType.FSM_TRANSITIONED: _transitioned,
    EventType.BARRIER_ARMED: _barrier_armed,
    EventType.BARRIER_TIMED_OUT: _barrier_timed_out,
    EventType.ATTEMPT_STARTED: _attempt_started,
    EventType.ATTEMPT_INTERRUPTED: _interrupted,
    EventType.RETRY_SCHEDULED: _retry_scheduled,
    EventType.TASK_SUCCEEDED: _succeeded,
    EventType.TASK_FAILED: _failed,
    EventType.TASK_SKIPPED: _ended_unrun(TaskStatus.SKIPPED),
    EventType.TASK_CANCELLED: _ended_unrun(TaskStatus.CANCELLED),
    EventType.RUN_SUCCEEDED: _run_ended(RunStatus.SUCCEEDED),
    EventType.RUN_FAILED: _run_ended(RunStatus.FAILED),
    EventType.RUN_CANCELLED: _run_ended(RunStatus.CANCELLED),
}

#: Each type's handler, with its payload model and the key tuples it has
#: checked: ``apply`` checks the payload fits the model before the handler reads it.
_HANDLERS: dict[EventType, tuple[_Handler, set[tuple[str, ...]], type[Payload]]] = {
    _type: (handler, PAYLOADS[_type].CHECKED, PAYLOADS[_type])
    for _type, handler in _BY_TYPE.items()
}
