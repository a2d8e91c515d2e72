"""Typed payloads: one model per event type, plus the error and effect records.

An event's ``data`` is stored as the canonical JSON of a plain dict, and the
chain hashes those bytes; the models here are how code reads and writes that
dict without string keys. Two rules keep the bytes of every recorded log
unchanged:

* ``Model.of(data)`` reads a payload exactly as stored; a key no model field
  names, or a missing one the model needs, is an
  :class:`~nexus.domain.errors.IntegrityError` (the log and the code
  disagree), never silently dropped.
* ``model.to_data()`` gives back the same dict: a field whose default is
  ``None`` is left out when it is ``None`` (the key was absent), a field with
  no default is always written (``null`` included), and a field whose default
  is :data:`ABSENT` is left out only when absent -- for the few keys the log
  holds sometimes as ``null`` and sometimes not at all.

So ``Model.of(data).to_data() == data`` for every recorded event (the fixtures
test checks it on logs recorded before these models existed).

Why *views*: a payload model is declared like a dataclass (fields, types,
defaults; ``fields()`` works and the JSON Schema is generated from it by
:mod:`nexus.domain.event_schema`), but an instance holds only the stored dict,
and each field is a property over it. Reading a payload copies nothing
(``of`` wraps the dict; ``to_data()`` returns it), and building one to write
it (``Model(task=..., ...)``) builds the dict once. Building a slotted
dataclass from the dict (``cls(**data)``) cost 0.3-0.45 us per event;
pydantic validation costs several times more (``docs/benchmarks.md``), and
msgspec is not a dependency.

The fold builds no view at all: it replays every event of a run, and even a
view costs an object and a property call per field (~0.4 us an event, 15-20 %
of the fold). It checks each payload's keys against the model
(:meth:`Payload.check`) and reads the dict typed by the model's stored form,
a ``TypedDict`` in :mod:`nexus.domain.payload_data` that a test holds to the
model field by field.

The shape check (no unknown key, no missing needed key) is made eagerly in
``of``/``from_event`` and by the fold, once per distinct tuple of keys per
model: a key tuple already checked is a set lookup. The dict is shared, not
copied: no reader may change it (setting a field is for the code building a
payload to write, before it is written).

Records carried inside payloads have views too: :class:`BudgetRefusal` (an
error record's ``budget``) and :class:`TenantCrossing` (an item of an effect
record's ``tenant_budget``); the fields that hold them say so with
``Annotated[JSONDict, <record>]``, which the schema follows.
"""

from __future__ import annotations

import enum
from dataclasses import MISSING, dataclass, fields
from typing import (
    Annotated,
    Any,
    ClassVar,
    Final,
    Literal,
    Self,
    TypeAlias,
    TypeVar,
    cast,
    dataclass_transform,
)

from nexus.domain.budget import ScopeKind
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

#: How many distinct key tuples each model remembers as checked (past that, every
#: payload of a new shape is checked in full: a hostile log cannot grow memory).
_SHAPES_KEPT = 256

_new = object.__new__


class Payload:
    """Base of every payload model: a typed view over the stored dict."""

    __slots__ = ("_data",)
    #: the event types this model is the payload of
    TYPES: ClassVar[tuple[EventType, ...]] = ()
    #: every key the stored dict may hold
    KEYS: ClassVar[frozenset[str]] = frozenset()
    #: the keys it always holds
    REQUIRED: ClassVar[frozenset[str]] = frozenset()
    #: key tuples of payloads already checked against the model (a bounded
    #: number): ``tuple(data) in CHECKED`` is the fast path of :meth:`check`
    CHECKED: ClassVar[set[tuple[str, ...]]] = set()
    _layout: ClassVar[tuple[tuple[str, int], ...]] = ()
    _data: JSONDict

    @classmethod
    def of(cls, data: JSONDict) -> Self:
        """The payload as stored in an event's ``data`` (the dict is not copied).

        Raises:
            IntegrityError: a key the model does not know, or one it needs is missing.
        """
        if tuple(data) not in cls.CHECKED:
            cls.check(data)
        view = _new(cls)
        view._data = data
        return view

    @classmethod
    def from_event(cls, event: Event) -> Self:
        """The payload of ``event``, which must be of one of :attr:`TYPES`."""
        if event.type not in cls.TYPES:
            raise IntegrityError(
                f"run {event.run_id} seq {event.seq}: a {event.type} event is not a {cls.__name__}"
            )
        data = event.data
        if tuple(data) not in cls.CHECKED:
            cls.check(data, f"run {event.run_id} seq {event.seq}: ")
        view = _new(cls)
        view._data = data
        return view

    @classmethod
    def check(cls, data: JSONDict, where: str = "") -> None:
        """Make sure ``data`` fits the model, and remember its keys as checked.

        Args:
            data: a stored payload.
            where: what the message names first (``"run R seq 7: "``).

        Raises:
            IntegrityError: a key the model does not know, or one it needs is
                missing; the message names them.
        """
        keys = data.keys()
        if not (keys <= cls.KEYS and keys >= cls.REQUIRED):
            raise IntegrityError(f"{where}{_mismatch(cls, data)}")
        if len(cls.CHECKED) < _SHAPES_KEPT:
            cls.CHECKED.add(tuple(data))

    def to_data(self) -> JSONDict:
        """The dict stored as the event's ``data`` (see the module docstring).

        The models return the dict they hold; this generic writer builds it
        from the fields (a test checks both agree).
        """
        data: JSONDict = {}
        for name, mode in self._layout:
            value = getattr(self, name)
            if mode == _OMIT_NONE:
                if value is not None:
                    data[name] = value
            elif mode == _ALWAYS or value is not ABSENT:
                data[name] = value
        return data

    def wraps(self, data: JSONDict) -> bool:
        """Whether this view is over ``data`` itself (not a copy, not an equal dict)."""
        return self._data is data

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Payload)
        return self._data == other._data

    __hash__ = None  # type: ignore[assignment]  # a view over a mutable dict

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name, _ in self._layout)
        return f"{type(self).__name__}({shown})"


def _mismatch(cls: type[Payload], data: JSONDict) -> str:
    unknown = sorted(set(data) - cls.KEYS)
    missing = sorted(cls.REQUIRED - set(data))
    what = cls.TYPES[0] if cls.TYPES else cls.__name__
    parts = []
    if unknown:
        parts.append(f"unexpected field(s) {', '.join(unknown)}")
    if missing:
        parts.append(f"missing field(s) {', '.join(missing)}")
    return f"{what} payload: {'; '.join(parts) or 'does not fit its model'}"


def _layout(cls: type) -> tuple[tuple[str, int], ...]:
    out = []
    for f in fields(cls):
        if f.default is ABSENT:
            out.append((f.name, _OMIT_ABSENT))
        elif f.default is None:
            out.append((f.name, _OMIT_NONE))
        elif f.default is MISSING and f.default_factory is MISSING:
            out.append((f.name, _ALWAYS))
        else:  # pragma: no cover - no model has other defaults
            raise TypeError(f"{cls.__name__}.{f.name}: defaults are None, ABSENT or none")
    return tuple(out)


_P = TypeVar("_P", bound=Payload)


@dataclass_transform()
def _view(cls: type[_P]) -> type[_P]:
    """Make the class body's fields a payload model: a view over the stored dict.

    The body is read as a dataclass (so ``fields()`` and type hints describe
    the model); the class made has no per-field storage, a property per field
    over ``_data`` (setting a field to its empty default removes the key), and
    an ``__init__`` and ``to_data`` written out field by field. Field names are
    Python identifiers (dataclass fields), so the generated source holds
    nothing but them.
    """
    spec = dataclass(cls)
    layout = _layout(spec)
    names = {name for name, _ in layout}
    namespace = {
        key: value
        for key, value in spec.__dict__.items()
        if key not in names
        and key not in ("__dict__", "__weakref__", "__init__", "__eq__", "__repr__", "__hash__")
    }
    namespace["__slots__"] = ()
    always = [name for name, mode in layout if mode == _ALWAYS]
    params = []
    for name, mode in layout:
        default = {_ALWAYS: "", _OMIT_NONE: "=None", _OMIT_ABSENT: "=ABSENT"}[mode]
        params.append(f"{name}{default}")
    source = [f"def __init__(self, {', '.join(params)}):"]
    source.append("    data = {" + ", ".join(f"{n!r}: {n}" for n in always) + "}")
    for name, mode in layout:
        if mode != _ALWAYS:
            empty = "None" if mode == _OMIT_NONE else "ABSENT"
            source += [f"    if {name} is not {empty}:", f"        data[{name!r}] = {name}"]
    source.append("    self._data = data")
    source.append("def to_data(self):")
    source.append("    return self._data")
    for name, mode in layout:
        read = {
            _ALWAYS: f"self._data[{name!r}]",
            _OMIT_NONE: f"self._data.get({name!r})",
            _OMIT_ABSENT: f"self._data.get({name!r}, ABSENT)",
        }[mode]
        source += [f"def get_{name}(self):", f"    return {read}"]
        source.append(f"def set_{name}(self, value):")
        if mode == _ALWAYS:
            source.append(f"    self._data[{name!r}] = value")
        else:
            empty = "None" if mode == _OMIT_NONE else "ABSENT"
            source += [
                f"    if value is {empty}:",
                f"        self._data.pop({name!r}, None)",
                "    else:",
                f"        self._data[{name!r}] = value",
            ]
    generated: dict[str, Any] = {"ABSENT": ABSENT}
    exec("\n".join(source), generated)  # the source holds field names only
    init = generated["__init__"]
    init.__qualname__ = f"{spec.__name__}.__init__"
    to_data = generated["to_data"]
    to_data.__qualname__ = f"{spec.__name__}.to_data"
    to_data.__doc__ = Payload.to_data.__doc__
    namespace["__init__"] = init
    namespace["to_data"] = to_data
    for name, _ in layout:
        namespace[name] = property(
            generated[f"get_{name}"], generated[f"set_{name}"], doc=f"the ``{name}`` field"
        )
    view = cast("type[_P]", type(spec.__name__, spec.__bases__, namespace))
    view._layout = layout
    view.KEYS = frozenset(names)
    view.REQUIRED = frozenset(always)
    view.CHECKED = set()
    return view


# -- records carried inside payloads ------------------------------------------


@_view
class BudgetRefusal(Payload):
    """Why a call was refused: the ``budget`` of a ``budget_exceeded`` error record.

    The figures are money text (``"0.095"``) for ``usd``, counts for
    ``tokens`` and ``tool_calls``, seconds for ``wall``.
    """

    scope: ScopeKind
    key: str
    #: ``usd``, ``tokens``, ``tool_calls`` or ``wall``
    dimension: str
    limit: str | int | float
    spent: str | int | float
    #: what other calls held at the time
    reserved: str | int | float
    #: what the refused call asked for
    asked: str | int | float

    @property
    def scope_id(self) -> str:
        """The scope's id, as budgets key it (``agent:writer``)."""
        return f"{self.scope}:{self.key}"


@_view
class TenantCrossing(Payload):
    """A threshold of the tenant's budget that a call's spend crossed: one item of
    an effect record's ``tenant_budget``.
    """

    scope: ScopeKind
    #: the tenant
    key: str
    #: ``usd``, ``tokens`` or ``tool_calls``
    dimension: str
    #: the threshold crossed, as decimal text (``"0.8"``, ``"1"``)
    threshold: str
    percent: int
    spent: str | int
    limit: str | int

    @property
    def scope_id(self) -> str:
        """The scope's id, as budgets key it (``tenant:acme``)."""
        return f"{self.scope}:{self.key}"


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
    budget: Annotated[JSONDict, BudgetRefusal] | Absent | None = ABSENT
    #: a budget refusal the attempt can be taken up from, once the budget is raised
    resumable: bool | Absent | None = ABSENT
    extra: JSONDict | None = None

    _OPTIONAL: ClassVar[tuple[str, ...]] = (
        "retryable",
        "retry_after",
        "interrupts",
        "details",
        "budget",
        "resumable",
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
                resumable=get("resumable", ABSENT),
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

    @property
    def refusal(self) -> BudgetRefusal | None:
        """The limit that refused the call (a ``budget_exceeded`` error), if recorded.

        Raises:
            IntegrityError: the record does not fit :class:`BudgetRefusal`.
        """
        budget = self.budget
        return BudgetRefusal.of(budget) if isinstance(budget, dict) else None


@_view
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
    tenant_budget: list[Annotated[JSONDict, TenantCrossing]] | None = None
    #: on the first call an attempt that continues a paused one makes live: the
    #: calls it was answered from the record (``served``) and why this one was not
    #: (``why``)
    continued: JSONDict | None = None
    #: the files a tool call wrote (``file.write``): workspace-relative canonical
    #: paths (absolute for a granted root outside the workspace)
    wrote: list[str] | None = None

    @property
    def tenant_crossings(self) -> list[TenantCrossing]:
        """The tenant budget thresholds this call crossed (``tenant_budget``), typed.

        Raises:
            IntegrityError: an item does not fit :class:`TenantCrossing`.
        """
        return [TenantCrossing.of(item) for item in self.tenant_budget or ()]


# -- inputs --------------------------------------------------------------------


@_view
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


@_view
class RunResumed(Payload):
    """A process took the run over (``nexus resume``, or an approval answer)."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.RUN_RESUMED,)

    #: tasks that were running when the previous process stopped
    interrupted: list[str]
    pid: int


@_view
class CancelRequested(Payload):
    """Someone asked the run to stop."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.CANCEL_REQUESTED,)

    reason: str
    #: who asked, when they are named (``nexus cancel`` and ``nexus stop --all`` name the user
    #: they run as unless ``--by`` names another)
    by: str | None = None


@_view
class PauseRequested(Payload):
    """Someone asked the run to pause (``nexus pause``): no new attempt starts, the
    running ones finish, then the run pauses until ``nexus resume``."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.PAUSE_REQUESTED,)

    #: who asked (their user name)
    by: str
    #: why, in their words (may be empty)
    reason: str
    #: asked while no process drove the run: the tasks whose attempts its stopped
    #: process left running (the resume interrupts and retries them)
    orphaned: list[str] | None = None


@_view
class TimerFired(Payload):
    """A task's retry wait is over."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.TIMER_FIRED,)

    task: str


@_view
class BarrierTimedOut(Payload):
    """The deadline of a task's barrier ``wait`` passed while the task still waited
    on its needs: its ``on_timeout`` decides (fail it, or start it with the needs
    that succeeded)."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.BARRIER_TIMED_OUT,)

    task: str


@_view
class AttemptFinished(Payload):
    """A worker ended an attempt: its output, or its error."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.ATTEMPT_FINISHED,)

    task: str
    attempt: int
    output: JSON | Absent = ABSENT
    error: JSONDict | None = None


@_view
class ApprovalAnswered(Payload):
    """A person approved or rejected a task."""

    TYPES: ClassVar[tuple[EventType, ...]] = (
        EventType.APPROVAL_GRANTED,
        EventType.APPROVAL_REJECTED,
    )

    task: str
    by: str | None
    reason: str | None


@_view
class ApprovalTimedOut(Payload):
    """No answer came before the approval's deadline."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.APPROVAL_TIMED_OUT,)

    task: str


@_view
class BudgetRaised(Payload):
    """``nexus resume --budget``: a scope's limits were raised."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.BUDGET_RAISED,)

    #: ``{"kind": "run"|"agent"|"task", "key": ...}``
    scope: JSONDict
    #: the new limits (``{"usd": "5", "tool_calls": 9}``)
    limits: JSONDict


@_view
class InterruptsReset(Payload):
    """``nexus resume --retry-interrupted``: these tasks' interrupt counts start afresh."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.INTERRUPTS_RESET,)

    tasks: list[str]
    limit: int


@_view
class RunContinued(Payload):
    """The decider is asked to schedule on (after work it had put off)."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.RUN_CONTINUED,)

    reason: str


# -- decisions -----------------------------------------------------------------


@_view
class ApprovalRequested(Payload):
    """A task waits for a person's approval."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.APPROVAL_REQUESTED,)

    task: str
    #: ``fail`` or ``escalate``
    on_timeout: str
    timeout_ms: int | None = None
    deadline: str | None = None


@_view
class ApprovalEscalated(Payload):
    """The approval's deadline passed and its policy escalates: still waiting."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.APPROVAL_ESCALATED,)

    task: str
    reason: str


@_view
class TaskExpanded(Payload):
    """A ``foreach`` task became one task per item (``<task>[<index>]``)."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.TASK_EXPANDED,)

    task: str
    items: list[JSON]


@_view
class BarrierArmed(Payload):
    """The first need of a task with a barrier ``wait`` ended and the task still
    waits: its deadline is set (``barrier.timed_out`` records its passing)."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.BARRIER_ARMED,)

    task: str
    #: the ``wait.timeout``, in milliseconds
    timeout_ms: int
    #: when the wait ends: the time the first need was seen ended, plus the timeout
    deadline: str


@_view
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
    #: the budget-paused attempts this one takes up, latest first: each call is
    #: answered from the latest of them that recorded it, until one is refused or
    #: asks something else (see ``docs/budgets.md``)
    continues: list[int] | None = None
    #: a ``loop`` task: the iteration this attempt runs (1, 2, ...; a retry keeps it)
    iteration: int | None = None
    #: a ``bt`` task: the action node of its tree this attempt runs
    node: str | None = None
    #: the resources the attempt holds while it runs (the task's ``writes``, rendered
    #: and canonical): no attempt whose writes overlap them starts until it ends
    writes: list[str] | None = None
    #: an ``fsm`` task: the state whose body this attempt runs (a retry keeps it)
    state: str | None = None
    #: an ``fsm`` task: the step this attempt runs (1, 2, ...; a retry keeps it)
    step: int | None = None


@_view
class BtTicked(Payload):
    """A node of a ``bt`` task's tree ended (``success`` or ``failure``), or a
    ``timeout`` node started (``running``, with its ``deadline``).

    An action's outcome carries the ``attempt`` that decided it and puts the
    task back to ready, so its next leaf starts as a new attempt; a condition's
    carries what its template gave (``value``).
    """

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.BT_TICKED,)

    task: str
    #: the node's id (its ``name``, or its path such as ``root/0/1``)
    node: str
    #: the node's kind (``sequence``, ``action``...)
    kind: str
    #: ``success``, ``failure`` or ``running``
    status: str
    #: the leaves ticked so far, this one included (what ``max_steps`` bounds)
    step: int
    #: an action: the attempt whose outcome this is
    attempt: int | None = None
    #: a condition: what its template gave
    value: JSON | Absent = ABSENT
    #: a ``timeout`` node that started: when it fails the nodes under it
    deadline: str | None = None
    #: why it failed, in a few words (the failing child, the error, the deadline)
    reason: str | None = None


@_view
class ConflictDetected(Payload):
    """Two attempts that ran at the same time wrote the same file through the file
    tools (see ``docs/workflows.md``, Writes): recorded once per file and pair of tasks,
    the run goes on."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.CONFLICT_DETECTED,)

    #: the file both wrote (as ``EffectRecord.wrote`` holds it)
    path: str
    #: the task whose write revealed the conflict, and its attempt
    task: str
    attempt: int
    #: the other task, and its attempt that wrote the file while ``task``'s ran
    other: str
    other_attempt: int
    #: the effect that wrote it last (``task``'s)
    effect: str


@_view
class TaskIterated(Payload):
    """An iteration of a ``loop`` task ended and its ``until`` was false: the task runs
    its body again (it is ready for its next attempt)."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.TASK_ITERATED,)

    task: str
    #: the attempt whose output ``until`` judged
    attempt: int
    #: the iteration that ended (1, 2, ...)
    iteration: int
    #: what ``until`` gave
    value: JSON


@_view
class PlanExtended(Payload):
    """A task's output extended the running plan: ``tasks`` (compiled, as a plan holds
    them) join the run, at ``depth`` (the extending task's depth plus one). The task
    ends once every task it added has ended. With ``review`` they start only once a
    person approved the extension (an ``approval.requested`` of the task follows)."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.PLAN_EXTENDED,)

    task: str
    #: the attempt whose output held the extension
    attempt: int
    tasks: list[JSONDict]
    depth: int
    #: the added tasks wait for a person's approval of the extension
    review: bool | None = None


@_view
class PlanCached(Payload):
    """The attempt of an extending task was answered from the plan cache (``cache:
    plans``): an earlier run of the same plan -- the same goal, inputs, agents and
    models, planner prompt and plan schema, which the key covers -- had this task
    extend the plan once with ``output``, and the plan worked (the task
    succeeded). No model is called: the ``attempt.finished`` that follows carries
    ``output``, which is checked as any answer is before it extends the plan.
    ``saved`` is what planning cost in the run that first made the plan
    (``{"usd", "tokens", "calls"}``), for ``nexus cost``."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.PLAN_CACHED,)

    task: str
    attempt: int
    #: the run whose recorded plan this is
    source_run: str
    #: the cache key: a digest of the plan hash and the task
    key: str
    #: the planner's answer, as the source run recorded it
    output: JSON
    #: what planning cost where the plan was made: ``{"usd", "tokens", "calls"}``
    saved: JSONDict


@_view
class PlanReplanning(Payload):
    """Tasks an extending task added failed and it may re-plan: it runs again
    (round ``round``), its next attempt told what failed (``feedback``). The failed
    tasks are superseded: they no longer fail the run."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.PLAN_REPLANNING,)

    task: str
    #: the re-plan this is (1, 2, ...)
    round: int
    #: the added tasks that failed (or were cancelled)
    failed: list[str]
    #: the error record the next attempt gets as feedback
    feedback: JSONDict


@_view
class FsmTransitioned(Payload):
    """A step of an ``fsm`` task ended: its state's body succeeded and a transition
    was taken. To a state with a body, the task is ready for that state's attempt;
    to a terminal state, ``task.succeeded`` (or ``task.failed``, a ``fail`` state)
    follows."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.FSM_TRANSITIONED,)

    task: str
    #: the attempt whose output the transitions judged
    attempt: int
    #: the step that ended (1, 2, ...)
    step: int
    #: the state whose body ran
    state: str
    #: the state the task goes to
    to: str
    #: which of the state's transitions was taken (0, 1, ... in the order declared)
    transition: int
    #: what its ``when`` gave (null for a transition without ``when``)
    value: JSON
    #: entering a terminal state with an ``output``: what it gave (the task's output)
    output: JSON | Absent = ABSENT


@_view
class AttemptInterrupted(Payload):
    """The process running an attempt stopped before it finished."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.ATTEMPT_INTERRUPTED,)

    task: str
    attempt: int
    error: JSONDict


@_view
class RetryScheduled(Payload):
    """A failed attempt will be retried after a backoff."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.RETRY_SCHEDULED,)

    task: str
    attempt: int
    error: JSONDict
    delay_ms: int
    not_before: str


@_view
class SagaStarted(Payload):
    """A task with ``on_failure: compensate`` failed for good: what had not ended is
    cancelled or skipped, and the tasks in ``steps`` are compensated, one at a time."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.SAGA_STARTED,)

    #: the task whose failure started the saga
    task: str
    #: the tasks to compensate, in the order their compensations run (the reverse of
    #: the order they succeeded in): each that succeeded and has ``compensate``
    steps: list[str]


@_view
class CompensationStarted(Payload):
    """The next step of the saga: ``task``'s compensation becomes the task
    ``compensation`` (``<task>.compensate``), ready to run its first attempt."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.COMPENSATION_STARTED,)

    #: the task compensated
    task: str
    #: the task that runs its compensation
    compensation: str
    #: its place in the saga's steps (1, 2, ...) and how many there are
    step: int
    total: int


@_view
class SagaFinished(Payload):
    """Every step of the saga ended (or a cancel stopped it): what was compensated,
    what failed to be (its retries spent), what was not run."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.SAGA_FINISHED,)

    #: the task whose failure started the saga
    task: str
    #: the tasks whose compensation succeeded, in the order they ran
    compensated: list[str]
    #: the tasks whose compensation failed (or was cancelled)
    failed: list[str]
    #: the tasks whose compensation never started (the run was cancelled)
    not_run: list[str]


@_view
class TaskSucceeded(Payload):
    """A task succeeded (a ``foreach`` parent: when all its items did; a ``switch``
    task: when it picked its case; a ``loop`` task: when its ``until`` held, or at
    ``max_iterations`` with ``on_max: succeed``; a ``bt`` task: when its tree's root
    succeeded)."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.TASK_SUCCEEDED,)

    task: str
    #: the attempt that succeeded (absent for a ``foreach`` parent and a ``switch`` task)
    attempt: int | None = None
    #: a ``switch`` task: the case it picked (``default`` when no other matched)
    case: str | None = None
    #: a ``switch`` task: the value its template gave; a ``loop`` task: what its
    #: ``until`` gave for the last iteration; a ``bt`` task with ``output``: its
    #: rendered value (the task's output)
    value: JSON | Absent = ABSENT
    #: a ``loop`` task: the iteration that ended it
    iteration: int | None = None
    #: a fan-out with ``aggregate``: how its items' answers were combined (``method``,
    #: ``items``, ``answers``, ``tallies``, ``winner``: the item whose output it took)
    aggregate: JSONDict | None = None


@_view
class TaskFailed(Payload):
    """A task failed for good."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.TASK_FAILED,)

    task: str
    attempts: int
    error: JSONDict
    #: a fan-out with ``aggregate`` whose items did not agree (or too few answered):
    #: the tallies, as ``task.succeeded`` records them, without a ``winner``
    aggregate: JSONDict | None = None


@_view
class TaskEndedUnrun(Payload):
    """A task was skipped (a dependency did not succeed, its condition was false, or a
    switch picked another case) or cancelled."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.TASK_SKIPPED, EventType.TASK_CANCELLED)

    task: str
    reason: str
    #: the task's ``when`` template, when it was skipped because it gave a false value
    condition: str | None = None
    #: that value, or the value of the ``switch`` that did not pick the task (absent
    #: otherwise; it may be ``null``)
    value: JSON | Absent = ABSENT
    #: the ``switch`` task whose pick left this task out
    switch: str | None = None
    #: the case that switch picked
    case: str | None = None


@_view
class RunEnded(Payload):
    """The run ended: its status and how many tasks ended in each status."""

    TYPES: ClassVar[tuple[EventType, ...]] = (
        EventType.RUN_SUCCEEDED,
        EventType.RUN_FAILED,
        EventType.RUN_CANCELLED,
    )

    status: str
    tasks: dict[str, int]


@_view
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


@_view
class TaskPaused(Payload):
    """A task's budget is spent: it waits for ``nexus resume --budget``."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.TASK_PAUSED,)

    task: str
    reason: str
    #: the attempt refused more budget (absent: the task had not started)
    attempt: int | None = None


@_view
class RunPaused(Payload):
    """The run pauses: every task left waits on a budget-paused one (``budget``), or a
    person asked it to pause and nothing runs any more (``user``)."""

    TYPES: ClassVar[tuple[EventType, ...]] = (EventType.RUN_PAUSED,)

    #: ``budget`` or ``user``
    reason: str
    #: the first 20 paused tasks
    paused: list[str]
    count: int
    hint: str
    #: a user pause: who asked for it
    by: str | None = None
    #: a user pause: the reason they gave
    why: str | None = None


MODELS: tuple[type[Payload], ...] = (
    RunStarted,
    RunResumed,
    CancelRequested,
    PauseRequested,
    TimerFired,
    EffectRecord,
    AttemptFinished,
    ApprovalAnswered,
    ApprovalTimedOut,
    BudgetRaised,
    InterruptsReset,
    RunContinued,
    BarrierTimedOut,
    PlanCached,
    ApprovalRequested,
    ApprovalEscalated,
    TaskExpanded,
    TaskIterated,
    PlanExtended,
    PlanReplanning,
    BtTicked,
    SagaStarted,
    CompensationStarted,
    SagaFinished,
    FsmTransitioned,
    BarrierArmed,
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
    ConflictDetected,
)


#: The payload model of every event type.
PAYLOADS: dict[EventType, type[Payload]] = {
    _type: _model for _model in MODELS for _type in _model.TYPES
}


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
    "BarrierArmed",
    "BarrierTimedOut",
    "BtTicked",
    "BudgetCrossed",
    "BudgetRaised",
    "BudgetRefusal",
    "CancelRequested",
    "CompensationStarted",
    "ConflictDetected",
    "EffectRecord",
    "ErrorRecord",
    "FsmTransitioned",
    "InterruptsReset",
    "PauseRequested",
    "Payload",
    "PlanCached",
    "PlanExtended",
    "PlanReplanning",
    "RetryScheduled",
    "RunContinued",
    "RunEnded",
    "RunPaused",
    "RunResumed",
    "RunStarted",
    "SagaFinished",
    "SagaStarted",
    "TaskEndedUnrun",
    "TaskExpanded",
    "TaskFailed",
    "TaskIterated",
    "TaskPaused",
    "TaskSucceeded",
    "TenantCrossing",
    "TimerFired",
    "payload_of",
    "task_of",
]
