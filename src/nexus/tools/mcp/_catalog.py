"""A server's tool catalogue: what it lists, each descriptor's pin, and whether it may be called.

A tool is callable only in state ``approved``: its descriptor hashes to the pin a
user approved (:mod:`nexus.tools.pins`) and the descriptor linter
(:mod:`nexus.tools.lint`) found no error in it. :class:`ToolCatalog` evaluates
every ``tools/list`` -- at connect, on reconnect and on each
``notifications/tools/list_changed`` -- and re-checks the pin against the store
whenever a tool's state is asked for, so an approval or revocation made by
another process counts at once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mcp import ClientSession, types

from nexus.domain.errors import InfrastructureError, NexusError, NotFoundError, PolicyDenied
from nexus.tools.lint import Finding, LintConfig, Severity, errors, lint_descriptor
from nexus.tools.mcp._status import McpToolStatus
from nexus.tools.pins import Approval, PinStore, ToolState, changed_fields, descriptor_of, tool_pin

__all__ = ["ToolCatalog"]

logger = logging.getLogger("nexus.tools.mcp")

_MAX_PAGES = 100
_MAX_TOOLS = 2000


class ToolCatalog:
    """The tools one server lists, with their pins, lint findings and states.

    Args:
        server: the server's name; its tools are ``<server>.<tool>``.
        pins: the approved pins (shared by all servers).
        lint: the linter's limits and ignores for this server.
        other_tools: names of every tool *not* from this server, for the
            linter's cross-reference check; a callable is asked on each listing.
    """

    def __init__(
        self,
        server: str,
        pins: PinStore,
        lint: LintConfig,
        other_tools: Callable[[], Iterable[str]] | Iterable[str] = (),
    ) -> None:
        self.server = server
        self._pins = pins
        self._lint = lint
        self._other_tools = other_tools
        self._tools: dict[str, McpToolStatus] = {}

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        """Every tool the server ever listed (removed ones too), sorted."""
        return sorted(self._tools)

    async def refresh(self, session: ClientSession) -> None:
        """List the server's tools (every page) and evaluate them.

        Raises:
            InfrastructureError: the listing does not end, or is too long.
        """
        listed: list[types.Tool] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            listed.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
            if len(listed) > _MAX_TOOLS:
                raise InfrastructureError(f"server lists more than {_MAX_TOOLS} tools")
        else:
            raise InfrastructureError(f"tools/list did not end within {_MAX_PAGES} pages")
        self.apply_listing(listed)

    def apply_listing(self, listed: list[types.Tool]) -> None:
        """Take ``listed`` as the server's tools: new states, removals, and a warning for
        each approved tool that is no longer callable."""
        descriptors: dict[str, dict[str, Any]] = {}
        duplicates: set[str] = set()
        for tool in listed:
            if tool.name in descriptors:
                duplicates.add(tool.name)
            descriptors[tool.name] = descriptor_of(tool)
        fresh = {
            name: self._evaluate(name, descriptor, descriptors, name in duplicates)
            for name, descriptor in descriptors.items()
        }
        for name, old in self._tools.items():
            if name not in fresh:
                fresh[name] = dataclasses.replace(old, state=ToolState.REMOVED)
            elif old.state is ToolState.APPROVED and fresh[name].state is not ToolState.APPROVED:
                new = fresh[name]
                logger.warning(
                    "MCP tool %r is now %s (pin %s -> %s; changed: %s)",
                    new.name,
                    new.state,
                    old.pin[:12],
                    new.pin[:12],
                    ", ".join(new.changed) or "-",
                )
        self._tools = fresh

    def relint(self) -> None:
        """Re-run the linter and the pin check on the known descriptors (after other
        servers' tools became known)."""
        siblings = {name: s.descriptor for name, s in self._tools.items()}
        self._tools = {
            name: s
            if s.state is ToolState.REMOVED
            else self._evaluate(
                name, s.descriptor, siblings, any(f.code == "duplicate-name" for f in s.findings)
            )
            for name, s in self._tools.items()
        }

    def status(self, tool: str) -> McpToolStatus:
        """``tool``'s current state, its pin re-checked against the store.

        Raises:
            NotFoundError: the server never listed ``tool``.
        """
        status = self._tools.get(tool)
        if status is None:
            known = ", ".join(sorted(self._tools)) or "none yet"
            raise NotFoundError(f"MCP server '{self.server}' has no tool '{tool}' (known: {known})")
        if status.state is ToolState.REMOVED:
            return status
        # Another process may have approved or revoked it since: one stat() tells.
        state, approval = self._pins.state_of(self.server, tool, status.pin)
        approved = approval.pin if approval is not None else None
        if errors(status.findings):
            state = ToolState.BLOCKED_BY_LINT
        if state is not status.state or approved != status.approved_pin:
            self._tools[tool] = status = self._with_pin_state(status)
        return status

    def approve(self, tool: str, pin: str | None = None) -> Approval:
        """Approve ``tool``'s descriptor (the current one, or the one with ``pin``).

        Returns:
            The recorded approval; the tool is ``approved`` if ``pin`` is its
            current pin and the linter holds nothing against it.
        """
        status = self.status(tool)
        chosen = pin or status.pin
        approval = self._pins.approve(
            self.server,
            tool,
            chosen,
            descriptor=status.descriptor if chosen == status.pin else None,
        )
        self._tools[tool] = self._with_pin_state(status)
        return approval

    def refusal(self, status: McpToolStatus) -> NexusError:
        """Why a tool that is not ``approved`` may not be called, and what to do about it."""
        name = status.name
        if status.state is ToolState.REMOVED:
            return NotFoundError(f"MCP server '{self.server}' no longer lists tool '{status.tool}'")
        if status.state is ToolState.BLOCKED_BY_LINT:
            shown = "; ".join(
                f"{f.code} at {f.where}: {f.message}" for f in errors(status.findings)
            )
            return PolicyDenied(f"MCP tool '{name}' is blocked by the descriptor linter: {shown}")
        if status.state is ToolState.CHANGED:
            fields = ", ".join(status.changed) or "unknown fields"
            return PolicyDenied(
                f"MCP tool '{name}' changed its descriptor since it was approved "
                f"(approved pin {status.approved_pin}, now {status.pin}; changed: {fields}); "
                f"it is disabled until re-approved: nexus tools approve {name} --pin {status.pin}"
            )
        return PolicyDenied(
            f"MCP tool '{name}' is not approved (pin {status.pin}); "
            f"review it (nexus tools), then: nexus tools approve {name} --pin {status.pin}"
        )

    def _other_names(self) -> list[str]:
        source = self._other_tools
        names = source() if callable(source) else source
        return [n for n in names if not n.startswith(f"{self.server}.")]

    def _evaluate(
        self,
        tool: str,
        descriptor: Mapping[str, Any],
        siblings: Mapping[str, Any],
        duplicate: bool,
    ) -> McpToolStatus:
        findings = lint_descriptor(
            descriptor,
            other_tools=self._other_names(),
            sibling_tools=[s for s in siblings if s != tool],
            config=self._lint,
        )
        if duplicate and "duplicate-name" not in self._lint.ignore:
            findings.insert(
                0,
                Finding(
                    Severity.ERROR, "duplicate-name", f"listed more than once: {tool!r}", "name"
                ),
            )
        pin = tool_pin(descriptor)
        return self._with_pin_state(
            McpToolStatus(
                name=f"{self.server}.{tool}",
                tool=tool,
                state=ToolState.PENDING_APPROVAL,
                pin=pin,
                approved_pin=None,
                changed=(),
                findings=tuple(findings),
                descriptor=descriptor,
            )
        )

    def _with_pin_state(self, status: McpToolStatus) -> McpToolStatus:
        state, approval = self._pins.state_of(self.server, status.tool, status.pin)
        if errors(status.findings):
            state = ToolState.BLOCKED_BY_LINT
        changed: tuple[str, ...] = ()
        if approval is not None and approval.pin != status.pin:
            changed = tuple(changed_fields(approval.descriptor, status.descriptor))
        return dataclasses.replace(
            status,
            state=state,
            approved_pin=approval.pin if approval is not None else None,
            changed=changed,
        )
