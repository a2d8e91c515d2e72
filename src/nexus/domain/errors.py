"""One error tree for all of Nexus, keyed onto the error taxonomy.

Every error a user or an operator can see is a :class:`NexusError`. The tree is
branched by *who must act* on it, and each class carries its taxonomy ``kind``
(see ``ARCHITECTURE.md``) so retry policy, metrics and messages key on one field::

    NexusError                        kind
    ├── UserError                     validation      the input is wrong: fix the file / request
    │   ├── WorkflowError             validation      a workflow file is invalid (file, task, field)
    │   ├── TemplateError             validation      a template fails to compile or render
    │   │   └── TemplateLimitError    validation      it asks for more work or memory than allowed
    │   ├── AmbiguousRun              validation      a run-id prefix names more than one run
    │   ├── SpecError                 validation      a design spec cannot be read (file, line)
    │   ├── PlanRejected              validation      a mission plan breaks the compiler's rules
    │   ├── GitError                  validation      a repository, branch or git command fails
    │   ├── NotFoundError             not_found       a run, task or file does not exist
    │   └── StoreUnusable             validation      the database is not a store Nexus can use
    ├── ConflictError                 conflict        another process owns the run, or state forbids
    ├── PolicyDenied                  policy_denied   a deny-by-default policy refused
    │   ├── SandboxDenied             policy_denied   the sandbox refused what a command tried
    │   └── SandboxUnavailable        policy_denied   no usable sandbox on this machine
    ├── BudgetExceeded                budget_exceeded
    │   └── BudgetLimitExceeded       budget_exceeded which scope's budget, by how much
    ├── InfrastructureError           transient       a retry may help (I/O, busy database)
    │   └── EffectTimeout             timeout         an effect missed its deadline
    ├── EffectFailed                  internal        an effect ended in an error (its record)
    ├── IntegrityError                internal        the audit chain or a replay does not hold
    ├── InternalError                 internal        a bug in Nexus
    ├── ReplayDiverged                internal        replay asked for an effect unlike the record
    ├── ToolFailed                    transient       a tool ran and reported failure
    ├── AgentStepLimit                validation      an agent used all its model calls
    ├── StructuredOutputError         validation      a model's answer misses the output schema
    └── ProviderError                 internal        a model provider failed; each subclass:
        ├── ProviderUnavailable       transient       + InfrastructureError
        ├── ProviderTimeout           timeout         + EffectTimeout
        ├── ProviderRateLimited       rate_limited    + InfrastructureError
        ├── ProviderRejected          validation      + UserError
        ├── ProviderAuthError         auth
        ├── ProviderNotFound          not_found       + NotFoundError
        ├── ProviderConflict          conflict        + ConflictError
        ├── ProviderRefused           policy_denied   + PolicyDenied
        └── ProviderInternalError     internal        + InternalError

A class is drawn under its first base; ``+ Name`` marks a second base in the
tree (a provider timeout *is* an :class:`EffectTimeout`, so retry policy
treats it as one). Classes outside this module live with the code that raises
them (``gateway/errors.py``, ``tools/``, ``store/``, ``agents/``, ``engine/``,
``templating/``, ``cli/``). ``tests/domain/test_error_tree.py`` checks that every
``NexusError`` subclass in the package is drawn here, under its base, with its kind.

Retry semantics live on the error (``retryable``, ``retry_after``), as in
Temporal's ``ApplicationError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    """The error taxonomy shared by retries, metrics and user messages."""

    TRANSIENT = "transient"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    VALIDATION = "validation"
    AUTH = "auth"
    POLICY_DENIED = "policy_denied"
    BUDGET_EXCEEDED = "budget_exceeded"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    INTERNAL = "internal"


#: Kinds that a retry can cure. Everything else fails the task at once.
RETRYABLE_KINDS: frozenset[ErrorKind] = frozenset(
    {ErrorKind.TRANSIENT, ErrorKind.TIMEOUT, ErrorKind.RATE_LIMITED}
)


class NexusError(Exception):
    """Root of every error Nexus raises on purpose."""

    kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = self.kind in RETRYABLE_KINDS if retryable is None else retryable
        self.retry_after = retry_after

    def to_data(self) -> dict[str, object]:
        """The error as recorded in events: kind, message and retry hints."""
        data: dict[str, object] = {
            "kind": str(self.kind),
            "message": self.message,
            "retryable": self.retryable,
        }
        if self.retry_after is not None:
            data["retry_after"] = self.retry_after
        return data


class UserError(NexusError):
    """The user's input is wrong; the message says where and how."""

    kind = ErrorKind.VALIDATION


class WorkflowError(UserError):
    """A workflow file is invalid.

    One error may stand for several problems (:meth:`several`): it names the
    first one's place, its message lists every problem on a line of its own,
    and :attr:`problems` holds each; a single problem's ``problems`` is itself.

    Args:
        message: what is wrong.
        file: the workflow file, when there is one.
        task: the task the problem is in, if any.
        field: the dotted field path, if any.
    """

    problems: tuple[WorkflowError, ...]

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        task: str | None = None,
        field: str | None = None,
    ) -> None:
        self.file = file
        self.task = task
        self.field = field
        where = []
        if file:
            where.append(file)
        if task:
            where.append(f"task '{task}'")
        if field:
            where.append(f"field '{field}'")
        prefix = ": ".join([", ".join(where)]) + ": " if where else ""
        super().__init__(prefix + message)
        self.detail = message
        self.problems = (self,)

    @classmethod
    def several(cls, problems: Sequence[WorkflowError]) -> WorkflowError:
        """One error for ``problems`` (at least one), in their order."""
        first, rest = problems[0], problems[1:]
        if not rest:
            return first
        listed = "".join(f"\n{problem.message}" for problem in rest)
        error = cls(first.detail + listed, file=first.file, task=first.task, field=first.field)
        error.problems = tuple(problems)
        return error


class TemplateError(UserError):
    """A template fails to compile or to render."""


class NotFoundError(UserError):
    """A run, task or file does not exist."""

    kind = ErrorKind.NOT_FOUND


class ConflictError(NexusError):
    """The request conflicts with the current state (a live owner, a finished run)."""

    kind = ErrorKind.CONFLICT


class PolicyDenied(NexusError):
    """A deny-by-default policy refused the request."""

    kind = ErrorKind.POLICY_DENIED


class BudgetExceeded(NexusError):
    """A budget would be or was exceeded."""

    kind = ErrorKind.BUDGET_EXCEEDED


class InfrastructureError(NexusError):
    """Infrastructure failed in a way a retry may cure."""

    kind = ErrorKind.TRANSIENT


class EffectTimeout(InfrastructureError):
    """An effect did not finish within its deadline."""

    kind = ErrorKind.TIMEOUT


class EffectFailed(NexusError):
    """An effect ended in an error; ``error`` is the recorded error record.

    Raised by the engine's effect boundary to whoever asked for the effect (an
    agent's model or tool call): its ``kind`` is the base ``internal`` but its
    ``retryable`` is the record's, so a retry decision follows what was recorded.
    It lives here, not in the engine, so that agents can catch it without
    importing the engine.
    """

    def __init__(self, error: dict[str, Any]) -> None:
        self.error = error
        super().__init__(str(error.get("message", "effect failed")))
        self.retryable = bool(error.get("retryable", False))


class IntegrityError(NexusError):
    """The audit chain or a replay does not hold."""

    kind = ErrorKind.INTERNAL


class InternalError(NexusError):
    """A bug in Nexus."""

    kind = ErrorKind.INTERNAL
