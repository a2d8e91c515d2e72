"""Workers execute attempts: a tool call or an agent, through the effect boundary.

A worker gets an :class:`Assignment` -- everything the attempt needs, as plain
values, so it could as well arrive over a queue from another machine -- and
reports back :class:`EffectDone` for every effect and one :class:`AttemptDone`.
It never touches the event log or the run state: the controller turns its
reports into input events.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nexus.agents.base import AgentCall
from nexus.agents.resolver import AgentResolver
from nexus.budget.spend import model_spend, reservation_for
from nexus.domain.errors import BudgetExceeded, ErrorKind, IntegrityError, NotFoundError
from nexus.domain.ids import effect_key
from nexus.domain.payload_data import AttemptStartedData, EffectRecordData
from nexus.domain.plan import AgentSpec
from nexus.engine.continuation import Continuation
from nexus.engine.effects import EffectCall, EffectFailed, Effects, error_record, to_json
from nexus.gateway.base import ToolSpec
from nexus.tools.base import ToolContext, ToolRegistry

if TYPE_CHECKING:
    from nexus.budget.ledger import BudgetLedger
    from nexus.budget.tenant import TenantBudget, TenantHold
    from nexus.domain.budget import Spend
    from nexus.gateway.pricing import PricingTable
    from nexus.security.trusted import TrustedPaths


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
class TokenDelta:
    """Text a model produced, passed on live; never recorded (the effect holds it all)."""

    task: str
    attempt: int
    text: str


@dataclass(frozen=True, slots=True)
class Assignment:
    """One attempt to execute: the ``attempt.started`` data plus what it needs.

    ``started`` is the payload as stored (a plain dict, typed by its stored
    form), read key by key as the fold reads it: a payload view would cost an
    object and a Python call per field on every task's path.
    """

    run_id: str
    task: str
    attempt: int
    workspace: str
    started: AttemptStartedData
    agent: AgentSpec | None = None
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def timeout_ms(self) -> int | None:
        value = self.started.get("timeout_ms")
        return None if value is None else int(value)


Report = Callable[[EffectDone | AttemptDone | TokenDelta], Awaitable[None]]


class AttemptContext:
    """One attempt's view of the world; every effect goes through it."""

    def __init__(
        self,
        assignment: Assignment,
        effects: Effects,
        report: Report,
        deadline: float | None,
        worker: Worker | None = None,
    ) -> None:
        self._a = assignment
        self._effects = effects
        self._report = report
        self._deadline = deadline
        self._calls = 0
        self._worker = worker
        self._workspace: Path | None = None
        continues = assignment.started.get("continues")
        #: the budget-paused attempts this one takes up (None: it starts afresh)
        self._continuation = (
            Continuation(effects, assignment.run_id, assignment.task, continues)
            if continues
            else None
        )

    @property
    def task(self) -> str:
        return self._a.task

    @property
    def attempt(self) -> int:
        return self._a.attempt

    @property
    def template_context(self) -> dict[str, Any]:
        return self._a.context

    @property
    def streaming(self) -> bool:
        return self._worker is not None and self._worker.streaming

    async def delta(self, text: str) -> None:
        if text:
            await self._report(TokenDelta(self._a.task, self._a.attempt, text))

    async def _reserve(
        self, kind: str, request: Callable[[], dict[str, Any]]
    ) -> tuple[list[tuple[BudgetLedger, Any]], TenantHold | None]:
        """Reserve what the call may cost in the run's ledger and the tenant's budget, or neither.

        ``request()`` gives the request to estimate on (asked only with a budget).

        The run's scopes are checked first (in process), then the tenant's
        (through the store, shared with every process of the tenant).
        """
        worker = self._worker
        if worker is None or (worker.budget is None and worker.tenant_budget is None):
            return [], None
        from nexus.domain.budget import run_scopes

        a = self._a
        amount = reservation_for(kind, request(), worker.pricing)
        held: list[tuple[BudgetLedger, Any]] = []
        if worker.budget is not None:
            scopes = run_scopes(a.task, a.started.get("agent"))
            held.append((worker.budget, worker.budget.reserve(scopes, amount)))
        if worker.tenant_budget is None:
            return held, None
        try:
            hold = await worker.tenant_budget.reserve(
                amount, run_id=a.run_id, deadline=self._deadline
            )
        except BaseException:
            for ledger, reservation in held:
                ledger.release(reservation)
            raise
        return held, hold

    async def effect(
        self,
        kind: str,
        request: dict[str, Any],
        fn: Callable[[], Awaitable[Any]],
        *,
        estimate: Callable[[], dict[str, Any]] | None = None,
    ) -> Any:
        """Run ``fn`` as effect number n of this attempt; record (or replay) it."""
        return (await self._record(kind, request, fn, estimate=estimate))["response"]

    async def _record(
        self,
        kind: str,
        request: dict[str, Any],
        fn: Callable[[], Awaitable[Any]],
        source: str | None = None,
        *,
        estimate: Callable[[], dict[str, Any]] | None = None,
        wrote: list[str] | None = None,
    ) -> EffectRecordData:
        """Run ``fn`` as effect number n of this attempt; its record (a tool's ``source`` added,
        and the files it ``wrote``, which the tool noted as it ran).

        With a budget ledger, the spend a model or tool call may cost is
        reserved first (a refusal raises ``BudgetExceeded`` and nothing runs)
        and settled with what it really cost once it is recorded. The
        reservation is estimated on ``estimate()`` when given (the whole
        request, where ``request`` records only its new part), else on
        ``request``.

        An attempt that continues a budget-paused one is answered from that
        attempt's record while it can be (see :mod:`nexus.engine.continuation`):
        such a call reserves nothing, runs nothing and is not recorded again.

        The record is read and completed as the dict it is (typed by its
        stored form); the fold checks its shape when the controller appends it.
        """
        a = self._a
        index = self._calls
        call = EffectCall(
            key=effect_key(a.run_id, a.task, a.attempt, index),
            kind=kind,
            task=a.task,
            attempt=a.attempt,
            request=to_json(request, f"the {kind} request"),
            deadline=self._deadline,
        )
        self._calls += 1
        continuation = self._continuation
        if continuation is not None:
            served: Any = continuation.serve(call, index)
            if served is not None:
                answer: EffectRecordData = served  # a record of the log, checked by its fold
                if answer["error"] is not None:
                    raise EffectFailed(answer["error"])
                return answer
        worker = self._worker
        held: list[tuple[BudgetLedger, Any]] = []
        hold: TenantHold | None = None
        if kind in ("model", "tool"):
            try:
                held, hold = await self._reserve(kind, estimate or (lambda: call.request))
            except BudgetExceeded as refusal:
                # recorded like any failed effect, so a replay meets the same refusal
                fn = _refuse(refusal)
        record: Any
        try:
            record = await self._effects.perform(call, fn)
        except BaseException:
            for ledger, reservation in held:
                ledger.release(reservation)
            if hold is not None:
                await hold.release()
            raise
        effect: EffectRecordData = record
        if kind == "model" and effect.get("spend") is None and effect["error"] is None:
            pricing = worker.pricing if worker is not None else None
            effect["spend"] = model_spend(effect["response"], pricing)
        if source is not None and effect.get("source") is None:
            effect["source"] = source
        if wrote and effect.get("wrote") is None:
            effect["wrote"] = list(dict.fromkeys(wrote))
        if continuation is not None and effect.get("continued") is None:
            continued = continuation.why()  # the first live call says why it is live
            if continued is not None:
                effect["continued"] = continued
        for ledger, reservation in held:
            ledger.settle(reservation, _spent(kind, effect))
        if hold is not None:
            crossed = await hold.settle(_spent(kind, effect))
            if crossed:
                # the tenant's spend lives outside this run: what this call crossed is
                # recorded with it, so the decider warns from the log (and a replay does too)
                effect["tenant_budget"] = [c.to_dict() for c in crossed]
        await self._report(EffectDone(a.task, a.attempt, record))
        error = effect["error"]
        if error is not None:
            raise EffectFailed(error)
        return effect

    def tool_specs(self, names: Iterable[str]) -> tuple[ToolSpec, ...]:
        """The tools as offered to the model.

        When this model call was recorded (a replay, or an attempt taken up
        again), the specs are read back from it: the run offered exactly those,
        whatever a later release says about its tools (a built-in's description
        may have been improved since). Replay needs no registry.
        """
        from nexus.agents.llm import wire_names
        from nexus.tools.catalog import describe

        wanted = list(names)
        a = self._a
        peek = self._effects.recorded(effect_key(a.run_id, a.task, a.attempt, self._calls))
        if peek is None and self._continuation is not None:
            # a paused attempt taken up offers what it offered
            found = self._continuation.candidate(self._calls)
            peek = None if found is None else found[1]
        if peek is not None and peek["kind"] == "model":
            # recorded under the names the model saw (file.read as file_read)
            offered = {t["name"]: t for t in peek["request"].get("tools", ())}
            wire = wire_names(wanted)
            if all(wire[name] in offered for name in wanted):
                return tuple(
                    ToolSpec(n, offered[wire[n]]["description"], offered[wire[n]]["parameters"])
                    for n in wanted
                )
        tools = self._worker.tools if self._worker is not None else None
        if tools is not None and all(name in tools for name in wanted):
            specs = []
            for name in wanted:
                info = describe(tools.get(name))
                specs.append(ToolSpec(name, info["description"], info["input_schema"]))
            return tuple(specs)
        missing = [n for n in wanted if tools is None or n not in tools]
        raise NotFoundError(f"unknown tool(s) {', '.join(missing)} (not in the tool registry)")

    async def call_tool(
        self, name: str, args: dict[str, Any], call_id: str | None = None
    ) -> tuple[Any, str]:
        """Call a registry tool as a recorded ``tool`` effect: its result and its source.

        ``call_id`` is the model's id for the call (an agent's tool call); with
        it, the source (``builtin``, ``python``, ``mcp:<server>``...) is
        recorded too, so a replay marks the output as the run did. A tool
        task's own call has neither.
        """
        from nexus.tools.catalog import source_of

        a = self._a
        if self._workspace is None:
            self._workspace = _workspace_path(a.workspace)
        wrote: list[str] = []  # the files the call writes (a file tool notes them)
        tool_ctx = ToolContext(
            a.run_id,
            a.task,
            a.attempt,
            self._workspace,
            grant=a.started.get("profile"),
            trusted=self._worker.trusted if self._worker is not None else None,
            wrote=wrote,
        )
        worker = self._worker
        tools = worker.tools if worker is not None else None

        async def invoke() -> Any:
            # looked up inside the effect: a replay needs no tool at all
            if worker is None or tools is None:
                raise NotFoundError(f"unknown tool '{name}'")
            worker.tools_executed += 1
            return await tools.call(name, args, tool_ctx)

        request: dict[str, Any] = {"tool": name, "args": args}
        if call_id is None:
            return (await self._record("tool", request, invoke, wrote=wrote))["response"], ""
        request["call"] = call_id
        source = source_of(tools.get(name)) if tools is not None and name in tools else "unknown"
        record = await self._record("tool", request, invoke, source, wrote=wrote)
        recorded = record.get("source")
        return record["response"], str(recorded if recorded is not None else source)


@functools.lru_cache(maxsize=64)
def _workspace_path(workspace: str) -> Path:
    """``workspace`` as a path, made once: every tool call's context holds it, and a
    ``Path`` costs a parse of its text (a run has one workspace)."""
    return Path(workspace)


def _refuse(refusal: BudgetExceeded) -> Callable[[], Awaitable[Any]]:
    """The call that stands in for one refused budget: it fails, marked ``resumable``.

    Nothing ran, so once the budget is raised the attempt can be taken up from
    this very call (:mod:`nexus.engine.continuation`).
    """
    error = {**refusal.to_data(), "resumable": True}

    async def refuse() -> Any:
        raise EffectFailed(error)

    return refuse


def _spent(kind: str, record: EffectRecordData) -> Spend:
    """What an effect really cost, from its record (a failed call spent nothing)."""
    from nexus.domain.budget import Spend

    if kind == "tool":
        return Spend(tool_calls=1)
    return Spend.from_dict(record.get("spend") or {})


class Worker:
    """Executes assignments with the given tools, agents and effect policy.

    Args:
        budget: the run's ledger (run, agent and task scopes; None: no budgets).
        tenant_budget: the tenant's budget, shared through the store by every
            process that runs for the tenant.
        pricing: prices for the spend recorded with each model call.
        tenant: the tenant whose budget scope the calls also count against.
        streaming: ask models to stream and pass their tokens on as
            :class:`TokenDelta` reports.
    """

    def __init__(
        self,
        tools: ToolRegistry,
        agents: AgentResolver,
        effects: Effects,
        *,
        budget: BudgetLedger | None = None,
        tenant_budget: TenantBudget | None = None,
        pricing: PricingTable | None = None,
        tenant: str = "default",
        streaming: bool = False,
        trusted: TrustedPaths | None = None,
    ) -> None:
        self.tools = tools
        #: what no tool may write (None: the process's :func:`trusted_paths`)
        self.trusted = trusted
        self.agents = agents
        self.effects = effects
        self.budget = budget
        self.tenant_budget = tenant_budget
        self.pricing = pricing
        self.tenant = tenant
        self.streaming = streaming
        #: registry tools this worker ran (a replay's report shows it: 0 when
        #: every tool effect was served from the record)
        self.tools_executed = 0

    async def execute(self, a: Assignment, report: Report) -> None:
        """Run one attempt to its end; report every effect and the outcome."""
        loop = asyncio.get_running_loop()
        timeout_ms = a.timeout_ms
        deadline = None if timeout_ms is None else loop.time() + timeout_ms / 1000
        ctx = AttemptContext(a, self.effects, report, deadline, self)
        output: Any = None
        error: dict[str, Any] | None = None
        try:
            if a.agent is None:
                output = await self._tool(a, ctx)
            elif deadline is None:
                output = await self._agent(a, a.agent, ctx)
            else:
                async with asyncio.timeout_at(deadline + 0.5):
                    output = await self._agent(a, a.agent, ctx)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            error = {
                "kind": str(ErrorKind.TIMEOUT),
                "message": f"task '{a.task}' exceeded its timeout of {timeout_ms} ms",
                "retryable": True,
            }
        except Exception as exc:
            error = to_json(error_record(exc), "error")
        await report(AttemptDone(a.task, a.attempt, output, error))

    async def _tool(self, a: Assignment, ctx: AttemptContext) -> Any:
        started = a.started
        tool = started.get("tool")
        if tool is None:
            raise IntegrityError(f"run {a.run_id}: attempt.started of task '{a.task}' has no tool")
        args: Any = started.get("args")  # as recorded (the decider rendered them)
        output, _ = await ctx.call_tool(tool, args)
        return output

    async def _agent(self, a: Assignment, spec: AgentSpec, ctx: AttemptContext) -> Any:
        started = a.started
        models = tuple(started.get("models") or ())
        agent = self.agents.resolve(spec, models)
        name = started.get("agent")
        prompt = started.get("prompt")
        instructions = started.get("instructions")
        model = started.get("model")
        turn = started.get("turn")
        if name is None or prompt is None or instructions is None or model is None or turn is None:
            raise IntegrityError(
                f"run {a.run_id}: attempt.started of task '{a.task}' lacks its agent's fields"
            )
        call = AgentCall(
            agent=name,
            prompt=prompt,
            instructions=instructions,
            model=model,
            turn=turn,
            models=models,
            output_schema=started.get("output_schema"),
            feedback=started.get("feedback"),
        )
        return to_json(await agent.run(call, ctx), f"the output of task '{a.task}'")
