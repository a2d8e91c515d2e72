"""Pure domain: ids, plans, events, errors, state machines. No IO, no asyncio.

The names below are loaded on first use (PEP 562): ``from nexus.domain.errors
import UserError`` -- what the CLI does before every command -- does not pay for
the run-state fold and the payload views (``state``, ``payloads``), which a
command reading no run never needs.
"""

import typing as _typing

from nexus.domain._lazy import on_first_use as _on_first_use

if _typing.TYPE_CHECKING:
    from nexus.domain.canonical import GENESIS_HASH as GENESIS_HASH
    from nexus.domain.canonical import canonical_json as canonical_json
    from nexus.domain.canonical import chain_hash as chain_hash
    from nexus.domain.canonical import digest as digest
    from nexus.domain.errors import BudgetExceeded as BudgetExceeded
    from nexus.domain.errors import ConflictError as ConflictError
    from nexus.domain.errors import EffectTimeout as EffectTimeout
    from nexus.domain.errors import ErrorKind as ErrorKind
    from nexus.domain.errors import InfrastructureError as InfrastructureError
    from nexus.domain.errors import IntegrityError as IntegrityError
    from nexus.domain.errors import InternalError as InternalError
    from nexus.domain.errors import NexusError as NexusError
    from nexus.domain.errors import NotFoundError as NotFoundError
    from nexus.domain.errors import PolicyDenied as PolicyDenied
    from nexus.domain.errors import TemplateError as TemplateError
    from nexus.domain.errors import UserError as UserError
    from nexus.domain.errors import WorkflowError as WorkflowError
    from nexus.domain.events import Draft as Draft
    from nexus.domain.events import Event as Event
    from nexus.domain.events import EventType as EventType
    from nexus.domain.events import seal as seal
    from nexus.domain.plan import AgentSpec as AgentSpec
    from nexus.domain.plan import Plan as Plan
    from nexus.domain.plan import RetryPolicy as RetryPolicy
    from nexus.domain.plan import TaskSpec as TaskSpec
    from nexus.domain.plan import plan_hash as plan_hash
    from nexus.domain.state import RunState as RunState
    from nexus.domain.state import RunStatus as RunStatus
    from nexus.domain.state import TaskState as TaskState
    from nexus.domain.state import TaskStatus as TaskStatus

#: Where each public name lives; :func:`__getattr__` imports it on first use.
_EXPORTS: dict[str, str] = {
    "AgentSpec": "nexus.domain.plan",
    "BudgetExceeded": "nexus.domain.errors",
    "canonical_json": "nexus.domain.canonical",
    "chain_hash": "nexus.domain.canonical",
    "ConflictError": "nexus.domain.errors",
    "digest": "nexus.domain.canonical",
    "Draft": "nexus.domain.events",
    "EffectTimeout": "nexus.domain.errors",
    "ErrorKind": "nexus.domain.errors",
    "Event": "nexus.domain.events",
    "EventType": "nexus.domain.events",
    "GENESIS_HASH": "nexus.domain.canonical",
    "InfrastructureError": "nexus.domain.errors",
    "IntegrityError": "nexus.domain.errors",
    "InternalError": "nexus.domain.errors",
    "NexusError": "nexus.domain.errors",
    "NotFoundError": "nexus.domain.errors",
    "Plan": "nexus.domain.plan",
    "plan_hash": "nexus.domain.plan",
    "PolicyDenied": "nexus.domain.errors",
    "RetryPolicy": "nexus.domain.plan",
    "RunState": "nexus.domain.state",
    "RunStatus": "nexus.domain.state",
    "seal": "nexus.domain.events",
    "TaskSpec": "nexus.domain.plan",
    "TaskState": "nexus.domain.state",
    "TaskStatus": "nexus.domain.state",
    "TemplateError": "nexus.domain.errors",
    "UserError": "nexus.domain.errors",
    "WorkflowError": "nexus.domain.errors",
}


__getattr__, __dir__ = _on_first_use(__name__, _EXPORTS, globals())


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
