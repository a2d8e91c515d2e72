"""Behaviour trees: the tree a ``bt`` task runs, as plain immutable values.

A ``bt`` task holds one tree (:class:`BtSpec`). Its nodes (:class:`BtNode`)
are composites (``sequence``, ``selector``, ``parallel``), decorators
(``retry``, ``timeout``: one child each) and leaves (``condition``: a
template judged without an attempt; ``action``: a tool call or an agent step,
run as one attempt of the task). The engine ticks the tree from the outcomes
its log records (``nexus.engine.bt``), so the plan holds only the shape.

Every node has an id: the ``name`` its author gave it, else its path from
the nearest named ancestor (``root``, ``root/0``, ``fetch/1``...). Ids are
what ``bt.ticked`` events, ``bt.outputs`` and error messages name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

JSONDict = dict[str, Any]

__all__ = [
    "ACTION",
    "COMPOSITES",
    "CONDITION",
    "DECORATORS",
    "FAILURE",
    "KINDS",
    "MAX_BT_DEPTH",
    "MAX_BT_NODES",
    "MAX_BT_RETRY",
    "MAX_BT_STEPS",
    "PARALLEL",
    "RETRY",
    "RUNNING",
    "SELECTOR",
    "SEQUENCE",
    "SUCCESS",
    "TIMEOUT",
    "BtNode",
    "BtSpec",
]

#: The most leaves (conditions checked and actions run) one tree may tick: ``max_steps``
#: is required and at most this.
MAX_BT_STEPS: Final = 1000
#: The most nodes and the deepest nesting a tree may have (a workflow file is untrusted).
MAX_BT_NODES: Final = 500
MAX_BT_DEPTH: Final = 32
#: The most extra tries a ``retry`` decorator may give its child.
MAX_BT_RETRY: Final = 100

SEQUENCE: Final = "sequence"
SELECTOR: Final = "selector"
PARALLEL: Final = "parallel"
CONDITION: Final = "condition"
ACTION: Final = "action"
RETRY: Final = "retry"
TIMEOUT: Final = "timeout"

COMPOSITES: Final = frozenset({SEQUENCE, SELECTOR, PARALLEL})
DECORATORS: Final = frozenset({RETRY, TIMEOUT})
KINDS: Final = (SEQUENCE, SELECTOR, PARALLEL, CONDITION, ACTION, RETRY, TIMEOUT)

#: A node's statuses as ``bt.ticked`` records them (``running``: a ``timeout`` started).
SUCCESS: Final = "success"
FAILURE: Final = "failure"
RUNNING: Final = "running"


@dataclass(frozen=True, slots=True)
class BtNode:
    """One node of a behaviour tree; which fields are set depends on ``kind``.

    ``parallel`` has ``success`` (children that must succeed) and ``failure``
    (children whose failure fails it), both resolved at compile time;
    ``condition`` has ``condition`` (a template); ``action`` has ``tool`` and
    ``args``, or ``agent``/``capability`` and ``prompt``; ``retry`` has
    ``times`` (tries after the first); ``timeout`` has ``seconds``.
    """

    id: str
    kind: str
    children: tuple[BtNode, ...] = ()
    success: int | None = None
    failure: int | None = None
    condition: str | None = None
    tool: str | None = None
    args: JSONDict | None = None
    agent: str | None = None
    capability: str | None = None
    prompt: str | None = None
    times: int | None = None
    seconds: float | None = None

    def walk(self) -> list[BtNode]:
        """This node and every node under it, depth first, in order."""
        found: list[BtNode] = []
        stack = [self]
        while stack:
            node = stack.pop()
            found.append(node)
            stack.extend(reversed(node.children))
        return found

    def describe(self) -> str:
        """What the node is, in a few words (``action tool sh``, ``selector``...)."""
        if self.kind == ACTION:
            if self.tool is not None:
                return f"action tool {self.tool}"
            who = self.agent if self.agent is not None else f"capability {self.capability}"
            return f"action agent {who}"
        return self.kind

    def to_dict(self) -> JSONDict:
        data: JSONDict = {"id": self.id, "kind": self.kind}
        for key in _FIELDS:
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.seconds is not None:
            data["seconds"] = _num(self.seconds)
        if self.children:
            data["children"] = [child.to_dict() for child in self.children]
        return data

    @classmethod
    def from_dict(cls, data: JSONDict) -> BtNode:
        return cls(
            id=data["id"],
            kind=data["kind"],
            children=tuple(cls.from_dict(c) for c in data.get("children", ())),
            success=data.get("success"),
            failure=data.get("failure"),
            condition=data.get("condition"),
            tool=data.get("tool"),
            args=data.get("args"),
            agent=data.get("agent"),
            capability=data.get("capability"),
            prompt=data.get("prompt"),
            times=data.get("times"),
            seconds=data.get("seconds"),
        )


@dataclass(frozen=True, slots=True)
class BtSpec:
    """A ``bt`` task's tree, the most leaves it may tick, and what it gives when it succeeds.

    ``output`` (a template) is rendered when the root succeeds; without it the
    task's output is that of the last action that succeeded (null if none did).
    """

    root: BtNode
    max_steps: int
    output: str | None = None

    def nodes(self) -> dict[str, BtNode]:
        """Every node by id."""
        return {node.id: node for node in self.root.walk()}

    def to_dict(self) -> JSONDict:
        data: JSONDict = {"max_steps": self.max_steps, "root": self.root.to_dict()}
        if self.output is not None:
            data["output"] = self.output
        return data

    @classmethod
    def from_dict(cls, data: JSONDict) -> BtSpec:
        return cls(
            root=BtNode.from_dict(data["root"]),
            max_steps=data["max_steps"],
            output=data.get("output"),
        )


#: What a node records besides its id, kind, seconds and children (each only when set).
_FIELDS = (
    "success",
    "failure",
    "condition",
    "tool",
    "args",
    "agent",
    "capability",
    "prompt",
    "times",
)


def _num(value: float) -> float | int:
    as_float = float(value)
    return int(as_float) if as_float.is_integer() else value
