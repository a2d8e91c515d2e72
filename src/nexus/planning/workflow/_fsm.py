"""``fsm:`` in a workflow file: a finite-state machine as a task's body.

An fsm task has no body of its own: each state that is not ``terminal`` has
one (a tool with ``with``, or an agent's ``prompt``), checked as a task's body
is, with its problems named ``fsm.states.<state>.<field>``. The checks, each
problem naming the task and the field:

* the task itself has no ``tool``, ``with``, ``agent``, ``capability``,
  ``prompt`` or ``output_schema`` (they belong in its states), no ``loop``,
  no ``switch``/``cases``, no ``extend`` and no ``bt``;
* state names are ids (``fsm.outputs.<state>`` reads them); ``initial`` names
  a state that has a body;
* a state with a body has transitions, each to a known state; a ``when`` is
  a template (a fixed value would always or never hold: leave it out for the
  default), and nothing follows a transition without one (it would never be
  taken); a state with a body has no ``fail``, ``reason`` or ``output``;
* a terminal state has no body and no transitions; ``reason`` only with
  ``fail: true``, ``output`` only without it;
* every state can be reached from ``initial``, and from every state a
  terminal one can be reached (else the machine could only run into
  ``max_steps``): both are errors, not warnings, since a state no path uses
  is most often a typo in a ``to``.

The templates of the states (bodies, ``when``, ``output``, ``reason``) read
what the task's body may read, plus ``fsm`` (:data:`._names.FSM_KEYS`).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from nexus.domain.plan import FsmPolicy, FsmState, FsmTransition
from nexus.planning.workflow._body import BodyCompiler, check_body, check_template
from nexus.planning.workflow._control import reads_loop
from nexus.planning.workflow._errors import suggest
from nexus.planning.workflow._schema import ID_PATTERN, _Fsm, _FsmState, _Task
from nexus.templating import is_template

__all__ = ["compile_fsm"]


class TaskCompiler(BodyCompiler, Protocol):
    """What of :class:`._tasks.TaskCompiler` a state machine's checks use (a
    protocol: ``_tasks`` imports this module, not the other way round)."""

    def output_schema(self, tid: str, spec: _Task) -> dict[str, Any] | None: ...


#: A task's fields that an fsm task keeps in its states (or cannot have at all).
_NOT_WITH_FSM = (
    ("tool", "a state's body"),
    ("args", "a state's body"),
    ("agent", "a state's body"),
    ("capability", "a state's body"),
    ("prompt", "a state's body"),
    ("output_schema", "a state's body"),
    ("loop", None),
    ("switch", None),
    ("cases", None),
    ("extend", None),
    ("bt", None),
    ("agents", "a state's body (`agent` or `capability`)"),
)
_BODY = ("tool", "args", "agent", "capability", "prompt", "output_schema")


def compile_fsm(
    compiler: TaskCompiler, tid: str, spec: _Task, profile_ok: bool
) -> FsmPolicy | None:
    """The task's ``fsm`` as the plan holds it (None: a problem, reported)."""
    fsm = spec.fsm
    assert fsm is not None
    report = compiler.report
    found = len(report.problems)
    for key, where in _NOT_WITH_FSM:
        if getattr(spec, key) is not None:
            name = "with" if key == "args" else key
            if where is None:
                report.add(f"an fsm task cannot have `{name}`", task=tid, field=name)
            else:
                report.add(
                    f"an fsm task's body is in its states: move `{name}` into {where}",
                    task=tid,
                    field=name,
                )
    _check_shape(compiler, tid, fsm)
    states: dict[str, FsmState] = {}
    for name, state in fsm.states.items():
        built = _state(compiler, tid, spec, name, state, profile_ok)
        if built is not None:
            states[name] = built
    if len(report.problems) > found:
        return None
    _check_paths(compiler, tid, fsm)
    if len(report.problems) > found:
        return None
    return FsmPolicy(initial=fsm.initial, max_steps=fsm.max_steps, states=states)


def _check_shape(compiler: TaskCompiler, tid: str, fsm: _Fsm) -> None:
    """State names, ``initial``, and each transition's ``to``."""
    report = compiler.report
    for name in fsm.states:
        if re.fullmatch(ID_PATTERN, name) is None:
            report.add(
                f"invalid state name {name!r}: it must match {ID_PATTERN}",
                task=tid,
                field="fsm.states",
            )
    initial = fsm.states.get(fsm.initial)
    if initial is None:
        report.add(
            f"no state {fsm.initial!r} ({suggest(fsm.initial, fsm.states, 'states')})",
            task=tid,
            field="fsm.initial",
        )
    elif initial.terminal:
        report.add(
            f"state {fsm.initial!r} is terminal: the machine would run nothing; "
            "start in a state with a body",
            task=tid,
            field="fsm.initial",
        )
    for name, state in fsm.states.items():
        for index, transition in enumerate(state.transitions):
            if transition.to not in fsm.states:
                report.add(
                    f"no state {transition.to!r} ({suggest(transition.to, fsm.states, 'states')})",
                    task=tid,
                    field=f"fsm.states.{name}.transitions[{index}].to",
                )


def _state(
    compiler: TaskCompiler,
    tid: str,
    spec: _Task,
    name: str,
    state: _FsmState,
    profile_ok: bool,
) -> FsmState | None:
    """One state as the plan holds it (None: a problem, reported)."""
    report = compiler.report
    found = len(report.problems)
    at = f"fsm.states.{name}"
    if state.terminal:
        for key in (*_BODY, "transitions"):
            value = getattr(state, key)
            if value is not None and value != []:
                field = "with" if key == "args" else key
                report.add(
                    "a terminal state runs nothing and goes nowhere: remove it",
                    task=tid,
                    field=f"{at}.{field}",
                )
        if state.reason is not None and not state.fail:
            report.add(
                "`reason` says why a `fail: true` state fails the task; this one succeeds "
                "(give it an `output`, or `fail: true`)",
                task=tid,
                field=f"{at}.reason",
            )
        if state.output is not None and state.fail:
            report.add(
                "a `fail: true` state fails the task, which has no output: give it a "
                "`reason` instead",
                task=tid,
                field=f"{at}.output",
            )
        for field, source in (("output", state.output), ("reason", state.reason)):
            if source is not None:
                _template(compiler, tid, spec, source, f"{at}.{field}")
        if len(report.problems) > found:
            return None
        return FsmState(terminal=True, fail=state.fail, reason=state.reason, output=state.output)
    for key in ("fail", "reason", "output"):
        if getattr(state, key) not in (None, False):
            report.add(
                f"`{key}` belongs to a terminal state; this state has a body "
                "(add `terminal: true` and remove its body, or remove it)",
                task=tid,
                field=f"{at}.{key}",
            )
    transitions = _transitions(compiler, tid, spec, name, state)
    args = _body(compiler, tid, spec, name, state, profile_ok)
    if len(report.problems) > found or args is None:
        return None
    schema = None if state.output_schema is None else dict(state.output_schema)
    return FsmState(
        tool=state.tool,
        args=args,
        agent=state.agent,
        capability=state.capability,
        prompt=state.prompt,
        output_schema=schema,
        transitions=transitions,
    )


def _transitions(
    compiler: TaskCompiler, tid: str, spec: _Task, name: str, state: _FsmState
) -> tuple[FsmTransition, ...]:
    report = compiler.report
    at = f"fsm.states.{name}.transitions"
    if not state.transitions:
        report.add(
            "a state with a body needs transitions (or make it `terminal: true`, with no body)",
            task=tid,
            field=at,
        )
    out: list[FsmTransition] = []
    for index, transition in enumerate(state.transitions):
        field = f"{at}[{index}].when"
        when = transition.when
        if when is not None:
            if not is_template(when):
                report.add(
                    "`when` must be a template over the state's output, such as "
                    "'{{ fsm.output.ok }}'; a fixed value would always or never hold "
                    "(leave `when` out for the default transition)",
                    task=tid,
                    field=field,
                )
            else:
                _template(compiler, tid, spec, when, field)
        elif index < len(state.transitions) - 1:
            report.add(
                f"the transition to {transition.to!r} has no `when`, so it is always "
                f"taken: the {len(state.transitions) - 1 - index} after it never are "
                "(put the default last)",
                task=tid,
                field=f"{at}[{index}]",
            )
        out.append(FsmTransition(to=transition.to, when=when))
    return tuple(out)


def _template(compiler: TaskCompiler, tid: str, spec: _Task, source: str, field: str) -> None:
    """Check a template of the machine (a ``when``, an ``output``, a ``reason``): it
    reads what the task's body may read, and ``fsm``."""
    report = compiler.report
    if reads_loop(source):
        report.add(
            "reads loop.output or loop.iteration, which only a loop task has "
            "(in a state machine, read fsm.output and fsm.step)",
            task=tid,
            field=field,
        )
    check_template(compiler, tid, spec, source, field, fsm=True)


def _body(
    compiler: TaskCompiler,
    tid: str,
    spec: _Task,
    name: str,
    state: _FsmState,
    profile_ok: bool,
) -> dict[str, Any] | None:
    """Check a state's body as the body of the task (its tool and arguments, or its
    agent and prompt); its problems name ``fsm.states.<name>.<field>``. The body's
    ``with`` (None: a problem)."""
    report = compiler.report
    found = len(report.problems)
    queued = len(compiler.reads.get(tid, ()))
    body = spec.model_copy(
        update={
            "tool": state.tool,
            "args": state.args,
            "agent": state.agent,
            "capability": state.capability,
            "prompt": state.prompt,
            "output_schema": state.output_schema,
            "when": None,
            "fsm": None,
        }
    )
    args = check_body(compiler, tid, body, profile_ok, state=True)
    if body.output_schema is not None:
        with report.step():
            compiler.output_schema(tid, body)
    _place(compiler, tid, name, found, queued)
    return args if len(report.problems) == found else None


def _place(compiler: TaskCompiler, tid: str, name: str, found: int, queued: int) -> None:
    """Name the state in the problems (and the queued reads) its body's checks made:
    ``prompt`` becomes ``fsm.states.<name>.prompt``; a field outside the state (an
    agent's instructions, the task's profile) keeps its name and the message names
    the state."""
    report = compiler.report
    prefix = f"fsm.states.{name}."
    for index in range(found, len(report.problems)):
        problem = report.problems[index]
        field = problem.field
        if problem.task != tid:
            continue
        if field is None:
            report.problems[index] = report.problem(
                problem.detail, task=tid, field=prefix.rstrip(".")
            )
        elif field.startswith(("agents.", "profile")):
            report.problems[index] = report.problem(
                f"{problem.detail} (in state {name!r})", task=tid, field=field
            )
        else:
            report.problems[index] = report.problem(problem.detail, task=tid, field=prefix + field)
    reads = compiler.reads.get(tid)
    if reads is not None:
        for index in range(queued, len(reads)):
            ref, field = reads[index]
            if not field.startswith(("agents.", "profile")):
                reads[index] = (ref, prefix + field)


def _check_paths(compiler: TaskCompiler, tid: str, fsm: _Fsm) -> None:
    """Every state is reachable from ``initial``, and a terminal state from every state."""
    report = compiler.report
    edges = {name: [t.to for t in state.transitions] for name, state in fsm.states.items()}
    reached = _closure([fsm.initial], edges)
    for name in fsm.states:
        if name not in reached:
            report.add(
                f"state {name!r} cannot be reached from {fsm.initial!r}: no transition "
                "of a reachable state goes to it",
                task=tid,
                field=f"fsm.states.{name}",
            )
    back: dict[str, list[str]] = {name: [] for name in fsm.states}
    for name, targets in edges.items():
        for target in targets:
            back[target].append(name)
    ends = _closure([n for n, s in fsm.states.items() if s.terminal], back)
    for name in fsm.states:
        if name in reached and name not in ends:
            report.add(
                f"no terminal state can be reached from state {name!r}: once there, the "
                "machine could only run until max_steps fails it",
                task=tid,
                field=f"fsm.states.{name}.transitions",
            )


def _closure(start: list[str], edges: dict[str, list[str]]) -> set[str]:
    """The states reached from ``start`` along ``edges``."""
    seen = set(start)
    todo = list(start)
    while todo:
        for target in edges[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen
