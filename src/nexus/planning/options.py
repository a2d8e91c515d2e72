"""Typed forms of a workflow file's tables, for the Python API.

Each value here is one mapping of a workflow file written as a frozen
dataclass: :class:`Input` (a declared input), :class:`Backoff`,
:class:`Approval`, :class:`Budget`, :class:`Profile`, :class:`Loop`,
:class:`Bt`, :class:`Aggregate`, :class:`Compensate`, :class:`Replan` and
:class:`Wait`. They
check nothing themselves: :meth:`to_dict` gives the mapping the file would hold
(only what was set), and :class:`~nexus.planning.builder.WorkflowBuilder`
compiles it with the workflow file's own checks, so a bad value is the same
:class:`~nexus.domain.errors.WorkflowError`, naming the task and the field,
whichever way it was written.

Example:
    >>> Budget(usd="5.00", wall="10m").to_dict()
    {'usd': '5.00', 'wall': '10m'}
    >>> Profile(network=["api.github.com:443"], cpu_seconds=5).to_dict()
    {'network': ['api.github.com:443'], 'cpu_seconds': 5}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from enum import Enum
from typing import Any, Final, Literal

__all__ = [
    "NO_DEFAULT",
    "Aggregate",
    "Approval",
    "Backoff",
    "Bt",
    "Budget",
    "Compensate",
    "Extend",
    "Extensions",
    "Fsm",
    "FsmState",
    "FsmTransition",
    "Input",
    "Loop",
    "Profile",
    "Replan",
    "Wait",
]


class _NoDefault(Enum):
    NO_DEFAULT = "NO_DEFAULT"

    def __repr__(self) -> str:
        return "NO_DEFAULT"


#: An :class:`Input` without a default: the run needs a value (``-i``, ``inputs=``, ``env``).
NO_DEFAULT: Final = _NoDefault.NO_DEFAULT


def _set(value: object) -> bool:
    return value is not None and value is not NO_DEFAULT


def _table(value: Any) -> dict[str, Any]:
    """A dataclass's fields that are set, as a workflow file writes them."""
    return {f.name: _written(v) for f in fields(value) if _set(v := getattr(value, f.name))}


def _written(value: object) -> object:
    """A value as a workflow file holds it: sequences as lists, money as text."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    return value


class _Table:
    """A table of a workflow file: :meth:`to_dict` writes the fields that are set."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """The mapping a workflow file would hold: the fields that are set, as written."""
        return _table(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class Input(_Table):
    """A declared input: ``inputs: {token: {secret: true, env: TOKEN}}``.

    An input given by its plain default (``inputs={"version": "1.0"}``) needs
    no declaration; declare one to make it secret, to take its value from the
    environment, or to describe it. Inputs named like secrets
    (``password``, ``*_TOKEN``...) and inputs with ``env`` are secret unless
    ``secret=False``; a secret input's value is never recorded (see
    docs/workflows.md, Inputs).

    Attributes:
        default: the value when none is given; :data:`NO_DEFAULT`: the run
            needs one.
        secret: True or False to say so; None: decided by the name and ``env``.
        env: the environment variable that gives a secret its value when no
            value is passed (also at resume).
        description: what the input is for.

    The builder writes it as a declaration mapping, with ``secret`` set by
    the name rule when neither ``secret`` nor ``env`` is given.

    Example:
        >>> Input(env="PGPASSWORD").to_dict()
        {'env': 'PGPASSWORD'}
        >>> Input(default="name", secret=False).to_dict()
        {'default': 'name', 'secret': False}
    """

    default: object = NO_DEFAULT
    secret: bool | None = None
    env: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff(_Table):
    """The wait before a retry: ``min(maximum, initial * multiplier**(n-1))`` s, half jittered.

    Fields left None keep the workflow's defaults (``Workflow(backoff=...)``),
    else 0.5, 2 and 30.
    """

    initial: float | None = None
    multiplier: float | None = None
    maximum: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Approval(_Table):
    """A task that waits for ``nexus approve RUN TASK`` (or a rejection) before it starts.

    ``approval=True`` is ``Approval()``: wait as long as it takes.

    Attributes:
        timeout: seconds to wait; None: no limit.
        on_timeout: ``"fail"`` fails the task with ``timeout``; ``"escalate"``
            records ``approval.escalated`` and keeps waiting.
    """

    timeout: float | None = None
    on_timeout: Literal["fail", "escalate"] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget(_Table):
    """Limits on a run, an agent or a task; unset dimensions are not limited (docs/budgets.md).

    Attributes:
        usd: money, exact: a ``Decimal``, a whole number or a decimal string
            (``"5.00"``), never a float.
        tokens: model tokens, input and output.
        tool_calls: tool calls, an agent's and tool tasks'.
        wall: the run's wall time: seconds, or a duration such as ``"30m"``.
    """

    usd: Decimal | int | str | None = None
    tokens: int | None = None
    tool_calls: int | None = None
    wall: float | str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile(_Table):
    """An exec-profile grant (``profile:``): it narrows what a tool may do, never widens it.

    The fields are those of :class:`~nexus.tools.profile.ExecProfile`
    (docs/sandbox.md); a field left None keeps the tool's own value. On an
    agent it applies to the tools the agent calls, unless the task has a
    profile of its own. MCP tools are denied unless ``mcp_tools`` grants
    them (``"time.get_current_time"``, or a pattern such as ``"time.*"``).
    """

    read_paths: Sequence[str] | None = None
    write_paths: Sequence[str] | None = None
    network: Literal["none"] | Sequence[str] | None = None
    cpu_seconds: int | None = None
    memory_mb: int | None = None
    wall_seconds: float | None = None
    max_processes: int | None = None
    max_output_bytes: int | None = None
    max_file_mb: int | None = None
    max_write_mb: int | None = None
    max_open_files: int | None = None
    env: Sequence[str] | None = None
    sandbox: Literal["bwrap", "rlimits"] | None = None
    mcp_tools: Sequence[str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Loop(_Table):
    """Run a task's body again until ``until`` holds: ``loop: {until, max_iterations}``.

    Each iteration is one attempt (with its own retries); ``until`` is judged
    on its output (docs/workflows.md, Loop).

    Attributes:
        until: a template over ``loop.output`` (the iteration's output) and
            ``loop.iteration`` (1, 2, ...), such as ``"{{ loop.output.done }}"``.
        max_iterations: the most iterations (1 to 1,000).
        on_max: when ``until`` is still false after the last one: ``"fail"``
            (the default) fails the task, ``"succeed"`` ends it with the last output.

    Example:
        >>> Loop(until="{{ loop.output.done }}", max_iterations=5).to_dict()
        {'until': '{{ loop.output.done }}', 'max_iterations': 5}
    """

    until: str
    max_iterations: int
    on_max: Literal["fail", "succeed"] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Extend(_Table):
    """A task whose answer adds tasks to the running plan: ``extend: {max_tasks}``
    (docs/planning.md).

    Attributes:
        max_tasks: the most tasks this one answer may add (default: what the
            run's :class:`Extensions` leaves).
        review: the added tasks wait until a person approves the extension
            (``nexus approve RUN TASK``).
        replan: when tasks it added failed, ask it this many times (at most)
            for a repaired plan, telling it what failed.

    Example:
        >>> Extend(max_tasks=10).to_dict()
        {'max_tasks': 10}
    """

    max_tasks: int | None = None
    review: bool | None = None
    replan: int | None = None


@dataclass(frozen=True, slots=True)
class Replan(_Table):
    """``on_failure: {replan: N}`` on a task that extends the plan: when tasks its
    extension added fail, ask it up to ``replan`` times for a repaired plan
    (docs/planning.md, Re-planning). ``on_failure="replan"`` asks once.

    Attributes:
        replan: how many times (1 to 10).

    Example:
        >>> Replan(3).to_dict()
        {'replan': 3}
    """

    replan: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Extensions(_Table):
    """How far a run's plan may grow: ``extensions: {max_tasks, max_depth}``
    (docs/planning.md).

    Attributes:
        max_tasks: the most tasks all extensions of a run may add (default 100).
        max_depth: how deep extensions nest: 1 (the default) lets only the
            workflow's own tasks extend the plan.

    Example:
        >>> Extensions(max_tasks=50).to_dict()
        {'max_tasks': 50}
    """

    max_tasks: int | None = None
    max_depth: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Bt(_Table):
    """A behaviour tree as a task's body: ``bt: {max_steps, root, output}``.

    Each action of the tree is one attempt of the task; each node that decides
    the flow is a ``bt.ticked`` event (docs/workflows.md, Behaviour trees).

    Attributes:
        root: the tree's root node, written as in a workflow file: a mapping
            with one of ``sequence``/``selector`` (a list of nodes),
            ``parallel`` (``{children, success, failure}``), ``condition`` (a
            template), ``action`` (``{tool, with}`` or ``{agent|capability,
            prompt}``), ``retry`` (``{times, child}``) or ``timeout``
            (``{seconds, child}``), and an optional ``name``.
        max_steps: the most leaves (conditions judged, actions run) it may
            tick (1 to 1,000).
        output: a template over ``bt.outputs`` for the task's output (default:
            the output of the last action that succeeded).

    Example:
        >>> Bt(root={"action": {"tool": "noop"}}, max_steps=1).to_dict()
        {'root': {'action': {'tool': 'noop'}}, 'max_steps': 1}
    """

    root: Mapping[str, Any]
    max_steps: int
    output: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Aggregate(_Table):
    """One answer from a fan-out's items: ``aggregate: {method, key, quorum}``.

    The items of a ``foreach`` (or of ``agents=[...]``, the same prompt to each
    agent) answer the same question; the task's output is the answer they
    agree on (docs/workflows.md, Aggregate).

    Attributes:
        method: ``"vote"`` (the most common answer; ties: the first given),
            ``"majority"`` (more than half of the answers, else the task fails),
            ``"consensus"`` (every answer alike, else it fails) or
            ``"first_success"`` (the first item to succeed; the others are cancelled).
        key: compare one field of each answer (a dotted path such as
            ``"verdict"``), not the whole answer.
        quorum: the fewest answers to decide on (default 1); fewer fail the task.

    Example:
        >>> Aggregate(method="majority", key="verdict").to_dict()
        {'method': 'majority', 'key': 'verdict'}
    """

    method: Literal["vote", "majority", "consensus", "first_success"]
    key: str | None = None
    quorum: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Compensate(_Table):
    """What undoes a task in a saga: ``compensate: {tool, with}`` or ``{agent, prompt}``.

    When a task with ``on_failure="compensate"`` fails for good, every task
    that succeeded and has one is compensated, the last to succeed first
    (docs/workflows.md, Sagas). Its templates see ``compensating.output``
    (the task's own output), ``compensating.task`` and ``compensating.failed``.

    Attributes:
        tool: a tool call's tool (a registry name; the builder takes a
            ``@nexus.tool`` function too).
        args: the tool's arguments (``with:``; templates allowed).
        agent: or the agent of an agent step (a name).
        capability: or the capability that routes it to an agent.
        prompt: what the agent step asks (a template).
        retries: retries after its first attempt (default: the workflow's).
        timeout: seconds per attempt (default: the workflow's).
        backoff: the wait between its attempts (default: the workflow's).

    Example:
        >>> Compensate(tool="shell", args={"cmd": "echo undo"}, retries=2).to_dict()
        {'tool': 'shell', 'with': {'cmd': 'echo undo'}, 'retries': 2}
    """

    tool: Any = None
    args: dict[str, Any] | None = None
    agent: str | None = None
    capability: str | None = None
    prompt: str | None = None
    retries: int | None = None
    timeout: float | None = None
    backoff: Backoff | None = None

    def to_dict(self) -> dict[str, Any]:
        """The mapping a workflow file would hold (``args`` as ``with``)."""
        table = _table(self)
        if "args" in table:
            table["with"] = table.pop("args")
        if self.backoff is not None:
            table["backoff"] = self.backoff.to_dict()
        return table


@dataclass(frozen=True, slots=True, kw_only=True)
class FsmTransition(_Table):
    """A way out of an fsm state: ``{to, when}``.

    Attributes:
        to: the state it goes to.
        when: a template over the state's output (``"{{ fsm.output.ok }}"``);
            None: the default, taken when no transition before it held (put it last).
    """

    to: str
    when: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FsmState(_Table):
    """One state of an :class:`Fsm`: a body and its transitions, or a terminal state.

    Attributes:
        tool: a state with a tool body: a registry name or a ``@nexus.tool`` function.
        args: the tool's arguments (``with:``; templates may read ``fsm``).
        agent: a state with an agent body: the agent (a name, a ``Workflow.agent``
            reference or a function agent).
        capability: or the capability that routes it.
        prompt: what the agent is asked.
        output_schema: the JSON schema its answer must match.
        transitions: a state with a body: where it goes, judged in order.
        terminal: entering it ends the task (no body, no transitions).
        fail: a terminal state that fails the task.
        reason: a failing terminal state's why (a template).
        output: a succeeding terminal state's output (a template; default:
            the last body's output).
    """

    tool: Any = None
    args: Mapping[str, Any] | None = None
    agent: Any = None
    capability: str | None = None
    prompt: str | None = None
    output_schema: Mapping[str, Any] | None = None
    transitions: Sequence[FsmTransition] | None = None
    terminal: bool | None = None
    fail: bool | None = None
    reason: str | None = None
    output: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The state as a workflow file writes it (``args`` as ``with``)."""
        data = _table(self)
        if "args" in data:
            data["with"] = dict(data.pop("args"))
        if "output_schema" in data:
            data["output_schema"] = dict(data["output_schema"])
        if self.transitions is not None:
            data["transitions"] = [t.to_dict() for t in self.transitions]
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class Fsm(_Table):
    """A task whose body is a finite-state machine: ``fsm: {initial, max_steps, states}``.

    Each state with a body runs as one attempt; its transitions pick the next
    state, until a terminal one ends the task (docs/workflows.md, State machines).

    Attributes:
        initial: the state it starts in (one with a body).
        max_steps: the most bodies it runs (1 to 1,000).
        states: each state by name (:class:`FsmState`).

    Example:
        >>> Fsm(initial="a", max_steps=3, states={
        ...     "a": FsmState(tool="noop", transitions=[FsmTransition(to="end")]),
        ...     "end": FsmState(terminal=True),
        ... }).to_dict()["states"]["a"]
        {'tool': 'noop', 'transitions': [{'to': 'end'}]}
    """

    initial: str
    max_steps: int
    states: Mapping[str, FsmState]

    def to_dict(self) -> dict[str, Any]:
        """The machine as a workflow file writes it."""
        return {
            "initial": self.initial,
            "max_steps": self.max_steps,
            "states": {name: state.to_dict() for name, state in self.states.items()},
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Wait(_Table):
    """How long a task waits on its needs: ``wait: {timeout, on_timeout}``.

    The deadline is set when the first of its needs ends (docs/workflows.md,
    Barriers).

    Attributes:
        timeout: seconds, or a duration such as ``"30s"`` or ``"10m"`` (at most 30 days).
        on_timeout: when the needs are not met by then: ``"fail"`` (the default)
            fails the task, ``"continue"`` starts it with the needs that succeeded.

    Example:
        >>> Wait(timeout="30s", on_timeout="continue").to_dict()
        {'timeout': '30s', 'on_timeout': 'continue'}
    """

    timeout: float | str
    on_timeout: Literal["fail", "continue"] | None = None
