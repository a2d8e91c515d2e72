"""What one call may consume, and what a finished run amounts to: a result or a failure.

:func:`judge` turns a run's :class:`Outcome` into the call's :class:`WasmOutput`,
or into the :class:`~nexus.tools.base.ToolFailed` it amounts to, naming the limit
that was hit in ``details["limit"]`` (the table is in :mod:`nexus.tools.wasm`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from nexus.domain.errors import UserError
from nexus.tools.base import ToolFailed

__all__ = ["MIB", "Outcome", "WasmLimits", "WasmOutput", "failed", "judge"]

MIB = 1 << 20
_TAIL = 2000  # characters of stdout/stderr kept in a failure's details


@dataclass(frozen=True, slots=True)
class WasmLimits:
    """What one call of a WASM tool may consume.

    Args:
        fuel: instructions (roughly; wasmtime's fuel units) the guest may run.
        memory_mb: the most MiB any one linear memory may hold.
        wall_seconds: wall-clock time from instantiation to exit.
        max_output_bytes: the most bytes stdout, and separately stderr, may hold.
    """

    fuel: int
    memory_mb: int
    wall_seconds: float
    max_output_bytes: int

    def __post_init__(self) -> None:
        for field_name in ("fuel", "memory_mb", "wall_seconds", "max_output_bytes"):
            if not getattr(self, field_name) > 0:
                raise UserError(f"WASM limit '{field_name}' must be positive")


class WasmOutput(TypedDict):
    """What a successful call returns (a JSON object, as every tool result)."""

    exit_code: int
    stdout: str
    stderr: str
    fuel_used: int
    #: stdout parsed, present only when stdout is one JSON document (``json.loads`` types it Any)
    result: NotRequired[Any]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a finished (or stopped) run left behind, before it is judged."""

    exit_code: int | None  # None: it did not exit (trap, stop, failed instantiation)
    error: str | None  # the trap or instantiation error, if any
    out_of_fuel: bool
    instantiated: bool
    stop_reason: str | None
    stdout: bytes
    stderr: bytes
    fuel_used: int
    memory_bytes: int


def judge(name: str, limits: WasmLimits, outcome: Outcome) -> WasmOutput:
    """The call's result, or the :class:`ToolFailed` its outcome amounts to."""
    stdout = outcome.stdout.decode("utf-8", "replace")
    stderr = outcome.stderr.decode("utf-8", "replace")
    details: dict[str, Any] = {"stderr_tail": stderr[-_TAIL:]}
    if outcome.exit_code is not None or outcome.out_of_fuel:
        # exact only then: after a trap or a stop, wasmtime's count can lag behind
        details["fuel_used"] = outcome.fuel_used
    if outcome.exit_code is not None:
        details["exit_code"] = outcome.exit_code
    if outcome.error is not None:
        details["trap"] = outcome.error

    def limit_hit(limit: str, message: str, *, retryable: bool = False) -> ToolFailed:
        return failed(f"wasm tool '{name}' {message}", {"limit": limit, **details}, retryable)

    over_output = max(len(outcome.stdout), len(outcome.stderr)) > limits.max_output_bytes
    if outcome.stop_reason == "output" or over_output:
        raise limit_hit("output", f"wrote more than {limits.max_output_bytes} bytes")
    if outcome.stop_reason == "wall":
        raise limit_hit("wall", f"ran past {limits.wall_seconds} s", retryable=True)
    if outcome.out_of_fuel:
        raise limit_hit("fuel", f"ran out of fuel ({limits.fuel})")
    limit_bytes = limits.memory_mb * MIB
    if not outcome.instantiated and "exceeds memory limits" in (outcome.error or ""):
        raise limit_hit("memory", f"needs more than {limits.memory_mb} MiB of memory")
    unsuccessful = outcome.error is not None or outcome.exit_code != 0
    if unsuccessful and outcome.memory_bytes * 4 >= limit_bytes * 3:
        details["memory_bytes"] = outcome.memory_bytes
        raise limit_hit("memory", f"failed at its memory limit ({limits.memory_mb} MiB)")
    if outcome.error is not None:
        raise failed(f"wasm tool '{name}' trapped: {_last_line(outcome.error)}", details)
    if outcome.exit_code != 0:
        details["stdout_tail"] = stdout[-_TAIL:]
        raise failed(
            f"wasm tool '{name}' exited with status {outcome.exit_code}", details, retryable=True
        )
    result = WasmOutput(exit_code=0, stdout=stdout, stderr=stderr, fuel_used=outcome.fuel_used)
    parsed = _parse_json(stdout)
    if parsed is not _NOT_JSON:
        result["result"] = parsed
    return result


def failed(message: str, details: dict[str, Any], retryable: bool = False) -> ToolFailed:
    error = ToolFailed(message, details=details)
    error.retryable = retryable
    return error


_NOT_JSON = object()


def _parse_json(text: str) -> object:
    if not text.strip():
        return _NOT_JSON
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _last_line(message: str) -> str:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[-1] if lines else message
