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

:func:`builtin_tools` is a registry holding one of each, with its default profile.

Example:
    >>> builtin_tools().names()
    ['file.list', 'file.read', 'file.write', 'http', 'noop', 'python', 'shell']
"""

from __future__ import annotations

from nexus.tools.base import ToolRegistry
from nexus.tools.builtins._exec import PythonTool, ShellTool
from nexus.tools.builtins._files import FileList, FileRead, FileWrite
from nexus.tools.builtins._http import HttpTool
from nexus.tools.builtins._noop import NoopTool

__all__ = [
    "FileList",
    "FileRead",
    "FileWrite",
    "HttpTool",
    "NoopTool",
    "PythonTool",
    "ShellTool",
    "builtin_tools",
]


def builtin_tools() -> ToolRegistry:
    """A registry holding the built-in tools: shell, python, noop, file.*, http."""
    return ToolRegistry(
        [ShellTool(), PythonTool(), NoopTool(), FileRead(), FileWrite(), FileList(), HttpTool()]
    )
