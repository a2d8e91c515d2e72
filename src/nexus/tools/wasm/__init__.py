"""WASM tools: WASI command modules run on wasmtime under fuel, memory, time and output limits.

A :class:`WasmTool` runs a WebAssembly module's WASI ``_start`` once per call,
in a small, fixed world:

* **argv** is the tool's name; **stdin** is the call's arguments as compact
  JSON (ASCII only, so any Python string survives); **stdout** and **stderr**
  are captured; the **environment** holds exactly ``ToolContext.env``.
* **Files**: only the run's workspace, as ``/workspace`` (fd 3): its top level
  read-only, its subdirectories read-write except those that are or hold a
  trusted path (``nexus.toml``, ``.nexus``...; see ``_preopen``). WASI's
  capability model refuses absolute paths, ``..`` and symlinks leading out of it.
  WASI preview 1 cannot open sockets: **no network**.
* **No waiting**: ``poll_oneoff`` (sleep) fails with ``ENOTSUP``. A sleep in
  the host cannot be interrupted by the epoch deadline below, so it would slip
  past the wall-time limit and cancellation; a tool has nothing to wait for.

Limits, and what enforces them:

* **fuel** (``Config.consume_fuel``): an instruction budget; running out traps.
  Deterministic: the CPU bound to rely on.
* **memory** (``Store.set_limits``): the most bytes a linear memory may hold.
  A module declaring more fails to instantiate; a ``memory.grow`` past it
  returns -1 to the guest (WASM semantics), which then usually traps or exits
  non-zero. The host cannot see the refused grow, so a failed run is put down
  to memory when its memory ended at 3/4 of the limit or more.
* **wall time and cancellation** (``Config.epoch_interruption``): while a guest
  runs, a ticker thread advances the engine's epoch every ``tick_seconds``, and
  each store's epoch-deadline callback lets its guest go on unless the call is
  past its deadline, cancelled, or over its output limit; then the guest traps
  at its next loop back-edge or function entry. The callback is per store, so
  stopping one guest leaves the others on the shared engine running.
  wasmtime-py does not wrap that callback (50.0), so ``_guard.install_epoch_guard``
  reaches it through ``wasmtime._ffi``; the tests pin the behaviour.
* **output**: stdout and stderr go to files (in-memory ``stdout_custom``
  callbacks run on wasmtime's tokio threads, which may call into a finalising
  interpreter at exit), whose sizes the same callback checks on every tick.

Calls run on the runtime's own worker threads; cancelling the awaiting task
stops the guest and waits for it to be gone (up to a grace of 2 s, for a guest
stuck in a host call), so nothing of the call runs on after the cancellation
propagates.

Compiling takes milliseconds, so a :class:`WasmRuntime` (one engine, one WASI
linker) compiles each module once, keyed by the SHA-256 of its bytes, and keeps
it pre-linked (``InstancePre``): a warm call costs a store, an instantiation
and the run. Failures raise :class:`ToolFailed`; ``details["limit"]`` names a
limit that was hit::

    limit    retryable  why
    fuel     no         deterministic
    memory   no         deterministic
    output   no         deterministic
    wall     yes        depends on the machine's load (fuel is the exact bound)
    (trap)   no         a bug in the guest: same input, same trap
    (exit)   yes        like any tool's non-zero exit, it may report a passing state

The parts, each readable on its own (each imports only parts above it, except
``_spec``, which loads ``_tool`` on its first ``build()``)::

    _spec      WasmToolConfig: a declared tool as a value (what nexus.toml holds);
               pure data: importing it loads no wasmtime
    _limits    WasmLimits, WasmOutput; judging a finished run (result or failure)
    _guard     the per-call guard the epoch callback consults (wall, output, cancel)
    _runtime   WasmRuntime: the engine, the WASI linker, the compile cache, the ticker
    _preopen   the workspace as the guest sees it (trusted paths never writable)
    _tool      WasmTool, load_wasm_tool: one call, from arguments to a judged outcome
    _config    wasm_tools tables -> registered, launch-pinned tools

The names are loaded on first use (PEP 562): ``nexus.config`` holds
:class:`WasmToolConfig` values without loading wasmtime; the first use of a name
that runs a guest (:class:`WasmTool`, :func:`parse_wasm_tools`...) loads it.
"""

import typing as _typing

from nexus.domain._lazy import on_first_use as _on_first_use
from nexus.tools.wasm._spec import WasmToolConfig

if _typing.TYPE_CHECKING:
    from nexus.tools.wasm._config import build_wasm_tool as build_wasm_tool
    from nexus.tools.wasm._config import guard_launch as guard_launch
    from nexus.tools.wasm._config import parse_wasm_tools as parse_wasm_tools
    from nexus.tools.wasm._config import register_wasm_tools as register_wasm_tools
    from nexus.tools.wasm._config import wasm_record as wasm_record
    from nexus.tools.wasm._limits import WasmLimits as WasmLimits
    from nexus.tools.wasm._limits import WasmOutput as WasmOutput
    from nexus.tools.wasm._preopen import WORKSPACE_GUEST_PATH as WORKSPACE_GUEST_PATH
    from nexus.tools.wasm._runtime import WasmRuntime as WasmRuntime
    from nexus.tools.wasm._tool import WasmTool as WasmTool
    from nexus.tools.wasm._tool import load_wasm_tool as load_wasm_tool

#: Where each name that needs wasmtime lives; :func:`__getattr__` imports it on first use.
_LAZY: dict[str, str] = {
    "WORKSPACE_GUEST_PATH": "nexus.tools.wasm._preopen",
    "WasmLimits": "nexus.tools.wasm._limits",
    "WasmOutput": "nexus.tools.wasm._limits",
    "WasmRuntime": "nexus.tools.wasm._runtime",
    "WasmTool": "nexus.tools.wasm._tool",
    "build_wasm_tool": "nexus.tools.wasm._config",
    "guard_launch": "nexus.tools.wasm._config",
    "load_wasm_tool": "nexus.tools.wasm._tool",
    "parse_wasm_tools": "nexus.tools.wasm._config",
    "register_wasm_tools": "nexus.tools.wasm._config",
    "wasm_record": "nexus.tools.wasm._config",
}


__getattr__, __dir__ = _on_first_use(__name__, _LAZY, globals())


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
