"""The decider: what happens next, computed from the folded state alone.

After every input event the controller calls :meth:`Decider.react`. The
decider emits decision events through ``emit`` (which seals, applies and
buffers them), so each decision sees the state its predecessors made. It
reads no clock, no randomness and no IO -- a decision takes the time of the
input that caused it -- which is why replay reproduces it byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from nexus.domain.bt import ACTION, CONDITION, FAILURE, RUNNING, SUCCESS, TIMEOUT, BtNode
from nexus.domain.budget import DIMENSIONS, THRESHOLDS, Scope, fraction, money_text, run_scopes
from nexus.domain.errors import ErrorKind, IntegrityError, NexusError, UserError, WorkflowError
from nexus.domain.events import Draft, Event, EventType, format_time, parse_time
from nexus.domain.payload_data import (
    ApprovalAnsweredData,
    ApprovalTimedOutData,
    AttemptFinishedData,
    EffectRecordData,
    RunResumedData,
)
from nexus.domain.payloads import (
    ABSENT,
    ApprovalEscalated,
    ApprovalRequested,
    AttemptInterrupted,
    AttemptStarted,
    BarrierArmed,
    BtTicked,
    BudgetCrossed,
    CompensationStarted,
    ConflictDetected,
    EffectRecord,
    ErrorRecord,
    FsmTransitioned,
    PauseRequested,
    Payload,
    PlanExtended,
    PlanReplanning,
    RetryScheduled,
    RunEnded,
    RunPaused,
    SagaFinished,
    SagaStarted,
    TaskEndedUnrun,
    TaskExpanded,
    TaskFailed,
    TaskIterated,
    TaskPaused,
    TaskSucceeded,
)
from nexus.domain.plan import (
    COMPENSATE_SUFFIX,
    FAILURE_RATE_MIN_ENDED,
    AgentSpec,
    TaskSpec,
    fsm_body,
    scope_of,
)
from nexus.domain.state import (
    BarrierStanding,
    RunState,
    RunStatus,
    TaskState,
    TaskStatus,
    fsm_state_of,
)
from nexus.domain.writes import WritesError, resource
from nexus.engine.aggregate import decide
from nexus.engine.bt import Ended, Entered, Expired, Leaf, Walk
from nexus.engine.conditions import describe, evaluate, pick_case, truthy
from nexus.engine.effects import to_json
from nexus.engine.retry import backoff_ms
from nexus.engine.router import route
from nexus.engine.scopes import scoped_context
from nexus.templating import (
    TemplateLimitError,
    is_template,
    render_deep,
    render_text,
    render_value,
)

if TYPE_CHECKING:
    from nexus.gateway.pricing import PricingTable
    from nexus.planning.workflow import WorkflowContext

#: An interrupted attempt (the process died) is retried without using the
#: task's retry budget, but no more than this many times in a row. A resume
#: that would pass the limit is refused instead (see :func:`held_at_limit`);
#: ``nexus resume --retry-interrupted`` records ``interrupts.reset`` and goes on.
MAX_INTERRUPTS = 3

#: Tasks that may fail on a template limit in one step (one reaction) before
#: the decider stops scheduling and asks for a ``run.continued`` input: a render
#: is bounded (see :mod:`nexus.templating._sandbox`) but a foreach of a thousand
#: hostile items is not, and the controller must get a turn to take a cancel.
MAX_LIMIT_FAILURES_PER_STEP = 3

Emit = Callable[[Draft], Event]


def template_context(state: RunState, task: TaskState, upto: int | None = None) -> dict[str, Any]:
    """What a task's templates see: ``inputs``, ``tasks``, ``item``, ``run``, ``loop``.

    ``upto`` pins ``tasks`` to the plan tasks that had ended when the attempt
    was decided (see :meth:`RunState.outputs`). A ``loop`` task's body sees
    ``loop.iteration`` (the one it runs) and ``loop.output`` (the previous
    iteration's output, null in the first); a ``bt`` task's leaves see
    ``bt.outputs`` (each action's latest output, by node id) and ``bt.step``
    (the leaves ticked so far).
    """
    ctx: dict[str, Any] = {
        "inputs": state.inputs,
        "tasks": state.outputs(upto),
        "run": {"id": state.run_id, "name": state.plan.name},
    }
    scope = scope_of(task.id, task.spec)
    if scope is not None:  # inside a sub-workflow: its own inputs and tasks
        ctx["inputs"], ctx["tasks"] = scoped_context(state, scope, ctx["tasks"])
    if task.parent is not None:
        ctx["item"] = task.item
        ctx["index"] = task.index
    if task.spec.loop is not None:
        ctx["loop"] = {"iteration": task.iteration, "output": task.loop_output}
    if task.spec.bt is not None:
        ctx["bt"] = {"outputs": task.bt_outputs or {}, "step": task.bt_steps}
    if task.spec.fsm is not None:
        ctx["fsm"] = {
            "state": fsm_state_of(task),
            "step": task.iteration,
            "output": task.loop_output,
            "outputs": dict(task.fsm_outputs or {}),
        }
    if task.compensates is not None:
        ctx["compensating"] = compensating(state, task.compensates)
    return ctx


def compensating(state: RunState, tid: str) -> dict[str, Any]:
    """What a compensation's templates see as ``compensating``: the task it undoes
    (``task``, its ``output``) and the task whose failure started the saga (``failed``)."""
    return {
        "task": tid,
        "output": state.tasks[tid].output,
        "failed": state.saga.task if state.saga is not None else None,
    }


def _needs_context(spec: TaskSpec) -> bool:
    if spec.prompt is not None:
        return True
    return _has_template(spec.args)


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return False


def switch_targets(tasks: Iterable[TaskSpec]) -> dict[str, tuple[str, ...]]:
    """Each task a ``switch`` may route to, with the switches that list it in a case."""
    found: dict[str, list[str]] = {}
    for spec in tasks:
        for targets in (spec.cases or {}).values():
            for target in targets:
                found.setdefault(target, []).append(spec.id)
    return {target: tuple(switches) for target, switches in found.items()}


def interrupts_of(task: TaskState) -> int:
    """How many times in a row ``task``'s attempts were interrupted (kept on its error record)."""
    return ErrorRecord.of(task.error).interrupt_count if task.error else 0


def held_at_limit(state: RunState) -> list[TaskState]:
    """Running tasks that a resume would fail: interrupted once more, they pass the limit."""
    return [t for t in state.tasks_in(TaskStatus.RUNNING) if interrupts_of(t) >= MAX_INTERRUPTS]


class Decider:
    """Turns state into decisions. One per controller."""

    def __init__(
        self,
        state: RunState,
        emit: Emit,
        extension_context: Callable[[], WorkflowContext] | None = None,
    ) -> None:
        self.state = state
        self.emit = emit
        #: what a plan extension's tasks are checked against (the run's tools), asked
        #: for when a task first extends the plan; None: any tool name is accepted
        self._extension_context = extension_context
        self._context: WorkflowContext | None = None
        self._pricing: PricingTable | None = None
        #: set when a step stopped scheduling early (template limits); the
        #: controller then records ``run.continued`` once it has had a turn
        self.deferred = False
        self._limit_failures = 0
        #: the tasks some ``switch`` routes to -> those switches (see :meth:`_not_picked`)
        self._routed = switch_targets(t.spec for t in state.tasks.values() if t.parent is None)
        #: each ``bt`` task's walk through its tree, rebuilt from its ticks when missing
        self._walks: dict[str, Walk] = {}
        #: each ``bt`` action node's, or ``fsm`` state's, body as a task spec, by
        #: (task spec id, node id or state)
        self._bodies: dict[tuple[str, str], TaskSpec] = {}

    def _emit(self, type_: EventType, at: str, payload: Payload) -> None:
        """Emit a decision whose data is ``payload``."""
        if type_ not in payload.TYPES:
            raise IntegrityError(f"a {type(payload).__name__} is not the payload of {type_}")
        self.emit(Draft(type_, at, payload.to_data()))

    def _routing_pricing(self) -> PricingTable | None:
        """The prices the run recorded for routing (built once); None: the shipped ones."""
        if self._pricing is None and self.state.pricing:
            from nexus.gateway.routing import pricing_with

            self._pricing = pricing_with(self.state.pricing)
        return self._pricing

    # -- entry point --------------------------------------------------------
    def react(self, trigger: Event) -> None:
        """Emit every decision that follows from ``trigger`` (already applied)."""
        state = self.state
        kind = trigger.type
        if state.status.terminal or (
            state.status is RunStatus.PAUSED and not self._reacts_while_paused(kind)
        ):
            return
        at = trigger.at
        self.deferred = False
        self._limit_failures = 0
        reaction = _REACTIONS.get(kind)
        if reaction is not None:
            reaction(self, trigger, trigger.data)
        if state.cancel_requested:
            self._cancel_all(at, "cancelled by request")
            self._compensate(at)  # a saga under way ends: the rest of it does not run
        else:
            self._schedule(at)
        while (self._settle_parents(at) or self._compensate(at)) and not state.cancel_requested:
            # a foreach parent that ended may unblock its dependents; a saga's next step
            # is ready to start
            self._schedule(at)
        if state.open_tasks == 0:
            self._finish(at)
        elif state.hold is not None and state.status is RunStatus.RUNNING:
            self._hold_run(trigger)
        elif (
            state.paused
            and state.running == 0
            and state.status is RunStatus.RUNNING
            and not self.deferred
        ):
            self._pause_run(at)

    # -- reactions: each reads its input as stored (the fold has checked it) ----
    def _effect_recorded(self, event: Event, effect: EffectRecordData) -> None:
        state = self.state
        if state.has_budgets or effect.get("tenant_budget") is not None:
            self._spent(state.payload(event, EffectRecord), event.at)
        wrote = effect.get("wrote")
        if wrote:
            self._conflicts(event, effect, wrote)

    def _conflicts(self, event: Event, effect: EffectRecordData, wrote: list[str]) -> None:
        """Record each file this write shares with an attempt that ran alongside it (once
        per file and pair of tasks); the run goes on."""
        tid = effect["task"]
        for path, other, other_attempt in self.state.clashes(tid, wrote):
            detected = ConflictDetected(
                path=path,
                task=tid,
                attempt=effect["attempt"],
                other=other,
                other_attempt=other_attempt,
                effect=effect["key"],
            )
            self._emit(EventType.CONFLICT_DETECTED, event.at, detected)

    def _attempt_finished(self, event: Event, finished: AttemptFinishedData) -> None:
        task = self.state.tasks[finished["task"]]
        recorded = finished.get("error")
        if recorded is None:
            if task.spec.bt is not None:
                self._bt_acted(task, event.at, None)
                return
            if task.spec.loop is not None:
                self._iterate(task, event.at)
                return
            if task.spec.extend is not None:
                self._extend(task, event.at)
                return
            if task.spec.fsm is not None:
                self._transition(task, event.at)
                return
            succeeded = TaskSucceeded(task=task.id, attempt=task.attempts)
            self._succeed(task, event.at, succeeded)
            return
        error = ErrorRecord.of(recorded)
        if error.kind == str(ErrorKind.BUDGET_EXCEEDED):
            self._budget_stop(task, event.at, error)
            return
        # a loop's retries are counted per iteration (an fsm's per step): its earlier
        # iterations' attempts (iteration_base) are not failures
        failures = task.attempts - task.iteration_base - self._interrupts(task)
        if (
            error.is_retryable
            and failures <= task.spec.retry.retries
            and not (task.spec.bt is not None and self._bt_expired(task, event.at))
        ):
            self._retry(task, event.at, error, failures)
        elif task.spec.bt is not None:
            self._bt_acted(task, event.at, error)
        else:
            self._fail(task, event.at, recorded)

    def _resumed(self, event: Event, resumed: RunResumedData) -> None:
        self._interrupted(event.at)

    def _rejected(self, event: Event, answer: ApprovalAnsweredData) -> None:
        task = self.state.tasks[answer["task"]]
        who = answer["by"] or "someone"
        why = answer["reason"] or "no reason given"
        if task.reviewing:  # its extension was rejected: none of what it added runs
            reason = f"the plan extension of '{task.id}' was rejected by {who}: {why}"
            for tid in task.added:
                skipped = TaskEndedUnrun(task=tid, reason=reason)
                self._emit(EventType.TASK_SKIPPED, event.at, skipped)
        error = ErrorRecord(
            kind=str(ErrorKind.POLICY_DENIED),
            message=f"approval rejected by {who}: {why}",
            retryable=False,
        )
        self._fail(task, event.at, error.to_data())

    def _approval_timed_out(self, event: Event, timed_out: ApprovalTimedOutData) -> None:
        task = self.state.tasks[timed_out["task"]]
        policy = task.spec.approval
        if policy is not None and policy.on_timeout == "escalate":
            reason = f"no answer within {policy.timeout} s: escalated, still waiting"
            escalated = ApprovalEscalated(task=task.id, reason=reason)
            self._emit(EventType.APPROVAL_ESCALATED, event.at, escalated)
            return
        error = ErrorRecord(
            kind=str(ErrorKind.TIMEOUT), message="approval not given in time", retryable=False
        )
        self._fail(task, event.at, error.to_data())

    def _request_approval(self, task: TaskState, at: str) -> None:
        policy = task.spec.approval
        assert policy is not None
        request = ApprovalRequested(task=task.id, on_timeout=policy.on_timeout)
        if policy.timeout is not None:
            delay = int(policy.timeout * 1000)
            request.timeout_ms = delay
            request.deadline = format_time(parse_time(at) + timedelta(milliseconds=delay))
        self._emit(EventType.APPROVAL_REQUESTED, at, request)

    def _interrupts(self, task: TaskState) -> int:
        return interrupts_of(task)

    def _retry(self, task: TaskState, at: str, error: ErrorRecord, failures: int) -> None:
        delay = backoff_ms(
            task.spec.retry, self.state.run_id, task.id, failures, error.retry_after_s
        )
        error.interrupts = self._interrupts(task) + (1 if error.kind == "interrupted" else 0)
        not_before = format_time(parse_time(at) + timedelta(milliseconds=delay))
        retry = RetryScheduled(
            task=task.id,
            attempt=task.attempts,
            error=error.to_data(),
            delay_ms=delay,
            not_before=not_before,
        )
        self._emit(EventType.RETRY_SCHEDULED, at, retry)

    def _succeed(self, task: TaskState, at: str, succeeded: TaskSucceeded) -> None:
        """Record that ``task``'s attempt succeeded; the first item of a ``first_success``
        fan-out to succeed ends its parent too."""
        self._emit(EventType.TASK_SUCCEEDED, at, succeeded)
        if task.parent is not None:
            parent = self.state.tasks[task.parent]
            policy = parent.spec.aggregate
            if (
                policy is not None
                and policy.method == "first_success"
                and parent.status is TaskStatus.EXPANDED
            ):
                self._first_success(parent, task, at)

    def _first_success(self, parent: TaskState, winner: TaskState, at: str) -> None:
        """``winner`` is the first item of ``parent`` to succeed (in the order the log
        records): the parent takes its output, the items still open are cancelled
        (a running one's process is stopped)."""
        state = self.state
        assert winner.index is not None
        others = [state.tasks[c] for c in parent.children if c != winner.id]
        failed = [t.index for t in others if t.status.terminal and t.index is not None]
        record: dict[str, Any] = {
            "method": "first_success",
            "items": len(parent.children),
            "winner": winner.index,
        }
        if failed:
            record["failed"] = failed
        done = TaskSucceeded(task=parent.id, aggregate=record)
        self._emit(EventType.TASK_SUCCEEDED, at, done)
        reason = f"first_success: item '{winner.id}' of '{parent.id}' succeeded first"
        for other in others:
            if not other.status.terminal:
                cancelled = TaskEndedUnrun(task=other.id, reason=reason)
                self._emit(EventType.TASK_CANCELLED, at, cancelled)

    def _tolerated(self, task: TaskState) -> bool:
        """Whether ``task`` is an item whose failure its fan-out tolerates (``aggregate``):
        it does not stop a fail-fast run; its parent decides."""
        if task.parent is None:
            return False
        return self.state.tasks[task.parent].spec.aggregate is not None

    def _fail(self, task: TaskState, at: str, error: dict[str, Any]) -> None:
        failed = TaskFailed(task=task.id, attempts=task.attempts, error=error)
        self._emit(EventType.TASK_FAILED, at, failed)
        self._failed_for_good(task, at)

    def _failed_for_good(self, task: TaskState, at: str) -> None:
        """What a task's failure does to the run: a compensation's failure is only
        recorded (the saga goes on); ``on_failure: compensate`` starts the saga; else
        ``fail_fast`` cancels the rest, or the failure thresholds are judged."""
        if task.compensates is not None:
            return
        if task.spec.on_failure == "compensate" and task.parent is None and self.state.saga is None:
            self._start_saga(task, at)
            return
        if self.state.plan.fail_fast and not self._tolerated(task):
            self._cancel_all(at, f"fail-fast: task '{task.id}' failed")
        else:
            self._failure_threshold(at)

    # -- sagas ----------------------------------------------------------------
    def _start_saga(self, task: TaskState, at: str) -> None:
        """Fix the saga's steps -- every task that succeeded and has ``compensate``, the
        last to succeed first -- then cancel and skip what has not ended (running
        attempts are cancelled as a cancel does): nothing of the plan runs any more."""
        state = self.state
        steps = [
            tid
            for tid in reversed(state.finished_ids)
            if state.tasks[tid].status is TaskStatus.SUCCEEDED
            and state.tasks[tid].spec.compensate is not None
        ]
        self._emit(EventType.SAGA_STARTED, at, SagaStarted(task=task.id, steps=steps))
        self._cancel_all(at, f"saga: task '{task.id}' failed, compensating")

    def _compensate(self, at: str) -> bool:
        """Move the saga on: once its current step has ended, start the next, or finish
        it. True when a step was started (it is ready to schedule)."""
        state = self.state
        saga = state.saga
        if saga is None or saga.finished:
            return False
        if saga.current is not None and not state.tasks[saga.current].status.terminal:
            return False
        if saga.started < len(saga.steps) and not state.cancel_requested:
            tid = saga.steps[saga.started]
            started = CompensationStarted(
                task=tid,
                compensation=tid + COMPENSATE_SUFFIX,
                step=saga.started + 1,
                total=len(saga.steps),
            )
            self._emit(EventType.COMPENSATION_STARTED, at, started)
            return True
        done: list[str] = []
        failed: list[str] = []
        for tid in saga.steps[: saga.started]:
            ended = state.tasks[tid + COMPENSATE_SUFFIX].status is TaskStatus.SUCCEEDED
            (done if ended else failed).append(tid)
        finished = SagaFinished(
            task=saga.task,
            compensated=done,
            failed=failed,
            not_run=saga.steps[saga.started :],
        )
        self._emit(EventType.SAGA_FINISHED, at, finished)
        return False

    def _failure_threshold(self, at: str) -> None:
        """End a run that goes badly: past the plan's ``max_failures`` failed tasks, or
        its ``max_failure_rate`` of ended ones, what is left is cancelled, the reason
        naming the threshold (the run then ends ``failed``)."""
        state = self.state
        plan = state.plan
        if plan.max_failures is None and plan.max_failure_rate is None:
            return
        failed = state.failed_tasks
        ended = failed + state.succeeded_tasks
        reason = None
        if plan.max_failures is not None and failed >= plan.max_failures:
            tasks = "task" if failed == 1 else "tasks"
            reason = f"max_failures: {failed} {tasks} failed (limit {plan.max_failures})"
        elif (
            plan.max_failure_rate is not None
            and ended >= FAILURE_RATE_MIN_ENDED
            and failed >= plan.max_failure_rate * ended
        ):
            reason = (
                f"max_failure_rate: {failed} of {ended} ended tasks failed "
                f"({failed / ended:.0%}, limit {plan.max_failure_rate:.0%})"
            )
        if reason is not None:
            self._cancel_all(at, reason)

    def _interrupted(self, at: str) -> None:
        for task in self.state.tasks_in(TaskStatus.RUNNING):
            if task.status is not TaskStatus.RUNNING:
                continue  # an earlier one's failure cancelled it (fail-fast, a saga)
            error = ErrorRecord(
                kind="interrupted",
                message="the process running this attempt stopped before it finished",
                retryable=True,
            )
            stopped = AttemptInterrupted(task=task.id, attempt=task.attempts, error=error.to_data())
            self._emit(EventType.ATTEMPT_INTERRUPTED, at, stopped)
            interrupts = self._interrupts(task) + 1
            if interrupts > MAX_INTERRUPTS:
                held = ErrorRecord(
                    kind=str(ErrorKind.INTERNAL),
                    message=f"interrupted {interrupts} times (limit {MAX_INTERRUPTS})",
                    retryable=False,
                )
                self._fail(task, at, held.to_data())
            else:
                self._retry_interrupted(task, at, error)

    def _retry_interrupted(self, task: TaskState, at: str, error: ErrorRecord) -> None:
        error.interrupts = self._interrupts(task) + 1
        retry = RetryScheduled(
            task=task.id, attempt=task.attempts, error=error.to_data(), delay_ms=0, not_before=at
        )
        self._emit(EventType.RETRY_SCHEDULED, at, retry)

    # -- budgets ------------------------------------------------------------
    def _spent(self, record: EffectRecord, at: str) -> None:
        """Warn at 80% of a limit, stop at 100%: once per scope, dimension and threshold."""
        if record.kind not in ("model", "tool"):
            return
        state = self.state
        task = state.tasks.get(record.task)
        for scope in run_scopes(record.task, task.agent if task is not None else None):
            limits = state.limits(scope)
            if limits.is_empty:
                continue
            spend = state.spend(scope)
            for dimension in DIMENSIONS:
                limit = limits.get(dimension)
                if limit is None:
                    continue
                spent = spend.get(dimension)
                share = fraction(spent, limit)
                for threshold in THRESHOLDS:
                    mark = money_text(threshold)
                    if share < threshold or (scope.id, dimension, mark) in state.reported:
                        continue
                    kind = EventType.BUDGET_WARNING if threshold < 1 else EventType.BUDGET_EXCEEDED
                    crossing = _crossing(scope, dimension, mark, spent, limit, task=record.task)
                    self._emit(kind, at, crossing)
        # the tenant's spend is shared with other runs: the worker records what a call crossed
        for crossed in record.tenant_crossings:
            scope = Scope("tenant", crossed.key)
            mark = crossed.threshold
            if (scope.id, crossed.dimension, mark) in state.reported:
                continue
            kind = EventType.BUDGET_WARNING if mark != "1" else EventType.BUDGET_EXCEEDED
            tenant_crossing = _crossing(
                scope, crossed.dimension, mark, crossed.spent, crossed.limit, task=record.task
            )
            self._emit(kind, at, tenant_crossing)

    def _budget_stop(self, task: TaskState, at: str, error: ErrorRecord) -> None:
        """An attempt was refused budget: record why (once) and pause the task."""
        refusal = error.refusal
        if refusal is not None and (refusal.scope_id, refusal.dimension, "1") not in (
            self.state.reported
        ):
            scope = Scope(refusal.scope, refusal.key)
            crossing = _crossing(
                scope, refusal.dimension, "1", refusal.spent, refusal.limit, task=task.id
            )
            # a refusal: the call did not fit what was spent and held by others
            crossing.asked = refusal.asked
            crossing.reserved = refusal.reserved
            self._emit(EventType.BUDGET_EXCEEDED, at, crossing)
        paused = TaskPaused(task=task.id, attempt=task.attempts, reason=error.message)
        self._emit(EventType.TASK_PAUSED, at, paused)

    def _budget_block(self, task: TaskState, at: str) -> str | None:
        """Why ``task`` may not start for lack of budget (None: it may)."""
        state = self.state
        run = state.limits(Scope("run"))
        if run.wall_s is not None:
            elapsed = (parse_time(at) - parse_time(state.started_at)).total_seconds()
            if elapsed >= run.wall_s:
                if ("run:", "wall", "1") not in state.reported:
                    crossing = _crossing(
                        Scope("run"), "wall", "1", elapsed, run.wall_s, task=task.id
                    )
                    self._emit(EventType.BUDGET_EXCEEDED, at, crossing)
                return f"the run's wall-time budget of {run.wall_s:g} s is spent"
        for scope in run_scopes(task.id, task.spec.agent):
            limits = state.limits(scope)
            if limits.is_empty:
                continue
            spend = state.spend(scope)
            for dimension in DIMENSIONS:
                limit = limits.get(dimension)
                if limit is not None and fraction(spend.get(dimension), limit) >= 1:
                    return f"the {scope.label}'s {dimension} budget ({limit}) is spent"
        return None

    def _pause_run(self, at: str) -> None:
        """Nothing runs and budget-paused tasks hold the rest back: the run pauses."""
        state = self.state
        if state.tasks_in(TaskStatus.RETRY_WAIT, TaskStatus.AWAITING_APPROVAL):
            return  # a timer or a person can still move it on
        paused = [t.id for t in state.tasks_in(TaskStatus.PAUSED)]
        self._emit(
            EventType.RUN_PAUSED,
            at,
            RunPaused(
                reason="budget",
                paused=paused[:20],
                count=len(paused),
                hint="raise the budget and run `nexus resume RUN --budget ...`",
            ),
        )

    # -- a person's pause -------------------------------------------------------
    def _reacts_while_paused(self, kind: EventType) -> bool:
        """What a paused run still reacts to: a cancel; and, paused by a person, the
        answer to an approval it was waiting for (the answer is kept, the run stays
        paused)."""
        return kind is EventType.CANCEL_REQUESTED or (
            self.state.hold is not None and kind in _APPROVAL_ANSWERS
        )

    def _hold_run(self, trigger: Event) -> None:
        """A person asked the run to pause: it pauses once no attempt it let run is running.

        Asked while no process drove the run, the attempts its stopped process
        left running (``orphaned``) are not waited for: nothing runs them.
        """
        state = self.state
        running = state.running
        if trigger.type is EventType.PAUSE_REQUESTED:
            running -= len(state.payload(trigger, PauseRequested).orphaned or ())
        hold = state.hold
        if running > 0 or hold is None:
            return
        paused = RunPaused(
            reason="user",
            paused=[],
            count=0,
            hint=f"`nexus resume {state.run_id}` continues it",
            by=hold["by"],
            why=hold["reason"],
        )
        self._emit(EventType.RUN_PAUSED, trigger.at, paused)

    def _cancel_all(self, at: str, reason: str) -> None:
        state = self.state
        for task in state.tasks_in(
            TaskStatus.RUNNING,
            TaskStatus.RETRY_WAIT,
            TaskStatus.AWAITING_APPROVAL,
            TaskStatus.PAUSED,
        ):
            self._emit(EventType.TASK_CANCELLED, at, TaskEndedUnrun(task=task.id, reason=reason))
        for task in state.tasks_in(TaskStatus.PENDING):
            if task.status is TaskStatus.PENDING:
                self._emit(EventType.TASK_SKIPPED, at, TaskEndedUnrun(task=task.id, reason=reason))
        self._settle_parents(at)

    # -- scheduling ---------------------------------------------------------
    def _schedule(self, at: str) -> None:
        state = self.state
        limit = state.plan.max_parallel
        if state.hold is not None:
            return  # a person asked the run to pause: no new attempt starts
        blocked: list[TaskState] = []
        while state.running < limit:
            task = state.pop_ready()
            if task is None:
                break
            if self._limit_failures >= MAX_LIMIT_FAILURES_PER_STEP:
                state.push_ready(task)
                self.deferred = True
                break
            if task.spec.barrier is not None:
                if task.parent is None and self._held_by_barrier(task, at):
                    continue
            elif not state.needs_ok(task):
                failed = [
                    d for d in task.spec.needs if state.tasks[d].status is not TaskStatus.SUCCEEDED
                ]
                reason = f"dependency did not succeed: {', '.join(failed)}"
                self._emit(EventType.TASK_SKIPPED, at, TaskEndedUnrun(task=task.id, reason=reason))
                continue
            if task.id in self._routed and task.parent is None and self._not_picked(task, at):
                continue
            if task.spec.when is not None and task.parent is None and self._ruled_out(task, at):
                continue
            if task.spec.approval is not None and task.parent is None and not task.approved:
                self._request_approval(task, at)
                continue
            if task.spec.switch is not None:
                self._route(task, at)
                continue
            if task.parent is None and (
                task.spec.foreach is not None or task.spec.agents is not None
            ):
                self._expand(task, at)
                continue
            if not self._start(task, at):
                blocked.append(task)
        for task in blocked:
            state.push_ready(task)

    # -- barriers: needs_any, quorum, wait --------------------------------------
    def _held_by_barrier(self, task: TaskState, at: str) -> bool:
        """Judge ``task``'s barrier: False when it may go on (to its condition, approval
        and start); True when it ended the task or the task waits on.

        A task that waits is not put back on the ready heap: the fold puts it
        there again when another need ends or its deadline passes. The first time
        it is seen waiting its ``wait`` deadline is armed (``barrier.armed``).
        """
        barrier = task.spec.barrier
        assert barrier is not None
        standing = self.state.barrier_standing(task)
        if standing.verdict == "ready":
            return False
        if standing.verdict == "impossible":
            skipped = TaskEndedUnrun(task=task.id, reason=standing.reason)
            self._emit(EventType.TASK_SKIPPED, at, skipped)
            return True
        if task.barrier_expired:
            return self._barrier_timed_out(task, at, standing)
        if barrier.timeout is not None and task.barrier_deadline is None:
            delay = int(barrier.timeout * 1000)
            deadline = format_time(parse_time(at) + timedelta(milliseconds=delay))
            armed = BarrierArmed(task=task.id, timeout_ms=delay, deadline=deadline)
            self._emit(EventType.BARRIER_ARMED, at, armed)
        return True

    def _barrier_timed_out(self, task: TaskState, at: str, standing: BarrierStanding) -> bool:
        """The wait of ``task``'s barrier is over before it was met: ``on_timeout: fail``
        fails it naming the needs still open; ``continue`` lets it go on with the needs
        that succeeded (skipped when none did)."""
        barrier = task.spec.barrier
        assert barrier is not None
        waited = f"{barrier.timeout:g} s"
        still = ", ".join(standing.open)
        if barrier.on_timeout == "continue" and standing.succeeded:
            return False
        if barrier.on_timeout == "continue":
            reason = f"barrier wait of {waited} ended with no need succeeded (still open: {still})"
            self._emit(EventType.TASK_SKIPPED, at, TaskEndedUnrun(task=task.id, reason=reason))
            return True
        error = ErrorRecord(
            kind=str(ErrorKind.TIMEOUT),
            message=(
                f"barrier wait of {waited} ended before its needs were met: still open: {still}"
                f" ({barrier.quorum} of {', '.join(barrier.of)} needed; succeeded: "
                f"{', '.join(standing.succeeded) or 'none'})"
            ),
            retryable=False,
            details={
                "succeeded": list(standing.succeeded),
                "unsuccessful": list(standing.unsuccessful),
                "open": list(standing.open),
                "quorum": barrier.quorum,
            },
        )
        self._fail(task, at, error.to_data())
        return True

    def _ruled_out(self, task: TaskState, at: str) -> bool:
        """Judge ``task``'s ``when``: True when it ended the task (skipped, or failed to render).

        A ``foreach`` task's condition is judged once, for the whole task.
        """
        source = task.spec.when
        assert source is not None
        try:
            value = evaluate(
                source, template_context(self.state, task), where=f"task '{task.id}', field 'when'"
            )
            value = to_json(value, f"the condition of task '{task.id}'")
        except NexusError as exc:
            self._render_failed(task, at, exc)
            return True
        if truthy(value):
            return False
        skipped = TaskEndedUnrun(
            task=task.id,
            reason=f"condition is false: {source} gave {describe(value)}",
            condition=source,
            value=value,
        )
        self._emit(EventType.TASK_SKIPPED, at, skipped)
        return True

    # -- switch: routing ------------------------------------------------------
    def _route(self, task: TaskState, at: str) -> None:
        """A ``switch`` task picks its case from its value and succeeds (no attempt);
        no case and no ``default`` for the value fails it."""
        spec = task.spec
        source, cases = spec.switch, spec.cases or {}
        assert source is not None
        try:
            value = evaluate(
                source,
                template_context(self.state, task),
                where=f"task '{task.id}', field 'switch'",
            )
            value = to_json(value, f"the switch of task '{task.id}'")
        except NexusError as exc:
            self._render_failed(task, at, exc)
            return
        case = pick_case(value, cases)
        if case is None:
            error = ErrorRecord(
                kind=str(ErrorKind.VALIDATION),
                message=(
                    f"switch: {source} gave {describe(value)}, which no case names "
                    f"(cases: {', '.join(sorted(cases)) or 'none'}) and there is no default"
                ),
                retryable=False,
            )
            self._fail(task, at, error.to_data())
            return
        routed = TaskSucceeded(task=task.id, case=case, value=value)
        self._emit(EventType.TASK_SUCCEEDED, at, routed)

    # -- loop: iterations -----------------------------------------------------
    def _iterate(self, task: TaskState, at: str) -> None:
        """An iteration of a ``loop`` task succeeded: judge ``until`` on its output.

        True ends the task with that output; false runs the body again
        (``task.iterated``), unless this was the last iteration allowed: then
        ``on_max`` fails the task or ends it with the output all the same.
        """
        loop = task.spec.loop
        assert loop is not None
        iteration = task.iteration
        ctx = template_context(self.state, task)
        ctx["loop"] = {"iteration": iteration, "output": task.last_output}
        try:
            value = evaluate(loop.until, ctx, where=f"task '{task.id}', field 'loop.until'")
            value = to_json(value, f"the loop.until of task '{task.id}'")
        except NexusError as exc:
            self._render_failed(task, at, exc)
            return
        done = truthy(value)
        if done or (iteration >= loop.max_iterations and loop.on_max == "succeed"):
            ended = TaskSucceeded(
                task=task.id, attempt=task.attempts, iteration=iteration, value=value
            )
            self._succeed(task, at, ended)
        elif iteration >= loop.max_iterations:
            error = ErrorRecord(
                kind=str(ErrorKind.VALIDATION),
                message=(
                    f"loop.until still false after {iteration} iterations (max_iterations): "
                    f"{loop.until} gave {describe(value)}"
                ),
                retryable=False,
                details={"iterations": iteration, "value": value},
            )
            self._fail(task, at, error.to_data())
        else:
            again = TaskIterated(
                task=task.id, attempt=task.attempts, iteration=iteration, value=value
            )
            self._emit(EventType.TASK_ITERATED, at, again)

    # -- extend: the plan grows ------------------------------------------------
    def _extend(self, task: TaskState, at: str) -> None:
        """An extending task's attempt succeeded: add the tasks its output holds.

        They are compiled and checked like a workflow file's (see
        :func:`nexus.planning.workflow.compile_extension`), within the limits the
        workflow set, then recorded as one ``plan.extended``; the task ends when
        they all have. An invalid extension is the attempt's failure: retried
        (the agent sees the problems as feedback) while retries last, then the
        task fails naming every problem, and the rest of the run goes on.
        """
        from nexus.planning.workflow import Extension, compile_extension

        state = self.state
        plan = state.plan
        limits = plan.extension_limits
        room = limits.max_tasks - state.added_tasks
        why = (
            f"extensions.max_tasks lets the run add {limits.max_tasks} "
            f"and it has added {state.added_tasks}"
        )
        own = task.spec.extend.max_tasks if task.spec.extend is not None else None
        if own is not None and own < room:
            room, why = own, f"its extend.max_tasks is {own}"
        existing = {t.id: t.spec for t in state.tasks.values() if t.parent is None}
        extension = Extension(
            by=task.id, existing=existing, depth=task.depth + 1, room=max(room, 0), why_room=why
        )
        try:
            specs = compile_extension(plan, task.last_output, extension, self._checks())
        except WorkflowError as exc:
            self._bad_extension(task, at, exc)
            return
        if not specs:
            done = TaskSucceeded(task=task.id, attempt=task.attempts)
            self._emit(EventType.TASK_SUCCEEDED, at, done)
            return
        review = task.spec.extend is not None and task.spec.extend.review
        extended = PlanExtended(
            task=task.id,
            attempt=task.attempts,
            tasks=[spec.to_dict() for spec in specs],
            depth=task.depth + 1,
            review=True if review else None,
        )
        self._emit(EventType.PLAN_EXTENDED, at, extended)
        if review:
            request = ApprovalRequested(task=task.id, on_timeout="fail")
            self._emit(EventType.APPROVAL_REQUESTED, at, request)
        if any(spec.cases for spec in specs):
            self._routed = switch_targets(t.spec for t in state.tasks.values() if t.parent is None)

    def _checks(self) -> WorkflowContext | None:
        if self._context is None and self._extension_context is not None:
            self._context = self._extension_context()
        return self._context

    def _bad_extension(self, task: TaskState, at: str, exc: WorkflowError) -> None:
        problems = [_where(p) for p in exc.problems]
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        error = ErrorRecord(
            kind=str(ErrorKind.VALIDATION),
            message=f"{exc.file} is not valid ({count}): " + "; ".join(problems[:5]),
            retryable=True,
            details={"problems": problems[:50]},
        )
        # a re-plan's retries count afresh (iteration_base, as a loop's iterations)
        failures = task.attempts - task.iteration_base - self._interrupts(task)
        if failures <= task.spec.retry.retries:
            self._retry(task, at, error, failures)
        else:
            error.retryable = False
            self._fail(task, at, error.to_data())

    def _replan(self, task: TaskState, bad: list[str], at: str) -> bool:
        """Ask ``task`` for a repaired plan when it has re-plans left; True if it was asked.

        Its next attempt gets the failures as feedback (their errors, which of
        its tasks succeeded and may be needed, that ids must be new).
        """
        extend = task.spec.extend
        if extend is None or task.replans >= extend.replan or self.state.cancel_requested:
            return False
        state = self.state
        errors = {tid: state.tasks[tid].error or {"kind": "cancelled"} for tid in bad[:20]}
        done = [tid for tid in task.added if state.tasks[tid].status is TaskStatus.SUCCEEDED]
        lines = [
            f"{tid}: {str(ErrorRecord.of(error).message)[:300]}" for tid, error in errors.items()
        ]
        feedback = ErrorRecord(
            kind="replan",
            message=(
                f"{len(bad)} of the tasks your plan added did not succeed; answer with a "
                "repaired plan of new tasks (new ids; they may need the tasks that "
                "succeeded). " + "; ".join(lines)
            ),
            retryable=False,
            details={"failed": errors, "succeeded": done[:200]},
        )
        replanning = PlanReplanning(
            task=task.id, round=task.replans + 1, failed=bad, feedback=feedback.to_data()
        )
        self._emit(EventType.PLAN_REPLANNING, at, replanning)
        return True

    # -- bt: behaviour trees -----------------------------------------------------
    def _bt_walk(self, task: TaskState) -> Walk:
        """``task``'s walk, caught up with its recorded ticks (rebuilt after a resume)."""
        walk = self._walks.get(task.id)
        if walk is None:
            tree = task.spec.bt
            assert tree is not None
            walk = self._walks[task.id] = Walk(tree)
        walk.catch_up(task.bt_trace or [], f"run {self.state.run_id}, task '{task.id}'")
        return walk

    def _bt_advance(self, task: TaskState, at: str, writes: tuple[str, ...] = ()) -> bool:
        """Tick ``task``'s tree on from where its log leaves it: judge conditions and
        record the nodes that end, until an action must run (its attempt starts) or
        the root ends (the task with it). False when no agent has a free slot."""
        walk = self._bt_walk(task)
        tree = task.spec.bt
        assert tree is not None
        while True:
            request = walk.request
            if request is None:  # the root ended (a leaf root: with its own tick)
                self._bt_end(task, at, walk)
                return True
            if isinstance(request, Ended):
                self._bt_tick(task, at, request.node, request.status, reason=request.reason)
                walk.consumed += 1
                walk.answer(None)
            elif isinstance(request, Entered):
                seconds = request.node.seconds or 0
                deadline = format_time(parse_time(at) + timedelta(seconds=seconds))
                self._bt_tick(task, at, request.node, RUNNING, deadline=deadline)
                walk.consumed += 1
                walk.answer(deadline)
            else:
                expired = _expired(request, at)
                if expired is not None:
                    walk.answer(Expired(expired))
                    continue
                if task.bt_steps >= tree.max_steps:
                    self._bt_out_of_steps(task, at, request.node)
                    return True
                if request.node.kind == ACTION:
                    return self._bt_act(task, at, request, writes)
                judged = self._bt_condition(task, at, request.node)
                if judged is None:
                    return True  # it did not render: the task failed
                walk.consumed += 1
                walk.answer(judged)

    def _bt_condition(self, task: TaskState, at: str, node: BtNode) -> tuple[str, str] | None:
        """Judge a condition leaf and record it; None when it does not render (the task
        fails naming the node)."""
        source = node.condition or ""
        where = f"task '{task.id}', field 'bt.{node.id}.condition'"
        try:
            value = evaluate(source, template_context(self.state, task), where=where)
            value = to_json(value, f"the condition '{node.id}' of task '{task.id}'")
        except NexusError as exc:
            self._render_failed(task, at, exc)
            return None
        status = SUCCESS if truthy(value) else FAILURE
        why = f"{source} gave {describe(value)}" if status == FAILURE else ""
        self._bt_tick(task, at, node, status, value=value, reason=why or None)
        return status, why

    def _bt_act(
        self, task: TaskState, at: str, request: Leaf, writes: tuple[str, ...] = ()
    ) -> bool:
        """Start the action ``request`` names as the task's next attempt, with at most the
        time its ``timeout`` nodes leave."""
        node = request.node
        spec = task.spec
        timeout_ms = None if spec.timeout is None else int(spec.timeout * 1000)
        for _, deadline in request.timers:
            left = (parse_time(deadline) - parse_time(at)) // timedelta(milliseconds=1)
            timeout_ms = max(1, left if timeout_ms is None else min(timeout_ms, left))
        key = (spec.id, node.id)
        body = self._bodies.get(key)
        if body is None:
            body = self._bodies[key] = replace(
                spec,
                tool=node.tool,
                args=node.args or {},
                agent=node.agent,
                capability=node.capability,
                prompt=node.prompt,
                bt=None,
            )
        return self._attempt(task, at, body, timeout_ms, node=node.id, writes=writes)

    def _bt_acted(self, task: TaskState, at: str, error: ErrorRecord | None) -> None:
        """The action the task ran ended: record its outcome (the task is ready for its
        next leaf; :meth:`_start` ticks on)."""
        request = self._bt_walk(task).request
        if not isinstance(request, Leaf) or request.node.kind != ACTION:
            raise IntegrityError(
                f"run {self.state.run_id}: an attempt of task '{task.id}' ended "
                "but its tree is not at an action"
            )
        status = SUCCESS if error is None else FAILURE
        why = None if error is None else f"{error.kind}: {str(error.message)[:300]}"
        self._bt_tick(task, at, request.node, status, attempt=task.attempts, reason=why)

    def _bt_expired(self, task: TaskState, at: str) -> bool:
        """Whether a ``timeout`` around the running action has passed (no retry then)."""
        request = self._bt_walk(task).request
        return isinstance(request, Leaf) and _expired(request, at) is not None

    def _bt_tick(
        self,
        task: TaskState,
        at: str,
        node: BtNode,
        status: str,
        *,
        attempt: int | None = None,
        value: Any = ABSENT,
        deadline: str | None = None,
        reason: str | None = None,
    ) -> None:
        leaf = node.kind in (ACTION, CONDITION)
        ticked = BtTicked(
            task=task.id,
            node=node.id,
            kind=node.kind,
            status=status,
            step=task.bt_steps + (1 if leaf else 0),
            attempt=attempt,
            value=value,
            deadline=deadline,
            reason=reason,
        )
        self._emit(EventType.BT_TICKED, at, ticked)

    def _bt_end(self, task: TaskState, at: str, walk: Walk) -> None:
        """The root ended: the task succeeds with its output, or fails naming the node
        whose failure decided it."""
        tree = walk.tree
        outcome = walk.outcome
        assert outcome is not None
        self._walks.pop(task.id, None)
        status, culprit, why = outcome
        if status == SUCCESS:
            done = TaskSucceeded(task=task.id)
            if tree.output is not None:
                try:
                    value = render_value(
                        tree.output,
                        template_context(self.state, task),
                        where=f"task '{task.id}', field 'bt.output'",
                    )
                    done.value = to_json(value, f"the bt.output of task '{task.id}'")
                except NexusError as exc:
                    self._render_failed(task, at, exc)
                    return
            self._emit(EventType.TASK_SUCCEEDED, at, done)
            return
        node = tree.nodes()[culprit]
        error = ErrorRecord(
            kind=str(ErrorKind.TIMEOUT if node.kind == TIMEOUT else ErrorKind.VALIDATION),
            message=(
                f"behaviour tree failed at node '{culprit}' ({node.describe()}): {why}"
                if why
                else f"behaviour tree failed at node '{culprit}' ({node.describe()})"
            ),
            retryable=False,
            details={"node": culprit, "steps": task.bt_steps},
        )
        self._fail(task, at, error.to_data())

    def _bt_out_of_steps(self, task: TaskState, at: str, node: BtNode) -> None:
        tree = task.spec.bt
        assert tree is not None
        self._walks.pop(task.id, None)
        error = ErrorRecord(
            kind=str(ErrorKind.VALIDATION),
            message=(
                f"behaviour tree reached max_steps ({tree.max_steps}) before its root "
                f"ended; the next leaf was '{node.id}' ({node.describe()})"
            ),
            retryable=False,
            details={"node": node.id, "steps": task.bt_steps},
        )
        self._fail(task, at, error.to_data())

    # -- fsm: state machines -------------------------------------------------
    def _body(self, task: TaskState) -> TaskSpec:
        """An ``fsm`` task's spec with its current state's body in place (built once per
        state): what the attempt of this step runs."""
        fsm = task.spec.fsm
        assert fsm is not None
        name = fsm_state_of(task)
        key = (task.spec.id, name)
        body = self._bodies.get(key)
        if body is None:
            body = self._bodies[key] = fsm_body(task.spec, name)
        return body

    def _transition(self, task: TaskState, at: str) -> None:
        """A step of an ``fsm`` task succeeded: take the first of its state's transitions
        whose ``when`` holds (one without ``when`` always does).

        To a state with a body, ``fsm.transitioned`` makes the task ready for it
        (unless ``max_steps`` bodies have run: the task fails); to a terminal
        state, the task ends there. No transition holding fails the task, naming
        the state and what each condition gave.
        """
        fsm = task.spec.fsm
        assert fsm is not None
        name = fsm_state_of(task)
        step = task.iteration
        ctx = template_context(self.state, task)
        outputs = {**ctx["fsm"]["outputs"], name: task.last_output}
        ctx["fsm"] = {"state": name, "step": step, "output": task.last_output, "outputs": outputs}
        judged: list[dict[str, Any]] = []
        chosen: int | None = None
        value: Any = None
        for index, transition in enumerate(fsm.states[name].transitions):
            if transition.when is None:
                chosen, value = index, None
                break
            where = f"fsm.states.{name}.transitions[{index}].when"
            try:
                value = evaluate(transition.when, ctx, where=f"task '{task.id}', field '{where}'")
                value = to_json(value, f"the {where} of task '{task.id}'")
            except NexusError as exc:
                self._render_failed(task, at, exc)
                return
            if truthy(value):
                chosen = index
                break
            judged.append({"to": transition.to, "when": transition.when, "value": value})
        if chosen is None:
            gave = "; ".join(f"{j['when']} gave {describe(j['value'])}" for j in judged)
            self._fsm_fail(
                task,
                at,
                f"fsm: no transition out of state '{name}' holds at step {step}: {gave}",
                {"state": name, "step": step, "transitions": judged},
            )
            return
        to = fsm.states[name].transitions[chosen].to
        target = fsm.states[to]
        if not target.terminal and step >= fsm.max_steps:
            self._fsm_fail(
                task,
                at,
                f"fsm: max_steps ({fsm.max_steps}) reached: state '{name}' would go to "
                f"'{to}', whose body would be step {step + 1}",
                {"state": name, "to": to, "step": step, "max_steps": fsm.max_steps},
            )
            return
        reason = ""
        if target.terminal and (target.output is not None or target.reason is not None):
            # what the terminal state gives, rendered with fsm.state the terminal state
            ctx["fsm"] = {**ctx["fsm"], "state": to}
            field = "reason" if target.fail else "output"
            where = f"fsm.states.{to}.{field}"
            try:
                if target.fail and target.reason is not None:
                    reason = render_text(
                        target.reason, ctx, where=f"task '{task.id}', field '{where}'"
                    )
                elif target.output is not None and not target.fail:
                    given = render_value(
                        target.output, ctx, where=f"task '{task.id}', field '{where}'"
                    )
                    output = to_json(given, f"the {where} of task '{task.id}'")
            except NexusError as exc:
                self._render_failed(task, at, exc)
                return
        moved = FsmTransitioned(
            task=task.id,
            attempt=task.attempts,
            step=step,
            state=name,
            to=to,
            transition=chosen,
            value=value,
        )
        if target.terminal and target.output is not None and not target.fail:
            moved.output = output
        self._emit(EventType.FSM_TRANSITIONED, at, moved)
        if not target.terminal:
            return
        if target.fail:
            self._fsm_fail(
                task,
                at,
                f"fsm: reached state '{to}', which fails the task (from '{name}' at step "
                f"{step})" + (f": {reason}" if reason else ""),
                {"state": to, "from": name, "step": step},
            )
            return
        self._emit(EventType.TASK_SUCCEEDED, at, TaskSucceeded(task=task.id, attempt=task.attempts))

    def _fsm_fail(self, task: TaskState, at: str, message: str, details: dict[str, Any]) -> None:
        error = ErrorRecord(
            kind=str(ErrorKind.VALIDATION), message=message, retryable=False, details=details
        )
        self._fail(task, at, error.to_data())

    def _not_picked(self, task: TaskState, at: str) -> bool:
        """Skip ``task`` when a switch it needs picked a case that does not run it."""
        state = self.state
        for sid in self._routed[task.id]:
            switch = state.tasks[sid]
            cases = switch.spec.cases or {}
            picked = switch.output["case"]  # it succeeded: ``task`` needs it
            chosen = cases.get(picked, ())
            if task.id in chosen:
                continue
            value = switch.output["value"]
            runs = ", ".join(chosen) or "nothing"
            skipped = TaskEndedUnrun(
                task=task.id,
                reason=(
                    f"not picked by switch '{sid}': {switch.spec.switch} gave "
                    f"{describe(value)}, case '{picked}' runs {runs}"
                ),
                value=value,
                switch=sid,
                case=picked,
            )
            self._emit(EventType.TASK_SKIPPED, at, skipped)
            return True
        return False

    def _expand(self, task: TaskState, at: str) -> None:
        agents = task.spec.agents
        if agents is not None:  # one item per agent, each routed to its own
            fan_out = TaskExpanded(task=task.id, items=list(agents))
            self._emit(EventType.TASK_EXPANDED, at, fan_out)
            return
        foreach = task.spec.foreach
        try:
            items = (
                render_value(
                    foreach,
                    template_context(self.state, task),
                    where=f"task '{task.id}', field 'foreach'",
                )
                if isinstance(foreach, str)
                else foreach
            )
        except NexusError as exc:
            self._render_failed(task, at, exc)
            return
        if not isinstance(items, list):
            error = ErrorRecord(
                kind=str(ErrorKind.VALIDATION),
                message=f"foreach must give a list, got {type(items).__name__}",
                retryable=False,
            )
            self._fail(task, at, error.to_data())
            return
        try:
            items = to_json(items, f"the foreach items of task '{task.id}'")
        except NexusError as exc:
            self._fail(task, at, {**exc.to_data(), "retryable": False})
            return
        self._emit(EventType.TASK_EXPANDED, at, TaskExpanded(task=task.id, items=items))

    def _start(self, task: TaskState, at: str) -> bool:
        """Emit ``attempt.started``; False when no agent has a free slot."""
        state = self.state
        spec = task.spec
        writes: tuple[str, ...] = ()
        if spec.writes:
            try:
                writes = self._writes(task)
            except NexusError as exc:
                self._render_failed(task, at, exc)
                return True
            if state.holding and state.holder(writes) is not None:
                return False  # a running attempt writes what this one would: it waits
        if spec.fsm is not None:
            spec = self._body(task)
        if state.has_budgets:
            blocked = self._budget_block(task, at)
            if blocked is not None:
                self._emit(EventType.TASK_PAUSED, at, TaskPaused(task=task.id, reason=blocked))
                return True
        if spec.bt is not None:
            return self._bt_advance(task, at, writes)
        timeout_ms = None if spec.timeout is None else int(spec.timeout * 1000)
        return self._attempt(task, at, spec, timeout_ms, writes=writes)

    def _attempt(
        self,
        task: TaskState,
        at: str,
        spec: TaskSpec,
        timeout_ms: int | None,
        node: str | None = None,
        writes: tuple[str, ...] = (),
    ) -> bool:
        """Emit ``attempt.started`` for ``spec``'s body (the task's own, or a ``bt``
        action's), holding the task's ``writes``; False when no agent has a free slot."""
        state = self.state
        attempt = task.attempts + 1
        try:
            ctx = template_context(state, task) if _needs_context(spec) else {}
            if spec.tool is not None:
                args = render_deep(spec.args, ctx, task=task.id, field="with") if ctx else spec.args
                started = AttemptStarted(
                    task=task.id,
                    attempt=attempt,
                    tool=spec.tool,
                    args=to_json(args, f"the arguments of task '{task.id}'") if ctx else args,
                    profile=spec.profile,
                    timeout_ms=timeout_ms,
                    iteration=None if spec.loop is None else task.iteration,
                    node=node,
                )
            else:
                started = AttemptStarted(
                    task=task.id,
                    attempt=attempt,
                    timeout_ms=timeout_ms,
                    iteration=None if spec.loop is None else task.iteration,
                    node=node,
                )
            if spec.fsm is not None:
                started.state = fsm_state_of(task)
                started.step = task.iteration
            if spec.tool is None:
                decision = route(
                    spec,
                    state.plan.agents,
                    state.agent_load,
                    item_agent=task.item if spec.agents is not None else None,
                )
                if decision.agent is None:
                    return False
                agent = state.plan.agents[decision.agent]
                started.agent = decision.agent
                started.route = {"candidates": list(decision.candidates), "why": decision.reason}
                started.model = agent.model
                prompt = render_text(
                    spec.prompt or "", ctx, where=f"task '{task.id}', field 'prompt'"
                )
                instructions = render_text(
                    agent.instructions,
                    ctx,
                    where=f"task '{task.id}', field 'agents.{decision.agent}.instructions'",
                )
                started.prompt = prompt
                started.instructions = instructions
                started.turn = state.agent_turns.get(decision.agent, 0)
                if _routed(spec, agent, state):
                    choice = _choose(
                        spec, agent, state, prompt, instructions, self._routing_pricing()
                    )
                    started.model = choice.chain[0]
                    started.models = list(choice.chain)
                    started.model_route = choice.to_dict()
                started.profile = spec.profile if spec.profile is not None else agent.profile
                started.output_schema = spec.output_schema
                started.feedback = _feedback(task)
                if task.continues:
                    started.continues = list(task.continues)  # a budget pause taken up
        except NexusError as exc:
            self._render_failed(task, at, exc)
            return True
        if writes:
            started.writes = list(writes)
        self._emit(EventType.ATTEMPT_STARTED, at, started)
        return True

    def _writes(self, task: TaskState) -> tuple[str, ...]:
        """The resources ``task``'s attempt would hold: its ``writes``, a templated entry
        rendered now and put in canonical form (see :mod:`nexus.domain.writes`)."""
        entries = task.spec.writes
        if not any(is_template(entry) for entry in entries):
            return entries  # compiled canonical already
        ctx = template_context(self.state, task)
        out: dict[str, None] = {}
        for index, entry in enumerate(entries):
            if not is_template(entry):
                out[entry] = None
                continue
            where = f"task '{task.id}', field 'writes[{index}]'"
            text = render_text(entry, ctx, where=where)
            try:
                out[resource(text)] = None
            except WritesError as exc:
                raise UserError(f"{where} gave {text[:100]!r}: {exc}", retryable=False) from None
        return tuple(out)

    def _render_failed(self, task: TaskState, at: str, exc: NexusError) -> None:
        if isinstance(exc, TemplateLimitError):
            self._limit_failures += 1
        self._fail(task, at, {**exc.to_data(), "retryable": False})

    def _settle_parents(self, at: str) -> bool:
        """End the foreach parents whose items have all ended; True if any did."""
        state = self.state
        settled = False
        while (parent := state.pop_parent_done()) is not None:
            settled = True
            if parent.added:  # a task that extended the plan: what it added must not fail
                bad = [c for c in parent.added if _unsuccessful(state.tasks[c])]
                what = "added tasks"
                if bad and self._replan(parent, bad, at):
                    continue
            else:
                bad = [
                    c for c in parent.children if state.tasks[c].status is not TaskStatus.SUCCEEDED
                ]
                what = "items"
            if parent.spec.aggregate is not None and not parent.added:
                self._aggregate_or_stop(parent, bad, at)
            elif not bad:
                self._emit(EventType.TASK_SUCCEEDED, at, TaskSucceeded(task=parent.id))
            elif state.cancel_requested:
                cancelled = TaskEndedUnrun(task=parent.id, reason="cancelled by request")
                self._emit(EventType.TASK_CANCELLED, at, cancelled)
            else:
                error = ErrorRecord(
                    kind="validation",
                    message=(
                        f"{len(bad)} of {len(parent.added or parent.children)} {what} "
                        "did not succeed: " + ", ".join(bad[:5])
                    ),
                    retryable=False,
                )
                failed = TaskFailed(task=parent.id, attempts=0, error=error.to_data())
                self._emit(EventType.TASK_FAILED, at, failed)
                if state.plan.fail_fast or parent.spec.on_failure == "compensate":
                    self._failed_for_good(parent, at)
        return settled

    def _aggregate_or_stop(self, parent: TaskState, bad: list[str], at: str) -> None:
        """A fan-out with ``aggregate`` whose items have ended: combine their answers,
        unless the run stopped some of them (a cancel, fail-fast, ``max_failures``):
        then it is cancelled too, not decided on what happened to be done."""
        state = self.state
        stopped = [
            c for c in bad if state.tasks[c].status in (TaskStatus.CANCELLED, TaskStatus.SKIPPED)
        ]
        if not stopped:
            self._aggregate(parent, at)
            return
        reason = (
            "cancelled by request"
            if state.cancel_requested
            else f"{len(stopped)} of its {len(parent.children)} items were stopped before "
            f"they ended: {', '.join(stopped[:5])}"
        )
        self._emit(EventType.TASK_CANCELLED, at, TaskEndedUnrun(task=parent.id, reason=reason))

    def _aggregate(self, parent: TaskState, at: str) -> None:
        """Every item of a fan-out with ``aggregate`` has ended: combine their answers.

        The parent succeeds with the winning item's output, or fails with the
        reason (the tallies are in both events' ``aggregate``).
        """
        policy = parent.spec.aggregate
        assert policy is not None
        state = self.state
        outputs: list[tuple[int, Any]] = []
        failed: list[int] = []
        for index, cid in enumerate(parent.children):
            child = state.tasks[cid]
            if child.status is TaskStatus.SUCCEEDED:
                outputs.append((index, child.output))
            else:
                failed.append(index)
        agent = parent.spec.tool is None
        decision = decide(policy, outputs, failed, len(parent.children), agent=agent)
        if decision.reason is None:
            done = TaskSucceeded(task=parent.id, aggregate=decision.record)
            self._emit(EventType.TASK_SUCCEEDED, at, done)
            return
        error = ErrorRecord(
            kind=str(ErrorKind.VALIDATION), message=decision.reason, retryable=False
        )
        failure = TaskFailed(
            task=parent.id, attempts=0, error=error.to_data(), aggregate=decision.record
        )
        self._emit(EventType.TASK_FAILED, at, failure)
        if state.plan.fail_fast:
            self._cancel_all(at, f"fail-fast: task '{parent.id}' failed")
        else:
            self._failure_threshold(at)

    def _finish(self, at: str) -> None:
        state = self.state
        counts: dict[str, int] = {}
        for task in state.tasks.values():
            counts[str(task.status)] = counts.get(str(task.status), 0) + 1
        if state.cancel_requested:
            kind, status = EventType.RUN_CANCELLED, RunStatus.CANCELLED
        elif not any(_unsuccessful(t) and not self._outvoted(t) for t in state.tasks.values()):
            # every task succeeded or was skipped: a skip comes from a false
            # condition (a failure or a cancel upstream would be in the list);
            # an item of a fan-out that aggregated its items does not count
            kind, status = EventType.RUN_SUCCEEDED, RunStatus.SUCCEEDED
        else:
            kind, status = EventType.RUN_FAILED, RunStatus.FAILED
        self._emit(kind, at, RunEnded(status=str(status), tasks=dict(sorted(counts.items()))))

    def _outvoted(self, task: TaskState) -> bool:
        """An item that failed or was cancelled, of a fan-out that succeeded all the same
        (its ``aggregate`` made one answer of the others)."""
        if task.parent is None:
            return False
        parent = self.state.tasks[task.parent]
        return parent.spec.aggregate is not None and parent.status is TaskStatus.SUCCEEDED


_APPROVAL_ANSWERS = frozenset({EventType.APPROVAL_GRANTED, EventType.APPROVAL_REJECTED})

#: What the decider does first on these inputs, before it schedules; each
#: reaction reads the payload as stored, typed by its model's stored form.
_REACTIONS: dict[EventType, Callable[[Decider, Event, Any], None]] = {
    EventType.EFFECT_RECORDED: Decider._effect_recorded,
    EventType.ATTEMPT_FINISHED: Decider._attempt_finished,
    EventType.RUN_RESUMED: Decider._resumed,
    EventType.APPROVAL_REJECTED: Decider._rejected,
    EventType.APPROVAL_TIMED_OUT: Decider._approval_timed_out,
}

#: A run with a task in one of these ends ``failed`` (skipped tasks alone do not fail it).
_UNSUCCESSFUL = frozenset({TaskStatus.FAILED, TaskStatus.CANCELLED})


def _unsuccessful(task: TaskState) -> bool:
    """Whether ``task`` failed the run: it failed or was cancelled, and no re-plan replaced it."""
    return task.status in _UNSUCCESSFUL and not task.superseded


def _crossing(
    scope: Scope, dimension: str, threshold: str, spent: Any, limit: Any, *, task: str
) -> BudgetCrossed:
    def figure(value: Any) -> Any:
        if isinstance(value, str | int):
            return value
        if isinstance(value, float):
            return round(value, 3)
        return money_text(value)

    return BudgetCrossed(
        scope=scope.kind,
        key=scope.key,
        dimension=dimension,
        threshold=threshold,
        percent=int(float(threshold) * 100),
        spent=figure(spent),
        limit=figure(limit),
        task=task,
    )


def _routed(spec: TaskSpec, agent: AgentSpec, state: RunState) -> bool:
    """Whether the model is chosen by routing (else it is simply the agent's)."""
    strict = bool(state.residency and state.residency.get("strict"))
    return bool(spec.routing or agent.fallbacks or agent.tiers or strict)


def _choose(
    spec: TaskSpec,
    agent: AgentSpec,
    state: RunState,
    prompt: str,
    instructions: str,
    pricing: PricingTable | None,
) -> Any:
    """The model chain for one attempt, and why (see :mod:`nexus.gateway.routing`).

    ``pricing`` is the table the run recorded (None: the shipped one), never
    the engine's own, so a replay estimates with the prices the run had.
    """
    from nexus.budget.spend import RESERVED_COMPLETION
    from nexus.gateway.pricing import estimate_tokens
    from nexus.gateway.routing import Residency, RoutePolicy, choose_models

    policy = RoutePolicy.from_dict(spec.routing or {})
    residency = Residency.from_dict(state.residency) if state.residency else None
    return choose_models(
        (agent.model, *agent.fallbacks),
        policy,
        tiers=agent.tiers,
        pricing=pricing,
        residency=residency,
        prompt_tokens=estimate_tokens(prompt) + estimate_tokens(instructions) + 8,
        completion_tokens=agent.max_tokens or RESERVED_COMPLETION,
    )


def _where(problem: WorkflowError) -> str:
    """A problem of an extension, naming its task and field (the extension is said once)."""
    where = [f"task '{problem.task}'"] if problem.task else []
    if problem.field:
        where.append(f"field '{problem.field}'")
    return f"{', '.join(where)}: {problem.detail}" if where else problem.detail


def _expired(request: Leaf, at: str) -> str | None:
    """The outermost ``timeout`` around ``request``'s leaf whose deadline has passed."""
    for node, deadline in request.timers:
        if parse_time(deadline) <= parse_time(at):
            return node
    return None


def _feedback(task: TaskState) -> dict[str, Any] | None:
    """What went wrong in the previous attempt, for the agent's next one (E4)."""
    if task.attempts == 0 or not task.error:
        return None
    error = ErrorRecord.of(task.error)
    if error.kind == "interrupted":
        return None
    feedback: dict[str, Any] = {
        "attempt": task.attempts,
        "kind": error.kind,
        "message": str(error.message)[:2000],
    }
    if error.details is not ABSENT:
        feedback["details"] = error.details
    return feedback
