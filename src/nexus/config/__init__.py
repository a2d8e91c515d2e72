"""Configuration: environment settings, and the ``nexus.toml`` project file.

Two sources, for two kinds of setting:

* :class:`Settings` reads the environment (``NEXUS_HOME``, ``NEXUS_DURABILITY``):
  where state lives and how durably it is written; a value it cannot use is a
  :class:`~nexus.domain.errors.UserError` naming the variable.
* :func:`load_config` reads a project's ``nexus.toml`` into a frozen
  :class:`NexusConfig`: model providers, price overrides, MCP servers, WASM
  tools, what workflows may grant the built-in tools (``[tools.<name>]``),
  budgets, residency and the response cache.

Which file :func:`load_config` reads, first match wins:

1. the ``path`` argument (``nexus --config FILE``): it must exist;
2. the file named by ``NEXUS_CONFIG``: it must exist;
3. the ``nexus.toml`` of the project the working directory is in: the nearest
   directory, the working directory first, holding a ``nexus.toml`` or a
   ``.nexus`` home (:func:`find_project`, as git finds ``.git``); without one
   every section takes its defaults. The home defaults to that project's
   ``.nexus`` too, so a command started in a subdirectory sees the project's
   runs.

Relative paths inside the file (``api_key_file``, ``module``, an MCP server's
``cwd``, ``cache.path``) are relative to the file's directory, not to wherever
Nexus happens to run; an MCP server started by ``command`` without a ``cwd``
runs in that directory, so its relative command and arguments name the same
files from anywhere. Every problem is a :class:`~nexus.domain.errors.UserError`
naming the file and the dotted key (``budgets.run.usd``), with a "did you
mean" hint for a misspelt key, or the line and column of a TOML syntax error.
No error message, ``repr`` or :meth:`NexusConfig.to_dict` ever holds an API key:
keys live in :class:`~nexus.gateway.settings.Secret`, key files are read only
when an endpoint is first resolved, and input values are echoed in messages
only when they are numbers.
"""

from __future__ import annotations

import typing as _typing

from nexus.config._settings import (
    CONFIG_ENV,
    CONFIG_FILE,
    DB_FILE,
    DURABILITIES,
    HOME_DIR,
    SANDBOX_UID_ENV,
    Durability,
    Settings,
    find_project,
    project_file,
)
from nexus.domain._lazy import on_first_use as _on_first_use
from nexus.domain.durations import parse_seconds

if _typing.TYPE_CHECKING:
    from nexus.config._file import CacheConfig as CacheConfig
    from nexus.config._file import NexusConfig as NexusConfig
    from nexus.config._file import load_config as load_config
    from nexus.tools.wasm import WasmToolConfig as WasmToolConfig

#: Names loaded on first use (PEP 562): the ``nexus.toml`` parser imports
#: pydantic, the gateway and the tools, which ``Settings`` alone does not need.
_LAZY: dict[str, str] = {
    "CacheConfig": "nexus.config._file",
    "NexusConfig": "nexus.config._file",
    "load_config": "nexus.config._file",
    "WasmToolConfig": "nexus.tools.wasm",
}


__getattr__, __dir__ = _on_first_use(__name__, _LAZY, globals())


__all__ = [
    "CONFIG_ENV",
    "CONFIG_FILE",
    "DB_FILE",
    "DURABILITIES",
    "HOME_DIR",
    "SANDBOX_UID_ENV",
    "CacheConfig",
    "Durability",
    "NexusConfig",
    "Settings",
    "WasmToolConfig",
    "find_project",
    "load_config",
    "parse_seconds",
    "project_file",
]
