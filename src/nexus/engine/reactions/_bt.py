"""Behaviour trees (``bt:``): the decider's reactions for a task whose body is a tree.

The tree is walked by :class:`nexus.engine.bt.Walk` from the task's recorded
``bt.ticked`` events; here each step of the walk becomes a decision: a
condition judged (and recorded), a node that ends, an action started as the
task's next attempt (within the time its ``timeout`` nodes leave), the root's
end succeeding or failing the task. A resumed run rebuilds each walk from the
log, so it takes up the tree where it stopped.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from nexus.domain.bt import ACTION, CONDITION, FAILURE, RUNNING, SUCCESS, TIMEOUT, BtNode
from nexus.domain.errors import ErrorKind, IntegrityError, NexusError
from nexus.domain.events import EventType, format_time, parse_time
from nexus.domain.payloads import ABSENT, BtTicked, ErrorRecord, TaskSucceeded
from nexus.domain.plan import TaskSpec
from nexus.domain.state import TaskState
from nexus.engine.bt import Ended, Entered, Expired, Leaf, Walk
from nexus.engine.conditions import describe, evaluate, truthy
from nexus.engine.effects import to_json
from nexus.engine.reactions._base import Decisions, template_context
from nexus.templating import render_value

__all__ = ["BtReactions"]


class BtReactions:
    """What the decider does for ``bt`` tasks: one per decider.

    Args:
        decider: what the reactions emit decisions through.
    """

    __slots__ = ("_bodies", "_decider", "_walks")

    def __init__(self, decider: Decisions) -> None:
        self._decider = decider
        #: each ``bt`` task's walk through its tree, rebuilt from its ticks when missing
        self._walks: dict[str, Walk] = {}
        #: each action node's body as a task spec, by (task spec id, node id)
        self._bodies: dict[tuple[str, str], TaskSpec] = {}

    def walk(self, task: TaskState) -> Walk:
        """``task``'s walk, caught up with its recorded ticks (rebuilt after a resume)."""
        walk = self._walks.get(task.id)
        if walk is None:
            tree = task.spec.bt
            assert tree is not None
            walk = self._walks[task.id] = Walk(tree)
        walk.catch_up(task.bt_trace or [], f"run {self._decider.state.run_id}, task '{task.id}'")
        return walk

    def advance(self, task: TaskState, at: str, writes: tuple[str, ...] = ()) -> bool:
        """Tick ``task``'s tree on from where its log leaves it: judge conditions and
        record the nodes that end, until an action must run (its attempt starts) or
        the root ends (the task with it). False when no agent has a free slot."""
        walk = self.walk(task)
        tree = task.spec.bt
        assert tree is not None
        while True:
            request = walk.request
            if request is None:  # the root ended (a leaf root: with its own tick)
                self._end(task, at, walk)
                return True
            if isinstance(request, Ended):
                self._tick(task, at, request.node, request.status, reason=request.reason)
                walk.consumed += 1
                walk.answer(None)
            elif isinstance(request, Entered):
                seconds = request.node.seconds or 0
                deadline = format_time(parse_time(at) + timedelta(seconds=seconds))
                self._tick(task, at, request.node, RUNNING, deadline=deadline)
                walk.consumed += 1
                walk.answer(deadline)
            else:
                expired = _expired(request, at)
                if expired is not None:
                    walk.answer(Expired(expired))
                    continue
                if task.bt_steps >= tree.max_steps:
                    self._out_of_steps(task, at, request.node)
                    return True
                if request.node.kind == ACTION:
                    return self._act(task, at, request, writes)
                judged = self._condition(task, at, request.node)
                if judged is None:
                    return True  # it did not render: the task failed
                walk.consumed += 1
                walk.answer(judged)

    def _condition(self, task: TaskState, at: str, node: BtNode) -> tuple[str, str] | None:
        """Judge a condition leaf and record it; None when it does not render (the task
        fails naming the node)."""
        source = node.condition or ""
        where = f"task '{task.id}', field 'bt.{node.id}.condition'"
        try:
            value = evaluate(source, template_context(self._decider.state, task), where=where)
            value = to_json(value, f"the condition '{node.id}' of task '{task.id}'")
        except NexusError as exc:
            self._decider.render_failed(task, at, exc)
            return None
        status = SUCCESS if truthy(value) else FAILURE
        why = f"{source} gave {describe(value)}" if status == FAILURE else ""
        self._tick(task, at, node, status, value=value, reason=why or None)
        return status, why

    def _act(self, task: TaskState, at: str, request: Leaf, writes: tuple[str, ...] = ()) -> bool:
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
        return self._decider.attempt(task, at, body, timeout_ms, node=node.id, writes=writes)

    def acted(self, task: TaskState, at: str, error: ErrorRecord | None) -> None:
        """The action the task ran ended: record its outcome (the task is ready for its
        next leaf; :meth:`_start` ticks on)."""
        request = self.walk(task).request
        if not isinstance(request, Leaf) or request.node.kind != ACTION:
            raise IntegrityError(
                f"run {self._decider.state.run_id}: an attempt of task '{task.id}' ended "
                "but its tree is not at an action"
            )
        status = SUCCESS if error is None else FAILURE
        why = None if error is None else f"{error.kind}: {str(error.message)[:300]}"
        self._tick(task, at, request.node, status, attempt=task.attempts, reason=why)

    def expired(self, task: TaskState, at: str) -> bool:
        """Whether a ``timeout`` around the running action has passed (no retry then)."""
        request = self.walk(task).request
        return isinstance(request, Leaf) and _expired(request, at) is not None

    def _tick(
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
        self._decider.emit_decision(EventType.BT_TICKED, at, ticked)

    def _end(self, task: TaskState, at: str, walk: Walk) -> None:
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
                        template_context(self._decider.state, task),
                        where=f"task '{task.id}', field 'bt.output'",
                    )
                    done.value = to_json(value, f"the bt.output of task '{task.id}'")
                except NexusError as exc:
                    self._decider.render_failed(task, at, exc)
                    return
            self._decider.emit_decision(EventType.TASK_SUCCEEDED, at, done)
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
        self._decider.fail(task, at, error.to_data())

    def _out_of_steps(self, task: TaskState, at: str, node: BtNode) -> None:
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
        self._decider.fail(task, at, error.to_data())


def _expired(request: Leaf, at: str) -> str | None:
    """The outermost ``timeout`` around ``request``'s leaf whose deadline has passed."""
    for node, deadline in request.timers:
        if parse_time(deadline) <= parse_time(at):
            return node
    return None
