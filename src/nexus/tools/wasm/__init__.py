"""WASM tools: WASI command modules run on wasmtime under fuel, memory, time and output limits.

The parts, each readable on its own:

* :class:`WasmToolConfig` (``_spec``): a declared tool as a value, what
  ``nexus.toml`` and workflow files hold. Pure data: importing it loads no wasmtime.
* :func:`parse_wasm_tools`, :func:`register_wasm_tools`, :func:`guard_launch`
  (``_config``): ``wasm_tools`` tables turned into registered, launch-pinned tools.
* :class:`WasmTool`, :class:`WasmRuntime`, :func:`load_wasm_tool` (``_tool``):
  the tool, its engine and compile cache, and the guest's world and limits.

The names are loaded on first use (PEP 562): ``nexus.config`` holds
:class:`WasmToolConfig` values without loading wasmtime; the first use of a name
that runs a guest (:class:`WasmTool`, :func:`parse_wasm_tools`...) loads it.
"""

import importlib as _importlib
import typing as _typing

from nexus.tools.wasm._spec import WasmToolConfig

if _typing.TYPE_CHECKING:
    from nexus.tools.wasm._config import build_wasm_tool as build_wasm_tool
    from nexus.tools.wasm._config import guard_launch as guard_launch
    from nexus.tools.wasm._config import parse_wasm_tools as parse_wasm_tools
    from nexus.tools.wasm._config import register_wasm_tools as register_wasm_tools
    from nexus.tools.wasm._config import wasm_record as wasm_record
    from nexus.tools.wasm._tool import WORKSPACE_GUEST_PATH as WORKSPACE_GUEST_PATH
    from nexus.tools.wasm._tool import WasmLimits as WasmLimits
    from nexus.tools.wasm._tool import WasmOutput as WasmOutput
    from nexus.tools.wasm._tool import WasmRuntime as WasmRuntime
    from nexus.tools.wasm._tool import WasmTool as WasmTool
    from nexus.tools.wasm._tool import load_wasm_tool as load_wasm_tool

#: Where each name that needs wasmtime lives; :func:`__getattr__` imports it on first use.
_LAZY: dict[str, str] = {
    "WORKSPACE_GUEST_PATH": "nexus.tools.wasm._tool",
    "WasmLimits": "nexus.tools.wasm._tool",
    "WasmOutput": "nexus.tools.wasm._tool",
    "WasmRuntime": "nexus.tools.wasm._tool",
    "WasmTool": "nexus.tools.wasm._tool",
    "build_wasm_tool": "nexus.tools.wasm._config",
    "guard_launch": "nexus.tools.wasm._config",
    "load_wasm_tool": "nexus.tools.wasm._tool",
    "parse_wasm_tools": "nexus.tools.wasm._config",
    "register_wasm_tools": "nexus.tools.wasm._config",
    "wasm_record": "nexus.tools.wasm._config",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nexus.tools.wasm' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "WORKSPACE_GUEST_PATH",
    "WasmLimits",
    "WasmOutput",
    "WasmRuntime",
    "WasmTool",
    "WasmToolConfig",
    "build_wasm_tool",
    "guard_launch",
    "load_wasm_tool",
    "parse_wasm_tools",
    "register_wasm_tools",
    "wasm_record",
]
