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

msgspec is not a dependency and is not measured. Lower is better.

Usage: ``python bench/event_payloads.py [--quick] [--runs N] [--json PATH]``
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from _common import Metric, parser, repeat, report, runs_for
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
    metrics = [
        Metric(name, "us/payload", repeat(runs, per_call_us(n, fn)), False) for name, fn in cases
    ]
    report("event_payloads", metrics, args, started, {"calls per run": n})


if __name__ == "__main__":
    main()
