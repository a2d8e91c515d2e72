"""The engine a WASM tool runs on: one wasmtime engine, its WASI linker, its compile cache.

Compiling takes milliseconds, so a :class:`WasmRuntime` compiles each module
once, keyed by the SHA-256 of its bytes, and keeps it pre-linked
(``InstancePre``): a warm call costs a store, an instantiation and the run.
Guests run on the runtime's own worker threads, and its ticker advances the
engine's epoch while any runs (see :mod:`nexus.tools.wasm._guard`).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import wasmtime

from nexus.tools.wasm._limits import failed

__all__ = ["WasmRuntime"]

_WASI = "wasi_snapshot_preview1"
_ERRNO_NOTSUP = 58


@dataclass(frozen=True, slots=True)
class _Compiled:
    module: wasmtime.Module
    pre: wasmtime.InstancePre


class WasmRuntime:
    """One wasmtime engine with fuel and epochs on, its WASI linker and its compile cache.

    Tools share :meth:`shared` unless given their own (a benchmark measuring
    cold starts, a test wanting an empty cache). The cache holds every distinct
    module compiled, for the life of the runtime; tools are few, so it is not
    bounded.

    Args:
        tick_seconds: how often the epoch advances while a guest runs: the
            granularity of wall-time limits and the latency of a cancellation.
        max_concurrent_calls: guests running at once; more calls queue. They
            run on this runtime's own threads, so long guests never starve
            the event loop's default executor (DNS lookups, other tools).
        stdio_dir: where the guests' stdin/stdout/stderr files are made. By
            default ``/dev/shm`` (Linux's tmpfs) when it is writable with at
            least 1 GiB free: creating and dropping three files there costs
            ~0.05 ms, against ~0.4 ms on an ext4 ``/tmp``. Else the system
            temp directory.
    """

    _shared: ClassVar[WasmRuntime | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        *,
        tick_seconds: float = 0.01,
        max_concurrent_calls: int = 8,
        stdio_dir: Path | None = None,
    ) -> None:
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        self.tick_seconds = tick_seconds
        self.stdio_dir = stdio_dir or _default_stdio_dir()
        self._executor = ThreadPoolExecutor(max_concurrent_calls, thread_name_prefix="nexus-wasm")
        self._linker = wasmtime.Linker(self.engine)
        self._linker.define_wasi()
        self._linker.allow_shadowing = True
        self._linker.define_func(
            _WASI,
            "poll_oneoff",
            wasmtime.FuncType([wasmtime.ValType.i32()] * 4, [wasmtime.ValType.i32()]),
            _poll_oneoff_denied,
        )
        self._modules: dict[str, _Compiled] = {}
        self._compile_lock = threading.Lock()
        self._ticker = _Ticker(self.engine, tick_seconds)

    @classmethod
    def shared(cls) -> WasmRuntime:
        """The process-wide runtime, created on first use."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    @property
    def cached_modules(self) -> int:
        """How many compiled modules the cache holds."""
        return len(self._modules)

    def _compiled(self, source: bytes, digest: str) -> _Compiled:
        """The compiled, pre-linked module for ``source`` (WASM or WAT), from the cache if there.

        Blocking (compilation takes milliseconds): called from a worker thread.
        Compiles are serialised by one lock; they happen once per module.

        Raises:
            ToolFailed: the module does not parse, compile or link, or is not a
                WASI command (no ``_start``); not retryable.
        """
        compiled = self._modules.get(digest)
        if compiled is not None:
            return compiled
        with self._compile_lock:
            compiled = self._modules.get(digest)
            if compiled is None:
                compiled = self._modules[digest] = self._compile(source)
        return compiled

    def _compile(self, source: bytes) -> _Compiled:
        stage = "compile"
        try:
            wasm = source if source.startswith(b"\0asm") else bytes(wasmtime.wat2wasm(source))
            module = wasmtime.Module(self.engine, wasm)
            if not any(
                e.name == "_start" and isinstance(e.type, wasmtime.FuncType) for e in module.exports
            ):
                raise wasmtime.WasmtimeError("no exported '_start' function (not a WASI command)")
            stage = "link"
            pre = self._linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as exc:
            raise failed(f"WASM module does not {stage}: {exc}", {"stage": stage}) from None
        return _Compiled(module, pre)


def _default_stdio_dir() -> Path:
    shm = Path("/dev/shm")
    try:
        stat = os.statvfs(shm)
    except OSError:
        return Path(tempfile.gettempdir())
    if os.access(shm, os.W_OK | os.X_OK) and stat.f_bavail * stat.f_frsize >= 1 << 30:
        return shm
    return Path(tempfile.gettempdir())


class _Ticker:
    """Advances the engine's epoch every ``interval`` while at least one guest runs.

    The thread waits on a condition when idle and exits after a second of
    idleness, so an unused runtime holds no thread.
    """

    _IDLE_EXIT_SECONDS = 1.0

    def __init__(self, engine: wasmtime.Engine, interval: float) -> None:
        self._engine = engine
        self._interval = interval
        self._cond = threading.Condition()
        self._active = 0
        self._thread: threading.Thread | None = None

    @contextmanager
    def active(self) -> Iterator[None]:
        with self._cond:
            self._active += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="nexus-wasm-epoch", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._active == 0 and not self._cond.wait_for(
                    lambda: self._active > 0, timeout=self._IDLE_EXIT_SECONDS
                ):
                    self._thread = None
                    return
            time.sleep(self._interval)
            self._engine.increment_epoch()


def _poll_oneoff_denied(_in: int, _out: int, _n: int, _nevents: int) -> int:
    return _ERRNO_NOTSUP
