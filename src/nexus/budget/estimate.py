"""Preflight cost estimate of a plan: what a run will roughly spend, and how we guessed.

``nexus plan FILE --estimate`` prints this, and the preflight gate compares it
with the run's budget before anything starts. The estimate is deliberately
simple and says so in :attr:`Estimate.method`:

* each agent task makes **one model call per instance**: a literal ``foreach``
  list counts its items; a template ``foreach`` is unknown until run time and
  counts as one instance;
* the agent is the named one, or for a ``capability`` the first capable agent
  by name (what the router picks when no agent is busy);
* prompt tokens are :func:`~nexus.gateway.pricing.estimate_tokens` (four
  characters a token) of the agent's instructions and the task prompt *as
  written* -- templates are not rendered, so outputs they pull in are not
  counted -- plus :data:`MESSAGE_OVERHEAD_TOKENS` per message;
* completion tokens are the agent's ``max_tokens``, else
  :data:`DEFAULT_COMPLETION_TOKENS` per call unless the caller says otherwise:
  the very allowance a call reserves before it runs
  (:func:`nexus.budget.spend.completion_allowance`; both count a message with
  :func:`~nexus.budget.spend.message_tokens`), so a budget the estimate fits
  is not spent on reservations the estimate left out;
* ``scripted:`` models cost exactly 0 and their tokens are counted the way the
  scripted provider counts them (words of the prompt, and of the longest
  scripted line); ``function:`` agents make no model call;
* tool-loop steps after the first call, retries, fallbacks and cache hits are
  not counted;
* a tool task is one tool call per instance.

Cost is :func:`~nexus.gateway.pricing.cost_of` on the summed usage, so it is exact
for the guessed tokens. A model the pricing table does not know is listed in
:attr:`Estimate.unpriced` and left out of the total. :func:`compare` measures an
estimate against what a run actually spent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from nexus.budget.spend import (
    MESSAGE_OVERHEAD_TOKENS,
    RESERVED_COMPLETION,
    completion_allowance,
    message_tokens,
)
from nexus.domain.budget import (
    DIMENSIONS,
    BudgetLimitExceeded,
    Limits,
    Scope,
    Spend,
    describe,
    exact_add,
    exactly,
    money_text,
)
from nexus.domain.errors import UserError
from nexus.domain.plan import AgentSpec, Plan, TaskSpec, fsm_body
from nexus.gateway.base import Usage
from nexus.gateway.pricing import PricingTable, cost_of, default_pricing
from nexus.templating import is_template

__all__ = [
    "DEFAULT_COMPLETION_TOKENS",
    "MESSAGE_OVERHEAD_TOKENS",
    "Estimate",
    "TaskEstimate",
    "compare",
    "estimate_plan",
    "preflight_check",
]

#: Completion tokens assumed per call when neither the agent (``max_tokens``) nor the
#: caller gives a figure: the allowance a call reserves before it runs, the same constant.
DEFAULT_COMPLETION_TOKENS = RESERVED_COMPLETION


@dataclass(frozen=True, slots=True)
class TaskEstimate:
    """One task's share of an estimate (all instances of it together).

    ``usd`` is None when the model is unpriced; ``exact`` is true when the cost
    is certain (a scripted model, a function agent, a tool task).
    """

    task: str
    agent: str | None
    model: str | None
    instances: int
    calls: int
    prompt_tokens: int
    completion_tokens: int
    usd: Decimal | None
    tool_calls: int = 0
    exact: bool = False
    notes: tuple[str, ...] = ()

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def spend(self) -> Spend:
        """As a budget amount (an unpriced model counts $0)."""
        return Spend(self.usd or Decimal(0), self.tokens, self.tool_calls)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "agent": self.agent,
            "model": self.model,
            "instances": self.instances,
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens": self.tokens,
            "usd": None if self.usd is None else money_text(self.usd),
            "tool_calls": self.tool_calls,
            "exact": self.exact,
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class Estimate:
    """A plan's estimated spend, per task, with the method in words."""

    usd: Decimal
    tokens: int
    calls: int
    per_task: dict[str, TaskEstimate]
    unpriced: tuple[str, ...]
    method: str
    tool_calls: int = 0
    by_agent: dict[str, Spend] = field(default_factory=dict)

    @property
    def spend(self) -> Spend:
        return Spend(self.usd, self.tokens, self.tool_calls)

    def to_dict(self) -> dict[str, Any]:
        return {
            "usd": money_text(self.usd),
            "tokens": self.tokens,
            "calls": self.calls,
            "tool_calls": self.tool_calls,
            "per_task": {tid: t.to_dict() for tid, t in self.per_task.items()},
            "by_agent": {name: s.to_dict() for name, s in self.by_agent.items()},
            "unpriced": list(self.unpriced),
            "method": self.method,
        }


def _resolve(task: TaskSpec, agents: Mapping[str, AgentSpec]) -> AgentSpec:
    if task.agent is not None:
        found = agents.get(task.agent)
        if found is None:
            raise UserError(f"task '{task.id}': unknown agent '{task.agent}'")
        return found
    capable = sorted(n for n, a in agents.items() if task.capability in a.capabilities)
    if not capable:
        raise UserError(f"task '{task.id}': no agent has capability '{task.capability}'")
    return agents[capable[0]]


def _instances(task: TaskSpec) -> tuple[int, str | None]:
    """How many times the task runs, and a note when that is a guess."""
    if task.foreach is None:
        return 1, None
    if isinstance(task.foreach, list | tuple):
        return len(task.foreach), None
    if isinstance(task.foreach, str) and is_template(task.foreach):
        return 1, "foreach is a template, unknown before the run: counted as 1 instance"
    return 1, f"foreach {task.foreach!r} is not a list: counted as 1 instance"


def _nothing_run(task: TaskSpec) -> TaskEstimate:
    """A ``switch`` task: it picks a case and runs nothing."""
    return _nothing_spent(
        task.id, 1, notes=("a switch: picks a case, runs nothing (every case's tasks are counted)",)
    )


def _agent_task(
    task: TaskSpec,
    agent: AgentSpec,
    instances: int,
    completion: int,
    pricing: PricingTable,
    notes: list[str],
) -> TaskEstimate:
    provider = agent.model.partition(":")[0]
    texts = [t for t in (agent.instructions, task.prompt or "") if t] or [""]
    if provider == "function":
        notes.append("function agent: no model call")
        return _nothing_spent(
            task.id, instances, agent=agent.name, model=agent.model, notes=tuple(notes)
        )
    if provider == "scripted":
        prompt = sum(len(t.split()) for t in texts)
        answer = max((len(line.split()) for line in agent.scripted), default=0)
        words = Usage(prompt_tokens=prompt * instances, completion_tokens=answer * instances)
        priced = pricing.price_for(agent.model) is not None
        return TaskEstimate(
            task=task.id,
            agent=agent.name,
            model=agent.model,
            instances=instances,
            calls=instances,
            prompt_tokens=words.prompt_tokens,
            completion_tokens=words.completion_tokens,
            usd=cost_of(words, agent.model, pricing) if priced else Decimal(0),
            exact=True,
            notes=tuple(notes),
        )
    prompt = sum(message_tokens(t) for t in texts)
    if agent.max_tokens:
        completion = completion_allowance(agent.max_tokens)
        notes.append(f"answer counted at the agent's max_tokens ({agent.max_tokens})")
    if agent.tools:
        notes.append("tool loop: counted as one model call; each tool step adds one")
    if any(is_template(t) for t in texts):
        notes.append("prompt counted as written: values templates pull in are not counted")
    usage = Usage(prompt_tokens=prompt * instances, completion_tokens=completion * instances)
    usd: Decimal | None = None
    if pricing.price_for(agent.model) is None:
        notes.append(f"no price for '{agent.model}': cost not counted")
    else:
        usd = cost_of(usage, agent.model, pricing)
    return TaskEstimate(
        task=task.id,
        agent=agent.name,
        model=agent.model,
        instances=instances,
        calls=instances,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        usd=usd,
        notes=tuple(notes),
    )


def _bt_task(
    task: TaskSpec,
    plan: Plan,
    instances: int,
    completion: int,
    pricing: PricingTable,
    notes: list[str],
) -> TaskEstimate:
    """A ``bt`` task: the most it can run is ``max_steps`` leaves, each counted as its
    costliest action (a tool call when every action is a tool)."""
    tree = task.bt
    assert tree is not None
    runs = instances * tree.max_steps
    notes.append(
        f"a behaviour tree: counted at max_steps ({tree.max_steps}) runs of its costliest "
        "action per instance"
    )
    actions = (
        (
            node.id,
            replace(
                task, agent=node.agent, capability=node.capability, prompt=node.prompt, bt=None
            ),
        )
        for node in tree.root.walk()
        if node.kind == "action" and node.tool is None
    )
    found = _costliest(actions, plan, runs, completion, pricing)
    if found is not None:
        return replace(found[1], notes=tuple(notes))
    return _nothing_spent(task.id, instances, tool_calls=runs, notes=tuple(notes))


def _nothing_spent(
    task: str,
    instances: int,
    *,
    tool_calls: int = 0,
    agent: str | None = None,
    model: str | None = None,
    notes: tuple[str, ...],
) -> TaskEstimate:
    """A task whose runs cost no model call (tools, a switch, a free model): exact."""
    return TaskEstimate(
        task=task,
        agent=agent,
        model=model,
        instances=instances,
        calls=0,
        prompt_tokens=0,
        completion_tokens=0,
        usd=Decimal(0),
        tool_calls=tool_calls,
        exact=True,
        notes=notes,
    )


def _fan_out(
    task: TaskSpec,
    agents: Mapping[str, AgentSpec],
    instances: int,
    completion: int,
    pricing: PricingTable,
    notes: list[str],
) -> tuple[TaskEstimate, list[TaskEstimate]]:
    """An ``agents:`` fan-out: one instance on each agent it lists, summed; and each
    agent's share (for the per-agent totals).

    ``instances`` is per agent (more than 1 for a loop). The estimate names no
    single agent; its notes say what each one adds.
    """
    shares: list[TaskEstimate] = []
    for name in task.agents or ():
        agent = agents.get(name)
        if agent is None:
            raise UserError(f"task '{task.id}': unknown agent '{name}'")
        shares.append(_agent_task(task, agent, instances, completion, pricing, []))
    priced = [s.usd for s in shares]
    usd = (
        None
        if any(u is None for u in priced)
        else sum((u or Decimal(0) for u in priced), Decimal(0))
    )
    models = {s.model for s in shares}
    each = ", ".join(f"{s.agent} {s.calls} calls" for s in shares)
    whole = TaskEstimate(
        task=task.id,
        agent=None,
        model=models.pop() if len(models) == 1 else None,
        instances=instances * len(shares),
        calls=sum(s.calls for s in shares),
        prompt_tokens=sum(s.prompt_tokens for s in shares),
        completion_tokens=sum(s.completion_tokens for s in shares),
        usd=usd,
        exact=all(s.exact for s in shares),
        notes=(*notes, f"a fan-out over {len(shares)} agents: {each}"),
    )
    return whole, shares


def _body_estimate(
    task: TaskSpec,
    plan: Plan,
    instances: int,
    completion: int,
    pricing: PricingTable,
    notes: list[str],
) -> TaskEstimate:
    """A tool or agent body run ``instances`` times."""
    if task.is_tool:
        return _nothing_spent(task.id, instances, tool_calls=instances, notes=tuple(notes))
    agent = _resolve(task, plan.agents)
    return _agent_task(task, agent, instances, completion, pricing, notes)


def _machine(
    task: TaskSpec,
    plan: Plan,
    instances: int,
    completion: int,
    pricing: PricingTable,
    notes: list[str],
) -> TaskEstimate:
    """An ``fsm`` task: the most it can spend, ``max_steps`` runs of its costliest state."""
    fsm = task.fsm
    assert fsm is not None
    bodies = (
        (name, fsm_body(task, name)) for name, state in fsm.states.items() if not state.terminal
    )
    found = _costliest(bodies, plan, instances * fsm.max_steps, completion, pricing)
    assert found is not None  # a compiled fsm has a state with a body
    name, costliest = found
    notes.append(
        f"an fsm: counted at max_steps ({fsm.max_steps}) runs of its costliest state ({name!r})"
    )
    return replace(costliest, notes=tuple([*notes, *costliest.notes]))


def _costliest(
    bodies: Iterable[tuple[str, TaskSpec]],
    plan: Plan,
    runs: int,
    completion: int,
    pricing: PricingTable,
) -> tuple[str, TaskEstimate] | None:
    """The costliest of named bodies (a tree's actions, a machine's states), each counted
    at ``runs`` runs: the most dollars, then tokens, then tool calls; the first of equals.
    None when there is no body."""
    best: tuple[tuple[Decimal, int, int], str, TaskEstimate] | None = None
    for name, body in bodies:
        guess = _body_estimate(body, plan, runs, completion, pricing, [])
        key = (guess.usd or Decimal(0), guess.tokens, guess.tool_calls)
        if best is None or key > best[0]:
            best = (key, name, guess)
    return None if best is None else (best[1], best[2])


def _guessed(task: TaskSpec, agents: Mapping[str, AgentSpec]) -> bool:
    """True when a template makes the task's instance count or prompt length unknown."""
    texts = [task.foreach if isinstance(task.foreach, str) else "", task.prompt or ""]
    if task.bt is not None:
        return any(n.prompt is not None and is_template(n.prompt) for n in task.bt.root.walk())
    if task.fsm is not None:
        texts.extend(s.prompt or s.output or s.reason or "" for s in task.fsm.states.values())
        return any(is_template(t) for t in texts)
    if task.agents is not None:
        texts.extend(agents[name].instructions for name in task.agents if name in agents)
    elif not task.is_tool and not task.is_switch:
        texts.append(_resolve(task, agents).instructions)
    return any(is_template(t) for t in texts)


def estimate_plan(
    plan: Plan,
    *,
    pricing: PricingTable | None = None,
    completion_tokens: int | None = None,
) -> Estimate:
    """Estimate what running ``plan`` will spend, before it runs.

    Args:
        plan: the compiled plan.
        pricing: prices to use (default: the table shipped with Nexus).
        completion_tokens: completion tokens assumed per model call
            (default :data:`DEFAULT_COMPLETION_TOKENS`).

    Returns:
        The totals, each task's share, unpriced models, and the method in words.

    Raises:
        UserError: a task names an unknown agent or a capability no agent has.

    Example:
        >>> from nexus.domain.plan import AgentSpec, Plan, TaskSpec
        >>> plan = Plan("demo", {"t": TaskSpec("t", agent="a", prompt="hi")},
        ...             {"a": AgentSpec("a", model="openai:gpt-4.1-mini")})
        >>> estimate_plan(plan, completion_tokens=100).usd
        Decimal('0.00016200')
    """
    table = pricing or default_pricing()
    completion = DEFAULT_COMPLETION_TOKENS if completion_tokens is None else completion_tokens
    if completion < 0:
        raise UserError(f"completion_tokens must be >= 0, not {completion}")
    per_task: dict[str, TaskEstimate] = {}
    fan_out_shares: list[TaskEstimate] = []  # each agent's part of an ``agents:`` fan-out
    for tid in sorted(plan.tasks):
        task = plan.tasks[tid]
        instances, guess = _instances(task)
        notes = [guess] if guess else []
        if task.loop is not None:  # the most it can run: every iteration
            instances *= task.loop.max_iterations
            notes.append(
                f"a loop: counted at max_iterations ({task.loop.max_iterations}) per instance"
            )
        if task.compensate is not None:  # a failure's cost, not the plan's: left out
            notes.append("its compensate is not counted: it runs only if a saga undoes the task")
        if task.is_switch:
            per_task[tid] = _nothing_run(task)
            continue
        if task.bt is not None:
            per_task[tid] = _bt_task(task, plan, instances, completion, table, notes)
            continue
        if task.fsm is not None:
            per_task[tid] = _machine(task, plan, instances, completion, table, notes)
            continue
        if task.is_tool:
            per_task[tid] = _nothing_spent(tid, instances, tool_calls=instances, notes=tuple(notes))
            continue
        if task.agents is not None:
            per_task[tid], shares = _fan_out(task, plan.agents, instances, completion, table, notes)
            fan_out_shares.extend(shares)
            continue
        agent = _resolve(task, plan.agents)
        per_task[tid] = _agent_task(task, agent, instances, completion, table, notes)

    by_agent: dict[str, Spend] = {}
    for t in (*per_task.values(), *fan_out_shares):
        if t.agent is not None:
            by_agent[t.agent] = by_agent.get(t.agent, Spend()) + t.spend
    total = _total(per_task.values())
    unpriced = tuple(
        sorted(
            {t.model for t in (*per_task.values(), *fan_out_shares) if t.usd is None and t.model}
        )
    )
    templated = [tid for tid in per_task if _guessed(plan.tasks[tid], plan.agents)]
    return Estimate(
        usd=total.usd,
        tokens=total.tokens,
        calls=sum(t.calls for t in per_task.values()),
        per_task=per_task,
        unpriced=unpriced,
        method=_method(table, completion, completion_tokens is None, templated, unpriced),
        tool_calls=total.tool_calls,
        by_agent=dict(sorted(by_agent.items())),
    )


def _total(estimates: Iterable[TaskEstimate]) -> Spend:
    """The sum of the estimates' :attr:`~TaskEstimate.spend` (an unpriced model counts
    $0), added as :class:`Spend` adds, without two ``Spend`` objects per task: a plan of
    N tool tasks sums N estimates at every run start."""
    usd, tokens, tool_calls = Decimal(0), 0, 0
    for t in estimates:
        usd = exact_add(usd, t.usd or _ZERO)
        tokens += t.prompt_tokens + t.completion_tokens
        tool_calls += t.tool_calls
    return Spend(usd, tokens, tool_calls)


_ZERO = Decimal(0)


def _method(
    table: PricingTable,
    completion: int,
    default: bool,
    templated: list[str],
    unpriced: tuple[str, ...],
) -> str:
    source = "the default" if default else "the figure given"
    parts = [
        "One model call per agent-task instance; a literal foreach list counts its items and "
        "a template foreach counts as 1 instance.",
        "The agent is the named one, or the first capable agent by name.",
        f"Prompt tokens are the characters of the agent's instructions and the task prompt as "
        f"written, divided by 4 and rounded up, plus {MESSAGE_OVERHEAD_TOKENS} per message; "
        f"completion tokens are {completion} per call ({source}), or the agent's max_tokens.",
        "Scripted models' tokens are counted as words, as the scripted provider counts them, "
        "and priced by the table ($0 unless it prices them); function agents make no model "
        "call; a tool task is one tool call per instance.",
        f"Prices: the {table.currency} pricing table"
        + (f" as of {table.as_of}." if table.as_of else "."),
        "Not counted: tool-loop steps after the first call, retries, fallbacks and cache hits.",
    ]
    if templated:
        parts.append(
            "Guessed from templates (the real count or length is known only at run time): "
            + ", ".join(templated)
            + "."
        )
    if unpriced:
        parts.append("No price, left out of the cost: " + ", ".join(unpriced) + ".")
    return " ".join(parts)


def preflight_check(
    estimate: Estimate, budgets: Mapping[Scope, Limits]
) -> list[BudgetLimitExceeded]:
    """The budgets ``estimate`` exceeds, as errors ready to report (empty: it fits).

    A ``run`` or ``tenant`` scope is compared with the whole estimate, an
    ``agent`` scope with that agent's share, a ``task`` scope with that task's.
    Wall time cannot be estimated and is not compared.
    """
    found: list[BudgetLimitExceeded] = []
    for scope, limits in budgets.items():
        if scope.kind == "agent":
            spend = estimate.by_agent.get(scope.key, Spend())
        elif scope.kind == "task":
            share = estimate.per_task.get(scope.key)
            spend = Spend() if share is None else share.spend
        else:
            spend = estimate.spend
        for dimension in DIMENSIONS:
            limit = limits.get(dimension)
            asked = spend.get(dimension)
            if limit is None or asked <= limit:
                continue
            message = (
                f"budget exceeded: the preflight estimate for {scope.label} is "
                f"{describe(dimension, asked)}, over its limit {describe(dimension, limit)}"
            )
            found.append(
                BudgetLimitExceeded(
                    message, scope=scope, dimension=dimension, limit=limit, spent=0, asked=asked
                )
            )
    return found


def compare(estimate_usd: Decimal, actual_usd: Decimal) -> dict[str, Any]:
    """How far an estimate was from what a run spent.

    Returns:
        ``estimate``, ``actual``, ``error`` (estimate - actual, signed: positive
        means overestimated) and ``abs_error`` as exact money text, and
        ``relative_error`` = ``abs_error / actual`` as a float (0.0 when both are
        zero, None when only ``actual`` is zero).
    """
    with exactly():
        error = estimate_usd - actual_usd
    relative: float | None
    if actual_usd == 0:
        relative = 0.0 if estimate_usd == 0 else None
    else:
        relative = float(abs(error) / actual_usd)
    return {
        "estimate": money_text(estimate_usd),
        "actual": money_text(actual_usd),
        "error": money_text(error),
        "abs_error": money_text(abs(error)),
        "relative_error": relative,
    }
