"""A body of a task that stands inside the task: a ``bt`` task's actions and an
``fsm`` task's states.

Each is checked exactly as the task's own body would be (the tool and its
arguments, or the agent and the prompt, the templates and what they read):
:func:`check_body` runs those checks of :class:`._tasks.TaskCompiler` on the task
with the node's or the state's fields in place of its own, and
:func:`check_template` checks one of their templates (a condition, a ``when``, an
``output``). The caller names the node or the state in the fields of the problems
found. ``_tasks`` imports the modules that use these, so they see the compiler
through the :class:`BodyCompiler` protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from nexus.planning.workflow._errors import Reporter
from nexus.planning.workflow._graph import Reads, check_refs
from nexus.planning.workflow._names import TemplateNames
from nexus.planning.workflow._schema import _Task
from nexus.planning.workflow._values import Values

__all__ = ["BodyCompiler", "check_body", "check_template"]


class BodyCompiler(Protocol):
    """What of :class:`._tasks.TaskCompiler` a body's checks use."""

    report: Reporter
    values: Values
    names: TemplateNames
    tasks: Mapping[str, _Task]
    reads: Reads

    def check_kind(self, tid: str, spec: _Task) -> None: ...

    def check_values(
        self, tid: str, spec: _Task, *, state: bool = False
    ) -> tuple[dict[str, Any], Any]: ...

    def check_tool(
        self, tid: str, spec: _Task, args: dict[str, Any] | None, profile_ok: bool
    ) -> None: ...

    def check_agents(self, tid: str, spec: _Task, profile_ok: bool) -> None: ...


def check_body(
    compiler: BodyCompiler, tid: str, body: _Task, profile_ok: bool, *, state: bool = False
) -> dict[str, Any]:
    """Check ``body``, task ``tid`` with a node's or a state's body in place of its own.

    Its kind (a tool, or an agent step), its values and templates, then the tool
    and the arguments it is given, or the agent or capability that runs it. Problems
    are reported with the fields a task's own body would give them.

    Args:
        compiler: the workflow's task compiler.
        tid: the task the body stands in.
        body: the task, its body fields replaced by the node's or the state's.
        profile_ok: whether the task's ``profile`` was read (an MCP tool's grant is
            judged only against a profile that was).
        state: the body is an fsm state's (its templates may read ``fsm``; the
            task-level fields are the task's, checked with it).

    Returns:
        The body's ``with`` as read (empty when it could not be).
    """
    report = compiler.report
    args: dict[str, Any] = {}
    with report.step() as kind_ok:
        compiler.check_kind(tid, body)
    with report.step() as values_ok:
        args, _ = compiler.check_values(tid, body, state=state)
    if kind_ok.ok:
        if body.tool is not None:
            compiler.check_tool(tid, body, args if values_ok.ok else None, profile_ok)
        else:
            compiler.check_agents(tid, body, profile_ok)
    return args


def check_template(
    compiler: BodyCompiler, tid: str, spec: _Task, source: str, field: str, *, fsm: bool = False
) -> None:
    """Check a template of task ``tid`` outside its body: its syntax, the tasks it
    reads (through ``needs``) and the names it reads (``fsm`` among them when
    ``fsm``). Problems are reported at ``field``."""
    report = compiler.report
    with report.step():
        reads = compiler.values.template(source, tid, field)
        if not reads:
            return
        refs = [(ref, field) for ref in sorted(reads.get("tasks", ()))]
        if refs:
            check_refs(tid, tuple(spec.needs), refs, compiler.tasks, compiler.reads, report)
        compiler.names.check(reads, items=spec.foreach is not None, task=tid, field=field, fsm=fsm)
