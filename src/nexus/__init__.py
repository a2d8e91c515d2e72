"""Nexus: run multi-agent missions reliably.

Plans become task graphs, tasks are routed to agents and tools, and every step
is recorded in a hash-chained event log from which resume, replay and audit
are read.

Example:
    >>> import nexus
    >>> wf = nexus.Workflow("hello")
    >>> wf.task("say", tool="shell", args={"cmd": "echo hello"})
    TaskRef(id='say')
"""

from nexus.agents.base import AgentCall, AgentContext, FunctionAgent
from nexus.domain.errors import (
    BudgetExceeded,
    ConflictError,
    ErrorKind,
    InfrastructureError,
    IntegrityError,
    NexusError,
    NotFoundError,
    PolicyDenied,
    TemplateError,
    UserError,
    WorkflowError,
)
from nexus.domain.plan import AgentSpec, Plan, RetryPolicy, TaskSpec, plan_hash
from nexus.engine.runtime import Engine, ReplayReport, RunResult
from nexus.app import Workflow
from nexus.planning.builder import AgentRef, TaskRef
from nexus.planning.workflow import compile_workflow, load_workflow
from nexus.store.sqlite import SQLiteStore
from nexus.tools.base import FunctionTool, ToolContext, ToolRegistry, tool

__version__ = "0.1.0"

__all__ = [
    "AgentCall",
    "AgentContext",
    "AgentRef",
    "AgentSpec",
    "BudgetExceeded",
    "ConflictError",
    "Engine",
    "ErrorKind",
    "FunctionAgent",
    "FunctionTool",
    "InfrastructureError",
    "IntegrityError",
    "NexusError",
    "NotFoundError",
    "Plan",
    "PolicyDenied",
    "ReplayReport",
    "RetryPolicy",
    "RunResult",
    "SQLiteStore",
    "TaskRef",
    "TaskSpec",
    "TemplateError",
    "ToolContext",
    "ToolRegistry",
    "UserError",
    "Workflow",
    "WorkflowError",
    "__version__",
    "compile_workflow",
    "load_workflow",
    "plan_hash",
    "tool",
]
