"""The effect boundary: where everything nondeterministic is recorded (or replayed).

An effect is ``{key, kind, task, attempt, request, response, error, started,
ended}``. Its ``key`` is ``run/task/attempt/call``, so a replay finds the same
record in the same place. :class:`LiveEffects` runs the effect and records the
result; :class:`ReplayEffects` serves the recorded result and never runs
anything, after checking that the request is the one recorded (a different
request means the code or the inputs changed: the replay diverged). An
attempt that takes up a budget-paused one is answered from that attempt's
records first (:mod:`nexus.engine.continuation`): both kinds look records up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from nexus.domain.canonical import canonical_json, digest, plain_json
from nexus.domain.errors import EffectFailed as EffectFailed  # re-exported: its old home
from nexus.domain.errors import ErrorKind, NexusError
from nexus.domain.events import format_time
from nexus.domain.payloads import EffectRecord
from nexus.gateway.base import full_requests
from nexus.redaction import Redactor, default_redactor

#: Redacts secrets from effect requests before they are recorded (and before a
#: replay compares them); the tool itself gets the real arguments.
REDACTOR: Redactor = default_redactor()


def _redactor(run: Redactor | None) -> Callable[[Any], Any]:
    """What a record passes through: :data:`REDACTOR`, then the run's own redactor.

    The run's (its secret inputs' values, personal data with ``[redaction]
    pii``) is the one every event of the run passes through again when it is
    recorded; applying it here too makes what a replay compares (``asked``)
    exactly what was recorded.
    """
    if run is None:
        return REDACTOR.redact
    redact = run.redact
    return lambda value: redact(REDACTOR.redact(value))


class Clock(Protocol):
    """Wall-clock time. Read only at the effect boundary and when inputs arrive."""

    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ReplayDiverged(NexusError):
    """Replay asked for an effect that differs from the recorded one."""

    kind = ErrorKind.INTERNAL


def to_json(value: Any, what: str) -> Any:
    """``value`` as plain JSON (tuples become lists), or a validation error naming ``what``."""
    try:
        return plain_json(value)
    except ValueError as exc:
        raise NexusError(f"{what} is not JSON: {exc}", retryable=False) from exc


def error_record(exc: BaseException) -> dict[str, Any]:
    """An exception as an effect's error record, on the error taxonomy."""
    if isinstance(exc, EffectFailed):
        return exc.error
    if isinstance(exc, NexusError):
        return exc.to_data()
    if isinstance(exc, TimeoutError):
        return {"kind": str(ErrorKind.TIMEOUT), "message": "timed out", "retryable": True}
    return {
        "kind": str(ErrorKind.INTERNAL),
        "message": f"{type(exc).__name__}: {exc}",
        "retryable": False,
    }


def provider_requests(error: Mapping[str, Any]) -> int:
    """How many requests the gateway sent before a model call failed with ``error``.

    Every step of a fallback chain's ``route`` counts its attempts; without a
    route, the error's own ``attempts`` (set by the gateway's retry loop); 1
    when the record says nothing (an error from outside the gateway's loop).
    """
    route = error.get("route")
    if isinstance(route, list) and route:
        return sum(int(step.get("attempts", 0)) for step in route if isinstance(step, Mapping))
    attempts = error.get("attempts")
    return int(attempts) if isinstance(attempts, int) and attempts > 0 else 1


def retried_once(error: dict[str, Any]) -> dict[str, Any]:
    """A model call's error, marked not retryable if the gateway already retried it.

    **One layer retries a failure.** The gateway's retry loop retries a model
    call within the call (``[providers.resilience] max_attempts``); a task's
    ``retries`` retry the attempt. An error that reaches the engine after the
    gateway sent more than one request was retried already: the record says so
    (``retried_by: gateway``, ``retryable: false``) and the task does not start
    another attempt for it, so ``retries: 1`` over a 3-attempt gateway sends 3
    requests, not 6. An error the gateway did not retry (one request: it was
    asked to wait longer than it waits, or it retries nothing) stays the task's
    to retry. Decided live, at the boundary, so a replay reads it from the record.
    """
    if error.get("retryable") is not True or provider_requests(error) <= 1:
        return error
    return {**error, "retryable": False, "retried_by": "gateway"}


@dataclass(frozen=True, slots=True)
class EffectCall:
    key: str
    kind: str
    task: str
    attempt: int
    request: dict[str, Any]
    deadline: float | None  # loop.time() deadline, or None


class Effects(Protocol):
    """How an effect gets its result: by running it, or from the record."""

    async def perform(self, call: EffectCall, fn: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        """Return the effect record for ``call``."""
        ...

    def recorded(self, key: str) -> dict[str, Any] | None:
        """The record ``key`` already has in the log this knows, or None."""
        ...

    def as_recorded(self, request: Any) -> Any:
        """``request`` as its record holds it (secrets redacted), to compare with one."""
        ...


class LiveEffects:
    """Runs effects and records what happened.

    Args:
        clock: when each effect started and ended.
        redactor: the run's redactor (its secret inputs, personal data).
        earlier: records of earlier attempts an attempt may continue (see
            :mod:`nexus.engine.continuation`), by key; nothing here is run again.
    """

    def __init__(
        self,
        clock: Clock,
        redactor: Redactor | None = None,
        earlier: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        self._clock = clock
        self._redact = _redactor(redactor)
        self._earlier = earlier or {}

    def recorded(self, key: str) -> dict[str, Any] | None:
        return self._earlier.get(key)

    def as_recorded(self, request: Any) -> Any:
        return self._redact(request)

    async def perform(self, call: EffectCall, fn: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        started = format_time(self._clock.now())
        response: Any = None
        error: dict[str, Any] | None = None
        try:
            if call.deadline is None:
                response = await fn()
            else:
                async with asyncio.timeout_at(call.deadline):
                    response = await fn()
            response = to_json(response, f"the result of {call.kind} effect {call.key}")
            if call.kind == "tool":
                # what a tool returns is recorded -- and handed on -- without secrets in it
                response = self._redact(response)
        except TimeoutError:
            error = {
                "kind": str(ErrorKind.TIMEOUT),
                "message": "the attempt's timeout expired during this call",
                "retryable": True,
            }
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = self._redact(to_json(error_record(exc), "error"))
            if call.kind == "model":
                error = retried_once(error)
        return {
            "key": call.key,
            "kind": call.kind,
            "task": call.task,
            "attempt": call.attempt,
            "request": self._redact(call.request),
            "response": response,
            # evidence can cite a result by hash without carrying it
            "result_hash": None if error is not None else digest(response),
            "error": error,
            "started": started,
            "ended": format_time(self._clock.now()),
        }


class ReplayEffects:
    """Serves recorded effects; runs nothing."""

    def __init__(
        self, recorded: Mapping[str, dict[str, Any]], redactor: Redactor | None = None
    ) -> None:
        self._recorded = recorded
        self._redact = _redactor(redactor)
        self.served = 0

    def recorded(self, key: str) -> dict[str, Any] | None:
        return self._recorded.get(key)

    def as_recorded(self, request: Any) -> Any:
        return self._redact(request)

    async def perform(self, call: EffectCall, fn: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        record = self._recorded.get(call.key)
        if record is None:
            # The original attempt never got this far (it was interrupted or
            # cancelled): wait to be cancelled, as the original was.
            await asyncio.Event().wait()
            raise AssertionError("unreachable")
        asked = self._redact(call.request)
        recorded = EffectRecord.of(record).request
        if canonical_json(recorded) != canonical_json(asked) and not self._same_in_full(
            call, recorded, asked
        ):
            raise ReplayDiverged(f"effect {call.key}: the request differs from the recorded one")
        self.served += 1
        return record

    def _same_in_full(self, call: EffectCall, recorded: Any, asked: Any) -> bool:
        """Whether a model request recorded whole equals ``asked``, which continues the last.

        Runs recorded before agents recorded only a call's new messages
        (ADR 0005) hold whole requests; rebuilt against the attempt's previous
        recorded request, ``asked`` must be exactly that whole request.
        """
        if call.kind != "model" or "history" not in asked or "history" in recorded:
            return False
        run, task, attempt, index = call.key.rsplit("/", 3)
        for earlier in range(int(index) - 1, -1, -1):
            before = self._recorded.get(f"{run}/{task}/{attempt}/{earlier}")
            if before is not None and before["kind"] == "model":
                try:
                    whole = full_requests([before["request"], asked])[1]
                except ValueError:
                    return False
                return canonical_json(whole) == canonical_json(recorded)
        return False
