"""The built-in tools every run has: ``shell``, ``python``, ``file.*``, ``http`` and ``noop``.

Each is a small frozen dataclass holding its name and exec profile, and each
denies by default:

* ``shell`` and ``python`` (:mod:`~nexus.tools.builtins._exec`) run a command in
  the process sandbox (:mod:`nexus.tools.sandbox`) and map its outcome onto the
  error taxonomy;
* ``file.read``, ``file.write`` and ``file.list``
  (:mod:`~nexus.tools.builtins._files`) work on the workspace and the
  profile's paths without a process, race-free, and never on what Nexus trusts;
* ``http`` (:mod:`~nexus.tools.builtins._http`) makes one request to a
  destination in the profile's allow-list, following no redirect;
* ``noop`` returns its arguments (tests and benchmarks).

:func:`builtin_tools` is a registry holding one of each, with its default profile,
each of :data:`GOVERNED_TOOLS` under its ``nexus.toml`` ``[tools.<name>]`` table
when there is one (:class:`~nexus.tools.profile.ToolAllowance`: what a
workflow's ``profile:`` may grant it).

Example:
    >>> builtin_tools().names()
    ['file.list', 'file.read', 'file.write', 'http', 'noop', 'python', 'shell']
"""

from __future__ import annotations

from collections.abc import Mapping

from nexus.domain.errors import UserError
from nexus.tools.base import ToolRegistry
from nexus.tools.builtins._exec import PythonTool, ShellTool
from nexus.tools.builtins._files import FileList, FileRead, FileWrite
from nexus.tools.builtins._http import HttpTool
from nexus.tools.builtins._noop import NoopTool
from nexus.tools.profile import ToolAllowance

__all__ = [
    "GOVERNED_TOOLS",
    "FileList",
    "FileRead",
    "FileWrite",
    "HttpTool",
    "NoopTool",
    "PythonTool",
    "ShellTool",
    "builtin_tools",
]


#: The built-ins with an exec profile, which a ``[tools.<name>]`` table may govern.
GOVERNED_TOOLS = ("file.list", "file.read", "file.write", "http", "python", "shell")


def builtin_tools(allowances: Mapping[str, ToolAllowance] | None = None) -> ToolRegistry:
    """A registry holding the built-in tools: shell, python, noop, file.*, http.

    Args:
        allowances: ``nexus.toml``'s ``[tools.<name>]`` tables by tool name.

    Raises:
        UserError: an allowance names a tool not in :data:`GOVERNED_TOOLS`.
    """
    governed: dict[str, ShellTool | PythonTool | FileRead | FileWrite | FileList | HttpTool] = {
        "shell": ShellTool(),
        "python": PythonTool(),
        "file.read": FileRead(),
        "file.write": FileWrite(),
        "file.list": FileList(),
        "http": HttpTool(),
    }
    for name, allowance in (allowances or {}).items():
        tool = governed.get(name)
        if tool is None:
            raise UserError(
                f"[tools.{name}]: no built-in tool {name!r} takes one "
                f"({', '.join(GOVERNED_TOOLS)} do)"
            )
        governed[name] = allowance.apply(tool)
    return ToolRegistry([*governed.values(), NoopTool()])
