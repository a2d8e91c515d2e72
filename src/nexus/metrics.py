"""Metrics: Prometheus counters of what tools did and what policy refused.

Nexus keeps its metrics in a :class:`~prometheus_client.CollectorRegistry` of
its own (not the library's global one), so embedding Nexus never mixes its
series with the host application's, and tests read exact values from it.

Series:

``nexus_tool_denials_total{tool, reason}``
    Something a tool call tried was refused by policy. ``reason`` is one of
    :data:`DENIAL_REASONS`:

    ==================== =========================================================
    ``profile``          the exec profile cannot allow it (an allow-list under
                         the ``rlimits`` fallback, a grant naming no such right)
    ``path``             a file path outside the granted paths (``file.*``)
    ``egress``           a network destination not on the allow-list: the
                         ``http`` tool, the sandbox's proxy, or a socket under
                         ``network = "none"``
    ``seccomp``          a forbidden system call inside the sandbox
    ``quota``            a write past the workspace's disk quota or file size cap
    ``mcp_unapproved``   an MCP tool whose pin is not approved (new or changed)
    ``mcp_not_granted``  an MCP tool the task's profile does not grant
    ``mcp_lint``         an MCP tool blocked by the descriptor linter
    ``sandbox``          the sandbox cannot run here and no fallback was allowed
    ==================== =========================================================

    One call can count several denials (a command refused three system calls
    counts three).

``nexus_tool_calls_total{tool, outcome}``
    Tool calls made through :meth:`nexus.tools.base.ToolRegistry.call`;
    ``outcome`` is ``ok``, ``cancelled``, or the error kind of the taxonomy
    (``policy_denied``, ``timeout``, ``transient``, ``validation``...).

prometheus-client takes ~50-80 ms to import (it pulls in ``http.server``), so
it is imported on first use: CLI commands that record nothing do not pay it.
:func:`render_metrics` gives the text exposition format for a ``/metrics``
endpoint or a file.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, get_args

from nexus.domain.errors import NexusError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter

__all__ = [
    "CONTENT_TYPE",
    "DENIAL_REASONS",
    "DenialReason",
    "count_denial",
    "count_tool_call",
    "outcome_of",
    "registry",
    "render_metrics",
    "sample",
]

DenialReason: TypeAlias = Literal[
    "profile",
    "path",
    "egress",
    "seccomp",
    "quota",
    "mcp_unapproved",
    "mcp_not_granted",
    "mcp_lint",
    "sandbox",
]
#: Every value ``reason`` can take (label values stay few: one series each).
DENIAL_REASONS: Final[tuple[DenialReason, ...]] = get_args(DenialReason)
#: The media type of :func:`render_metrics`' output (Prometheus text format 0.0.4).
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class _Metrics:
    registry: CollectorRegistry
    denials: Counter
    calls: Counter
    #: the labelled child of ``calls`` per (tool, outcome): ``labels()`` is slow
    #: (it validates and joins the label values on every call), this is a dict lookup
    call_series: dict[tuple[str, str], Any] = field(default_factory=dict)


_metrics: _Metrics | None = None
_lock = threading.Lock()


def _get() -> _Metrics:
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                from prometheus_client import CollectorRegistry, Counter

                reg = CollectorRegistry(auto_describe=True)
                _metrics = _Metrics(
                    registry=reg,
                    denials=Counter(
                        "nexus_tool_denials",
                        "Actions of tool calls refused by policy, by tool and reason.",
                        ["tool", "reason"],
                        registry=reg,
                    ),
                    calls=Counter(
                        "nexus_tool_calls",
                        "Tool calls, by tool and outcome (ok, cancelled, or the error kind).",
                        ["tool", "outcome"],
                        registry=reg,
                    ),
                )
    return _metrics


def registry() -> CollectorRegistry:
    """Nexus's metrics registry (created, with its series, on first use)."""
    return _get().registry


def count_denial(tool: str, reason: DenialReason, count: int = 1) -> None:
    """Count ``count`` refusals of ``reason`` for ``tool``."""
    if reason not in DENIAL_REASONS:
        raise ValueError(f"unknown denial reason {reason!r} (known: {', '.join(DENIAL_REASONS)})")
    if count > 0:
        _get().denials.labels(tool=tool, reason=reason).inc(count)


def count_tool_call(tool: str, outcome: str) -> None:
    """Count one call of ``tool`` that ended in ``outcome`` (see :func:`outcome_of`)."""
    metrics = _get()
    series = metrics.call_series.get((tool, outcome))
    if series is None:
        series = metrics.calls.labels(tool=tool, outcome=outcome)
        metrics.call_series[(tool, outcome)] = series
    series.inc()


def outcome_of(exc: BaseException | None) -> str:
    """``ok``, ``cancelled``, or the error kind an exception maps to."""
    if exc is None:
        return "ok"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, NexusError):
        return str(exc.kind)
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "internal"


def sample(name: str, labels: dict[str, str]) -> float:
    """The current value of one series (0 when it was never incremented).

    Example:
        >>> sample("nexus_tool_denials_total", {"tool": "shell", "reason": "seccomp"})
        0.0
    """
    value = _get().registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def render_metrics() -> bytes:
    """Every Nexus series in the Prometheus text exposition format."""
    from prometheus_client import generate_latest

    return generate_latest(_get().registry)
