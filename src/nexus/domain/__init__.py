"""Pure domain: ids, plans, events, errors, state machines. No IO, no asyncio."""

from nexus.domain.canonical import GENESIS_HASH, canonical_json, chain_hash, digest
from nexus.domain.errors import (
    BudgetExceeded,
    ConflictError,
    EffectTimeout,
    ErrorKind,
    InfrastructureError,
    IntegrityError,
    InternalError,
    NexusError,
    NotFoundError,
    PolicyDenied,
    TemplateError,
    UserError,
    WorkflowError,
)
from nexus.domain.events import Draft, Event, EventType, seal
from nexus.domain.plan import AgentSpec, Plan, RetryPolicy, TaskSpec, plan_hash
from nexus.domain.state import RunState, RunStatus, TaskState, TaskStatus

__all__ = [
    "GENESIS_HASH",
    "AgentSpec",
    "BudgetExceeded",
    "ConflictError",
    "Draft",
    "EffectTimeout",
    "ErrorKind",
    "Event",
    "EventType",
    "InfrastructureError",
    "IntegrityError",
    "InternalError",
    "NexusError",
    "NotFoundError",
    "Plan",
    "PolicyDenied",
    "RetryPolicy",
    "RunState",
    "RunStatus",
    "TaskSpec",
    "TaskState",
    "TaskStatus",
    "TemplateError",
    "UserError",
    "WorkflowError",
    "canonical_json",
    "chain_hash",
    "digest",
    "plan_hash",
    "seal",
]
