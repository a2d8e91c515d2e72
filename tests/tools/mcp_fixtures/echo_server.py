"""A small MCP server for the tests, written with the official SDK's ``MCPServer``.

Run over stdio as a script (``python echo_server.py``); the HTTP tests import
:func:`build` and serve its Starlette app with uvicorn.

Tools: ``echo`` (text), ``add`` (structured output), ``pid`` and ``env`` (what
the process sees), ``fail`` (a tool error), ``hang`` (awaits forever, so a
cancel reaches it), ``wedge`` (blocks the server's event loop, so nothing does)
and ``die`` (the process exits mid-call).
"""

from __future__ import annotations

import os
import sys
import time

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError


def build() -> MCPServer:
    server = MCPServer("echo", log_level="WARNING")

    @server.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool()
    def add(a: int, b: int) -> dict[str, int]:
        """Add two integers."""
        return {"sum": a + b}

    @server.tool()
    def pid() -> int:
        """The server's process id."""
        return os.getpid()

    @server.tool()
    def env() -> list[str]:
        """The names of the server's environment variables."""
        return sorted(os.environ)

    @server.tool()
    def fail(message: str) -> str:
        """Always fails with the given message."""
        raise ToolError(message)

    @server.tool()
    async def hang() -> str:
        """Never returns (but can be cancelled)."""
        await anyio.sleep_forever()
        return "unreachable"

    @server.tool()
    async def wedge() -> str:
        """Blocks the whole server for an hour."""
        # On purpose: blocks the event loop, so nothing is answered.
        time.sleep(3600)  # noqa: ASYNC251
        return "unreachable"

    @server.tool()
    def die() -> str:
        """Exits the process mid-call."""
        sys.stdout.flush()
        os._exit(3)

    return server


if __name__ == "__main__":
    build().run("stdio")
