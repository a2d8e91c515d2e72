"""Event payload models: parse and write one payload, three ways (the choice of model).

The fold reads every event's ``data`` through its typed payload model
(:mod:`nexus.domain.payloads`), and the decider writes through it, so one
parse and one write per event sit on the hot path. This measures, per
payload, for the two payloads every task has (``attempt.started`` of a tool
call, ``attempt.finished``):

* ``dataclass``: the shipped models (typed views over the stored dict, declared
  as dataclasses), ``Model.of(data)`` / ``model.to_data()``;
* ``pydantic BaseModel``: the same fields as a pydantic v2 model,
  ``model_validate`` / ``model_dump(exclude_unset=True)``;
* ``pydantic TypeAdapter``: pydantic validation into a plain slotted dataclass
  of the same fields (what the models were before they became views).

and, for the fold, reading the three fields of ``attempt.started`` it needs:

* ``view``: ``AttemptStarted.of(data)`` and three properties (what the fold
  did until it read the stored form);
* ``stored form``: the fold's shape check (a key tuple already checked is a
  set lookup) and three reads of the dict, typed by ``AttemptStartedData``
  (what ``RunState.apply`` does).

msgspec is not a dependency and is not measured. Lower is better.

Usage: ``python bench/event_payloads.py [--quick] [--runs N] [--json PATH]``
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from _common import Metric, parser, repeat, report, runs_for
from nexus.domain.payload_data import AttemptStartedData
from nexus.domain.payloads import AttemptFinished, AttemptStarted

STARTED: dict[str, Any] = {
    "task": "t42",
    "attempt": 1,
    "tool": "noop",
    "args": {"cmd": "echo hi"},
    "timeout_ms": 30000,
}
FINISHED: dict[str, Any] = {"task": "t42", "attempt": 1, "output": {"stdout": "hi\n"}}


def _pydantic_models() -> tuple[Any, Any, Any]:
    from pydantic import BaseModel, ConfigDict, TypeAdapter

    class Started(BaseModel):
        model_config = ConfigDict(extra="forbid")
        task: str
        attempt: int
        tool: str | None = None
        args: Any = None
        profile: str | None = None
        agent: str | None = None
        route: dict[str, Any] | None = None
        model: str | None = None
        models: list[str] | None = None
        model_route: dict[str, Any] | None = None
        prompt: str | None = None
        instructions: str | None = None
        turn: int | None = None
        output_schema: dict[str, Any] | None = None
        feedback: dict[str, Any] | None = None
        timeout_ms: int | None = None

    class Finished(BaseModel):
        model_config = ConfigDict(extra="forbid")
        task: str
        attempt: int
        output: Any = None
        error: dict[str, Any] | None = None

    @dataclass(slots=True)
    class FinishedDataclass:
        task: str
        attempt: int
        output: Any = None
        error: dict[str, Any] | None = None

    return Started, Finished, TypeAdapter(FinishedDataclass)


def _view_fields(data: dict[str, Any]) -> tuple[str, int, str | None]:
    view = AttemptStarted.of(data)
    return view.task, view.attempt, view.agent


def _stored_fields(data: AttemptStartedData) -> tuple[str, int, str | None]:
    return data["task"], data["attempt"], data.get("agent")


# Both are called as ``RunState.apply`` calls a handler: through a table whose
# data parameter is typed ``Any``.
_BEFORE: Callable[[Any], tuple[str, int, str | None]] = _view_fields
_NOW: Callable[[Any], tuple[str, int, str | None]] = _stored_fields


def read_view() -> tuple[str, int, str | None]:
    return _BEFORE(STARTED)


def read_stored() -> tuple[str, int, str | None]:
    data = STARTED
    if tuple(data) not in AttemptStarted.CHECKED:
        AttemptStarted.check(data)
    return _NOW(data)


def per_call_us(n: int, fn: Callable[[], object]) -> Callable[[], float]:
    def timed() -> float:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n * 1e6

    return timed


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    n = 20_000 if args.quick else 200_000
    runs = runs_for(args, 5, quick=3)
    Started, Finished, adapter = _pydantic_models()
    cases: list[tuple[str, Callable[[], object]]] = [
        ("dataclass: attempt.started of + to_data", lambda: AttemptStarted.of(STARTED).to_data()),
        (
            "dataclass: attempt.finished of + to_data",
            lambda: AttemptFinished.of(FINISHED).to_data(),
        ),
        (
            "pydantic BaseModel: attempt.started",
            lambda: Started.model_validate(STARTED).model_dump(exclude_unset=True),
        ),
        (
            "pydantic BaseModel: attempt.finished",
            lambda: Finished.model_validate(FINISHED).model_dump(exclude_unset=True),
        ),
        (
            "pydantic TypeAdapter(dataclass): attempt.finished",
            lambda: adapter.validate_python(FINISHED),
        ),
    ]
    for _, fn in cases:  # the same answer before timing: each writes the payload back
        out = fn()
        assert out in (STARTED, FINISHED) or type(out).__name__ == "FinishedDataclass", out
    fold_cases: list[tuple[str, Callable[[], object]]] = [
        ("fold via a view: attempt.started of + 3 fields", read_view),
        ("fold via the stored form: shape check + 3 fields", read_stored),
    ]
    for _, fn in fold_cases:  # both read the same fields
        assert fn() == ("t42", 1, None)
    cases += fold_cases
    metrics = [
        Metric(name, "us/payload", repeat(runs, per_call_us(n, fn)), False) for name, fn in cases
    ]
    report("event_payloads", metrics, args, started, {"calls per run": n})


if __name__ == "__main__":
    main()
