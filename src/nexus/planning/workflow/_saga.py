"""Sagas in a workflow file: a task's ``compensate`` body and its ``on_failure``.

``compensate`` says what undoes a task: a tool call (``tool``, ``with``) or an
agent step (``prompt`` with ``agent`` or ``capability``), with its own
``retries``, ``backoff`` and ``timeout`` (the workflow's ``defaults`` apply as to
any task). It is checked like a task's body, each problem naming the field
under ``compensate``: the tool is known and its ``with`` fits the tool's
argument schema (an MCP tool must be granted by the task's profile, which the
compensation runs under), the agent or capability exists, the templates
are sound. They see what any task sees plus ``compensating`` (``task``,
``output``: the compensated task's own output; ``failed``: the task whose
failure started the saga), and may read any task of the plan: by the time a
compensation runs, every task of the plan has ended.

A ``switch`` task has no body to undo (its ``BODY_KEYS`` refuse
``compensate``); a ``foreach`` task's items would each need undoing, which is
not supported yet, so it is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

from nexus.domain.plan import Compensation, RetryPolicy
from nexus.planning.workflow._arguments import Arguments
from nexus.planning.workflow._errors import Reporter, known
from nexus.planning.workflow._grants import ToolNames, mcp_granted
from nexus.planning.workflow._names import TemplateNames
from nexus.planning.workflow._schema import _Backoff, _Compensate, _Defaults, _Task
from nexus.planning.workflow._values import Values, strings

__all__ = ["check_compensate"]


class TaskCompiler(Protocol):
    """What of :class:`._tasks.TaskCompiler` a compensation is checked with."""

    @property
    def report(self) -> Reporter: ...
    @property
    def tools(self) -> ToolNames: ...
    @property
    def arguments(self) -> Arguments: ...
    @property
    def grants(self) -> bool: ...
    @property
    def values(self) -> Values: ...
    @property
    def names(self) -> TemplateNames: ...
    @property
    def tasks(self) -> Mapping[str, _Task]: ...
    @property
    def agents(self) -> Mapping[str, object]: ...
    @property
    def capabilities(self) -> Collection[str]: ...
    @property
    def defaults(self) -> _Defaults: ...

    def retry_policy(self, retries: int | None, backoff: _Backoff | None) -> RetryPolicy: ...


_FIELD = "compensate"


def check_compensate(compiler: TaskCompiler, tid: str, spec: _Task) -> Compensation | None:
    """The task's ``compensate`` as the plan holds it (None: it has none, or problems,
    each reported)."""
    body = spec.compensate
    if body is None:
        return None
    report = compiler.report
    found = len(report.problems)
    if spec.foreach is not None:
        report.add(
            "a foreach task cannot have `compensate` (each item would need undoing on its "
            "own, which sagas do not support yet); compensate the items in a task that "
            "needs this one, or drop foreach",
            task=tid,
            field=_FIELD,
        )
    _check_kind(compiler, tid, body)
    args = _check_values(compiler, tid, body)
    if body.tool is not None and args is not None:
        tool = body.tool
        mcp = compiler.tools.is_mcp(tool)
        compiler.arguments.check(tool, args, mcp=mcp, task=tid, field=f"{_FIELD}.with")
        if mcp and compiler.grants and not mcp_granted(spec.profile, tool):
            report.add(
                f"MCP tool {tool!r} is not granted by the task's profile, which its "
                f"compensation runs under; add profile: {{mcp_tools: [{tool!r}]}}",
                task=tid,
                field=f"{_FIELD}.tool",
            )
    if len(report.problems) > found:
        return None
    retry = compiler.retry_policy(body.retries, body.backoff)
    timeout = body.timeout if body.timeout is not None else compiler.defaults.timeout
    return Compensation(
        tool=body.tool,
        args=args or {},
        agent=body.agent,
        capability=body.capability,
        prompt=body.prompt,
        retry=retry,
        timeout=None if timeout is None else float(timeout),
    )


def _check_kind(compiler: TaskCompiler, tid: str, body: _Compensate) -> None:
    """A tool call or an agent step, never both, naming what exists."""
    add = compiler.report.add
    agentish = [
        key
        for key, value in (
            ("prompt", body.prompt),
            ("agent", body.agent),
            ("capability", body.capability),
        )
        if value is not None
    ]
    if body.tool is not None:
        if agentish:
            add(
                "a compensation is either a tool call (`tool`, `with`) or an agent step "
                f"(`prompt` with `agent` or `capability`), not both; remove `{agentish[0]}` "
                "or `tool`",
                task=tid,
                field=f"{_FIELD}.{agentish[0]}",
            )
        with compiler.report.step():
            compiler.tools.check(body.tool, compiler.report, task=tid, field=f"{_FIELD}.tool")
        return
    if not agentish:
        add(
            "the compensation does nothing: give it a `tool` (with `with`), or a `prompt` "
            "with an `agent` or `capability`",
            task=tid,
            field=_FIELD,
        )
        return
    if body.args is not None:
        add(
            "`with` is for a tool call; an agent step takes a `prompt`",
            task=tid,
            field=f"{_FIELD}.with",
        )
    if body.agent is not None and body.capability is not None:
        add("set either `agent` or `capability`, not both", task=tid, field=f"{_FIELD}.capability")
    if body.agent is None and body.capability is None:
        add(
            "a `prompt` needs an `agent` or a `capability` to say who runs it",
            task=tid,
            field=f"{_FIELD}.prompt",
        )
    if body.prompt is None:
        add("an agent step needs a `prompt`", task=tid, field=f"{_FIELD}.prompt")
    if body.agent is not None and body.agent not in compiler.agents:
        add(
            f"unknown agent {body.agent!r} ({known('defined agents', compiler.agents)})",
            task=tid,
            field=f"{_FIELD}.agent",
        )
    if body.capability is not None and body.capability not in compiler.capabilities:
        add(
            f"no agent has capability {body.capability!r} "
            f"({known('available capabilities', compiler.capabilities)})",
            task=tid,
            field=f"{_FIELD}.capability",
        )


def _check_values(compiler: TaskCompiler, tid: str, body: _Compensate) -> dict[str, object] | None:
    """The compensation's ``with`` (checked as JSON) and its templates; None on a problem."""
    report = compiler.report
    values = compiler.values
    found = len(report.problems)
    args: dict[str, object] = {}
    texts: list[tuple[str, str]] = []
    with report.step():
        if body.args is not None:
            args = values.json(body.args, f"{_FIELD}.with", task=tid)
            texts.extend(strings(args, f"{_FIELD}.with"))
    if body.prompt is not None:
        texts.append((f"{_FIELD}.prompt", body.prompt))
    for field, text in texts:
        with report.step():
            reads = values.template(text, tid, field)
            compiler.names.check(reads, items=False, task=tid, field=field, compensating=True)
            for ref in sorted(reads.get("tasks", ())):
                if ref not in compiler.tasks:
                    report.add(
                        f"reads tasks.{ref} but there is no task {ref!r} "
                        f"({known('known tasks', compiler.tasks)})",
                        task=tid,
                        field=field,
                    )
    return None if len(report.problems) > found else args
