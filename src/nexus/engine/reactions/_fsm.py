"""State machines (``fsm:``): the decider's reactions for a task whose body is an FSM.

Each step runs the current state's body as an attempt of the task; when it
succeeds, the first transition whose ``when`` holds is taken
(``fsm.transitioned``), to a state with a body (the next step) or to a
terminal state, which ends the task -- with its ``output``, or failed with its
``reason``. No transition holding, or ``max_steps`` reached, fails the task
naming the state and what each condition gave.
"""

from __future__ import annotations

from typing import Any

from nexus.domain.errors import ErrorKind, NexusError
from nexus.domain.events import EventType
from nexus.domain.payloads import ErrorRecord, FsmTransitioned, TaskSucceeded
from nexus.domain.plan import TaskSpec, fsm_body
from nexus.domain.state import TaskState, fsm_state_of
from nexus.engine.conditions import describe, evaluate, truthy
from nexus.engine.effects import to_json
from nexus.engine.reactions._base import Decisions, template_context
from nexus.templating import render_text, render_value

__all__ = ["FsmReactions"]


class FsmReactions:
    """What the decider does for ``fsm`` tasks: one per decider.

    Args:
        decider: what the reactions emit decisions through.
    """

    __slots__ = ("_bodies", "_decider")

    def __init__(self, decider: Decisions) -> None:
        self._decider = decider
        #: each state's body as a task spec, by (task spec id, state)
        self._bodies: dict[tuple[str, str], TaskSpec] = {}

    def body(self, task: TaskState) -> TaskSpec:
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

    def transition(self, task: TaskState, at: str) -> None:
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
        ctx = template_context(self._decider.state, task)
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
                self._decider.render_failed(task, at, exc)
                return
            if truthy(value):
                chosen = index
                break
            judged.append({"to": transition.to, "when": transition.when, "value": value})
        if chosen is None:
            gave = "; ".join(f"{j['when']} gave {describe(j['value'])}" for j in judged)
            self._fail(
                task,
                at,
                f"fsm: no transition out of state '{name}' holds at step {step}: {gave}",
                {"state": name, "step": step, "transitions": judged},
            )
            return
        to = fsm.states[name].transitions[chosen].to
        target = fsm.states[to]
        if not target.terminal and step >= fsm.max_steps:
            self._fail(
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
                self._decider.render_failed(task, at, exc)
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
        self._decider.emit_decision(EventType.FSM_TRANSITIONED, at, moved)
        if not target.terminal:
            return
        if target.fail:
            self._fail(
                task,
                at,
                f"fsm: reached state '{to}', which fails the task (from '{name}' at step "
                f"{step})" + (f": {reason}" if reason else ""),
                {"state": to, "from": name, "step": step},
            )
            return
        self._decider.emit_decision(
            EventType.TASK_SUCCEEDED, at, TaskSucceeded(task=task.id, attempt=task.attempts)
        )

    def _fail(self, task: TaskState, at: str, message: str, details: dict[str, Any]) -> None:
        error = ErrorRecord(
            kind=str(ErrorKind.VALIDATION), message=message, retryable=False, details=details
        )
        self._decider.fail(task, at, error.to_data())
