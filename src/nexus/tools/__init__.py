"""Tools: the registry, built-ins, exec profiles and the tool port.

The built-ins live in :mod:`nexus.tools.builtins` (re-exported here), the
process sandbox that ``shell`` and ``python`` run in in :mod:`nexus.tools.sandbox`,
WASM tools in :mod:`nexus.tools.wasm` and MCP servers in :mod:`nexus.tools.mcp`
(imported on demand: they pull in wasmtime and the MCP SDK).
"""

from nexus.tools.base import FunctionTool, Tool, ToolContext, ToolFailed, ToolRegistry, tool
from nexus.tools.builtins import (
    FileList,
    FileRead,
    FileWrite,
    HttpTool,
    NoopTool,
    PythonTool,
    ShellTool,
    builtin_tools,
)
from nexus.tools.profile import SHELL_PROFILE, ExecProfile, effective_profile

__all__ = [
    "SHELL_PROFILE",
    "ExecProfile",
    "FileList",
    "FileRead",
    "FileWrite",
    "FunctionTool",
    "HttpTool",
    "NoopTool",
    "PythonTool",
    "ShellTool",
    "Tool",
    "ToolContext",
    "ToolFailed",
    "ToolRegistry",
    "builtin_tools",
    "effective_profile",
    "tool",
]
