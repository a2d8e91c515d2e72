"""What ``nexus tools`` and callers see of a server and its tools: plain values, ``to_data()``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nexus.domain.resilience import BreakerState
from nexus.tools.lint import Finding
from nexus.tools.pins import ToolState

__all__ = ["McpToolStatus", "ServerStatus"]


@dataclass(frozen=True, slots=True)
class McpToolStatus:
    """One MCP tool as the connection last saw it.

    Attributes:
        name: ``<server>.<tool>``.
        tool: the name on the server.
        state: ``approved`` tools are callable; see :class:`~nexus.tools.pins.ToolState`.
        pin: the current descriptor's pin.
        approved_pin: the approved pin, if any.
        changed: descriptor fields that differ from the approved descriptor.
        findings: the linter's findings.
        descriptor: the pinned descriptor (what the agent is shown).
    """

    name: str
    tool: str
    state: ToolState
    pin: str
    approved_pin: str | None
    changed: tuple[str, ...]
    findings: tuple[Finding, ...]
    descriptor: Mapping[str, Any]

    def to_data(self) -> dict[str, Any]:
        """Plain JSON, for ``nexus tools`` and events."""
        return {
            "name": self.name,
            "state": str(self.state),
            "pin": self.pin,
            "approved_pin": self.approved_pin,
            "changed": list(self.changed),
            "findings": [f.to_data() for f in self.findings],
            "description": self.descriptor.get("description", ""),
            "input_schema": self.descriptor.get("inputSchema", {}),
        }


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """A server's connection, breaker and tools."""

    name: str
    transport: str
    connected: bool
    connects: int
    breaker: BreakerState
    last_error: str | None
    tools: tuple[McpToolStatus, ...]
    #: a stdio server's launch pin and its state (``None`` for HTTP servers)
    command_pin: str | None = None
    command_state: str | None = None

    def to_data(self) -> dict[str, Any]:
        """Plain JSON."""
        return {
            "name": self.name,
            "transport": self.transport,
            "connected": self.connected,
            "connects": self.connects,
            "breaker": str(self.breaker),
            "last_error": self.last_error,
            "tools": [t.to_data() for t in self.tools],
            "command_pin": self.command_pin,
            "command_state": self.command_state,
        }
