"""Nexus: run multi-agent missions reliably.

Plans become task graphs, tasks are routed to agents and tools, and every step
is recorded in a hash-chained event log from which resume, replay and audit
are read.

Example:
    >>> import nexus
    >>> wf = nexus.Workflow("hello")
    >>> wf.task("say", tool="shell", args={"cmd": "echo hello"})
    TaskRef(id='say')

The names below are loaded on first use (PEP 562), so ``import nexus`` -- and so
``import nexus.domain`` -- stays light: no engine, store, SDK or template library is
imported until a program uses a name that needs it.
"""

import typing as _typing

from nexus.domain._lazy import on_first_use as _on_first_use

if _typing.TYPE_CHECKING:
    from nexus.agents.base import AgentCall as AgentCall
    from nexus.agents.base import AgentContext as AgentContext
    from nexus.agents.base import FunctionAgent as FunctionAgent
    from nexus.app import Workflow as Workflow
    from nexus.domain.errors import BudgetExceeded as BudgetExceeded
    from nexus.domain.errors import ConflictError as ConflictError
    from nexus.domain.errors import ErrorKind as ErrorKind
    from nexus.domain.errors import InfrastructureError as InfrastructureError
    from nexus.domain.errors import IntegrityError as IntegrityError
    from nexus.domain.errors import NexusError as NexusError
    from nexus.domain.errors import NotFoundError as NotFoundError
    from nexus.domain.errors import PolicyDenied as PolicyDenied
    from nexus.domain.errors import TemplateError as TemplateError
    from nexus.domain.errors import UserError as UserError
    from nexus.domain.errors import WorkflowError as WorkflowError
    from nexus.domain.plan import AgentSpec as AgentSpec
    from nexus.domain.plan import Plan as Plan
    from nexus.domain.plan import RetryPolicy as RetryPolicy
    from nexus.domain.plan import TaskSpec as TaskSpec
    from nexus.domain.plan import plan_hash as plan_hash
    from nexus.engine.facade import Engine as Engine
    from nexus.engine.facade import ReplayReport as ReplayReport
    from nexus.engine.facade import RunResult as RunResult
    from nexus.engine.results import RunCost as RunCost
    from nexus.engine.results import TaskError as TaskError
    from nexus.engine.results import TaskResult as TaskResult
    from nexus.planning.builder import AgentRef as AgentRef
    from nexus.planning.builder import McpServerRef as McpServerRef
    from nexus.planning.builder import TaskRef as TaskRef
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
    from nexus.planning.workflow import compile_workflow as compile_workflow
    from nexus.planning.workflow import load_workflow as load_workflow
    from nexus.store.sqlite import SQLiteStore as SQLiteStore
    from nexus.tools.base import FunctionTool as FunctionTool
    from nexus.tools.base import ToolContext as ToolContext
    from nexus.tools.base import ToolRegistry as ToolRegistry
    from nexus.tools.base import tool as tool

#: Where each public name lives; :func:`__getattr__` imports it on first use.
_EXPORTS: dict[str, str] = {
    "AgentCall": "nexus.agents.base",
    "AgentContext": "nexus.agents.base",
    "AgentRef": "nexus.planning.builder",
    "AgentSpec": "nexus.domain.plan",
    "Approval": "nexus.planning.options",
    "Compensate": "nexus.planning.options",
    "Backoff": "nexus.planning.options",
    "Bt": "nexus.planning.options",
    "Budget": "nexus.planning.options",
    "Fsm": "nexus.planning.options",
    "FsmState": "nexus.planning.options",
    "FsmTransition": "nexus.planning.options",
    "BudgetExceeded": "nexus.domain.errors",
    "ConflictError": "nexus.domain.errors",
    "Engine": "nexus.engine.facade",
    "ErrorKind": "nexus.domain.errors",
    "FunctionAgent": "nexus.agents.base",
    "FunctionTool": "nexus.tools.base",
    "InfrastructureError": "nexus.domain.errors",
    "Extend": "nexus.planning.options",
    "Extensions": "nexus.planning.options",
    "Input": "nexus.planning.options",
    "IntegrityError": "nexus.domain.errors",
    "Aggregate": "nexus.planning.options",
    "Loop": "nexus.planning.options",
    "McpServerRef": "nexus.planning.builder",
    "NexusError": "nexus.domain.errors",
    "NotFoundError": "nexus.domain.errors",
    "Plan": "nexus.domain.plan",
    "PolicyDenied": "nexus.domain.errors",
    "Profile": "nexus.planning.options",
    "Replan": "nexus.planning.options",
    "ReplayReport": "nexus.engine.facade",
    "RetryPolicy": "nexus.domain.plan",
    "RunCost": "nexus.engine.results",
    "RunResult": "nexus.engine.facade",
    "SQLiteStore": "nexus.store.sqlite",
    "TaskError": "nexus.engine.results",
    "TaskRef": "nexus.planning.builder",
    "TaskResult": "nexus.engine.results",
    "TaskSpec": "nexus.domain.plan",
    "TemplateError": "nexus.domain.errors",
    "ToolContext": "nexus.tools.base",
    "ToolRegistry": "nexus.tools.base",
    "UserError": "nexus.domain.errors",
    "Wait": "nexus.planning.options",
    "Workflow": "nexus.app",
    "WorkflowError": "nexus.domain.errors",
    "compile_workflow": "nexus.planning.workflow",
    "load_workflow": "nexus.planning.workflow",
    "plan_hash": "nexus.domain.plan",
    "tool": "nexus.tools.base",
}


__getattr__, __dir__ = _on_first_use(__name__, _EXPORTS, globals())


__version__ = "0.1.0"

__all__ = [
    "AgentCall",
    "AgentContext",
    "AgentRef",
    "AgentSpec",
    "Aggregate",
    "Approval",
    "Backoff",
    "Bt",
    "Budget",
    "BudgetExceeded",
    "Compensate",
    "ConflictError",
    "Engine",
    "ErrorKind",
    "Extend",
    "Extensions",
    "Fsm",
    "FsmState",
    "FsmTransition",
    "FunctionAgent",
    "FunctionTool",
    "InfrastructureError",
    "Input",
    "IntegrityError",
    "Loop",
    "McpServerRef",
    "NexusError",
    "NotFoundError",
    "Plan",
    "PolicyDenied",
    "Profile",
    "Replan",
    "ReplayReport",
    "RetryPolicy",
    "RunCost",
    "RunResult",
    "SQLiteStore",
    "TaskError",
    "TaskRef",
    "TaskResult",
    "TaskSpec",
    "TemplateError",
    "ToolContext",
    "ToolRegistry",
    "UserError",
    "Wait",
    "Workflow",
    "WorkflowError",
    "__version__",
    "compile_workflow",
    "load_workflow",
    "plan_hash",
    "tool",
]
