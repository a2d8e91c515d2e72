"""The file model: pydantic models of a workflow document, and its validation.

:func:`validate` checks what the models cannot say well (the version, the
shape of task ids and agent names, an empty ``tasks:``), then validates the
document against :class:`_Workflow` and turns each pydantic error into a
:class:`~nexus.domain.errors.WorkflowError` naming the key, with the closest
allowed key for a typo. The models are strict (``1`` is not ``"1"``) and
forbid unknown keys; an empty YAML value (``key:``) means the empty container.

The class names appear in pydantic's messages ("a valid dictionary or
instance of _Task"), so they are part of what a user reads: keep them.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from nexus.domain.bt import MAX_BT_STEPS
from nexus.domain.durations import parse_seconds
from nexus.domain.errors import WorkflowError
from nexus.domain.plan import (
    DEFAULT_REPLANS,
    MAX_ADDED_TASKS,
    MAX_BARRIER_TIMEOUT,
    MAX_EXTENSION_DEPTH,
    MAX_FAN_OUT_AGENTS,
    MAX_FSM_STATES,
    MAX_FSM_STEPS,
    MAX_FSM_TRANSITIONS,
    MAX_ITERATIONS,
    MAX_REPLANS,
)
from nexus.planning.workflow._errors import Reporter, Stop, kind

# The models (_Workflow, _Task, ...) are read by the package's other modules too.
__all__ = ["ID_PATTERN", "MAX_SAFE_INT", "WORKFLOW_VERSION", "validate"]

#: The only workflow file format version this package reads.
WORKFLOW_VERSION = 1

#: Task ids and agent names.
ID_PATTERN = r"[A-Za-z_][A-Za-z0-9_-]*"
_ID_RE = re.compile(ID_PATTERN)
_NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
#: The largest integer a plan holds (JSON numbers are exact up to 2**53).
MAX_SAFE_INT = 2**53 - 1

_SafeInt = Annotated[int, Field(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]
_Count = Annotated[int, Field(ge=0, le=MAX_SAFE_INT)]
_NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @staticmethod
    def _empty_is(value: Any, empty: Any) -> Any:
        """An empty YAML value (``key:``) means the empty container."""
        return empty if value is None else value


class _Backoff(_Model):
    initial: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    multiplier: float | None = Field(default=None, ge=1, allow_inf_nan=False)
    maximum: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class _Defaults(_Model):
    retries: _Count = 0
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    backoff: _Backoff = Field(default_factory=_Backoff)

    @field_validator("backoff", mode="before")
    @classmethod
    def _no_backoff(cls, value: Any) -> Any:
        return cls._empty_is(value, {})


class _Agent(_Model):
    role: str = ""
    model: str
    capabilities: list[_NonEmpty] = Field(default_factory=list)
    instructions: str = ""
    scripted: list[str] = Field(default_factory=list)
    max_concurrency: _Count = 0
    tools: list[_NonEmpty] = Field(default_factory=list)
    max_steps: Annotated[int, Field(ge=1, le=1000)] = 8
    fallbacks: list[_NonEmpty] = Field(default_factory=list)
    tiers: dict[Literal["small", "medium", "large"], _NonEmpty] = Field(default_factory=dict)
    max_tokens: Annotated[int, Field(ge=1, le=MAX_SAFE_INT)] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2, allow_inf_nan=False)
    budget: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None

    @field_validator("capabilities", "scripted", "tools", "fallbacks", mode="before")
    @classmethod
    def _no_items(cls, value: Any) -> Any:
        return cls._empty_is(value, [])


class _Approval(_Model):
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    on_timeout: Literal["fail", "escalate"] = "fail"


class _Loop(_Model):
    until: str
    max_iterations: Annotated[int, Field(ge=1, le=MAX_ITERATIONS)]
    on_max: Literal["fail", "succeed"] = "fail"


class _Extend(_Model):
    max_tasks: Annotated[int, Field(ge=1, le=MAX_ADDED_TASKS)] | None = None
    review: bool = False
    replan: Annotated[int, Field(ge=0, le=MAX_REPLANS)] = 0


class _Extensions(_Model):
    max_tasks: Annotated[int, Field(ge=1, le=MAX_ADDED_TASKS)] = 100
    max_depth: Annotated[int, Field(ge=1, le=MAX_EXTENSION_DEPTH)] = 1


class _Bt(_Model):
    max_steps: Annotated[int, Field(ge=1, le=MAX_BT_STEPS)]
    root: Any
    output: str | None = None


class _Aggregate(_Model):
    method: Literal["vote", "majority", "consensus", "first_success"]
    key: _NonEmpty | None = None
    quorum: Annotated[int, Field(ge=1, le=MAX_SAFE_INT)] | None = None


class _FsmTransition(_Model):
    to: _NonEmpty
    when: str | None = None


class _FsmState(_Model):
    tool: _NonEmpty | None = None
    args: dict[str, Any] | None = Field(default=None, alias="with")
    agent: _NonEmpty | None = None
    capability: _NonEmpty | None = None
    prompt: str | None = None
    output_schema: dict[str, Any] | None = None
    transitions: Annotated[list[_FsmTransition], Field(max_length=MAX_FSM_TRANSITIONS)] = Field(
        default_factory=list
    )
    terminal: bool = False
    fail: bool = False
    reason: str | None = None
    output: str | None = None

    @field_validator("transitions", mode="before")
    @classmethod
    def _no_transitions(cls, value: Any) -> Any:
        return cls._empty_is(value, [])


class _Fsm(_Model):
    initial: _NonEmpty
    max_steps: Annotated[int, Field(ge=1, le=MAX_FSM_STEPS)]
    states: Annotated[dict[str, _FsmState], Field(min_length=1, max_length=MAX_FSM_STATES)]

    @field_validator("states", mode="before")
    @classmethod
    def _terminal_is_empty(cls, value: Any) -> Any:
        """``done:`` (an empty state) reads as ``done: {}``."""
        if isinstance(value, dict):
            return {name: cls._empty_is(state, {}) for name, state in value.items()}
        return value


class _Compensate(_Model):
    tool: _NonEmpty | None = None
    args: dict[str, Any] | None = Field(default=None, alias="with")
    agent: _NonEmpty | None = None
    capability: _NonEmpty | None = None
    prompt: str | None = None
    retries: _Count | None = None
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    backoff: _Backoff | None = None


_OnFailure = Literal["fail", "compensate"]


class _Replan(_Model):
    """``on_failure: replan`` (or ``{replan: N}``): re-plan what the task's extension
    added when it fails, as ``extend: {replan: N}`` says it."""

    replan: Annotated[int, Field(ge=1, le=MAX_REPLANS)]


_ON_FAILURE_VALUES = f"'fail', 'compensate', 'replan' or {{replan: N}} (N from 1 to {MAX_REPLANS})"


def _task_on_failure(value: Any) -> _OnFailure | _Replan | None:
    """A task's ``on_failure`` as the model holds it; ``replan`` alone re-plans
    :data:`~nexus.domain.plan.DEFAULT_REPLANS` times."""
    if value is None or value in ("fail", "compensate"):
        return value  # type: ignore[no-any-return]
    if value == "replan":
        return _Replan(replan=DEFAULT_REPLANS)
    if isinstance(value, dict) and set(value) == {"replan"}:
        rounds = value["replan"]
        if type(rounds) is int and 1 <= rounds <= MAX_REPLANS:
            return _Replan(replan=rounds)
        raise ValueError(f"`replan` must be a whole number from 1 to {MAX_REPLANS}")
    raise ValueError(f"must be {_ON_FAILURE_VALUES}")


class _Wait(_Model):
    timeout: float
    on_timeout: Literal["fail", "continue"] = "fail"

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        seconds = parse_seconds(value)
        if seconds > MAX_BARRIER_TIMEOUT:
            raise ValueError(f"must be at most {MAX_BARRIER_TIMEOUT / 86400:g} days")
        return seconds


class _Task(_Model):
    needs: list[str] = Field(default_factory=list)
    needs_any: list[str] | None = None
    quorum: int | str | None = None
    wait: _Wait | None = None
    tool: _NonEmpty | None = None
    args: dict[str, Any] | None = Field(default=None, alias="with")
    agent: _NonEmpty | None = None
    capability: _NonEmpty | None = None
    prompt: str | None = None
    foreach: Any = None
    retries: _Count | None = None
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    backoff: _Backoff | None = None
    priority: _SafeInt = 0
    approval: _Approval | None = None
    profile: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    complexity: Literal["small", "medium", "large"] | None = None
    max_cost: float | str | None = None
    max_latency_ms: Annotated[int, Field(ge=1, le=MAX_SAFE_INT)] | None = None
    budget: dict[str, Any] | None = None
    when: str | None = None
    switch: str | None = None
    cases: dict[Any, Any] | None = None
    loop: _Loop | None = None
    bt: _Bt | None = None
    extend: _Extend | None = None
    writes: list[str] | None = None
    agents: (
        Annotated[list[_NonEmpty], Field(min_length=1, max_length=MAX_FAN_OUT_AGENTS)] | None
    ) = None
    aggregate: _Aggregate | None = None
    compensate: _Compensate | None = None
    on_failure: _OnFailure | _Replan | None = None
    fsm: _Fsm | None = None
    workflow: _NonEmpty | dict[str, Any] | None = None

    @field_validator("on_failure", mode="plain")
    @classmethod
    def _on_failure(cls, value: Any) -> _OnFailure | _Replan | None:
        return _task_on_failure(value)

    @field_validator("extend", mode="before")
    @classmethod
    def _true_is_default(cls, value: Any) -> Any:
        if value is True:
            return {}
        if value is False:
            return None
        return value

    @field_validator("aggregate", mode="before")
    @classmethod
    def _method_alone(cls, value: Any) -> Any:
        """``aggregate: vote`` is ``aggregate: {method: vote}``."""
        return {"method": value} if isinstance(value, str) else value

    @field_validator("approval", mode="before")
    @classmethod
    def _required_is_default(cls, value: Any) -> Any:
        if value == "required":
            return {}
        if isinstance(value, str):
            raise ValueError("must be 'required' or a mapping {timeout, on_timeout}")
        return value

    @field_validator("needs", "writes", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, str) else value

    @field_validator("needs_any", mode="before")
    @classmethod
    def _any_one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("quorum", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a number of needs (3) or 'K of N' ('3 of 5')")
        return value


class _Workflow(_Model):
    version: Literal[1]
    name: Annotated[str, StringConstraints(pattern=_NAME_PATTERN)]
    description: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    workspace: _NonEmpty | None = None
    fail_fast: bool = True
    max_parallel: Annotated[int, Field(ge=1, le=MAX_SAFE_INT)] = 16
    max_failures: Annotated[int, Field(ge=1, le=MAX_SAFE_INT)] | None = None
    max_failure_rate: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None
    conflicts: Literal["serialize", "reject"] = "serialize"
    on_failure: _OnFailure = "fail"
    cache: list[Literal["plans"]] | None = None
    agents: dict[str, _Agent] = Field(default_factory=dict)
    defaults: _Defaults = Field(default_factory=_Defaults)
    mcp_servers: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None
    extensions: _Extensions | None = None
    outputs: dict[str, Any] | None = None
    tasks: dict[str, _Task]

    @field_validator("on_failure", mode="before")
    @classmethod
    def _replan_is_a_tasks(cls, value: Any) -> Any:
        """A re-plan belongs to the task whose extension it repairs."""
        if value == "replan" or (isinstance(value, dict) and "replan" in value):
            raise ValueError(
                "`replan` re-plans what one task's extension added, so it is set on that "
                "task (`on_failure: replan` next to its `extend`); the workflow's "
                "on_failure is 'fail' or 'compensate'"
            )
        return value

    @field_validator("cache", mode="before")
    @classmethod
    def _one_kind(cls, value: Any) -> Any:
        """``cache: plans`` is ``cache: [plans]``."""
        return [value] if isinstance(value, str) else value

    @field_validator("inputs", "agents", "defaults", mode="before")
    @classmethod
    def _no_entries(cls, value: Any) -> Any:
        return cls._empty_is(value, {})


def validate(doc: Any, report: Reporter) -> _Workflow:
    """The document as a :class:`_Workflow`; else every problem with its shape is
    recorded and :class:`~._errors.Stop` raised (nothing more can be checked)."""
    if doc is None:
        report.stop("the workflow is empty")
    if not isinstance(doc, dict):
        report.stop(f"a workflow must be a mapping of keys to values, not {kind(doc)}")
    version = doc.get("version", WORKFLOW_VERSION)
    if type(version) is not int or version != WORKFLOW_VERSION:
        report.stop(
            f"unsupported workflow version {version!r}; this Nexus reads version "
            f"{WORKFLOW_VERSION}",
            field="version",
        )
    found = len(report.problems)
    for section, what in (("tasks", "task id"), ("agents", "agent name")):
        entries = doc.get(section)
        if isinstance(entries, dict):
            for key in entries:
                if not isinstance(key, str) or _ID_RE.fullmatch(key) is None:
                    report.add(
                        f"invalid {what} {key!r}: it must match {ID_PATTERN}",
                        task=key if section == "tasks" and isinstance(key, str) else None,
                        field=section,
                    )
    if "tasks" in doc and not doc["tasks"] and isinstance(doc["tasks"], dict | None):
        report.add("the workflow has no tasks", field="tasks")
    if len(report.problems) > found:
        raise Stop
    try:
        return _Workflow.model_validate(doc)
    except ValidationError as exc:
        for problem in _convert(exc, report):
            report.record(problem)
        raise Stop from None
    except RecursionError:
        report.stop("the workflow is nested too deeply")


def _convert(exc: ValidationError, report: Reporter) -> list[WorkflowError]:
    """Pydantic's errors in the words of the file (a typo gets a suggestion), one per field."""
    errors = exc.errors(include_url=False)
    # A misspelt key is reported as both missing and unknown: the typo explains more.
    typo_parents = {tuple(e["loc"][:-1]) for e in errors if e["type"] == "extra_forbidden"}
    problems: list[WorkflowError] = []
    seen: set[tuple[int | str, ...]] = set()
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "missing" and loc[:-1] in typo_parents:
            continue
        if loc in seen:
            continue  # a union's members each refuse the value: one problem is enough
        seen.add(loc)
        problems.append(_problem(error, report))
    return problems


def _problem(error: ErrorDetails, report: Reporter) -> WorkflowError:
    loc = tuple(error["loc"])
    error_type = error["type"]
    key = loc[-1] if loc else ""
    if key == "[key]":  # a mapping key (not its value) is invalid
        loc = loc[:-1]
        key = loc[-1]
    if error_type == "missing":
        message = f"missing required key '{key}'"
    elif error_type == "extra_forbidden":
        message = f"unknown key '{key}'"
        model = _model_at(loc)
        if model is not None:
            allowed = _keys_of(model)
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(allowed)
            message += f" ({hint})"
    else:
        message = error["msg"]
        if error["loc"][-1:] == ("[key]",):
            message = f"key {key!r}: {message}"
        value = error.get("input")
        if not isinstance(value, dict | list) and len(repr(value)) <= 60:
            message += f", got {value!r}"
    task = loc[1] if len(loc) > 1 and loc[0] == "tasks" and isinstance(loc[1], str) else None
    return report.problem(message, task=task, field=_path(loc) or None)


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model whose keys are validated at ``loc`` (the location of an unknown key)."""
    parent = loc[:-1]
    if not parent:
        return _Workflow
    if parent[0] == "tasks":
        if len(parent) == 2:
            return _Task
        if len(parent) == 3 and parent[2] == "backoff":
            return _Backoff
        if len(parent) == 3 and parent[2] == "loop":
            return _Loop
        if len(parent) == 3 and parent[2] == "bt":
            return _Bt
        if len(parent) == 3 and parent[2] == "aggregate":
            return _Aggregate
        if len(parent) == 3 and parent[2] == "compensate":
            return _Compensate
        if len(parent) == 4 and parent[2:] == ("compensate", "backoff"):
            return _Backoff
        if len(parent) >= 3 and parent[2] == "fsm":
            fsm_models: dict[int, type[BaseModel]] = {3: _Fsm, 5: _FsmState, 7: _FsmTransition}
            return fsm_models.get(len(parent))
        if len(parent) == 3 and parent[2] == "wait":
            return _Wait
    if parent[0] == "agents" and len(parent) == 2:
        return _Agent
    if parent == ("defaults",):
        return _Defaults
    if parent == ("defaults", "backoff"):
        return _Backoff
    return None


def _path(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as the field a user wrote: ``tasks.build.with[0]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
