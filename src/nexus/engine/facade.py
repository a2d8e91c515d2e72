"""The engine facade: start, resume, cancel and replay runs.

Example:
    >>> engine = Engine(SQLiteStore.open(".nexus/nexus.db"))  # doctest: +SKIP
    >>> result = await engine.start(load_workflow("release.yaml"))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ulid import ULID

from nexus.agents.base import FunctionAgent
from nexus.agents.resolver import AgentResolver
from nexus.budget.ledger import BudgetLedger
from nexus.budget.pause import SpentLimit, spent_limits
from nexus.budget.tenant import TenantBudget
from nexus.domain.budget import DIMENSIONS, Limits, Scope, Spend, money_text
from nexus.domain.canonical import GENESIS_HASH
from nexus.domain.errors import (
    BudgetExceeded,
    ConflictError,
    NexusError,
    NotFoundError,
    UserError,
)
from nexus.domain.events import Draft, Event, EventType, format_time, seal
from nexus.domain.payloads import (
    ApprovalAnswered,
    AttemptFinished,
    AttemptStarted,
    BudgetRaised,
    CancelRequested,
    EffectRecord,
    InterruptsReset,
    PauseRequested,
    RunResumed,
    RunStarted,
)
from nexus.domain.plan import AgentSpec, Plan, recorded_plan_hash
from nexus.domain.state import RunState, RunStatus, TaskStatus
from nexus.engine.continuation import continued_records
from nexus.engine.control import StopReport, os_user, stop_all, stop_reason
from nexus.engine.controller import DeltaListener, Observer, RunController
from nexus.engine.decider import MAX_INTERRUPTS, held_at_limit
from nexus.engine.effects import Clock, Effects, LiveEffects, ReplayEffects, SystemClock
from nexus.engine.leases import lease_alive
from nexus.engine.plan_cache import find_cached_plans
from nexus.engine.results import RunCost, TaskResult, task_results
from nexus.engine.secret_inputs import (
    SecretDigests,
    check_secret_value,
    resolve_secrets,
    run_redactor,
)
from nexus.engine.worker import Worker
from nexus.gateway import ProviderRegistry, default_providers
from nexus.gateway.routing import Residency, price_overrides
from nexus.redaction import Redactor, secrets_scope
from nexus.security.workspaces import bind_workspace
from nexus.store.base import Lease, RunRecord, Store
from nexus.tools.base import ToolRegistry
from nexus.tools.builtins import builtin_tools

if TYPE_CHECKING:
    from nexus.budget.estimate import Estimate
    from nexus.gateway.pricing import PricingTable
    from nexus.security.trusted import TrustedPaths

HEARTBEAT_S = 2.0


def _without_personal_data(plan: Plan) -> Plan:
    """``plan`` with personal data replaced (``[email]``, ``[card]``...), for a ``pii`` run.

    ``run.started`` records the plan and its inputs; with ``[redaction] pii``
    they are redacted like every other event. The run then **acts on what it
    records** (as it already does on tool output): the state a resume or a
    replay folds from the log is exactly the state the run started with, so
    both continue the same run and a replay stays byte-identical. The
    workspace is a path bound before, kept as it is; secret inputs are
    placeholders here (their values stay in memory, see ``secret_inputs``).
    """
    redactor = run_redactor((), pii=True)
    assert redactor is not None  # pii alone makes a redactor
    data = plan.to_dict()
    redacted = redactor.redact(data)
    redacted["workspace"] = data["workspace"]
    if redacted == data:
        return plan
    return Plan.from_dict(redacted)


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended (or where it stands).

    ``paused_by`` lists, for a run paused for budget, the budgets that ran out
    (with the ``nexus resume --budget`` flag that raises each). ``pause`` says
    why a run is paused: ``{"kind": "budget"}``, or ``{"kind": "user", "by",
    "reason", "since"}`` when a person paused it (see
    :meth:`~nexus.domain.state.RunState.pause_summary`).

    Each task's outcome is in :attr:`task_results` (:meth:`task`,
    :attr:`outputs`); ``tasks`` is the short form ``nexus run --json``
    prints. ``cost`` is what the run cost (the figures of ``nexus cost``),
    read back from the log by :meth:`nexus.Workflow.run`; an engine's own
    result leaves it None (:meth:`RunCost.of <nexus.engine.results.RunCost.of>`
    reads it from ``await store.load(run_id)``).
    """

    run_id: str
    status: str
    tasks: dict[str, dict[str, Any]]
    paused_by: tuple[SpentLimit, ...] = ()
    pause: dict[str, str] | None = None
    task_results: Mapping[str, TaskResult] = field(default_factory=dict)
    cost: RunCost | None = None

    @property
    def outputs(self) -> dict[str, Any]:
        """The output of each task that succeeded, by id (``foreach`` items too)."""
        return {tid: r.output for tid, r in self.task_results.items() if r.succeeded}

    def task(self, task_id: str) -> TaskResult:
        """The outcome of task ``task_id``: status, attempts, output, error.

        Raises:
            KeyError: the run has no such task (the message lists its tasks).
        """
        found = self.task_results.get(task_id)
        if found is None:
            known = ", ".join(sorted(self.task_results)) or "none"
            raise KeyError(f"no task {task_id!r} in run {self.run_id}; tasks: {known}")
        return found

    @classmethod
    def of(cls, state: RunState) -> RunResult:
        return cls(
            run_id=state.run_id,
            status=str(state.status),
            tasks={
                tid: {"status": str(t.status), "attempts": t.attempts}
                for tid, t in state.tasks.items()
            },
            paused_by=tuple(spent_limits(state)) if state.status is RunStatus.PAUSED else (),
            pause=state.pause_summary(),
            task_results=task_results(state),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"run_id": self.run_id, "status": self.status, "tasks": self.tasks}
        if self.paused_by:
            data["paused_by"] = [limit.to_dict() for limit in self.paused_by]
        if self.pause is not None:
            data["pause"] = self.pause
        return data


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What ``Engine.replay`` found.

    ``effects_served`` counts the effects answered from the record;
    ``tools_executed`` the registry tools the replay's worker actually ran
    (counted where a tool is called, so 0 is a measurement, not a promise).
    """

    run_id: str
    identical: bool
    original_events: int
    replayed_events: int
    effects_served: int
    tools_executed: int
    first_divergence: dict[str, Any] | None = None
    complete: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "identical": self.identical,
            "original_events": self.original_events,
            "replayed_events": self.replayed_events,
            "effects_served": self.effects_served,
            "tools_executed": self.tools_executed,
            "complete": self.complete,
            "first_divergence": self.first_divergence,
        }


def _remaining(limits: Limits, spent: Spend) -> Limits:
    """What is left of ``limits`` after ``spent`` (never below zero)."""
    return Limits(
        usd=None if limits.usd is None else max(Decimal(0), limits.usd - spent.usd),
        tokens=None if limits.tokens is None else max(0, limits.tokens - spent.tokens),
        tool_calls=(
            None if limits.tool_calls is None else max(0, limits.tool_calls - spent.tool_calls)
        ),
    )


def with_run_budget(plan: Plan, run_budget: Limits | None) -> Plan:
    """``plan`` with ``run_budget`` as its budget when it sets none itself."""
    if plan.budget is None and run_budget is not None and not run_budget.is_empty:
        return replace(plan, budget=run_budget.to_dict())
    return plan


def preflight(
    plan: Plan,
    *,
    pricing: PricingTable | None = None,
    run_budget: Limits | None = None,
    extra: Mapping[Scope, Limits] | None = None,
) -> tuple[Estimate, list[NexusError]]:
    """Estimate ``plan`` and list the budgets the estimate exceeds.

    Budgets are the plan's (run, agents, tasks; ``run_budget`` when the plan
    sets none) plus ``extra`` (the tenant's).
    """
    from nexus.budget.estimate import estimate_plan, preflight_check

    plan = with_run_budget(plan, run_budget)
    estimate = estimate_plan(plan, pricing=pricing)
    budgets: dict[Scope, Limits] = dict(extra or {})
    if plan.budget:
        budgets[Scope("run")] = Limits.from_dict(plan.budget, "budget")
    for name, agent in plan.agents.items():
        if agent.budget:
            budgets[Scope("agent", name)] = Limits.from_dict(agent.budget, name)
    for tid, task in plan.tasks.items():
        if task.budget:
            budgets[Scope("task", tid)] = Limits.from_dict(task.budget, tid)
    return estimate, list(preflight_check(estimate, budgets))


@dataclass
class Engine:
    """Runs plans durably against a store.

    Args:
        store: where the event log lives.
        tools: tools tasks may name (default: the built-ins).
        providers: model providers by prefix (default: the offline ones).
        function_agents: Python agents the plans may name as ``function:<name>``.
        clock: wall clock for inputs and effects (tests pass a controllable one).
        pricing: prices for the spend recorded with each model call, for
            estimates and for routing (default: the table shipped with Nexus).
            Where it differs from the shipped table, the difference is recorded
            in ``run.started``, so routing (and its replay) uses these prices.
        tenant: whose runs these are; recorded in ``run.started``.
        tenant_budget: limits on everything this tenant's runs spend, in any
            process: it is shared through ``store`` (see
            :mod:`nexus.budget.tenant`).
        run_budget: limits for runs whose plan sets none.
        residency: where model calls may go; a strict policy is recorded with
            the run, so routing (and its replay) honours it.
        pii: redact personal data (e-mail addresses, phone and card numbers)
            from the events of the runs this engine starts (``[redaction]
            pii``); recorded in ``run.started``, so resume and replay do too.
        trusted: paths no tool may write (default: the
            :func:`~nexus.security.trusted_paths` of this process's environment);
            :class:`nexus.app.Project` passes its home and configuration file,
            wherever they are.
    """

    store: Store
    tools: ToolRegistry = field(default_factory=builtin_tools)
    providers: ProviderRegistry = field(default_factory=default_providers)
    function_agents: Iterable[FunctionAgent] = ()
    clock: Clock = field(default_factory=SystemClock)
    pricing: PricingTable | None = None
    tenant: str = "default"
    tenant_budget: Limits | None = None
    run_budget: Limits | None = None
    residency: Residency | None = None
    pii: bool = False
    trusted: TrustedPaths | None = None

    def __post_init__(self) -> None:
        self._agents = AgentResolver(self.providers)
        self._agents.add_functions(self.function_agents)
        self._owner = Lease(
            owner=str(ULID()), host=socket.gethostname(), pid=os.getpid(), heartbeat=0.0
        )
        self._tenant_budget: TenantBudget | None = None
        self._tenant_spent = Spend()
        limits = self.tenant_budget
        if limits is not None and any(limits.get(d) is not None for d in DIMENSIONS):
            self._tenant_budget = TenantBudget(self.store, self.tenant, limits)

    async def _read_tenant(self) -> None:
        """Read what the tenant's runs have spent so far (for the preflight)."""
        if self._tenant_budget is not None:
            self._tenant_spent = (await self._tenant_budget.figures()).spent

    def _worker(
        self, effects: Effects, state: RunState | None = None, *, streaming: bool = False
    ) -> Worker:
        """A worker for one run; live runs with budgets get a ledger seeded from the log.

        The tenant's budget is shared (through the store), and only live runs
        use it: a replay makes no calls, so it takes no holds.
        """
        ledger = None
        if state is not None and state.has_budgets:
            ledger = BudgetLedger()
            for scope in state.budget_scopes():
                ledger.set_limits(scope, state.limits(scope))
            for scope in {Scope("run"), *state.budget_scopes()}:
                ledger.seed(scope, state.spend(scope))
        live = state is not None
        return Worker(
            self.tools,
            self._agents,
            effects,
            budget=ledger,
            tenant_budget=self._tenant_budget if live else None,
            pricing=self.pricing,
            tenant=self.tenant,
            streaming=streaming,
            trusted=self.trusted,
        )

    def preflight(self, plan: Plan) -> tuple[Estimate, list[NexusError]]:
        """The estimate of ``plan``, and every budget it exceeds (run, agent, task, tenant).

        The tenant's is what is left of its limits after what its runs had
        spent (in any process) when this engine last started a run.
        """
        tenant: dict[Scope, Limits] = {}
        budget = self._tenant_budget
        if budget is not None:
            tenant[budget.scope] = _remaining(budget.limits, self._tenant_spent)
        return preflight(plan, pricing=self.pricing, run_budget=self.run_budget, extra=tenant)

    def check_models(self, plan: Plan) -> None:
        """Fail now if a model the plan's agents may use cannot be served.

        Every provider factory that can check ahead is asked
        (:meth:`~nexus.gateway.base.ProviderRegistry.check`). Today that means
        ``cassette:<path>`` models (the agent's model, its fallbacks and
        tiers): each cassette is loaded here, once, so a missing or malformed
        file stops the run before it starts instead of failing every task at
        its first model call. Other providers connect lazily and are not
        checked. The engine knows no concrete provider class.

        Raises:
            UserError: a cassette is missing or malformed (the message names the
                agent, the model and the file).
        """
        for agent in plan.agents.values():
            try:
                self.providers.check(agent)
            except UserError as exc:
                raise UserError(f"{exc.message}; the run was not started") from None

    # -- leases -------------------------------------------------------------
    def _lease(self) -> Lease:
        return Lease(self._owner.owner, self._owner.host, self._owner.pid, time.time())

    async def _acquire(self, run_id: str) -> None:
        current = await self.store.get_lease(run_id)
        if current is not None and current.owner != self._owner.owner and lease_alive(current):
            raise ConflictError(
                f"run {run_id} is being driven by pid {current.pid} on {current.host}; "
                "cancel it or wait for it to finish"
            )
        expect = None if current is None else current.owner
        if not await self.store.swap_lease(run_id, self._lease(), expect):
            raise ConflictError(f"run {run_id}: another process took it over just now")

    async def _release(self, run_id: str) -> None:
        await self.store.swap_lease(run_id, None, self._owner.owner)

    async def _heartbeat(self, run_id: str) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            await self.store.swap_lease(run_id, self._lease(), self._owner.owner)

    async def _drive(self, controller: RunController, first: Draft | None) -> RunState:
        beat = asyncio.create_task(self._heartbeat(controller.run_id))
        try:
            # the run's secrets are known to what it starts, and to no other run
            with secrets_scope(controller.redactor):
                return await controller.run(first)
        finally:
            beat.cancel()
            await self._release(controller.run_id)

    # -- commands -------------------------------------------------------------
    async def start(
        self,
        plan: Plan,
        *,
        source: str | None = None,
        run_id: str | None = None,
        observers: Sequence[Observer] = (),
        on_delta: DeltaListener | None = None,
        force: bool = False,
    ) -> RunResult:
        """Start a run of ``plan`` and drive it to its end.

        A plan with budgets passes the preflight gate first: when its estimate
        exceeds a budget the run does not start (``BudgetExceeded``) unless
        ``force`` is set. The estimate is recorded in ``run.started`` so
        ``nexus cost`` can compare it with what the run really spent.

        Raises:
            UserError: a ``cassette:`` model's file is missing or malformed
                (see :meth:`check_models`); nothing is recorded.
            BudgetExceeded: the estimate exceeds a budget and ``force`` is not set.
        """
        plan = with_run_budget(plan, self.run_budget)
        self.check_models(plan)
        await self._read_tenant()
        estimate, over = self.preflight(plan)
        if over and not force:
            raise BudgetExceeded(
                f"{over[0].message}; the run was not started (force it with `nexus run "
                "--force` or Engine.start(force=True))"
            )
        secrets: dict[str, str] = {}
        if plan.secret_inputs:
            given = {k: v for k, v in plan.inputs.items() if k in plan.secret_inputs}
            secrets = resolve_secrets(plan.secret_inputs, given=given)
            plan = replace(plan, inputs={**plan.inputs, **secrets})
        run_id = run_id or str(ULID())
        at = format_time(self.clock.now())
        # the real path, bound once: a workspace swapped for a symlink since the
        # workflow was validated is refused here, before anything is recorded
        workspace = bind_workspace(plan.workspace or os.getcwd(), create=True)
        if self.pii:
            plan = _without_personal_data(plan)
        recorded_plan = plan.to_dict()
        phash = recorded_plan_hash(recorded_plan)
        started = RunStarted(
            name=plan.name,
            plan=recorded_plan,
            plan_hash=phash,
            inputs=recorded_plan["inputs"],
            workspace=workspace,
            source=source,
        )
        if secrets:
            # scrypt takes ~35 ms a value: not on the event loop
            digests = await asyncio.to_thread(SecretDigests.create, secrets)
            started.secrets = digests.to_dict()
        if self.pii:
            started.redaction = {"pii": True}
        if self.tenant != "default":
            started.tenant = self.tenant
        if self.residency is not None and self.residency.strict:
            started.residency = self.residency.to_dict()
        started.pricing = price_overrides(self.pricing)
        if estimate.calls or estimate.tool_calls:
            started.estimate = {
                "usd": money_text(estimate.usd),
                "tokens": estimate.tokens,
                "calls": estimate.calls,
                **({"forced_over_budget": True} if over else {}),
            }
        draft = Draft(EventType.RUN_STARTED, at, started.to_data())
        first = seal(run_id, 1, draft, GENESIS_HASH)
        record = RunRecord(
            run_id=run_id,
            name=plan.name,
            plan_hash=phash,
            status="running",
            created_at=at,
            updated_at=at,
            source=source,
            workspace=workspace,
            events=1,
        )
        redactor = self._redaction(first, secrets)
        # read before the run exists: its own log is never its cache
        cached = await find_cached_plans(self.store, plan, recorded_plan, self.tenant)
        await self.store.create_run(record, first)
        await self._acquire(run_id)
        state = RunState.start(first)
        if secrets:
            state.inputs = {**state.inputs, **secrets}
        for observer in observers:
            observer([first], state)
        controller = RunController(
            self.store,
            state,
            self._worker(LiveEffects(self.clock, redactor), state, streaming=on_delta is not None),
            self.clock,
            observers=observers,
            on_delta=on_delta,
            redactor=redactor,
            cached_plans=cached,
        )
        # the first decisions react to run.started itself
        controller.begin(first)
        return RunResult.of(await self._drive(controller, None))

    @staticmethod
    def _redaction(first: Event, secrets: Mapping[str, str]) -> Redactor | None:
        """The run's redactor (its secret values; personal data if it recorded so).

        Scoped to the run: it redacts the run's events and effect records, and
        while the run is driven (:func:`nexus.redaction.secrets_scope`) what
        records the run's model calls (cassettes); never another run's records.
        """
        pii = bool((RunStarted.from_event(first).redaction or {}).get("pii"))
        return run_redactor(secrets.values(), pii=pii)

    async def _secrets_for(
        self, first: Event, given: Mapping[str, Any] | None, command: str
    ) -> dict[str, str]:
        """The values of a recorded run's secret inputs, checked against their digests.

        Raises:
            UserError: a value is missing, or is not the one the run started with.
        """
        started = RunStarted.from_event(first)
        declared = started.plan.get("secret_inputs") or {}
        if not declared:
            return {}
        run_id = first.run_id
        values = resolve_secrets(declared, given=given or {}, command=command, run_id=run_id)
        digests = SecretDigests.from_dict(started.secrets, run_id)
        for name, value in values.items():
            if not await asyncio.to_thread(digests.matches, name, value):
                raise UserError(
                    f"secret input '{name}' is not the value run {run_id} started with "
                    "(its salted hash differs); pass the same value"
                )
        return values

    async def _replay_secrets(
        self, first: Event, given: Mapping[str, Any]
    ) -> tuple[dict[str, str], str | None]:
        """The secret values a replay has (given, or from the environment), and the
        first one that differs from its recorded digest (or None)."""
        started = RunStarted.from_event(first)
        declared: dict[str, str | None] = started.plan.get("secret_inputs") or {}
        if not declared:
            return {}, None
        digests = SecretDigests.from_dict(started.secrets, first.run_id)
        values: dict[str, str] = {}
        for name, variable in sorted(declared.items()):
            if name in given:
                value: Any = given[name]
            elif variable and variable in os.environ:
                value = os.environ[variable]
            else:
                continue
            values[name] = check_secret_value(name, value)
            if not await asyncio.to_thread(digests.matches, name, values[name]):
                return {}, name
        return values, None

    async def load_state(self, run_id: str) -> tuple[RunState, list[Event]]:
        """Fold a run's log. Raises NotFoundError for an unknown run."""
        events = await self.store.load(run_id)
        if not events:
            raise NotFoundError(f"no run with id {run_id}")
        return RunState.fold(events), events

    async def resume(
        self,
        run_id: str,
        *,
        observers: Sequence[Observer] = (),
        budget: Mapping[Scope, Limits] | None = None,
        on_delta: DeltaListener | None = None,
        secrets: Mapping[str, Any] | None = None,
        retry_interrupted: bool = False,
    ) -> RunResult:
        """Finish a run whose process died, or that paused for budget.

        Interrupted attempts are retried. ``budget`` raises limits first (a
        ``budget.raised`` event per scope), then paused tasks continue.
        A task whose attempts were interrupted :data:`MAX_INTERRUPTS` times in
        a row is not retried again unless ``retry_interrupted`` says so (an
        ``interrupts.reset`` event, recorded before ``run.resumed``, gives it
        a fresh count); without it the resume is refused and the log untouched.
        ``secrets`` gives the values of the run's secret inputs (they are not
        in the log); a missing one is read from the environment variable the
        workflow names for it.

        Raises:
            UserError: a secret input's value is missing or differs from the
                one the run started with; or the run's workspace is no longer
                its recorded real path (a symlink swapped in) or vanished.
            ConflictError: a task is held at the interrupt limit and
                ``retry_interrupted`` is not set; or ``retry_interrupted`` is
                set for a run that has already ended.
        """
        if await self.store.get_run(run_id) is None:
            raise NotFoundError(f"no run with id {run_id}")
        await self._acquire(run_id)
        try:
            state, events = await self.load_state(run_id)
            if state.status.terminal:
                if retry_interrupted:
                    raise ConflictError(
                        f"run {run_id} has already ended ({state.status}); "
                        "--retry-interrupted continues a run held at the interrupt limit, "
                        "not one that ended: start the workflow again with `nexus run`"
                    )
                await self._release(run_id)
                return RunResult.of(state)
            values = await self._secrets_for(events[0], secrets, f"nexus resume {run_id}")
            _check_workspace(run_id, state.workspace)
            held = [t.id for t in held_at_limit(state)]
            if held and not retry_interrupted:
                raise ConflictError(_held_message(run_id, held))
        except BaseException:
            await self._release(run_id)
            raise
        raises = [
            Draft(
                EventType.BUDGET_RAISED,
                format_time(self.clock.now()),
                BudgetRaised(scope=scope.to_dict(), limits=limits.to_dict()).to_data(),
            )
            for scope, limits in (budget or {}).items()
            if not limits.is_empty
        ]
        if held:
            # on purpose: the tasks the process kept dying in get a fresh count
            reset = InterruptsReset(tasks=held, limit=MAX_INTERRUPTS)
            now = format_time(self.clock.now())
            raises.append(Draft(EventType.INTERRUPTS_RESET, now, reset.to_data()))
        return await self._take_over(
            state, observers, before=raises, on_delta=on_delta, log=events, secrets=values
        )

    async def _take_over(
        self,
        state: RunState,
        observers: Sequence[Observer],
        then: Draft | None = None,
        *,
        before: Sequence[Draft] = (),
        on_delta: DeltaListener | None = None,
        log: Sequence[Event],
        secrets: Mapping[str, str],
    ) -> RunResult:
        """Drive a run whose lease this process holds: record ``before`` (raised
        budgets), then ``run.resumed`` (interrupted attempts are retried, paused
        tasks continue), then ``then``, then on to the end.

        Holds the run left on the tenant's budget (its process died mid-call)
        are dropped first: with the lease here, none of its calls is in flight.
        A task paused by its budget continues its attempt from the records of
        ``log`` (the run's events so far; see :mod:`nexus.engine.continuation`).
        """
        first = log[0]
        earlier = continued_records(state, log)
        if self._tenant_budget is not None:
            await self._tenant_budget.release_run(state.run_id)
        if secrets:
            state.inputs = {**state.inputs, **secrets}
        redactor = self._redaction(first, secrets)
        started = RunStarted.from_event(first)
        cached = await find_cached_plans(
            self.store, state.plan, started.plan, started.tenant or "default", exclude=first.run_id
        )
        controller = RunController(
            self.store,
            state,
            self._worker(LiveEffects(self.clock, redactor)),
            self.clock,
            observers=observers,
            on_delta=on_delta,
            redactor=redactor,
            cached_plans=cached,
        )
        for draft in before:
            controller.step(draft)
        # built after the raises are applied, so its ledger holds the new limits
        controller.worker = self._worker(
            LiveEffects(self.clock, redactor, earlier), state, streaming=on_delta is not None
        )
        interrupted = [t.id for t in state.tasks.values() if str(t.status) == "running"]
        controller.step(
            Draft(
                EventType.RUN_RESUMED,
                format_time(self.clock.now()),
                RunResumed(interrupted=interrupted, pid=os.getpid()).to_data(),
            )
        )
        return RunResult.of(await self._drive(controller, then))

    async def cancel(
        self, run_id: str, reason: str = "cancelled by user", *, by: str | None = None
    ) -> str:
        """Cancel a run: ask its live controller, or cancel it here if none runs it.

        ``by`` names who asked in ``run.cancel_requested`` (left out when None).

        Returns:
            ``"requested"`` (a live controller will stop it), ``"cancelled"``,
            or ``"finished"`` (it had ended already).
        """
        state, _ = await self.load_state(run_id)
        if state.status.terminal:
            return "finished"
        try:
            await self._acquire(run_id)
        except ConflictError:
            command: dict[str, Any] = {"reason": reason}
            if by is not None:
                command["by"] = by
            await self.store.push_command(run_id, "cancel", command)
            return "requested"
        try:
            state, events = await self.load_state(run_id)
            if state.status.terminal:  # it ended while the lease was changing hands
                return "finished"
            cancel = CancelRequested(reason=reason)
            if by is not None:
                cancel.by = by
            now = format_time(self.clock.now())
            await self._record_here(
                state, events, Draft(EventType.CANCEL_REQUESTED, now, cancel.to_data())
            )
        finally:
            await self._release(run_id)
        return "cancelled"

    async def stop_all(
        self, *, reason: str = "", by: str | None = None, within: float = 10.0
    ) -> StopReport:
        """The emergency stop: cancel every running run of this store at once.

        Each run's process is asked to cancel it (its attempts are cancelled and
        their sandboxed processes killed); a run no process drives is cancelled
        here. ``run.cancel_requested`` records ``by`` (default: the user this
        process runs as) and ``emergency stop: <reason>``. Paused runs are left
        as they are. Waits up to ``within`` seconds until every run asked has
        ended and its process has let it go (see :mod:`nexus.engine.control`).

        Returns:
            Each run asked and where it stands; ``report.stopped`` is true when
            all have stopped.

        Example:
            >>> report = await engine.stop_all(reason="agents looping")  # doctest: +SKIP
            >>> report.stopped  # doctest: +SKIP
            True
        """
        who = by or os_user()
        why = stop_reason(reason)

        async def cancel(run_id: str) -> str:
            return await self.cancel(run_id, why, by=who)

        return await stop_all(self.store, cancel, by=who, reason=why, within=within)

    async def pause(self, run_id: str, *, reason: str = "", by: str | None = None) -> str:
        """Pause a run: no new attempt starts, the running ones finish, then it is ``paused``.

        A process driving the run gets the request as a command and pauses the
        run once its running attempts have finished. A run no process drives
        pauses here, at once: the attempts its stopped process left running are
        not waited for (nothing runs them); ``nexus resume`` retries them.
        Either way ``run.pause_requested`` records who asked and why, and
        :meth:`resume` continues the run.

        Args:
            run_id: the run.
            reason: why, in the asker's words (recorded).
            by: who asks (recorded; default: the user this process runs as).

        Returns:
            ``"requested"`` (its process pauses it), ``"paused"`` (paused
            here), ``"already"`` (paused or pausing already) or ``"finished"``
            (it had ended).

        Raises:
            NotFoundError: no run has this id.

        Example:
            >>> await engine.pause(run_id, reason="the reviewer is away")  # doctest: +SKIP
            'requested'
        """
        who = by or os_user()
        state, _ = await self.load_state(run_id)
        if (outcome := _pause_outcome(state)) is not None:
            return outcome
        try:
            await self._acquire(run_id)
        except ConflictError:
            await self.store.push_command(run_id, "pause", {"by": who, "reason": reason})
            return "requested"
        try:
            state, events = await self.load_state(run_id)
            if (outcome := _pause_outcome(state)) is not None:
                return outcome
            request = PauseRequested(by=who, reason=reason)
            orphaned = [t.id for t in state.tasks_in(TaskStatus.RUNNING)]
            if orphaned:
                request.orphaned = orphaned
            now = format_time(self.clock.now())
            await self._record_here(
                state, events, Draft(EventType.PAUSE_REQUESTED, now, request.to_data())
            )
        finally:
            await self._release(run_id)
        return "paused"

    async def _record_here(self, state: RunState, events: Sequence[Event], draft: Draft) -> None:
        """Record ``draft``, an input, on a run whose lease this process holds, with the
        decisions it leads to; drive nothing further.

        For inputs that start no attempt: a cancel, a pause, an approval answered
        while a person has the run paused.
        """
        # such an input renders nothing: the secrets' values are not needed
        redactor = self._redaction(events[0], {})
        controller = RunController(
            self.store,
            state,
            self._worker(LiveEffects(self.clock, redactor)),
            self.clock,
            redactor=redactor,
        )
        controller.step(draft)
        await controller.flush()

    async def answer_approval(
        self,
        run_id: str,
        task: str,
        *,
        granted: bool,
        by: str,
        reason: str = "",
        observers: Sequence[Observer] = (),
        secrets: Mapping[str, Any] | None = None,
    ) -> tuple[str, RunResult | None]:
        """Approve or reject a task that awaits approval.

        A live controller gets the answer as a command (``"requested"``).
        When no process drives the run, the answer is recorded here and this
        call drives the run on to its end (``"continued"``, with the result);
        but a run a person paused (:meth:`pause`) stays paused: the answer is
        recorded and nothing more (``"recorded"``), and the run goes on with
        :meth:`resume`.

        Raises:
            NotFoundError: no such run or task.
            ConflictError: the task is not awaiting approval.
        """
        state, _ = await self.load_state(run_id)
        current = state.tasks.get(task)
        if current is None:
            raise NotFoundError(f"run {run_id} has no task '{task}'")
        if str(current.status) != "awaiting_approval":
            raise ConflictError(
                f"task '{task}' of run {run_id} is not awaiting approval (it is {current.status})"
            )
        kind = "approve" if granted else "reject"
        try:
            await self._acquire(run_id)
        except ConflictError:
            await self.store.push_command(run_id, kind, {"task": task, "by": by, "reason": reason})
            return "requested", None
        event = EventType.APPROVAL_GRANTED if granted else EventType.APPROVAL_REJECTED
        answer = Draft(
            event,
            format_time(self.clock.now()),
            ApprovalAnswered(task=task, by=by, reason=reason).to_data(),
        )
        try:
            state, events = await self.load_state(run_id)
            if state.hold is not None:  # paused by a person: it stays paused
                await self._record_here(state, events, answer)
                await self._release(run_id)
                return "recorded", None
            command = f"nexus {kind} {run_id} {task}"
            values = await self._secrets_for(events[0], secrets, command)
            _check_workspace(run_id, state.workspace)
            held = [t.id for t in held_at_limit(state)]
            if held:  # taking the run over would fail them: the user decides first
                raise ConflictError(_held_message(run_id, held))
        except BaseException:
            await self._release(run_id)
            raise
        return "continued", await self._take_over(
            state, observers, answer, log=events, secrets=values
        )

    async def replay(
        self, run_id: str, *, secrets: Mapping[str, Any] | None = None
    ) -> ReplayReport:
        """Re-execute a run against its recorded effects; compare the chains.

        Nothing is executed: every effect is served from the log, inputs are
        fed in their recorded order, and the new chain is built in memory.

        A run's secret inputs take their values from ``secrets``, else from the
        environment variables the workflow names; a value that differs from
        the recorded digest is a divergence at ``run.started``. Without a
        value, the secret is replayed as ``"[redacted]"`` -- what every record
        holds in its place.

        Raises:
            UserError: before anything is replayed, when an agent the run used
                cannot be built here (a Python function agent this engine was
                not given and cannot import, a cassette file that is missing):
                the message names the agent, why, and what to do.
        """
        state, events = await self.load_state(run_id)
        first = events[0]
        self._check_agents(run_id, state.plan, events)
        values, wrong = await self._replay_secrets(first, secrets or {})
        if wrong is not None:
            return ReplayReport(
                run_id=run_id,
                identical=False,
                original_events=len(events),
                replayed_events=0,
                effects_served=0,
                tools_executed=0,
                first_divergence={
                    "seq": 1,
                    "reason": f"secret input '{wrong}' is not the value the run was "
                    "recorded with (its salted hash differs)",
                },
                complete=False,
            )
        redactor = self._redaction(first, values)
        recorded = {
            EffectRecord.of(e.data).key: e.data
            for e in events
            if e.type is EventType.EFFECT_RECORDED
        }
        effects = ReplayEffects(recorded, redactor)
        state = RunState.start(first)
        if values:
            state.inputs = {**state.inputs, **values}
        sink: list[Event] = [first]
        worker = self._worker(effects)
        controller = RunController(
            self.store,
            state,
            worker,
            self.clock,
            replay_of=events,
            sink=sink,
            redactor=redactor,
        )
        controller.begin(events[0])
        with secrets_scope(redactor):
            await controller.run(None)
        divergence = controller.divergence
        if divergence is None and len(sink) != len(events):
            divergence = {
                "seq": min(len(sink), len(events)) + 1,
                "reason": f"replay made {len(sink)} events, the original has {len(events)}",
            }
        return ReplayReport(
            run_id=run_id,
            identical=divergence is None,
            original_events=len(events),
            replayed_events=len(sink),
            effects_served=effects.served,
            tools_executed=worker.tools_executed,
            first_divergence=divergence,
            complete=state.status.terminal,
        )

    def _check_agents(self, run_id: str, plan: Plan, events: Sequence[Event]) -> None:
        """Fail now if the replay could not build an agent the run's attempts used.

        An attempt that recorded an effect or an output had its agent built in
        the run; its replay must build it again (a function agent loaded, a
        cassette opened) or the worker would end at once without the reports
        the log holds. An attempt that failed before doing anything is left to
        the replay, which fails it the same way and compares.

        Raises:
            UserError: an agent cannot be built here (named, with why and what to do).
        """
        acted: set[tuple[str, int]] = set()
        for event in events:
            if event.type is EventType.EFFECT_RECORDED:
                record = EffectRecord.of(event.data)
                acted.add((record.task, record.attempt))
            elif event.type is EventType.ATTEMPT_FINISHED:
                finished = AttemptFinished.of(event.data)
                if finished.error is None:
                    acted.add((finished.task, finished.attempt))
        checked: set[tuple[str, tuple[str, ...]]] = set()
        for event in events:
            if event.type is not EventType.ATTEMPT_STARTED:
                continue
            started = AttemptStarted.of(event.data)
            spec = plan.agents.get(started.agent or "")
            chain = (started.agent or "", tuple(started.models or ()))
            if spec is None or (started.task, started.attempt) not in acted or chain in checked:
                continue
            checked.add(chain)
            try:
                self._agents.resolve(spec, chain[1])
            except NexusError as exc:
                raise UserError(f"cannot replay run {run_id}: {exc.message}{_how(spec)}") from None


def _how(spec: AgentSpec) -> str:
    """What to do about a function agent the replay cannot load ('' for other agents)."""
    if not spec.model.startswith("function:") or spec.entrypoint is not None:
        return ""
    return (
        "; its code is not importable from the run's record (it was defined in a "
        "script's __main__, inside a function, or in a plan written by hand): replay the "
        "run from Python with the agent given to the engine, "
        "Engine(store, function_agents=[...]).replay(run_id), or define the function in a "
        "module Python can import, so that the plan records module:function for nexus replay"
    )


def _pause_outcome(state: RunState) -> str | None:
    """What :meth:`Engine.pause` answers for a run it need not pause (None: pause it)."""
    if state.status.terminal:
        return "finished"
    if state.status is RunStatus.PAUSED or state.hold is not None:
        return "already"
    return None


def _held_message(run_id: str, tasks: Sequence[str]) -> str:
    names = ", ".join(f"'{t}'" for t in tasks[:5]) + (" ..." if len(tasks) > 5 else "")
    return (
        f"run {run_id}: the attempts of task {names} were interrupted {MAX_INTERRUPTS} times "
        f"in a row (the limit): the process keeps stopping while it runs, so the run is held "
        f"instead of failed. Find out why (`nexus inspect {run_id}`), then "
        f"`nexus resume {run_id} --retry-interrupted` retries it with a fresh count"
    )


def _check_workspace(run_id: str, workspace: str) -> None:
    """A run taken over goes on in the directory it ran in, or not at all."""
    try:
        bind_workspace(workspace, create=False)
    except UserError as exc:
        raise UserError(f"cannot continue run {run_id}: {exc}") from None
