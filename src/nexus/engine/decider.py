"""The decider: what happens next, computed from the folded state alone.

After every input event the controller calls :meth:`Decider.react`. The
decider emits decision events through ``emit`` (which seals, applies and
buffers them), so each decision sees the state its predecessors made. It
reads no clock, no randomness and no IO -- a decision takes the time of the
input that caused it -- which is why replay reproduces it byte for byte.

The decider keeps the dispatch -- which input leads to which reaction -- and
the decisions every task shares: scheduling, attempts and retries, failure
and fail-fast, budgets, a person's pause, conditions, switches, loops and
plan extensions. The constructs with logic of their own (behaviour trees,
state machines, sagas, barriers, aggregation) react in
:mod:`nexus.engine.reactions`, which calls back through
:class:`~nexus.engine.reactions.Decisions`. It is still over 800 lines
because those shared decisions call one another at every step (a failure
may start a saga, cancel the rest or end the run; an extension re-plans
through the same scheduling): split further, each part would reach back
into all the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from nexus.domain.budget import DIMENSIONS, THRESHOLDS, Scope, fraction, money_text, run_scopes
from nexus.domain.errors import ErrorKind, IntegrityError, NexusError, UserError, WorkflowError
from nexus.domain.events import Draft, Event, EventType, JSONDict, format_time, parse_time
from nexus.domain.payload_data import (
    ApprovalAnsweredData,
    ApprovalTimedOutData,
    AttemptFinishedData,
    AttemptStartedData,
    EffectRecordData,
    RunResumedData,
    TaskSucceededData,
)
from nexus.domain.payloads import (
    ABSENT,
    ApprovalEscalated,
    ApprovalRequested,
    AttemptInterrupted,
    AttemptStarted,
    BudgetCrossed,
    ConflictDetected,
    EffectRecord,
    ErrorRecord,
    PauseRequested,
    Payload,
    PlanExtended,
    PlanReplanning,
    RetryScheduled,
    RunEnded,
    RunPaused,
    TaskEndedUnrun,
    TaskExpanded,
    TaskFailed,
    TaskIterated,
    TaskPaused,
    TaskSucceeded,
)
from nexus.domain.plan import (
    FAILURE_RATE_MIN_ENDED,
    AgentSpec,
    TaskSpec,
)
from nexus.domain.state import (
    RunState,
    RunStatus,
    TaskState,
    TaskStatus,
    fsm_state_of,
)
from nexus.domain.writes import WritesError, resource
from nexus.engine.conditions import describe, evaluate, pick_case, truthy
from nexus.engine.effects import to_json
from nexus.engine.reactions import (
    AggregateReactions,
    BarrierReactions,
    BtReactions,
    FsmReactions,
    SagaReactions,
    template_context,
)
from nexus.engine.retry import backoff_ms
from nexus.engine.router import route
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
        # the constructs with reactions of their own; they call back through this
        self._trees = BtReactions(self)
        self._machines = FsmReactions(self)
        self._sagas = SagaReactions(self)
        self._barriers = BarrierReactions(self)
        self._aggregates = AggregateReactions(self)

    def emit_decision(self, type_: EventType, at: str, payload: Payload) -> None:
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
            state.status is _RUN_PAUSED and not self._reacts_while_paused(kind)
        ):
            return
        at = trigger.at
        self.deferred = False
        self._limit_failures = 0
        reaction = _REACTIONS.get(kind)
        if reaction is not None:
            reaction(self, trigger, trigger.data)
        if state.cancel_requested:
            self.cancel_all(at, "cancelled by request")
            self._sagas.advance(at)  # a saga under way ends: the rest of it does not run
        else:
            self._schedule(at)
        while (self._settle_parents(at) or self._sagas.advance(at)) and not state.cancel_requested:
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
            self.emit_decision(EventType.CONFLICT_DETECTED, event.at, detected)

    def _attempt_finished(self, event: Event, finished: AttemptFinishedData) -> None:
        task = self.state.tasks[finished["task"]]
        recorded = finished.get("error")
        if recorded is None:
            spec = task.spec
            if spec.bt is not None:
                self._trees.acted(task, event.at, None)
            elif spec.loop is not None:
                self._iterate(task, event.at)
            elif spec.extend is not None:
                self._extend(task, event.at)
            elif spec.fsm is not None:
                self._machines.transition(task, event.at)
            else:  # every plain task ends here: its payload is written as stored
                succeeded: TaskSucceededData = {"task": task.id, "attempt": task.attempts}
                stored: Any = succeeded
                self._succeed(task, event.at, stored)
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
            and not (task.spec.bt is not None and self._trees.expired(task, event.at))
        ):
            self._retry(task, event.at, error, failures)
        elif task.spec.bt is not None:
            self._trees.acted(task, event.at, error)
        else:
            self.fail(task, event.at, recorded)

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
                self.emit_decision(EventType.TASK_SKIPPED, event.at, skipped)
        error = ErrorRecord(
            kind=str(ErrorKind.POLICY_DENIED),
            message=f"approval rejected by {who}: {why}",
            retryable=False,
        )
        self.fail(task, event.at, error.to_data())

    def _approval_timed_out(self, event: Event, timed_out: ApprovalTimedOutData) -> None:
        task = self.state.tasks[timed_out["task"]]
        policy = task.spec.approval
        if policy is not None and policy.on_timeout == "escalate":
            reason = f"no answer within {policy.timeout} s: escalated, still waiting"
            escalated = ApprovalEscalated(task=task.id, reason=reason)
            self.emit_decision(EventType.APPROVAL_ESCALATED, event.at, escalated)
            return
        error = ErrorRecord(
            kind=str(ErrorKind.TIMEOUT), message="approval not given in time", retryable=False
        )
        self.fail(task, event.at, error.to_data())

    def _request_approval(self, task: TaskState, at: str) -> None:
        policy = task.spec.approval
        assert policy is not None
        request = ApprovalRequested(task=task.id, on_timeout=policy.on_timeout)
        if policy.timeout is not None:
            delay = int(policy.timeout * 1000)
            request.timeout_ms = delay
            request.deadline = format_time(parse_time(at) + timedelta(milliseconds=delay))
        self.emit_decision(EventType.APPROVAL_REQUESTED, at, request)

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
        self.emit_decision(EventType.RETRY_SCHEDULED, at, retry)

    def _succeed(self, task: TaskState, at: str, succeeded: JSONDict) -> None:
        """Record that ``task``'s attempt succeeded (``succeeded``: the ``task.succeeded``
        data, as stored); the first item of a ``first_success`` fan-out to succeed ends
        its parent too."""
        self.emit(Draft(_TASK_SUCCEEDED, at, succeeded))
        if task.parent is not None:
            parent = self.state.tasks[task.parent]
            policy = parent.spec.aggregate
            if (
                policy is not None
                and policy.method == "first_success"
                and parent.status is TaskStatus.EXPANDED
            ):
                self._aggregates.first_success(parent, task, at)

    def fail(self, task: TaskState, at: str, error: dict[str, Any]) -> None:
        failed = TaskFailed(task=task.id, attempts=task.attempts, error=error)
        self.emit_decision(EventType.TASK_FAILED, at, failed)
        self._failed_for_good(task, at)

    def _failed_for_good(self, task: TaskState, at: str) -> None:
        """What a task's failure does to the run: a compensation's failure is only
        recorded (the saga goes on); ``on_failure: compensate`` starts the saga; else
        ``fail_fast`` cancels the rest, or the failure thresholds are judged."""
        if task.compensates is not None:
            return
        if task.spec.on_failure == "compensate" and task.parent is None and self.state.saga is None:
            self._sagas.start(task, at)
            return
        if self.state.plan.fail_fast and not self._aggregates.tolerated(task):
            self.cancel_all(at, f"fail-fast: task '{task.id}' failed")
        else:
            self.failure_threshold(at)

    def failure_threshold(self, at: str) -> None:
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
            self.cancel_all(at, reason)

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
            self.emit_decision(EventType.ATTEMPT_INTERRUPTED, at, stopped)
            interrupts = self._interrupts(task) + 1
            if interrupts > MAX_INTERRUPTS:
                held = ErrorRecord(
                    kind=str(ErrorKind.INTERNAL),
                    message=f"interrupted {interrupts} times (limit {MAX_INTERRUPTS})",
                    retryable=False,
                )
                self.fail(task, at, held.to_data())
            else:
                self._retry_interrupted(task, at, error)

    def _retry_interrupted(self, task: TaskState, at: str, error: ErrorRecord) -> None:
        error.interrupts = self._interrupts(task) + 1
        retry = RetryScheduled(
            task=task.id, attempt=task.attempts, error=error.to_data(), delay_ms=0, not_before=at
        )
        self.emit_decision(EventType.RETRY_SCHEDULED, at, retry)

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
                    self.emit_decision(kind, at, crossing)
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
            self.emit_decision(kind, at, tenant_crossing)

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
            self.emit_decision(EventType.BUDGET_EXCEEDED, at, crossing)
        paused = TaskPaused(task=task.id, attempt=task.attempts, reason=error.message)
        self.emit_decision(EventType.TASK_PAUSED, at, paused)

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
                    self.emit_decision(EventType.BUDGET_EXCEEDED, at, crossing)
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
        self.emit_decision(
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
        self.emit_decision(EventType.RUN_PAUSED, trigger.at, paused)

    def cancel_all(self, at: str, reason: str) -> None:
        state = self.state
        for task in state.tasks_in(
            TaskStatus.RUNNING,
            TaskStatus.RETRY_WAIT,
            TaskStatus.AWAITING_APPROVAL,
            TaskStatus.PAUSED,
        ):
            self.emit_decision(
                EventType.TASK_CANCELLED, at, TaskEndedUnrun(task=task.id, reason=reason)
            )
        for task in state.tasks_in(TaskStatus.PENDING):
            if task.status is TaskStatus.PENDING:
                self.emit_decision(
                    EventType.TASK_SKIPPED, at, TaskEndedUnrun(task=task.id, reason=reason)
                )
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
                if task.parent is None and self._barriers.holds(task, at):
                    continue
            elif not state.needs_ok(task):
                failed = [
                    d for d in task.spec.needs if state.tasks[d].status is not TaskStatus.SUCCEEDED
                ]
                reason = f"dependency did not succeed: {', '.join(failed)}"
                self.emit_decision(
                    EventType.TASK_SKIPPED, at, TaskEndedUnrun(task=task.id, reason=reason)
                )
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

    # -- conditions: when -----------------------------------------------------
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
            self.render_failed(task, at, exc)
            return True
        if truthy(value):
            return False
        skipped = TaskEndedUnrun(
            task=task.id,
            reason=f"condition is false: {source} gave {describe(value)}",
            condition=source,
            value=value,
        )
        self.emit_decision(EventType.TASK_SKIPPED, at, skipped)
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
            self.render_failed(task, at, exc)
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
            self.fail(task, at, error.to_data())
            return
        routed = TaskSucceeded(task=task.id, case=case, value=value)
        self.emit_decision(EventType.TASK_SUCCEEDED, at, routed)

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
            self.render_failed(task, at, exc)
            return
        done = truthy(value)
        if done or (iteration >= loop.max_iterations and loop.on_max == "succeed"):
            ended = TaskSucceeded(
                task=task.id, attempt=task.attempts, iteration=iteration, value=value
            )
            self._succeed(task, at, ended.to_data())
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
            self.fail(task, at, error.to_data())
        else:
            again = TaskIterated(
                task=task.id, attempt=task.attempts, iteration=iteration, value=value
            )
            self.emit_decision(EventType.TASK_ITERATED, at, again)

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
            self.emit_decision(EventType.TASK_SUCCEEDED, at, done)
            return
        review = task.spec.extend is not None and task.spec.extend.review
        extended = PlanExtended(
            task=task.id,
            attempt=task.attempts,
            tasks=[spec.to_dict() for spec in specs],
            depth=task.depth + 1,
            review=True if review else None,
        )
        self.emit_decision(EventType.PLAN_EXTENDED, at, extended)
        if review:
            request = ApprovalRequested(task=task.id, on_timeout="fail")
            self.emit_decision(EventType.APPROVAL_REQUESTED, at, request)
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
            self.fail(task, at, error.to_data())

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
        self.emit_decision(EventType.PLAN_REPLANNING, at, replanning)
        return True

    # -- switch targets, fan-outs, attempts --------------------------------------
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
            self.emit_decision(EventType.TASK_SKIPPED, at, skipped)
            return True
        return False

    def _expand(self, task: TaskState, at: str) -> None:
        agents = task.spec.agents
        if agents is not None:  # one item per agent, each routed to its own
            fan_out = TaskExpanded(task=task.id, items=list(agents))
            self.emit_decision(EventType.TASK_EXPANDED, at, fan_out)
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
            self.render_failed(task, at, exc)
            return
        if not isinstance(items, list):
            error = ErrorRecord(
                kind=str(ErrorKind.VALIDATION),
                message=f"foreach must give a list, got {type(items).__name__}",
                retryable=False,
            )
            self.fail(task, at, error.to_data())
            return
        try:
            items = to_json(items, f"the foreach items of task '{task.id}'")
        except NexusError as exc:
            self.fail(task, at, {**exc.to_data(), "retryable": False})
            return
        self.emit_decision(EventType.TASK_EXPANDED, at, TaskExpanded(task=task.id, items=items))

    def _start(self, task: TaskState, at: str) -> bool:
        """Emit ``attempt.started``; False when no agent has a free slot."""
        state = self.state
        spec = task.spec
        writes: tuple[str, ...] = ()
        if spec.writes:
            try:
                writes = self._writes(task)
            except NexusError as exc:
                self.render_failed(task, at, exc)
                return True
            if state.holding and state.holder(writes) is not None:
                return False  # a running attempt writes what this one would: it waits
        if spec.fsm is not None:
            spec = self._machines.body(task)
        if state.has_budgets:
            blocked = self._budget_block(task, at)
            if blocked is not None:
                self.emit_decision(
                    EventType.TASK_PAUSED, at, TaskPaused(task=task.id, reason=blocked)
                )
                return True
        if spec.bt is not None:
            return self._trees.advance(task, at, writes)
        timeout_ms = None if spec.timeout is None else int(spec.timeout * 1000)
        return self.attempt(task, at, spec, timeout_ms, writes=writes)

    def attempt(
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
        try:
            ctx = template_context(self.state, task) if _needs_context(spec) else {}
            if spec.tool is not None:
                started = _tool_started(task, spec, ctx, timeout_ms, node)
            else:
                agent_started = self._agent_started(task, spec, ctx, timeout_ms, node)
                if agent_started is None:
                    return False
                started = agent_started
        except NexusError as exc:
            self.render_failed(task, at, exc)
            return True
        if writes:
            started["writes"] = list(writes)
        data: Any = started  # as stored: AttemptStartedData is the model's stored form
        self.emit(Draft(_ATTEMPT_STARTED, at, data))
        return True

    def _agent_started(
        self,
        task: TaskState,
        spec: TaskSpec,
        ctx: dict[str, Any],
        timeout_ms: int | None,
        node: str | None,
    ) -> AttemptStartedData | None:
        """The ``attempt.started`` data of an agent's turn: the agent routed to, its
        model, prompt and instructions rendered; None when no agent has a free slot."""
        state = self.state
        started = AttemptStarted(
            task=task.id,
            attempt=task.attempts + 1,
            timeout_ms=timeout_ms,
            iteration=None if spec.loop is None else task.iteration,
            node=node,
        )
        if spec.fsm is not None:
            started.state = fsm_state_of(task)
            started.step = task.iteration
        decision = route(
            spec,
            state.plan.agents,
            state.agent_load,
            item_agent=task.item if spec.agents is not None else None,
        )
        if decision.agent is None:
            return None
        agent = state.plan.agents[decision.agent]
        started.agent = decision.agent
        started.route = {"candidates": list(decision.candidates), "why": decision.reason}
        started.model = agent.model
        prompt = render_text(spec.prompt or "", ctx, where=f"task '{task.id}', field 'prompt'")
        instructions = render_text(
            agent.instructions,
            ctx,
            where=f"task '{task.id}', field 'agents.{decision.agent}.instructions'",
        )
        started.prompt = prompt
        started.instructions = instructions
        started.turn = state.agent_turns.get(decision.agent, 0)
        if _routed(spec, agent, state):
            choice = _choose(spec, agent, state, prompt, instructions, self._routing_pricing())
            started.model = choice.chain[0]
            started.models = list(choice.chain)
            started.model_route = choice.to_dict()
        started.profile = spec.profile if spec.profile is not None else agent.profile
        started.output_schema = spec.output_schema
        started.feedback = _feedback(task)
        if task.continues:
            started.continues = list(task.continues)  # a budget pause taken up
        data: Any = started.to_data()
        return cast("AttemptStartedData", data)

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

    def render_failed(self, task: TaskState, at: str, exc: NexusError) -> None:
        if isinstance(exc, TemplateLimitError):
            self._limit_failures += 1
        self.fail(task, at, {**exc.to_data(), "retryable": False})

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
                self._aggregates.settle(parent, bad, at)
            elif not bad:
                self.emit_decision(EventType.TASK_SUCCEEDED, at, TaskSucceeded(task=parent.id))
            elif state.cancel_requested:
                cancelled = TaskEndedUnrun(task=parent.id, reason="cancelled by request")
                self.emit_decision(EventType.TASK_CANCELLED, at, cancelled)
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
                self.emit_decision(EventType.TASK_FAILED, at, failed)
                if state.plan.fail_fast or parent.spec.on_failure == "compensate":
                    self._failed_for_good(parent, at)
        return settled

    def _finish(self, at: str) -> None:
        state = self.state
        counts: dict[str, int] = {}
        for task in state.tasks.values():
            counts[str(task.status)] = counts.get(str(task.status), 0) + 1
        if state.cancel_requested:
            kind, status = EventType.RUN_CANCELLED, RunStatus.CANCELLED
        elif not any(
            _unsuccessful(t) and not self._aggregates.outvoted(t) for t in state.tasks.values()
        ):
            # every task succeeded or was skipped: a skip comes from a false
            # condition (a failure or a cancel upstream would be in the list);
            # an item of a fan-out that aggregated its items does not count
            kind, status = EventType.RUN_SUCCEEDED, RunStatus.SUCCEEDED
        else:
            kind, status = EventType.RUN_FAILED, RunStatus.FAILED
        self.emit_decision(
            kind, at, RunEnded(status=str(status), tasks=dict(sorted(counts.items())))
        )


# What every task's path compares with or emits, as module constants (``EventType.X``
# in CPython 3.11 goes through ``EnumType.__getattr__``; see nexus.domain.state).
_RUN_PAUSED = RunStatus.PAUSED
_ATTEMPT_STARTED = EventType.ATTEMPT_STARTED
_TASK_SUCCEEDED = EventType.TASK_SUCCEEDED

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


def _tool_started(
    task: TaskState,
    spec: TaskSpec,
    ctx: dict[str, Any],
    timeout_ms: int | None,
    node: str | None,
) -> AttemptStartedData:
    """The ``attempt.started`` data of a tool call, its arguments rendered.

    Written as its stored form, key for key what :class:`AttemptStarted` would
    hold (a test compares them): every tool task passes here once per attempt,
    and a view would cost an object and a call per field.
    """
    args = spec.args
    if ctx:
        rendered = render_deep(args, ctx, task=task.id, field="with")
        args = to_json(rendered, f"the arguments of task '{task.id}'")
    started: AttemptStartedData = {"task": task.id, "attempt": task.attempts + 1}
    if spec.tool is not None:
        started["tool"] = spec.tool
    if args is not None:
        started["args"] = args
    if spec.profile is not None:
        started["profile"] = spec.profile
    if timeout_ms is not None:
        started["timeout_ms"] = timeout_ms
    if spec.loop is not None:
        started["iteration"] = task.iteration
    if node is not None:
        started["node"] = node
    if spec.fsm is not None:
        started["state"] = fsm_state_of(task)
        started["step"] = task.iteration
    return started


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
