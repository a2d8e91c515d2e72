"""Tools: the registry, built-ins and the tool port."""

from nexus.tools.base import FunctionTool, Tool, ToolContext, ToolFailed, ToolRegistry, tool
from nexus.tools.builtins import NoopTool, ShellTool, builtin_tools

__all__ = [
    "FunctionTool",
    "NoopTool",
    "ShellTool",
    "Tool",
    "ToolContext",
    "ToolFailed",
    "ToolRegistry",
    "builtin_tools",
    "tool",
]
