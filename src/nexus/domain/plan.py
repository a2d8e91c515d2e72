"""The plan: what a run executes, as plain immutable values.

A plan is compiled from a workflow file or from Python code
(:mod:`nexus.planning`). It is stored whole in the ``run.started`` event, so a
run never depends on the file it came from after it started, and its hash
identifies it: :func:`plan_hash` is stable under reordering of the fields that
have no order (task and agent maps, ``needs``, ``capabilities``).

Secret inputs (:attr:`Plan.secret_inputs`) are the exception: their values
live in memory only. :meth:`Plan.to_dict` -- what is recorded and hashed --
writes :data:`SECRET_PLACEHOLDER` in their place (see
:mod:`nexus.engine.secret_inputs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Final

from nexus.domain.bt import BtSpec
from nexus.domain.canonical import digest

JSONDict = dict[str, Any]

#: What a secret input's value is recorded as (``nexus.redaction.REDACTED``).
SECRET_PLACEHOLDER: Final = "[redacted]"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a task is retried.

    ``retries`` counts retries after the first attempt. The backoff after
    failure ``n`` is ``initial * multiplier**(n-1)``, capped at ``maximum``,
    with equal jitter: the delay is half the backoff plus a random part of the
    other half, drawn from a generator seeded by the run, task and failure
    count, so a replay computes the same delays (``engine/retry.py``). An
    error's ``retry_after`` (a provider's ``Retry-After``) is a floor on it.
    """

    retries: int = 0
    initial: float = 0.5
    multiplier: float = 2.0
    maximum: float = 30.0

    def to_dict(self) -> JSONDict:
        return {
            "retries": self.retries,
            "initial": num(self.initial),
            "multiplier": num(self.multiplier),
            "maximum": num(self.maximum),
        }


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    """A task that must be approved by a person before it starts.

    ``timeout`` (seconds) bounds the wait; then ``on_timeout`` decides:
    ``"fail"`` fails the task, ``"escalate"`` records an escalation and keeps
    waiting without a further deadline.
    """

    timeout: float | None = None
    on_timeout: str = "fail"

    def to_dict(self) -> JSONDict:
        return {
            "timeout": None if self.timeout is None else num(self.timeout),
            "on_timeout": self.on_timeout,
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> ApprovalPolicy:
        return cls(timeout=data.get("timeout"), on_timeout=data.get("on_timeout", "fail"))


#: The most iterations a ``loop`` may run (``max_iterations`` is required and at most this).
MAX_ITERATIONS: Final = 1000


@dataclass(frozen=True, slots=True)
class LoopPolicy:
    """A task whose body runs again until a condition over its latest output holds.

    Each iteration is one attempt (its own retries counted apart); ``until`` is
    rendered after each successful one with ``loop.output`` (that attempt's
    output) and ``loop.iteration`` (1, 2, ...). When it is still false after
    ``max_iterations``, ``on_max`` decides: ``"fail"`` fails the task,
    ``"succeed"`` ends it with the last output (see ``docs/workflows.md``).
    """

    until: str
    max_iterations: int
    on_max: str = "fail"

    def to_dict(self) -> JSONDict:
        return {
            "until": self.until,
            "max_iterations": self.max_iterations,
            "on_max": self.on_max,
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> LoopPolicy:
        return cls(
            until=data["until"], max_iterations=data["max_iterations"], on_max=data["on_max"]
        )


#: The most tasks one run's plan extensions may add, and the deepest an added task
#: may itself extend: what ``extensions:`` may raise its limits to.
MAX_ADDED_TASKS: Final = 10_000
MAX_EXTENSION_DEPTH: Final = 8
#: The most times an extending task may be asked to re-plan.
MAX_REPLANS: Final = 10
#: What a workflow's ``cache:`` may name: ``plans`` (the plan cache).
CACHE_KINDS: Final = ("plans",)
#: How many times ``on_failure: replan`` asks for a repaired plan (``{replan: N}`` sets it).
DEFAULT_REPLANS: Final = 1


@dataclass(frozen=True, slots=True)
class ExtendPolicy:
    """A task whose output extends the running plan (see ``docs/planning.md``).

    Its attempt's output holds ``tasks``: new tasks in the workflow file's own
    syntax. They are compiled and checked like a workflow's tasks against the
    run's agents, tools and the tasks already in it, then added in one
    ``plan.extended`` event; the task ends when every task it added has ended.
    ``max_tasks`` caps what this one extension may add; with ``review`` none of
    them starts before a person approves the extension (``nexus approve RUN
    TASK``), and a rejection skips them all and fails the task. With
    ``replan``, when tasks it added failed the task runs again (up to that many
    times), told what failed, and its new answer extends the plan anew.
    """

    max_tasks: int | None = None
    review: bool = False
    #: how many times the task is asked for a repaired plan when what it added failed
    replan: int = 0

    def to_dict(self) -> JSONDict:
        return {
            "max_tasks": self.max_tasks,
            **({"review": True} if self.review else {}),
            **({"replan": self.replan} if self.replan else {}),
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> ExtendPolicy:
        return cls(
            max_tasks=data["max_tasks"],
            review=data.get("review", False),
            replan=data.get("replan", 0),
        )


@dataclass(frozen=True, slots=True)
class ExtensionLimits:
    """How far a run's plan may grow: ``max_tasks`` added in all, ``max_depth`` levels.

    A task of the workflow file is at depth 0; a task it adds is at depth 1, and
    may extend the plan again only while its depth is below ``max_depth``.
    """

    max_tasks: int = 100
    max_depth: int = 1

    def to_dict(self) -> JSONDict:
        return {"max_tasks": self.max_tasks, "max_depth": self.max_depth}

    @classmethod
    def from_dict(cls, data: JSONDict) -> ExtensionLimits:
        return cls(max_tasks=data["max_tasks"], max_depth=data["max_depth"])


#: How a fan-out's items are combined into its output (``aggregate:``).
AGGREGATE_METHODS: Final = ("vote", "majority", "consensus", "first_success")

#: The most agents one ``agents:`` fan-out may ask.
MAX_FAN_OUT_AGENTS: Final = 64


@dataclass(frozen=True, slots=True)
class AggregatePolicy:
    """A fan-out whose output is one answer agreed by its items, not the list of them.

    The items of a ``foreach`` task (or of an ``agents:`` fan-out) answer the
    same question; ``method`` decides what the task's output is:

    * ``vote``: the most common answer (ties: the one given first in item order);
    * ``majority``: the most common answer, only when more than half of the
      answers give it, else the task fails;
    * ``consensus``: the answer every item gave, else the task fails;
    * ``first_success``: the output of the first item to succeed; the others
      are cancelled.

    An item's answer is its output's ``data`` (a structured agent answer), its
    ``text`` (a plain one) or a tool's whole output; ``key`` (a dotted path)
    picks one field of it instead. Failed items are left out; fewer than
    ``quorum`` answers fail the task (see ``docs/workflows.md``).
    """

    method: str
    key: str | None = None
    quorum: int = 1

    def to_dict(self) -> JSONDict:
        return {"method": self.method, "key": self.key, "quorum": self.quorum}

    @classmethod
    def from_dict(cls, data: JSONDict) -> AggregatePolicy:
        return cls(method=data["method"], key=data["key"], quorum=data["quorum"])


#: The most steps (state bodies run) an ``fsm`` may take (``max_steps`` is required and
#: at most this).
MAX_FSM_STEPS: Final = 1000
#: The most states an ``fsm`` may declare, and transitions one state may have.
MAX_FSM_STATES: Final = 100
MAX_FSM_TRANSITIONS: Final = 50


@dataclass(frozen=True, slots=True)
class FsmTransition:
    """A way out of an ``fsm`` state: to ``to`` when ``when`` (a template) gives a true
    value; without ``when`` it is the state's default, taken when no earlier one held."""

    to: str
    when: str | None = None

    def to_dict(self) -> JSONDict:
        return {"to": self.to} if self.when is None else {"to": self.to, "when": self.when}

    @classmethod
    def from_dict(cls, data: JSONDict) -> FsmTransition:
        return cls(to=data["to"], when=data.get("when"))


@dataclass(frozen=True, slots=True)
class FsmState:
    """One state of an ``fsm`` task.

    A state that is not ``terminal`` has a body, run as one attempt of the task:
    a tool (``tool`` with ``args``) or an agent (``prompt`` with ``agent`` or
    ``capability``, optionally an ``output_schema``), then ``transitions``, judged
    in order on its output. A terminal state runs nothing: entering it ends the
    task, ``succeeded`` (its output the template ``output``, else the last body's
    output), or ``failed`` when ``fail`` (with ``reason``, a template, as the why).
    """

    tool: str | None = None
    args: JSONDict = field(default_factory=dict)
    agent: str | None = None
    capability: str | None = None
    prompt: str | None = None
    output_schema: JSONDict | None = None
    transitions: tuple[FsmTransition, ...] = ()
    terminal: bool = False
    fail: bool = False
    reason: str | None = None
    output: str | None = None

    def to_dict(self) -> JSONDict:
        if self.terminal:
            data: JSONDict = {"terminal": True}
            if self.fail:
                data["fail"] = True
            if self.reason is not None:
                data["reason"] = self.reason
            if self.output is not None:
                data["output"] = self.output
            return data
        data = {}
        if self.tool is not None:
            data["tool"] = self.tool
            data["args"] = self.args
        else:
            data["agent"] = self.agent
            data["capability"] = self.capability
            data["prompt"] = self.prompt
            if self.output_schema is not None:
                data["output_schema"] = self.output_schema
        data["transitions"] = [t.to_dict() for t in self.transitions]
        return data

    @classmethod
    def from_dict(cls, data: JSONDict) -> FsmState:
        if data.get("terminal"):
            return cls(
                terminal=True,
                fail=data.get("fail", False),
                reason=data.get("reason"),
                output=data.get("output"),
            )
        return cls(
            tool=data.get("tool"),
            args=data.get("args", {}),
            agent=data.get("agent"),
            capability=data.get("capability"),
            prompt=data.get("prompt"),
            output_schema=data.get("output_schema"),
            transitions=tuple(FsmTransition.from_dict(t) for t in data["transitions"]),
        )


@dataclass(frozen=True, slots=True)
class FsmPolicy:
    """A task whose body is a finite-state machine (``fsm:``).

    The task runs the body of ``initial``, then of each state a transition
    picks, one attempt per step (each step's retries counted apart), until it
    enters a terminal state; at most ``max_steps`` bodies run (see
    ``docs/workflows.md``, State machines). The states are kept in the order
    the workflow declares them.
    """

    initial: str
    max_steps: int
    states: dict[str, FsmState]

    def to_dict(self) -> JSONDict:
        return {
            "initial": self.initial,
            "max_steps": self.max_steps,
            "states": {name: state.to_dict() for name, state in self.states.items()},
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> FsmPolicy:
        return cls(
            initial=data["initial"],
            max_steps=data["max_steps"],
            states={name: FsmState.from_dict(s) for name, s in data["states"].items()},
        )


#: What a task's compensation is named as a task of the run: ``<task>.compensate``
#: (a task id has no ``.``, so it names no task of the plan).
COMPENSATE_SUFFIX: Final = ".compensate"

#: What a task's failure does when it has failed for good (``on_failure``).
ON_FAILURE: Final = ("fail", "compensate")


@dataclass(frozen=True, slots=True)
class Compensation:
    """What undoes a task (its ``compensate:``): a tool call or an agent step.

    It runs only in a saga: when a task with ``on_failure: compensate`` has
    failed for good, each task that succeeded and has one is compensated, in
    the reverse order of their completion, each as a task of its own
    (:meth:`spec`, ``<task>.compensate``) whose attempts are recorded and
    replayed like any other (see ``docs/workflows.md``, Sagas).
    """

    tool: str | None = None
    args: JSONDict = field(default_factory=dict)
    agent: str | None = None
    capability: str | None = None
    prompt: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None

    def to_dict(self) -> JSONDict:
        return {
            "tool": self.tool,
            "args": self.args,
            "agent": self.agent,
            "capability": self.capability,
            "prompt": self.prompt,
            "retry": self.retry.to_dict(),
            "timeout": None if self.timeout is None else num(self.timeout),
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> Compensation:
        return cls(
            tool=data["tool"],
            args=data["args"],
            agent=data["agent"],
            capability=data["capability"],
            prompt=data["prompt"],
            retry=RetryPolicy(**data["retry"]),
            timeout=data["timeout"],
        )

    def spec(self, task: TaskSpec) -> TaskSpec:
        """The compensation of ``task`` as a task of the run (no needs: the saga orders it).

        It runs under the task's exec-profile grant: what undoes a task reaches
        what the task reached.
        """
        return TaskSpec(
            id=task.id + COMPENSATE_SUFFIX,
            tool=self.tool,
            args=self.args,
            agent=self.agent,
            capability=self.capability,
            prompt=self.prompt,
            retry=self.retry,
            timeout=self.timeout,
            profile=task.profile,
        )


#: What separates a sub-workflow's task ids from the id of the task that runs it
#: (``build/compile``): a character no task id written in a file may hold.
SCOPE_SEP: Final = "/"


@dataclass(frozen=True, slots=True)
class SubWorkflow:
    """A task that runs a sub-workflow (``workflow: path.yaml``), compiled inline.

    The sub-workflow's tasks are in the plan as ``<task>/<id>``; the task itself
    ends the sub-workflow: it needs them all, and its output is the
    sub-workflow's ``outputs:`` (its ``args``, rendered over its tasks). Inside,
    templates read ``inputs`` -- the declared inputs' ``defaults`` with ``with``
    over them (templates over the enclosing workflow, rendered when read) -- and
    ``tasks.<id>`` of the sub-workflow's own tasks (see
    :func:`nexus.engine.scopes.scoped_context`).

    Where the sub-workflow came from (a file, a document written in place) is
    not part of the plan: the same tasks are the same plan, as the workspace's
    path is not part of a plan's hash.

    Attributes:
        name: the sub-workflow's ``name``.
        inputs: the task's ``with`` (templates read in the enclosing workflow).
        defaults: the sub-workflow's declared inputs with their defaults.
    """

    name: str
    inputs: JSONDict = field(default_factory=dict)
    defaults: JSONDict = field(default_factory=dict)

    def to_dict(self) -> JSONDict:
        return {
            "name": self.name,
            "inputs": self.inputs,
            "defaults": self.defaults,
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> SubWorkflow:
        return cls(name=data["name"], inputs=data["inputs"], defaults=data["defaults"])


def scope_of(tid: str, spec: TaskSpec | None = None) -> str | None:
    """The sub-workflow whose ``tasks`` and ``inputs`` the templates of ``tid`` read.

    A task inside one (``build/compile``, an item ``build/each[2]``, a
    compensation ``build/pay.compensate``) reads its sub-workflow's (``build``);
    the task that runs a sub-workflow reads its own (its output is rendered over
    the sub-workflow's tasks); any other task reads the run's (None).
    """
    if spec is not None and spec.workflow is not None:
        return tid
    scope, sep, _ = tid.rpartition(SCOPE_SEP)
    return scope if sep else None


def enclosing(tid: str) -> list[str]:
    """The tasks running the sub-workflows ``tid`` is in, outermost first:
    ``a/b/c`` -> ``[a, a/b]``; ``[]`` for a task of the run's own workflow."""
    parts = tid.split(SCOPE_SEP)
    return [SCOPE_SEP.join(parts[:n]) for n in range(1, len(parts))]


#: The longest a barrier's ``wait.timeout`` may be (30 days, in seconds).
MAX_BARRIER_TIMEOUT: Final = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class BarrierPolicy:
    """A task that may start before all of its needs succeeded.

    ``of`` are the needs counted toward the ``quorum`` (the others, if any, must
    all succeed as usual): the task is ready once every required need and
    ``quorum`` of ``of`` have succeeded, and is skipped once that cannot happen.
    ``timeout`` (seconds) bounds the wait from the moment the engine sees the
    first of its needs end; then ``on_timeout`` decides: ``"fail"`` fails the
    task, ``"continue"`` starts it with the needs that succeeded so far (see
    ``docs/workflows.md``, Barriers).
    """

    of: tuple[str, ...]
    quorum: int
    timeout: float | None = None
    on_timeout: str = "fail"

    def to_dict(self) -> JSONDict:
        data: JSONDict = {"of": sorted(self.of), "quorum": self.quorum}
        if self.timeout is not None:
            data["timeout"] = num(self.timeout)
            data["on_timeout"] = self.on_timeout
        return data

    @classmethod
    def from_dict(cls, data: JSONDict) -> BarrierPolicy:
        return cls(
            of=tuple(data["of"]),
            quorum=data["quorum"],
            timeout=data.get("timeout"),
            on_timeout=data.get("on_timeout", "fail"),
        )


#: The case a ``switch`` picks when its value names no other.
DEFAULT_CASE: Final = "default"


def case_name(value: Any) -> str | None:
    """The case a ``switch`` value names; None when no case can name it (a list, say).

    A workflow file's case keys are read by the same rule, so ``true:`` (a
    YAML boolean) and ``"true":`` name the same case.

    Example:
        >>> [case_name(v) for v in (" bug ", True, None, 3, 3.0, 2.5, [1])]
        ['bug', 'true', 'null', '3', '3', None, None]
    """
    if isinstance(value, str):
        return value.strip()
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None


#: The template-context key under which the engine hands a scripted agent's attempt its
#: position in the agent's ``scripted`` lines (the scripted provider reads and removes it).
SCRIPT_POSITION = "_scripted_position"


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """An agent a plan may route tasks to."""

    name: str
    role: str = ""
    model: str = ""
    capabilities: tuple[str, ...] = ()
    instructions: str = ""
    scripted: tuple[str, ...] = ()
    max_concurrency: int = 0  # 0 = unlimited
    #: tools the agent may call in its loop (registry names)
    tools: tuple[str, ...] = ()
    #: model calls one attempt may make (tool-loop steps plus repairs)
    max_steps: int = 8
    #: models tried, in order, when the primary fails or its breaker is open
    fallbacks: tuple[str, ...] = ()
    #: a model per complexity tier (``small``, ``medium``, ``large``)
    tiers: JSONDict = field(default_factory=dict)
    max_tokens: int | None = None
    temperature: float | None = None
    #: the agent's budget (``Limits`` JSON form)
    budget: JSONDict | None = None
    #: the exec-profile grant for the tools the agent calls (a task's own wins)
    profile: JSONDict | None = None
    #: a function agent's code, ``module:name``, for a process that did not
    #: register it (``nexus replay``) to import; None when it is not importable
    entrypoint: str | None = None

    def to_dict(self) -> JSONDict:
        data: JSONDict = {
            "name": self.name,
            "role": self.role,
            "model": self.model,
            "capabilities": sorted(self.capabilities),
            "instructions": self.instructions,
            "scripted": list(self.scripted),
            "max_concurrency": self.max_concurrency,
        }
        # the later fields are written only when set, so older plans keep their hashes
        if self.tools:
            data["tools"] = list(self.tools)
        if self.max_steps != 8:
            data["max_steps"] = self.max_steps
        if self.fallbacks:
            data["fallbacks"] = list(self.fallbacks)
        if self.tiers:
            data["tiers"] = dict(self.tiers)
        if self.max_tokens is not None:
            data["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            data["temperature"] = num(self.temperature)
        if self.budget is not None:
            data["budget"] = self.budget
        if self.profile is not None:
            data["profile"] = self.profile
        if self.entrypoint is not None:
            data["entrypoint"] = self.entrypoint
        return data

    @classmethod
    def from_dict(cls, a: JSONDict) -> AgentSpec:
        return cls(
            name=a["name"],
            role=a["role"],
            model=a["model"],
            capabilities=tuple(a["capabilities"]),
            instructions=a["instructions"],
            scripted=tuple(a["scripted"]),
            max_concurrency=a["max_concurrency"],
            tools=tuple(a.get("tools", ())),
            max_steps=a.get("max_steps", 8),
            fallbacks=tuple(a.get("fallbacks", ())),
            tiers=a.get("tiers", {}),
            max_tokens=a.get("max_tokens"),
            temperature=a.get("temperature"),
            budget=a.get("budget"),
            profile=a.get("profile"),
            entrypoint=a.get("entrypoint"),
        )


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One node of the plan's DAG.

    Exactly one of ``tool`` (a tool call with ``args``) or an agent task
    (``agent`` or ``capability`` plus ``prompt``) is set.
    """

    id: str
    needs: tuple[str, ...] = ()
    tool: str | None = None
    args: JSONDict = field(default_factory=dict)
    agent: str | None = None
    capability: str | None = None
    prompt: str | None = None
    foreach: Any = None  # a list, or a template string that renders to a list
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    priority: int = 0
    approval: ApprovalPolicy | None = None
    #: the task's exec-profile grant (JSON form); tools narrow their own profile by it
    profile: JSONDict | None = None
    #: a JSON schema the agent's answer must match (structured output)
    output_schema: JSONDict | None = None
    #: model routing constraints (``RoutePolicy`` JSON form: tier, max_cost, max_latency_ms)
    routing: JSONDict | None = None
    #: the task's budget (``Limits`` JSON form)
    budget: JSONDict | None = None
    #: a condition (a template): when it gives a false value the task is skipped
    #: (``nexus.engine.conditions``)
    when: str | None = None
    #: a routing task (no body): the template whose value picks one of ``cases``
    switch: str | None = None
    #: a routing task's cases: case name -> the tasks it runs (``default``: no other matched)
    cases: dict[str, tuple[str, ...]] | None = None
    #: run the body again until a condition over its latest output holds
    loop: LoopPolicy | None = None
    #: its output's ``tasks`` extend the running plan
    extend: ExtendPolicy | None = None
    #: a behaviour tree: the task's body is this tree of conditions and actions
    #: (``nexus.domain.bt``); it has no ``tool``/``prompt`` of its own
    bt: BtSpec | None = None
    #: the resources the task writes (``nexus.domain.writes``): canonical paths and
    #: ``key:`` names, or templates the decider renders when an attempt starts
    writes: tuple[str, ...] = ()
    #: an ``agents:`` fan-out: the same prompt to each of these agents, one item each
    agents: tuple[str, ...] | None = None
    #: a fan-out's items combined into one answer (``vote``, ``majority``...)
    aggregate: AggregatePolicy | None = None
    #: what undoes the task when a saga compensates it (see :class:`Compensation`)
    compensate: Compensation | None = None
    #: what the task's failure (for good) does: ``fail`` (the run's ``fail_fast``
    #: decides), or ``compensate`` (a saga: see ``docs/workflows.md``)
    on_failure: str = "fail"
    #: a state machine as the task's body (then ``tool``/``agent``/``prompt`` are unset:
    #: each state has its own body)
    fsm: FsmPolicy | None = None
    #: start before every need succeeded: a quorum of some, and/or a deadline
    barrier: BarrierPolicy | None = None
    #: the task ends a sub-workflow compiled into the plan (see :class:`SubWorkflow`)
    workflow: SubWorkflow | None = None

    @property
    def is_tool(self) -> bool:
        return self.tool is not None

    @property
    def is_fan_out(self) -> bool:
        """Whether the task runs as items (``foreach`` or ``agents``)."""
        return self.foreach is not None or self.agents is not None

    @property
    def settled_needs(self) -> tuple[str, ...]:
        """The needs that have surely ended when the task starts: all of them, but for a
        barrier only those it requires (its counted needs when the quorum is all of
        them), and none when its ``wait`` may continue without them."""
        barrier = self.barrier
        if barrier is None:
            return self.needs
        if barrier.timeout is not None and barrier.on_timeout == "continue":
            return ()
        if barrier.quorum == len(barrier.of):
            return self.needs
        counted = set(barrier.of)
        return tuple(dep for dep in self.needs if dep not in counted)

    @property
    def is_switch(self) -> bool:
        """A routing task: it runs nothing, it picks which of its ``cases`` run."""
        return self.switch is not None

    def to_dict(self) -> JSONDict:
        data: JSONDict = {
            "id": self.id,
            "needs": sorted(self.needs),
            "tool": self.tool,
            "args": self.args,
            "agent": self.agent,
            "capability": self.capability,
            "prompt": self.prompt,
            "foreach": self.foreach,
            "retry": self.retry.to_dict(),
            "timeout": None if self.timeout is None else num(self.timeout),
            "priority": self.priority,
        }
        # the rest omitted when unset, so plans without them keep their hashes (written
        # as tests, not merged dicts: a plan of N tasks is written twice per run start)
        if self.approval:
            data["approval"] = self.approval.to_dict()
        if self.profile is not None:
            data["profile"] = self.profile
        if self.output_schema is not None:
            data["output_schema"] = self.output_schema
        if self.routing is not None:
            data["routing"] = self.routing
        if self.budget is not None:
            data["budget"] = self.budget
        if self.when is not None:
            data["when"] = self.when
        if self.switch is not None:
            data["switch"] = self.switch
        if self.cases is not None:
            data["cases"] = _cases_data(self.cases)
        if self.loop is not None:
            data["loop"] = self.loop.to_dict()
        if self.extend is not None:
            data["extend"] = self.extend.to_dict()
        if self.bt is not None:
            data["bt"] = self.bt.to_dict()
        if self.compensate is not None:
            data["compensate"] = self.compensate.to_dict()
        if self.on_failure != "fail":
            data["on_failure"] = self.on_failure
        if self.writes:
            data["writes"] = list(self.writes)
        if self.agents is not None:
            data["agents"] = list(self.agents)
        if self.aggregate is not None:
            data["aggregate"] = self.aggregate.to_dict()
        if self.fsm is not None:
            data["fsm"] = self.fsm.to_dict()
        if self.barrier is not None:
            data["barrier"] = self.barrier.to_dict()
        if self.workflow is not None:
            data["workflow"] = self.workflow.to_dict()
        return data

    @classmethod
    def from_dict(cls, t: JSONDict) -> TaskSpec:
        """Rebuild a task from :meth:`to_dict` output (as a plan or an extension records it)."""
        return cls(
            id=t["id"],
            needs=tuple(t["needs"]),
            tool=t["tool"],
            args=t["args"],
            agent=t["agent"],
            capability=t["capability"],
            prompt=t["prompt"],
            foreach=t["foreach"],
            retry=RetryPolicy(**t["retry"]),
            timeout=t["timeout"],
            priority=t["priority"],
            approval=ApprovalPolicy.from_dict(t["approval"]) if t.get("approval") else None,
            profile=t.get("profile"),
            output_schema=t.get("output_schema"),
            routing=t.get("routing"),
            budget=t.get("budget"),
            when=t.get("when"),
            switch=t.get("switch"),
            cases=_cases_of(t["cases"]) if "cases" in t else None,
            loop=LoopPolicy.from_dict(t["loop"]) if "loop" in t else None,
            extend=ExtendPolicy.from_dict(t["extend"]) if "extend" in t else None,
            compensate=Compensation.from_dict(t["compensate"]) if "compensate" in t else None,
            on_failure=t.get("on_failure", "fail"),
            bt=BtSpec.from_dict(t["bt"]) if "bt" in t else None,
            writes=tuple(t.get("writes", ())),
            agents=tuple(t["agents"]) if "agents" in t else None,
            aggregate=AggregatePolicy.from_dict(t["aggregate"]) if "aggregate" in t else None,
            fsm=FsmPolicy.from_dict(t["fsm"]) if "fsm" in t else None,
            barrier=BarrierPolicy.from_dict(t["barrier"]) if "barrier" in t else None,
            workflow=SubWorkflow.from_dict(t["workflow"]) if "workflow" in t else None,
        )


def fsm_body(spec: TaskSpec, state: str) -> TaskSpec:
    """An ``fsm`` task's spec with the body of its state ``state`` in place: what the
    attempts of that state run (a terminal state's has none)."""
    assert spec.fsm is not None
    body = spec.fsm.states[state]
    return replace(
        spec,
        tool=body.tool,
        args=body.args,
        agent=body.agent,
        capability=body.capability,
        prompt=body.prompt,
        output_schema=body.output_schema,
    )


#: A run's ``max_failure_rate`` is judged once at least this many of its tasks have
#: ended (succeeded or failed): one failure out of one is no rate.
FAILURE_RATE_MIN_ENDED: Final = 10

#: What a plan does about two tasks whose ``writes`` overlap: the engine runs them
#: one at a time (``serialize``), or the plan is refused unless ``needs`` orders them.
CONFLICT_MODES: Final = ("serialize", "reject")


@dataclass(frozen=True, slots=True)
class Plan:
    """A compiled, validated mission plan."""

    name: str
    tasks: dict[str, TaskSpec]
    agents: dict[str, AgentSpec] = field(default_factory=dict)
    inputs: JSONDict = field(default_factory=dict)
    workspace: str | None = None
    fail_fast: bool = True
    max_parallel: int = 16
    version: int = 1
    #: MCP servers the run connects to (the validated ``mcp_servers`` table)
    mcp_servers: JSONDict = field(default_factory=dict)
    #: the run's budget (``Limits`` JSON form)
    budget: JSONDict | None = None
    #: secret input name -> the environment variable that may give its value
    #: (or None); their values in ``inputs`` are never recorded
    secret_inputs: dict[str, str | None] = field(default_factory=dict)
    #: end the run once this many tasks have failed (``foreach`` items count, their
    #: parent does not): what is left is cancelled (see ``docs/workflows.md``)
    max_failures: int | None = None
    #: end the run once this share of its ended tasks (succeeded or failed) has
    #: failed, judged from :data:`FAILURE_RATE_MIN_ENDED` ended tasks on
    max_failure_rate: float | None = None
    #: how far tasks that extend the plan may grow it (None: the defaults)
    extensions: ExtensionLimits | None = None
    #: overlapping ``writes`` of tasks not ordered by ``needs``: one of :data:`CONFLICT_MODES`
    conflicts: str = "serialize"
    #: what the run may take from earlier runs instead of computing it again: one of
    #: :data:`CACHE_KINDS` (``plans``: an extending agent task's plan; see
    #: ``docs/planning.md``, The plan cache)
    cache: tuple[str, ...] = ()

    @property
    def extension_limits(self) -> ExtensionLimits:
        """The limits on plan extensions: the workflow's ``extensions:``, else the defaults."""
        return self.extensions if self.extensions is not None else _DEFAULT_LIMITS

    def __repr__(self) -> str:  # inputs left out: they may hold secrets
        return f"Plan(name={self.name!r}, tasks={len(self.tasks)})"

    def to_dict(self) -> JSONDict:
        """The plan as canonical data (what ``run.started`` records); no secret values."""
        inputs = self.inputs
        if self.secret_inputs:
            # every secret input, given yet or not (its value may come at start)
            inputs = {**inputs, **dict.fromkeys(self.secret_inputs, SECRET_PLACEHOLDER)}
        return {
            "version": self.version,
            "name": self.name,
            "inputs": inputs,
            "workspace": self.workspace,
            "fail_fast": self.fail_fast,
            "max_parallel": self.max_parallel,
            "agents": {name: agent.to_dict() for name, agent in self.agents.items()},
            "tasks": {tid: task.to_dict() for tid, task in self.tasks.items()},
            # omitted when empty, so plans without MCP servers keep their hashes
            **({"mcp_servers": self.mcp_servers} if self.mcp_servers else {}),
            **({"budget": self.budget} if self.budget is not None else {}),
            **({"secret_inputs": dict(self.secret_inputs)} if self.secret_inputs else {}),
            # omitted when unset, so plans without a failure threshold keep their hashes
            **({"max_failures": self.max_failures} if self.max_failures is not None else {}),
            **(
                {"max_failure_rate": num(self.max_failure_rate)}
                if self.max_failure_rate is not None
                else {}
            ),
            **({"extensions": self.extensions.to_dict()} if self.extensions is not None else {}),
            # omitted at its default, so plans without it keep their hashes
            **({"conflicts": self.conflicts} if self.conflicts != "serialize" else {}),
            **({"cache": list(self.cache)} if self.cache else {}),
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> Plan:
        """Rebuild a plan from :meth:`to_dict` output (as stored in events)."""
        agents = {name: AgentSpec.from_dict(a) for name, a in data["agents"].items()}
        tasks = {tid: TaskSpec.from_dict(t) for tid, t in data["tasks"].items()}
        return cls(
            name=data["name"],
            tasks=tasks,
            agents=agents,
            inputs=data["inputs"],
            workspace=data["workspace"],
            fail_fast=data["fail_fast"],
            max_parallel=data["max_parallel"],
            version=data["version"],
            mcp_servers=data.get("mcp_servers", {}),
            budget=data.get("budget"),
            secret_inputs=dict(data.get("secret_inputs") or {}),
            max_failures=data.get("max_failures"),
            max_failure_rate=data.get("max_failure_rate"),
            extensions=(
                ExtensionLimits.from_dict(data["extensions"]) if "extensions" in data else None
            ),
            conflicts=data.get("conflicts", "serialize"),
            cache=tuple(data.get("cache") or ()),
        )


_DEFAULT_LIMITS = ExtensionLimits()


def _cases_data(cases: dict[str, tuple[str, ...]]) -> JSONDict:
    """A switch's cases as the plan records them: each case's tasks sorted (a set)."""
    return {name: sorted(targets) for name, targets in cases.items()}


def _cases_of(data: JSONDict) -> dict[str, tuple[str, ...]]:
    return {name: tuple(targets) for name, targets in data.items()}


def num(value: float) -> float | int:
    """A float as canonical JSON writes it: integral values become ints."""
    as_float = float(value)
    if as_float.is_integer() and abs(as_float) <= 2**53 - 1:
        return int(as_float)
    return value


def plan_hash(plan: Plan) -> str:
    """SHA-256 of the canonical plan, independent of the order of unordered fields.

    The run's inputs are part of the plan (they change what runs); the
    workspace path is not (the same plan run from another checkout is the same
    plan).
    """
    return recorded_plan_hash(plan.to_dict())


def recorded_plan_hash(data: JSONDict) -> str:
    """:func:`plan_hash` of the plan ``data`` holds (:meth:`Plan.to_dict` output): for a
    caller that writes the plan anyway (a run's start records it), so it is not written
    twice."""
    return digest({key: value for key, value in data.items() if key != "workspace"})
