"""The names a template may read, and the problem with any other.

A task's templates see ``inputs`` (the declared inputs), ``tasks`` (checked
against the graph by :mod:`._graph`), ``run`` (``id`` and ``name``) and, in a
``foreach`` task's ``with`` and ``prompt``, ``item`` and ``index``, and in
the states of an ``fsm`` task, ``fsm`` (``state``, ``step``, ``output``,
``outputs``): see :func:`nexus.engine.reactions.template_context`. Anything else is undefined
when the template renders, so it is a problem here, where it is cheap to fix.
"""

from __future__ import annotations

from collections.abc import Collection

from nexus.planning.workflow._errors import Reporter, known, suggest
from nexus.planning.workflow._values import Reads

__all__ = ["COMPENSATING_KEYS", "FSM_KEYS", "ITEM_NAMES", "TemplateNames"]

#: What only the items of a ``foreach`` task see.
ITEM_NAMES = frozenset({"item", "index"})
_RUN_KEYS = ("id", "name")
_CONTEXT = ("inputs", "tasks", "run", "item", "index")
#: What a ``bt`` task's templates read of its tree (``bt.outputs.<node>``, ``bt.step``).
_BT_KEYS = ("outputs", "step")
#: What the templates of an ``fsm`` task's states read of the machine.
FSM_KEYS = ("state", "step", "output", "outputs")
#: What a compensation (a task's ``compensate``) sees of the task it undoes.
COMPENSATING_KEYS = ("task", "output", "failed")


def _key(name: str, key: str) -> str:
    """``inputs.a``, or ``inputs['a b']`` for a key that is not a name."""
    return f"{name}.{key}" if key.isidentifier() else f"{name}[{key!r}]"


class TemplateNames:
    """Checks the names one workflow's templates read (``tasks`` aside)."""

    __slots__ = ("bt_tasks", "inputs", "report")

    def __init__(self, inputs: Collection[str], report: Reporter) -> None:
        self.inputs = frozenset(inputs)
        self.report = report
        #: the ``bt`` tasks: only their templates have ``bt``
        self.bt_tasks: set[str] = set()

    def check(
        self,
        reads: Reads,
        *,
        items: bool,
        task: str | None,
        field: str,
        fsm: bool = False,
        compensating: bool = False,
    ) -> None:
        """Report each name in ``reads`` the template will not find.

        Args:
            reads: what the template at ``field`` reads.
            items: whether ``item`` and ``index`` are there (a foreach task's fields).
            fsm: whether ``fsm`` is there (the templates of an fsm task's states).
            task: the task holding the template (None: an agent's).
            field: the template's field.
            compensating: whether ``compensating`` is there (a ``compensate`` body's).
        """
        for name, keys in reads.items():
            if name == "tasks":
                continue
            if name == "inputs":
                for key in sorted(keys - self.inputs):
                    declared = known("declared inputs", self.inputs)
                    if not self.inputs:
                        declared = "it declares no inputs"
                    self.report.add(
                        f"reads {_key(name, key)}, which the workflow does not declare "
                        f"({declared})",
                        task=task,
                        field=field,
                    )
            elif name == "run":
                for key in sorted(keys - set(_RUN_KEYS)):
                    self.report.add(
                        f"reads {_key(name, key)}; run has {', '.join(_RUN_KEYS)}",
                        task=task,
                        field=field,
                    )
            elif name == "bt" and task in self.bt_tasks:
                for key in sorted(keys - set(_BT_KEYS)):
                    self.report.add(
                        f"reads {_key(name, key)}; bt has {', '.join(_BT_KEYS)}",
                        task=task,
                        field=field,
                    )
            elif name == "bt":
                self.report.add(
                    "reads bt, which only the templates of a bt task have", task=task, field=field
                )
            elif name == "compensating":
                if not compensating:
                    self.report.add(
                        "reads compensating, which only a task's `compensate` has",
                        task=task,
                        field=field,
                    )
                for key in sorted(keys - set(COMPENSATING_KEYS)):
                    self.report.add(
                        f"reads {_key(name, key)}; compensating has {', '.join(COMPENSATING_KEYS)}",
                        task=task,
                        field=field,
                    )
            elif name == "fsm":
                if not fsm:
                    self.report.add(
                        "reads fsm, which only the states of an fsm task have",
                        task=task,
                        field=field,
                    )
                for key in sorted(keys - set(FSM_KEYS)) if fsm else ():
                    self.report.add(
                        f"reads {_key(name, key)}; fsm has {', '.join(FSM_KEYS)}",
                        task=task,
                        field=field,
                    )
            elif name in ITEM_NAMES:
                if not items:
                    self.report.add(
                        f"reads {name}, which only a foreach task has", task=task, field=field
                    )
            else:
                self.report.add(
                    f"reads {name!r}, which templates do not have "
                    f"({suggest(name, _CONTEXT, 'templates have')})",
                    task=task,
                    field=field,
                )
