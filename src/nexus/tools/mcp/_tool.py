"""One MCP tool, ``<server>.<tool>``, as a Nexus :class:`~nexus.tools.base.Tool`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from nexus.domain.errors import PolicyDenied
from nexus.metrics import count_denial
from nexus.tools.base import ToolContext, ToolFailed
from nexus.tools.mcp._status import McpToolStatus
from nexus.tools.profile import allows_mcp_tool

__all__ = ["McpTool", "ToolHost"]


class ToolHost(Protocol):
    """What a tool needs of its server's connection (:class:`~nexus.tools.mcp.McpConnection`)."""

    @property
    def name(self) -> str:
        """The server's name."""
        ...

    def tool_status(self, tool: str) -> McpToolStatus:
        """``tool``'s current state, pin and descriptor."""
        ...

    async def call(self, tool: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Call ``tool`` on the server."""
        ...


@dataclass(frozen=True, slots=True)
class McpTool:
    """``<server>.<tool>`` as a Nexus :class:`~nexus.tools.base.Tool`.

    Never ``pure``: annotations such as ``readOnlyHint`` come from an untrusted
    server and are not relied on.
    """

    connection: ToolHost
    tool: str
    pure: bool = False

    @property
    def name(self) -> str:
        """``<server>.<tool>``."""
        return f"{self.connection.name}.{self.tool}"

    @property
    def status(self) -> McpToolStatus:
        """The tool's current state, pin and descriptor."""
        return self.connection.tool_status(self.tool)

    @property
    def source(self) -> str:
        """``mcp:<server>``, for ``nexus tools``."""
        return f"mcp:{self.connection.name}"

    @property
    def permissions(self) -> dict[str, Any]:
        """What calling it means, for ``nexus tools``: the server's rights, not an exec profile."""
        return {
            "runs": "in the MCP server's process, with the environment its table gives",
            "needs": f"an approved pin and a profile grant (mcp_tools: ['{self.name}'])",
            "output": "untrusted (provenance marked)",
        }

    @property
    def description(self) -> str:
        """The server's description of the tool (untrusted text; linted)."""
        return str(self.status.descriptor.get("description", ""))

    @property
    def input_schema(self) -> dict[str, Any]:
        """The tool's JSON schema for its arguments, as the server lists it."""
        return dict(self.status.descriptor.get("inputSchema", {}))

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        """Call the tool (``ctx`` is unused: the server's environment is fixed at start).

        A result the server marks ``isError`` fails the call as a task would
        expect (:class:`~nexus.tools.base.ToolFailed`, its text in the details);
        :meth:`~nexus.tools.mcp.McpConnection.call` returns it as data for callers that want it.
        """
        if not allows_mcp_tool(ctx, self.name):
            count_denial(self.name, "mcp_not_granted")
            raise PolicyDenied(
                f"MCP tool '{self.name}' is not allowed by the task's profile; grant it "
                f"with profile: {{mcp_tools: ['{self.name}']}} (patterns like "
                f"'{self.connection.name}.*' work too)"
            )
        result = await self.connection.call(self.tool, args)
        if result.get("is_error"):
            texts = [c.get("text", "") for c in result.get("content", []) if c.get("text")]
            message = "; ".join(texts)[:500] or "the tool reported an error"
            raise ToolFailed(f"{self.name}: {message}", details=result)
        return result
