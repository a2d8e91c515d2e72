"""Typed payloads: one model per event type, plus the error and effect records.

An event's ``data`` is stored as the canonical JSON of a plain dict, and the
chain hashes those bytes; the models here are how code reads and writes that
dict without string keys. Two rules keep the bytes of every recorded log
unchanged:

* ``Model.of(data)`` reads a payload exactly as stored; a key no model field
  names is an :class:`~nexus.domain.errors.IntegrityError` (the log and the
  code disagree), never silently dropped.
* ``model.to_data()`` gives back the same dict: a field whose default is
  ``None`` is left out when it is ``None`` (the key was absent), a field with
  no default is always written (``null`` included), and a field whose default
  is :data:`ABSENT` is left out only when absent -- for the few keys the log
  holds sometimes as ``null`` and sometimes not at all.

So ``Model.of(data).to_data() == data`` for every recorded event (the fixtures
test checks it on logs recorded before these models existed).

Why plain ``@dataclass(slots=True)``: the fold builds one payload per event on
the hot path. Building a slotted dataclass from a dict is ``cls(**data)``, a
few hundred nanoseconds; pydantic validation of the same dict costs several
times more (measured in ``docs/benchmarks.md``), and msgspec is not a
dependency. The JSON Schema is generated from these classes by
:mod:`nexus.domain.event_schema`.
"""

from __future__ import annotations

import enum
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar, Final, Literal, Self, TypeAlias

from nexus.domain.errors import IntegrityError
from nexus.domain.events import Event, EventType, JSONDict


class _Absent(enum.Enum):
    ABSENT = "absent"

    def __repr__(self) -> str:
        return "ABSENT"


#: The value of a field whose key is not in the payload (see the module docstring).
ABSENT: Final = _Absent.ABSENT
Absent: TypeAlias = Literal[_Absent.ABSENT]

#: A JSON value (the parts of a payload no model describes further).
JSON: TypeAlias = Any

_OMIT_NONE, _OMIT_ABSENT, _ALWAYS = 0, 1, 2


class Payload:
    """Base of every payload model: reading from and writing to the stored dict."""

    __slots__ = ()
    #: the event types this model is the payload of
    TYPES: ClassVar[tuple[EventType, ...]] = ()
    _layout: ClassVar[tuple[tuple[str, int], ...]] = ()

    @classmethod
    def of(cls, data: JSONDict) -> Self:
        """The payload as stored in an event's ``data``.

        Raises:
            IntegrityError: a key the model does not know, or one it needs is missing.
        """
        try:
            return cls(**data)
        except TypeError:
            raise IntegrityError(_mismatch(cls, data)) from None

    @classmethod
    def from_event(cls, event: Event) -> Self:
        """The payload of ``event``, which must be of one of :attr:`TYPES`."""
        if event.type not in cls.TYPES:
            raise IntegrityError(
                f"run {event.run_id} seq {event.seq}: a {event.type} event is not a {cls.__name__}"
            )
        try:
            return cls(**event.data)
        except TypeError:
            raise IntegrityError(
                f"run {event.run_id} seq {event.seq}: {_mismatch(cls, event.data)}"
            ) from None

    def to_data(self) -> JSONDict:
        """The dict stored as the event's ``data`` (see the module docstring)."""
        data: JSONDict = {}
        for name, mode in self._layout:
            value = getattr(self, name)
            if mode == _OMIT_NONE:
                if value is not None:
                    data[name] = value
            elif mode == _ALWAYS or value is not ABSENT:
                data[name] = value
        return data


def _mismatch(cls: type[Payload], data: JSONDict) -> str:
    known = {name for name, _ in cls._layout}
    needed = {name for name, mode in cls._layout if mode == _ALWAYS}
    unknown = sorted(set(data) - known)
    missing = sorted(needed - set(data))
    what = cls.TYPES[0] if cls.TYPES else cls.__name__
    parts = []
    if unknown:
        parts.append(f"unexpected field(s) {', '.join(unknown)}")
    if missing:
        parts.append(f"missing field(s) {', '.join(missing)}")
    return f"{what} payload: {'; '.join(parts) or 'does not fit its model'}"


def _layout(cls: type[Payload]) -> tuple[tuple[str, int], ...]:
    out = []
    for f in fields(cls):  # type: ignore[arg-type]
        if f.default is ABSENT:
            out.append((f.name, _OMIT_ABSENT))
        elif f.default is None:
            out.append((f.name, _OMIT_NONE))
        elif f.default is MISSING and f.default_factory is MISSING:
            out.append((f.name, _ALWAYS))
        else:  # pragma: no cover - no model has other defaults
            raise TypeError(f"{cls.__name__}.{f.name}: defaults are None, ABSENT or none")
    return tuple(out)


# -- records carried inside payloads ------------------------------------------


@dataclass(slots=True)
class ErrorRecord:
    """An error as recorded in events: kind (the taxonomy), message and retry hints.

    Errors are made in many places (tools, providers, the decider), so every
    field but ``kind`` and ``message`` may be absent, and a field recorded as
    ``null`` stays ``null``: absent is :data:`ABSENT`. ``extra`` holds the
    fields only some errors carry (a provider error's ``provider``,
    ``status``, ``request_id``...), so a record reads and writes back unchanged.
    """

    kind: str
    message: str
    retryable: bool | Absent | None = ABSENT
    #: seconds to wait before a retry, as the failing service asked
    retry_after: float | Absent | None = ABSENT
    #: the count of interruptions so far (set by the decider on a retry)
    interrupts: int | Absent | None = ABSENT
    #: what a failed check or tool reported, for the next attempt's feedback
    details: JSON | Absent = ABSENT
    #: the limit that refused a call (a `budget_exceeded` error)
    budget: JSONDict | Absent | None = ABSENT
    extra: JSONDict | None = None

    _OPTIONAL: ClassVar[tuple[str, ...]] = (
        "retryable",
        "retry_after",
        "interrupts",
        "details",
        "budget",
    )
    _KNOWN: ClassVar[frozenset[str]] = frozenset({"kind", "message", *_OPTIONAL})

    @classmethod
    def of(cls, data: JSONDict) -> ErrorRecord:
        """The record as stored.

        Raises:
            IntegrityError: ``kind`` or ``message`` is missing.
        """
        get = data.get
        extra = {k: v for k, v in data.items() if k not in cls._KNOWN} or None
        try:
            return cls(
                kind=data["kind"],
                message=data["message"],
                retryable=get("retryable", ABSENT),
                retry_after=get("retry_after", ABSENT),
                interrupts=get("interrupts", ABSENT),
                details=get("details", ABSENT),
                budget=get("budget", ABSENT),
                extra=extra,
            )
        except KeyError as exc:
            raise IntegrityError(f"error record: missing field {exc.args[0]}") from None

    def to_data(self) -> JSONDict:
        """The record as stored (absent fields left out)."""
        data: JSONDict = {"kind": self.kind, "message": self.message}
        for name in self._OPTIONAL:
            value = getattr(self, name)
            if value is not ABSENT:
                data[name] = value
        if self.extra:
            data.update(self.extra)
        return data

    @property
    def is_retryable(self) -> bool:
        """Whether the error says a retry may succeed."""
        return self.retryable is True

    @property
    def retry_after_s(self) -> float | None:
        """The wait the failing service asked for, if any."""
        value = self.retry_after
        return None if value is None or value is ABSENT else float(value)

    @property
    def interrupt_count(self) -> int:
        """Interruptions in a row so far (0 when not recorded)."""
        value = self.interrupts
        return 0 if value is None or value is ABSENT else int(value)


@dataclass(slots=True)
class EffectRecord(Payload):
    """One call across the effect boundary (model, tool, clock...): the payload
    of ``effect.recorded``.

    ``key`` is derived from the run, task, attempt and call index, so a replay
    finds the record in the same place.
    """

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.EFFECT_RECORDED,)

    key: str
    kind: str
    task: str
    attempt: int
    request: JSON
    #: what the call returned (null when it failed)
    response: JSON
    #: sha256 of the canonical response (null when the call failed)
    result_hash: str | None
    #: why the call failed (null on success)
    error: JSONDict | None
    started: str
    ended: str
    #: where a tool came from (``builtin``, ``mcp:<server>``, ``wasm``...)
    source: str | None = None
    #: money and tokens a model call cost (``{"usd": "0.01", "tokens": 12}``)
    spend: JSONDict | None = None
    #: tenant budget thresholds this call crossed
    tenant_budget: list[JSONDict] | None = None


# -- inputs --------------------------------------------------------------------


@dataclass(slots=True)
class RunStarted(Payload):
    """The run began: its compiled plan, inputs and the settings it runs under."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.RUN_STARTED,)

    name: str
    plan: JSONDict
    plan_hash: str
    inputs: JSONDict
    workspace: str
    #: the workflow file, when the plan came from one
    source: str | None
    #: salted digests of the secret inputs (their values are never recorded)
    secrets: JSONDict | None = None
    redaction: JSONDict | None = None
    tenant: str | None = None
    residency: JSONDict | None = None
    pricing: JSONDict | None = None
    #: the preflight cost estimate
    estimate: JSONDict | None = None


@dataclass(slots=True)
class RunResumed(Payload):
    """A process took the run over (``nexus resume``, or an approval answer)."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.RUN_RESUMED,)

    #: tasks that were running when the previous process stopped
    interrupted: list[str]
    pid: int


@dataclass(slots=True)
class CancelRequested(Payload):
    """Someone asked the run to stop."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.CANCEL_REQUESTED,)

    reason: str


@dataclass(slots=True)
class TimerFired(Payload):
    """A task's retry wait is over."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.TIMER_FIRED,)

    task: str


@dataclass(slots=True)
class AttemptFinished(Payload):
    """A worker ended an attempt: its output, or its error."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.ATTEMPT_FINISHED,)

    task: str
    attempt: int
    output: JSON | Absent = ABSENT
    error: JSONDict | None = None


@dataclass(slots=True)
class ApprovalAnswered(Payload):
    """A person approved or rejected a task."""

    TYPES: ClassVar[tuple[EventType, ...]] = (
        EventType.APPROVAL_GRANTED,
        EventType.APPROVAL_REJECTED,
    )

    task: str
    by: str | None
    reason: str | None


@dataclass(slots=True)
class ApprovalTimedOut(Payload):
    """No answer came before the approval's deadline."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.APPROVAL_TIMED_OUT,)

    task: str


@dataclass(slots=True)
class BudgetRaised(Payload):
    """``nexus resume --budget``: a scope's limits were raised."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.BUDGET_RAISED,)

    #: ``{"kind": "run"|"agent"|"task", "key": ...}``
    scope: JSONDict
    #: the new limits (``{"usd": "5", "tool_calls": 9}``)
    limits: JSONDict


@dataclass(slots=True)
class InterruptsReset(Payload):
    """``nexus resume --retry-interrupted``: these tasks' interrupt counts start afresh."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.INTERRUPTS_RESET,)

    tasks: list[str]
    limit: int


@dataclass(slots=True)
class RunContinued(Payload):
    """The decider is asked to schedule on (after work it had put off)."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.RUN_CONTINUED,)

    reason: str


# -- decisions -----------------------------------------------------------------


@dataclass(slots=True)
class ApprovalRequested(Payload):
    """A task waits for a person's approval."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.APPROVAL_REQUESTED,)

    task: str
    #: ``fail`` or ``escalate``
    on_timeout: str
    timeout_ms: int | None = None
    deadline: str | None = None


@dataclass(slots=True)
class ApprovalEscalated(Payload):
    """The approval's deadline passed and its policy escalates: still waiting."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.APPROVAL_ESCALATED,)

    task: str
    reason: str


@dataclass(slots=True)
class TaskExpanded(Payload):
    """A ``foreach`` task became one task per item (``<task>[<index>]``)."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.TASK_EXPANDED,)

    task: str
    items: list[JSON]


@dataclass(slots=True)
class AttemptStarted(Payload):
    """An attempt of a task starts: a tool call (``tool``, ``args``) or an agent's
    turn (``agent``, ``model``, ``prompt``...), everything rendered.
    """

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.ATTEMPT_STARTED,)

    task: str
    attempt: int
    tool: str | None = None
    args: JSON = None
    #: the exec profile granted (what the sandbox may reach)
    profile: JSONDict | None = None
    agent: str | None = None
    #: how the agent was chosen: ``{"candidates": [...], "why": ...}``
    route: JSONDict | None = None
    model: str | None = None
    #: the model chain, when routing chose it
    models: list[str] | None = None
    model_route: JSONDict | None = None
    prompt: str | None = None
    instructions: str | None = None
    #: the agent's attempts before this one
    turn: int | None = None
    output_schema: JSONDict | None = None
    #: what went wrong in the previous attempt, for the agent to fix
    feedback: JSONDict | None = None
    timeout_ms: int | None = None


@dataclass(slots=True)
class AttemptInterrupted(Payload):
    """The process running an attempt stopped before it finished."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.ATTEMPT_INTERRUPTED,)

    task: str
    attempt: int
    error: JSONDict


@dataclass(slots=True)
class RetryScheduled(Payload):
    """A failed attempt will be retried after a backoff."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.RETRY_SCHEDULED,)

    task: str
    attempt: int
    error: JSONDict
    delay_ms: int
    not_before: str


@dataclass(slots=True)
class TaskSucceeded(Payload):
    """A task succeeded (a ``foreach`` parent: when all its items did)."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.TASK_SUCCEEDED,)

    task: str
    #: the attempt that succeeded (absent for a ``foreach`` parent)
    attempt: int | None = None


@dataclass(slots=True)
class TaskFailed(Payload):
    """A task failed for good."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.TASK_FAILED,)

    task: str
    attempts: int
    error: JSONDict


@dataclass(slots=True)
class TaskEndedUnrun(Payload):
    """A task was skipped (a dependency did not succeed) or cancelled."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.TASK_SKIPPED, EventType.TASK_CANCELLED)

    task: str
    reason: str


@dataclass(slots=True)
class RunEnded(Payload):
    """The run ended: its status and how many tasks ended in each status."""

    TYPES: ClassVar[tuple[EventType, ...]] = (
        EventType.RUN_SUCCEEDED,
        EventType.RUN_FAILED,
        EventType.RUN_CANCELLED,
    )

    status: str
    tasks: dict[str, int]


@dataclass(slots=True)
class BudgetCrossed(Payload):
    """Spend crossed a threshold of a limit: 80 % warns, 100 % is exceeded."""

    TYPES: ClassVar[tuple[EventType, ...]] = (
        EventType.BUDGET_WARNING,
        EventType.BUDGET_EXCEEDED,
    )

    #: ``run``, ``agent``, ``task`` or ``tenant``
    scope: str
    key: str
    #: ``usd``, ``tokens``, ``tool_calls`` or ``wall``
    dimension: str
    #: the threshold crossed, as decimal text (``"0.8"``, ``"1"``)
    threshold: str
    percent: int
    spent: str | int | float
    limit: str | int | float
    #: the task whose call crossed it
    task: str
    #: a refusal: what the call asked for (may be null)
    asked: JSON | Absent = ABSENT
    #: a refusal: what others held at the time (may be null)
    reserved: JSON | Absent = ABSENT

    @property
    def scope_id(self) -> str:
        """The scope's id, as budgets key it (``agent:writer``)."""
        return f"{self.scope}:{self.key}"


@dataclass(slots=True)
class TaskPaused(Payload):
    """A task's budget is spent: it waits for ``nexus resume --budget``."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.TASK_PAUSED,)

    task: str
    reason: str
    #: the attempt refused more budget (absent: the task had not started)
    attempt: int | None = None


@dataclass(slots=True)
class RunPaused(Payload):
    """Every task left waits on a paused one: the run pauses."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.RUN_PAUSED,)

    reason: str
    #: the first 20 paused tasks
    paused: list[str]
    count: int
    hint: str


MODELS: tuple[type[Payload], ...] = (
    RunStarted,
    RunResumed,
    CancelRequested,
    TimerFired,
    EffectRecord,
    AttemptFinished,
    ApprovalAnswered,
    ApprovalTimedOut,
    BudgetRaised,
    InterruptsReset,
    RunContinued,
    ApprovalRequested,
    ApprovalEscalated,
    TaskExpanded,
    AttemptStarted,
    AttemptInterrupted,
    RetryScheduled,
    TaskSucceeded,
    TaskFailed,
    TaskEndedUnrun,
    RunEnded,
    BudgetCrossed,
    TaskPaused,
    RunPaused,
)


def _compile_to_data(cls: type[Payload]) -> None:
    """Give ``cls`` a ``to_data`` written out field by field (the loop costs 2x on the hot path).

    Field names are Python identifiers (dataclass fields), so the generated
    source holds nothing but them.
    """
    always = [name for name, mode in cls._layout if mode == _ALWAYS]
    lines = ["def to_data(self):"]
    lines.append("    data = {" + ", ".join(f"{n!r}: self.{n}" for n in always) + "}")
    for name, mode in cls._layout:
        if mode == _OMIT_NONE:
            lines += [
                f"    v = self.{name}",
                "    if v is not None:",
                f"        data[{name!r}] = v",
            ]
        elif mode == _OMIT_ABSENT:
            lines += [
                f"    v = self.{name}",
                "    if v is not ABSENT:",
                f"        data[{name!r}] = v",
            ]
    lines.append("    return data")
    namespace: dict[str, Any] = {"ABSENT": ABSENT}
    exec("\n".join(lines), namespace)  # the source holds field names only
    function = namespace["to_data"]
    function.__doc__ = Payload.to_data.__doc__
    function.__qualname__ = f"{cls.__name__}.to_data"
    setattr(cls, "to_data", function)  # noqa: B010 - mypy forbids assigning a method


#: The payload model of every event type.
PAYLOADS: dict[EventType, type[Payload]] = {}
for _model in MODELS:
    _model._layout = _layout(_model)
    _compile_to_data(_model)
    for _type in _model.TYPES:
        PAYLOADS[_type] = _model
del _model, _type


def payload_of(event: Event) -> Payload:
    """The typed payload of any event."""
    return PAYLOADS[event.type].from_event(event)


#: The event types whose payload names a task (a ``task`` field).
TASK_TYPES: frozenset[EventType] = frozenset(
    t for t, model in PAYLOADS.items() if any(name == "task" for name, _ in model._layout)
)


def task_of(event: Event) -> str | None:
    """The task an event is about, if any -- without building its payload.

    For indexes and filters that look at every event (the store's ``task``
    column, ``nexus events --task``), where parsing each payload would cost
    more than it tells.
    """
    if event.type not in TASK_TYPES:
        return None
    task = event.data.get("task")
    return task if isinstance(task, str) else None


__all__ = [
    "ABSENT",
    "MODELS",
    "PAYLOADS",
    "TASK_TYPES",
    "Absent",
    "ApprovalAnswered",
    "ApprovalEscalated",
    "ApprovalRequested",
    "ApprovalTimedOut",
    "AttemptFinished",
    "AttemptInterrupted",
    "AttemptStarted",
    "BudgetCrossed",
    "BudgetRaised",
    "CancelRequested",
    "EffectRecord",
    "ErrorRecord",
    "InterruptsReset",
    "Payload",
    "RetryScheduled",
    "RunContinued",
    "RunEnded",
    "RunPaused",
    "RunResumed",
    "RunStarted",
    "TaskEndedUnrun",
    "TaskExpanded",
    "TaskFailed",
    "TaskPaused",
    "TaskSucceeded",
    "TimerFired",
    "payload_of",
    "task_of",
]
