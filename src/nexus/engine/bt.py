"""Ticking a behaviour tree from the outcomes its run recorded.

A ``bt`` task's tree (:class:`~nexus.domain.bt.BtSpec`) is walked by a
generator (:func:`_tick`) that asks its driver for what it cannot know
itself: a leaf's outcome (:class:`Leaf`), a ``timeout`` node's deadline
(:class:`Entered`); and that says when a node ended (:class:`Ended`). The
driver (:class:`Walk`, used by the decider) answers from the task's recorded
``bt.ticked`` events first; past the last of them it decides live -- judges a
condition, starts an action as an attempt, computes a deadline from the time
of the event that caused the decision -- and records each answer as a new
``bt.ticked``. So the walk after a resume or in a replay retraces the same
path without judging or running anything again, and the decider stays pure.

The semantics, in order (``docs/workflows.md``, Behaviour trees):

* ``sequence`` ticks its children in order and fails with the first that
  fails; ``selector`` succeeds with the first that succeeds.
* ``parallel`` ticks its children one after another (each action is an
  attempt of the one task) and succeeds once ``success`` of them succeeded,
  fails once ``failure`` of them failed or ``success`` is out of reach; the
  children after the deciding one are not ticked.
* ``retry`` ticks its child again after a failure, up to ``times`` more times.
* ``timeout`` fails when its deadline (its start plus ``seconds``) passes: an
  action under it runs with at most the time left, and a leaf reached after
  the deadline is not ticked (the nodes between it and the timeout end
  without a tick of their own).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from nexus.domain.bt import (
    ACTION,
    CONDITION,
    FAILURE,
    PARALLEL,
    RETRY,
    RUNNING,
    SELECTOR,
    SEQUENCE,
    SUCCESS,
    TIMEOUT,
    BtNode,
    BtSpec,
)
from nexus.domain.errors import IntegrityError
from nexus.domain.payload_data import BtTickedData

__all__ = ["Ended", "Entered", "Expired", "Leaf", "Outcome", "Walk"]

#: A node's end: its status, the node whose failure decided it (itself on
#: success) and why that one failed ("" on success).
Outcome = tuple[str, str, str]
#: The ``timeout`` nodes around a node: (id, deadline), outermost first.
Timers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Leaf:
    """The walk needs a leaf's outcome: answer ``(status, why)`` or :class:`Expired`."""

    node: BtNode
    timers: Timers


@dataclass(frozen=True, slots=True)
class Entered:
    """A ``timeout`` node starts: answer its deadline (an event time)."""

    node: BtNode


@dataclass(frozen=True, slots=True)
class Ended:
    """A composite or decorator ended (record it; answer None)."""

    node: BtNode
    status: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class Expired:
    """The answer to a :class:`Leaf` under a ``timeout`` whose deadline passed."""

    node: str


Request = Leaf | Entered | Ended
_Walker = Generator[Request, Any, Outcome]


class _Expired(Exception):  # unwinds the walk to the timeout node that expired
    def __init__(self, node: str) -> None:
        super().__init__(node)
        self.node = node


def _tick(node: BtNode, timers: Timers) -> _Walker:
    kind = node.kind
    if kind in (ACTION, CONDITION):
        answer = yield Leaf(node, timers)
        if isinstance(answer, Expired):
            raise _Expired(answer.node)
        status, why = answer
        return status, node.id, why
    if kind in (SEQUENCE, SELECTOR):
        return (yield from _ordered(node, timers, stop=FAILURE if kind == SEQUENCE else SUCCESS))
    if kind == PARALLEL:
        return (yield from _parallel(node, timers))
    if kind == RETRY:
        return (yield from _retry(node, timers))
    if kind == TIMEOUT:
        return (yield from _timeout(node, timers))
    raise IntegrityError(f"behaviour tree node '{node.id}' is of unknown kind {kind!r}")


def _ordered(node: BtNode, timers: Timers, *, stop: str) -> _Walker:
    """A sequence (stops at the first failure) or a selector (at the first success)."""
    last: Outcome = (SUCCESS, node.id, "")
    for child in node.children:
        last = yield from _tick(child, timers)
        if last[0] == stop:
            why = f"'{child.id}' failed" if stop == FAILURE else None
            yield Ended(node, stop, why)
            return last if stop == FAILURE else (SUCCESS, node.id, "")
    if stop == FAILURE:  # a sequence whose children all succeeded
        yield Ended(node, SUCCESS, None)
        return SUCCESS, node.id, ""
    yield Ended(node, FAILURE, f"all {len(node.children)} children failed")
    return last


def _parallel(node: BtNode, timers: Timers) -> _Walker:
    total = len(node.children)
    need = node.success if node.success is not None else total
    limit = node.failure if node.failure is not None else total - need + 1
    ok = bad = 0
    last: Outcome = (SUCCESS, node.id, "")
    for child in node.children:
        outcome = yield from _tick(child, timers)
        if outcome[0] == SUCCESS:
            ok += 1
        else:
            bad += 1
            last = outcome
        if ok >= need:
            yield Ended(node, SUCCESS, None)
            return SUCCESS, node.id, ""
        if bad >= limit or bad > total - need:
            why = f"{bad} of {total} children failed (success needs {need}, failure at {limit})"
            yield Ended(node, FAILURE, why)
            return last
    raise IntegrityError(f"parallel node '{node.id}' ended undecided")  # pragma: no cover


def _retry(node: BtNode, timers: Timers) -> _Walker:
    child = node.children[0]
    tries = (node.times or 0) + 1
    outcome: Outcome = (FAILURE, node.id, "")
    for _ in range(tries):
        outcome = yield from _tick(child, timers)
        if outcome[0] == SUCCESS:
            yield Ended(node, SUCCESS, None)
            return SUCCESS, node.id, ""
    yield Ended(node, FAILURE, f"'{child.id}' failed {tries} times")
    return outcome


def _timeout(node: BtNode, timers: Timers) -> _Walker:
    deadline = yield Entered(node)
    try:
        outcome = yield from _tick(node.children[0], (*timers, (node.id, deadline)))
    except _Expired as expired:
        if expired.node != node.id:
            raise
        why = f"timed out: {node.seconds:g} s passed (deadline {deadline})"
        yield Ended(node, FAILURE, why)
        return FAILURE, node.id, why
    if outcome[0] == SUCCESS:
        yield Ended(node, SUCCESS, None)
        return outcome[0], node.id, ""
    yield Ended(node, FAILURE, f"'{node.children[0].id}' failed")
    return outcome


class Walk:
    """One task's walk through its tree: where it stands, and what it needs next.

    :attr:`request` is what the walk waits for (None once the root ended,
    then :attr:`outcome` says how); :attr:`consumed` counts the recorded ticks
    it has taken in, so :meth:`catch_up` feeds it only the new ones.
    """

    __slots__ = ("_walker", "consumed", "outcome", "request", "tree")

    def __init__(self, tree: BtSpec) -> None:
        self.tree = tree
        self._walker = _tick(tree.root, ())
        self.consumed = 0
        self.outcome: Outcome | None = None
        self.request: Request | None = next(self._walker)

    def answer(self, value: Any) -> None:
        """Answer :attr:`request` and move on to the next one."""
        try:
            self.request = self._walker.send(value)
        except StopIteration as done:
            self.request = None
            self.outcome = done.value
        except _Expired as expired:  # pragma: no cover - only a timeout's id is expired
            raise IntegrityError(f"timeout '{expired.node}' expired outside itself") from None

    def catch_up(self, trace: list[BtTickedData], where: str) -> None:
        """Take in the recorded ticks the walk has not seen, checking each is the
        tick the tree makes at that point (else the log and the plan disagree)."""
        while self.consumed < len(trace):
            tick = trace[self.consumed]
            request = self.request
            if request is None:
                raise IntegrityError(f"{where}: node '{tick['node']}' ticked after the root ended")
            if isinstance(request, Leaf) and tick["node"] != request.node.id:
                if tick["status"] != FAILURE or all(t[0] != tick["node"] for t in request.timers):
                    raise self._astray(where, tick, request.node)
                self.answer(Expired(tick["node"]))  # its own end is the next request
                continue
            if tick["node"] != request.node.id:
                raise self._astray(where, tick, request.node)
            self.consumed += 1
            if isinstance(request, Leaf):
                self.answer((tick["status"], tick.get("reason") or ""))
            elif isinstance(request, Entered):
                deadline = tick.get("deadline")
                if tick["status"] != RUNNING or deadline is None:
                    raise self._astray(where, tick, request.node)
                self.answer(deadline)
            else:
                if tick["status"] != request.status:
                    raise IntegrityError(
                        f"{where}: node '{request.node.id}' recorded {tick['status']} "
                        f"but its children make it {request.status}"
                    )
                self.answer(None)

    @staticmethod
    def _astray(where: str, tick: BtTickedData, expected: BtNode) -> IntegrityError:
        return IntegrityError(
            f"{where}: node '{tick['node']}' ticked {tick['status']} where the tree "
            f"ticks '{expected.id}'"
        )
