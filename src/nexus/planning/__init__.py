"""Planning: workflow files and the Python builder, compiled into a ``Plan``.

Example:
    >>> from nexus.planning import compile_workflow
    >>> plan = compile_workflow({"version": 1, "name": "hi",
    ...                          "tasks": {"say": {"tool": "noop"}}})
    >>> sorted(plan.tasks)
    ['say']

The names below are loaded on first use (PEP 562), so importing one module of
the package does not import the others (the builder does not need YAML).
"""

import typing as _typing

from nexus.domain._lazy import on_first_use as _on_first_use

if _typing.TYPE_CHECKING:
    from nexus.planning.builder import AgentRef as AgentRef
    from nexus.planning.builder import McpServerRef as McpServerRef
    from nexus.planning.builder import TaskRef as TaskRef
    from nexus.planning.builder import WorkflowBuilder as WorkflowBuilder
    from nexus.planning.options import Aggregate as Aggregate
    from nexus.planning.options import Approval as Approval
    from nexus.planning.options import Backoff as Backoff
    from nexus.planning.options import Bt as Bt
    from nexus.planning.options import Budget as Budget
    from nexus.planning.options import Compensate as Compensate
    from nexus.planning.options import Extend as Extend
    from nexus.planning.options import Extensions as Extensions
    from nexus.planning.options import Fsm as Fsm
    from nexus.planning.options import FsmState as FsmState
    from nexus.planning.options import FsmTransition as FsmTransition
    from nexus.planning.options import Input as Input
    from nexus.planning.options import Loop as Loop
    from nexus.planning.options import Profile as Profile
    from nexus.planning.options import Replan as Replan
    from nexus.planning.options import Wait as Wait
    from nexus.planning.workflow import MAX_WORKFLOW_BYTES as MAX_WORKFLOW_BYTES
    from nexus.planning.workflow import WORKFLOW_VERSION as WORKFLOW_VERSION
    from nexus.planning.workflow import compile_workflow as compile_workflow
    from nexus.planning.workflow import load_workflow as load_workflow

#: Where each public name lives; :func:`__getattr__` imports it on first use.
_EXPORTS: dict[str, str] = {
    "AgentRef": "nexus.planning.builder",
    "Approval": "nexus.planning.options",
    "Backoff": "nexus.planning.options",
    "Bt": "nexus.planning.options",
    "Budget": "nexus.planning.options",
    "Compensate": "nexus.planning.options",
    "Extend": "nexus.planning.options",
    "Extensions": "nexus.planning.options",
    "Fsm": "nexus.planning.options",
    "FsmState": "nexus.planning.options",
    "FsmTransition": "nexus.planning.options",
    "Input": "nexus.planning.options",
    "Aggregate": "nexus.planning.options",
    "Loop": "nexus.planning.options",
    "MAX_WORKFLOW_BYTES": "nexus.planning.workflow",
    "McpServerRef": "nexus.planning.builder",
    "Profile": "nexus.planning.options",
    "Replan": "nexus.planning.options",
    "TaskRef": "nexus.planning.builder",
    "WORKFLOW_VERSION": "nexus.planning.workflow",
    "Wait": "nexus.planning.options",
    "WorkflowBuilder": "nexus.planning.builder",
    "compile_workflow": "nexus.planning.workflow",
    "load_workflow": "nexus.planning.workflow",
}


__getattr__, __dir__ = _on_first_use(__name__, _EXPORTS, globals())


__all__ = [
    "MAX_WORKFLOW_BYTES",
    "WORKFLOW_VERSION",
    "AgentRef",
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
    "McpServerRef",
    "Profile",
    "Replan",
    "TaskRef",
    "Wait",
    "WorkflowBuilder",
    "compile_workflow",
    "load_workflow",
]
