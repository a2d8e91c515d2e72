"""All the MCP servers of a run, connected together and registered as tools."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Self

from nexus.domain.errors import NexusError, NotFoundError, UserError
from nexus.tools.base import ToolRegistry
from nexus.tools.lint import LintConfig
from nexus.tools.mcp._connection import McpConnection
from nexus.tools.mcp._spec import McpServerSpec
from nexus.tools.mcp._status import ServerStatus
from nexus.tools.mcp._tool import McpTool
from nexus.tools.pins import PinStore

__all__ = ["McpServers"]


class McpServers:
    """All configured MCP servers of a run, connected together.

    Args:
        specs: the servers.
        pins: the approved pins.
        builtin_tools: names of the non-MCP tools (for the linter's
            cross-reference check).
        lint_config: linter limits.

    Example:
        >>> async def main() -> None:  # doctest: +SKIP
        ...     specs = parse_mcp_servers({"time": {"command": "mcp-server-time"}})
        ...     async with McpServers(specs, PinStore.at_home(Path(".nexus"))) as servers:
        ...         servers.register(registry)
    """

    def __init__(
        self,
        specs: Iterable[McpServerSpec],
        pins: PinStore,
        *,
        builtin_tools: Iterable[str] = (),
        lint_config: LintConfig | None = None,
    ) -> None:
        self._builtin = list(builtin_tools)
        self._connections: dict[str, McpConnection] = {}
        for spec in specs:
            if spec.name in self._connections:
                raise UserError(f"mcp_servers: server '{spec.name}' is declared twice")
            self._connections[spec.name] = McpConnection(
                spec, pins, other_tools=self._all_names, lint_config=lint_config
            )
        self._stack: AsyncExitStack | None = None

    def _all_names(self) -> list[str]:
        names = list(self._builtin)
        for conn in self._connections.values():
            names.extend(t.name for t in conn.tools())
        return names

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        try:
            # Started one by one without waiting; the first attempts are then
            # awaited together, so the servers connect concurrently.
            for conn in self._connections.values():
                await conn._start()
                stack.push_async_exit(conn)
            await asyncio.gather(*(c._first_attempt() for c in self._connections.values()))
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        for conn in self._connections.values():
            conn.relint()  # now that every server's tool names are known
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    async def shutdown(self) -> None:
        """Stop every connection; idempotent."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await asyncio.gather(*(c.shutdown() for c in self._connections.values()))
            await stack.aclose()

    def connection(self, name: str) -> McpConnection:
        """The connection to server ``name``.

        Raises:
            NotFoundError: no such server.
        """
        try:
            return self._connections[name]
        except KeyError:
            raise NotFoundError(
                f"no MCP server '{name}' (configured: {', '.join(sorted(self._connections))})"
            ) from None

    def refusal(self, name: str) -> NexusError | None:
        """Why ``<server>.<tool>`` cannot be had, when its server was refused a start."""
        server, dot, _ = name.partition(".")
        conn = self._connections.get(server) if dot else None
        return conn.refused if conn is not None else None

    def tools(self) -> list[McpTool]:
        """Every known tool of every server."""
        return [t for c in self._connections.values() for t in c.tools()]

    def register(self, registry: ToolRegistry) -> list[str]:
        """Add every known tool to ``registry``; the names added."""
        added = []
        for t in self.tools():
            registry.add(t)
            added.append(t.name)
        return added

    def status(self) -> list[ServerStatus]:
        """Every server's status."""
        return [c.status() for c in self._connections.values()]
