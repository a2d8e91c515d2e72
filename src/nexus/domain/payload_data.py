"""The stored form of every payload: a ``TypedDict`` per model of :mod:`nexus.domain.payloads`.

An event's ``data`` is a plain dict; the payload models are typed views over
it. Building a view costs an object and a property call per field, which the
fold cannot afford: it reads one payload per event, 40,000 events for a
10,000-task run, and is the hot path of every ``status``, ``resume`` and
``replay``. So the fold reads the dict itself, typed by these declarations:
``data["task"]`` on an :class:`AttemptStartedData` is a ``str`` to mypy, a
misspelt key is a type error, and at run time it is one dict lookup.

Each ``<Model>Data`` says what ``<Model>.to_data()`` stores: a field the model
always writes is a required key, one it leaves out when it has no value is
``NotRequired`` (with ``None`` in its type only where the log holds ``null``).
A test checks every declaration against its model, key by key and type by
type, so the two cannot drift. What a payload may hold is the model's to
enforce (:meth:`nexus.domain.payloads.Payload.check` does it for the fold); these are
types only, and nothing here runs.
"""

# No ``from __future__ import annotations`` here: with string annotations,
# Python 3.11's TypedDict takes every NotRequired key for a required one at
# run time (``__required_keys__``), which the test against the models reads.
from typing import Any, NotRequired, TypedDict

from nexus.domain.events import JSONDict

# -- records carried inside payloads ------------------------------------------


class EffectRecordData(TypedDict):
    key: str
    kind: str
    task: str
    attempt: int
    request: Any
    response: Any
    result_hash: str | None
    error: JSONDict | None
    started: str
    ended: str
    source: NotRequired[str]
    spend: NotRequired[JSONDict]
    tenant_budget: NotRequired[list[JSONDict]]
    continued: NotRequired[JSONDict]
    wrote: NotRequired[list[str]]


# -- inputs --------------------------------------------------------------------


class RunStartedData(TypedDict):
    name: str
    plan: JSONDict
    plan_hash: str
    inputs: JSONDict
    workspace: str
    source: str | None
    secrets: NotRequired[JSONDict]
    redaction: NotRequired[JSONDict]
    tenant: NotRequired[str]
    residency: NotRequired[JSONDict]
    pricing: NotRequired[JSONDict]
    estimate: NotRequired[JSONDict]


class RunResumedData(TypedDict):
    interrupted: list[str]
    pid: int


class CancelRequestedData(TypedDict):
    reason: str
    by: NotRequired[str]


class PauseRequestedData(TypedDict):
    by: str
    reason: str
    orphaned: NotRequired[list[str]]


class TimerFiredData(TypedDict):
    task: str


class BarrierTimedOutData(TypedDict):
    task: str


class BarrierArmedData(TypedDict):
    task: str
    timeout_ms: int
    deadline: str


class AttemptFinishedData(TypedDict):
    task: str
    attempt: int
    output: NotRequired[Any]
    error: NotRequired[JSONDict]


class ApprovalAnsweredData(TypedDict):
    task: str
    by: str | None
    reason: str | None


class ApprovalTimedOutData(TypedDict):
    task: str


class BudgetRaisedData(TypedDict):
    scope: JSONDict
    limits: JSONDict


class InterruptsResetData(TypedDict):
    tasks: list[str]
    limit: int


class RunContinuedData(TypedDict):
    reason: str


# -- decisions -----------------------------------------------------------------


class ApprovalRequestedData(TypedDict):
    task: str
    on_timeout: str
    timeout_ms: NotRequired[int]
    deadline: NotRequired[str]


class ApprovalEscalatedData(TypedDict):
    task: str
    reason: str


class TaskExpandedData(TypedDict):
    task: str
    items: list[Any]


class AttemptStartedData(TypedDict):
    task: str
    attempt: int
    tool: NotRequired[str]
    args: NotRequired[Any]
    profile: NotRequired[JSONDict]
    agent: NotRequired[str]
    route: NotRequired[JSONDict]
    model: NotRequired[str]
    models: NotRequired[list[str]]
    model_route: NotRequired[JSONDict]
    prompt: NotRequired[str]
    instructions: NotRequired[str]
    turn: NotRequired[int]
    output_schema: NotRequired[JSONDict]
    feedback: NotRequired[JSONDict]
    timeout_ms: NotRequired[int]
    continues: NotRequired[list[int]]
    iteration: NotRequired[int]
    node: NotRequired[str]
    writes: NotRequired[list[str]]
    state: NotRequired[str]
    step: NotRequired[int]


class BtTickedData(TypedDict):
    task: str
    node: str
    kind: str
    status: str
    step: int
    attempt: NotRequired[int]
    value: NotRequired[Any]
    deadline: NotRequired[str]
    reason: NotRequired[str]


class ConflictDetectedData(TypedDict):
    path: str
    task: str
    attempt: int
    other: str
    other_attempt: int
    effect: str


class FsmTransitionedData(TypedDict):
    task: str
    attempt: int
    step: int
    state: str
    to: str
    transition: int
    value: Any
    output: NotRequired[Any]


class TaskIteratedData(TypedDict):
    task: str
    attempt: int
    iteration: int
    value: Any


class PlanExtendedData(TypedDict):
    task: str
    attempt: int
    tasks: list[dict[str, Any]]
    depth: int
    review: NotRequired[bool]


class PlanCachedData(TypedDict):
    task: str
    attempt: int
    source_run: str
    key: str
    output: Any
    saved: JSONDict


class PlanReplanningData(TypedDict):
    task: str
    round: int
    failed: list[str]
    feedback: dict[str, Any]


class SagaStartedData(TypedDict):
    task: str
    steps: list[str]


class CompensationStartedData(TypedDict):
    task: str
    compensation: str
    step: int
    total: int


class SagaFinishedData(TypedDict):
    task: str
    compensated: list[str]
    failed: list[str]
    not_run: list[str]


class AttemptInterruptedData(TypedDict):
    task: str
    attempt: int
    error: JSONDict


class RetryScheduledData(TypedDict):
    task: str
    attempt: int
    error: JSONDict
    delay_ms: int
    not_before: str


class TaskSucceededData(TypedDict):
    task: str
    attempt: NotRequired[int]
    case: NotRequired[str]
    value: NotRequired[Any]
    iteration: NotRequired[int]
    aggregate: NotRequired[JSONDict]


class TaskFailedData(TypedDict):
    task: str
    attempts: int
    error: JSONDict
    aggregate: NotRequired[JSONDict]


class TaskEndedUnrunData(TypedDict):
    task: str
    reason: str
    condition: NotRequired[str]
    value: NotRequired[Any]
    switch: NotRequired[str]
    case: NotRequired[str]


class RunEndedData(TypedDict):
    status: str
    tasks: dict[str, int]


class BudgetCrossedData(TypedDict):
    scope: str
    key: str
    dimension: str
    threshold: str
    percent: int
    spent: str | int | float
    limit: str | int | float
    task: str
    asked: NotRequired[Any]
    reserved: NotRequired[Any]


class TaskPausedData(TypedDict):
    task: str
    reason: str
    attempt: NotRequired[int]


class RunPausedData(TypedDict):
    reason: str
    paused: list[str]
    count: int
    hint: str
    by: NotRequired[str]
    why: NotRequired[str]


__all__ = [
    "ApprovalAnsweredData",
    "ApprovalEscalatedData",
    "ApprovalRequestedData",
    "ApprovalTimedOutData",
    "AttemptFinishedData",
    "AttemptInterruptedData",
    "AttemptStartedData",
    "BarrierArmedData",
    "BarrierTimedOutData",
    "BtTickedData",
    "BudgetCrossedData",
    "BudgetRaisedData",
    "CancelRequestedData",
    "CompensationStartedData",
    "ConflictDetectedData",
    "EffectRecordData",
    "FsmTransitionedData",
    "InterruptsResetData",
    "PauseRequestedData",
    "PlanCachedData",
    "PlanExtendedData",
    "PlanReplanningData",
    "RetryScheduledData",
    "RunContinuedData",
    "RunEndedData",
    "RunPausedData",
    "RunResumedData",
    "RunStartedData",
    "SagaFinishedData",
    "SagaStartedData",
    "TaskEndedUnrunData",
    "TaskExpandedData",
    "TaskFailedData",
    "TaskIteratedData",
    "TaskPausedData",
    "TaskSucceededData",
    "TimerFiredData",
]
