"""WASM tools: WASI command modules run on wasmtime under fuel, memory, time and output limits.

A :class:`WasmTool` runs a WebAssembly module's WASI ``_start`` once per call,
in a small, fixed world:

* **argv** is the tool's name; **stdin** is the call's arguments as compact
  JSON (ASCII only, so any Python string survives); **stdout** and **stderr**
  are captured; the **environment** holds exactly ``ToolContext.env``.
* **Files**: only the run's workspace, preopened read-write as ``/workspace``
  (fd 3). WASI's capability model refuses absolute paths, ``..`` and symlinks
  leading out of it. WASI preview 1 cannot open sockets: **no network**.
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
  wasmtime-py does not wrap that callback (50.0), so :func:`_install_epoch_guard`
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
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import itertools
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NotRequired, TypedDict

import jsonschema
import wasmtime
from jsonschema.protocols import Validator
from wasmtime import _ffi as wasmtime_ffi

from nexus.domain.errors import NotFoundError, UserError
from nexus.security.trusted import TrustedPaths, trusted_paths
from nexus.tools.base import ToolContext, ToolFailed

__all__ = [
    "WORKSPACE_GUEST_PATH",
    "WasmLimits",
    "WasmOutput",
    "WasmRuntime",
    "WasmTool",
    "load_wasm_tool",
]

#: Where the run's workspace appears inside the guest (preopened as fd 3).
WORKSPACE_GUEST_PATH = "/workspace"

_WASI = "wasi_snapshot_preview1"
_ERRNO_NOTSUP = 58
_MIB = 1 << 20
_TAIL = 2000  # characters of stdout/stderr kept in a failure's details
_STOP_GRACE_SECONDS = 2.0  # how long a cancelled call waits for its guest to stop


@dataclass(frozen=True, slots=True)
class WasmLimits:
    """What one call of a WASM tool may consume.

    Args:
        fuel: instructions (roughly; wasmtime's fuel units) the guest may run.
        memory_mb: the most MiB any one linear memory may hold.
        wall_seconds: wall-clock time from instantiation to exit.
        max_output_bytes: the most bytes stdout, and separately stderr, may hold.
    """

    fuel: int
    memory_mb: int
    wall_seconds: float
    max_output_bytes: int

    def __post_init__(self) -> None:
        for field_name in ("fuel", "memory_mb", "wall_seconds", "max_output_bytes"):
            if not getattr(self, field_name) > 0:
                raise UserError(f"WASM limit '{field_name}' must be positive")


class WasmOutput(TypedDict):
    """What a successful call returns (a JSON object, as every tool result)."""

    exit_code: int
    stdout: str
    stderr: str
    fuel_used: int
    #: stdout parsed, present only when stdout is one JSON document (``json.loads`` types it Any)
    result: NotRequired[Any]


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
            raise _failed(f"WASM module does not {stage}: {exc}", {"stage": stage}) from None
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


class _Guard:
    """One call's stop conditions, consulted by the epoch callback on every tick.

    ``reason`` is set once, by the first of: ``"cancelled"`` (from the event
    loop), ``"wall"`` or ``"output"`` (from the callback, in the guest's thread).
    """

    __slots__ = ("deadline", "max_output", "output_fds", "reason")

    def __init__(self, max_output: int) -> None:
        self.reason: str | None = None
        self.deadline = float("inf")
        self.max_output = max_output
        self.output_fds: tuple[int, ...] = ()

    def stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def should_stop(self) -> bool:
        if self.reason is None:
            if time.monotonic() >= self.deadline:
                self.stop("wall")
            elif any(os.fstat(fd).st_size > self.max_output for fd in self.output_fds):
                self.stop("output")
        return self.reason is not None


# The epoch-deadline callback: C signature from wasmtime's store.h. Guards are
# found by the integer handed to wasmtime as the callback's data pointer.
_GUARDS: dict[int, _Guard] = {}
_guard_ids = itertools.count(1)
_EpochCallback = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(wasmtime_ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ctypes.c_uint8),
)
_UPDATE_DEADLINE_CONTINUE = 0


def _on_epoch(_context: object, data: int | None, delta: Any, kind: Any) -> int:
    try:
        guard = _GUARDS.get(data or 0)
        if guard is None or guard.should_stop():
            error = wasmtime_ffi.wasmtime_error_new(b"nexus: guest stopped by its host")
            return ctypes.cast(error, ctypes.c_void_p).value or 0
        delta[0] = 1
        kind[0] = _UPDATE_DEADLINE_CONTINUE
        return 0
    except BaseException:  # an exception must not cross into C; stop the guest instead
        error = wasmtime_ffi.wasmtime_error_new(b"nexus: epoch callback failed")
        return ctypes.cast(error, ctypes.c_void_p).value or 0


_ON_EPOCH = _EpochCallback(_on_epoch)
# wasmtime calls this when the store is dropped; the guard is released earlier, by
# _install_epoch_guard, so there is nothing left to free.
_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _data: None)


@contextmanager
def _install_epoch_guard(store: wasmtime.Store, guard: _Guard) -> Iterator[None]:
    """Make ``store``'s guest consult ``guard`` on every epoch tick, from the next one on."""
    guard_id = next(_guard_ids)
    _GUARDS[guard_id] = guard
    try:
        wasmtime_ffi.wasmtime_store_epoch_deadline_callback(
            store.ptr(), _ON_EPOCH, guard_id, _NO_FINALIZER
        )
        store.set_epoch_deadline(1)
        yield
    finally:
        del _GUARDS[guard_id]


def _poll_oneoff_denied(_in: int, _out: int, _n: int, _nevents: int) -> int:
    return _ERRNO_NOTSUP


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What a finished (or stopped) run left behind, before it is judged."""

    exit_code: int | None  # None: it did not exit (trap, stop, failed instantiation)
    error: str | None  # the trap or instantiation error, if any
    out_of_fuel: bool
    instantiated: bool
    stop_reason: str | None
    stdout: bytes
    stderr: bytes
    fuel_used: int
    memory_bytes: int


class _Stdio:
    """Temporary files for the guest's stdin (filled), stdout and stderr (kept open to size)."""

    def __init__(self, stdin: bytes, directory: Path) -> None:
        self.paths: list[str] = []
        self.fds: list[int] = []
        try:
            for _ in range(3):
                fd, path = tempfile.mkstemp(prefix="nexus-wasm-", dir=directory)
                self.fds.append(fd)
                self.paths.append(path)
            os.write(self.fds[0], stdin)
        except BaseException:
            self.close()
            raise

    def read(self, index: int, limit: int) -> bytes:
        return os.pread(self.fds[index], limit + 1, 0)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        for path in self.paths:
            os.unlink(path)


class WasmTool:
    """A WASI command module as a tool (see the module docstring for the guest's world).

    Args:
        name: the tool's name; also the guest's ``argv[0]``.
        module: a path to a ``.wasm``/``.wat`` file, or the module's bytes
            (binary WASM, or WAT text). Read once, here.
        fuel: see :class:`WasmLimits`.
        memory_mb: see :class:`WasmLimits`.
        wall_seconds: see :class:`WasmLimits`.
        max_output_bytes: see :class:`WasmLimits`.
        description: shown to users and agents.
        pure: whether the module has no effect beyond its output (it writes
            nothing to the workspace).
        runtime: the runtime to compile and run on; :meth:`WasmRuntime.shared`
            if not given.
        input_schema: a JSON schema (an object schema) the arguments must
            match; checked before the guest runs, so a bad call never reaches
            it. None: any JSON object.

    Example:
        >>> tool = load_wasm_tool("examples/tools/wordcount.wat", fuel=10**7,
        ...     memory_mb=16, wall_seconds=5, max_output_bytes=65536)  # doctest: +SKIP
        >>> (await tool({"text": "two words"}, ctx))["result"]  # doctest: +SKIP
        {'bytes': 9, 'chars': 9, 'words': 2, 'lines': 0}
    """

    __slots__ = (
        "_runtime",
        "_source",
        "_validator",
        "approval",
        "description",
        "digest",
        "input_schema",
        "limits",
        "name",
        "pure",
    )

    #: Where the tool comes from, for ``nexus tools``.
    source: ClassVar[str] = "wasm"

    def __init__(
        self,
        name: str,
        module: Path | bytes,
        *,
        fuel: int,
        memory_mb: int,
        wall_seconds: float,
        max_output_bytes: int,
        description: str = "",
        pure: bool = False,
        runtime: WasmRuntime | None = None,
        input_schema: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(module, Path):
            path = module
            try:
                module = path.read_bytes()
            except FileNotFoundError:
                raise NotFoundError(f"WASM module not found: {path}") from None
        self.name = name
        self.description = description
        self.pure = pure
        self.limits = WasmLimits(fuel, memory_mb, wall_seconds, max_output_bytes)
        self._source = bytes(module)
        #: SHA-256 of the module's bytes: its identity in the cache and in records.
        self.digest = hashlib.sha256(self._source).hexdigest()
        self._runtime = runtime
        #: called before every call; raises ``PolicyDenied`` while the module's
        #: launch pin is not approved (set for modules taken from configuration)
        self.approval: Callable[[], None] | None = None
        self.input_schema: dict[str, Any] | None = None
        self._validator: Validator | None = None
        if input_schema is not None:
            self.input_schema = dict(input_schema)
            self._validator = _validator_for(name, self.input_schema)

    @property
    def permissions(self) -> dict[str, Any]:
        """What a call may do, for ``nexus tools``: the guest's world and its limits."""
        return {
            "sandbox": "wasm",
            "files": (
                f"the workspace only, as {WORKSPACE_GUEST_PATH}: read-only, its"
                " subdirectories read-write except those holding nexus.toml, .nexus"
                " or another trusted path"
            ),
            "network": "none",
            "env": "the call's ToolContext.env only",
            "fuel": self.limits.fuel,
            "memory_mb": self.limits.memory_mb,
            "wall_seconds": self.limits.wall_seconds,
            "max_output_bytes": self.limits.max_output_bytes,
        }

    @property
    def runtime(self) -> WasmRuntime:
        """The runtime this tool compiles and runs on."""
        return self._runtime or WasmRuntime.shared()

    async def prepare(self) -> None:
        """Compile the module now (in a thread), so errors surface and the first call is warm.

        Raises:
            ToolFailed: the module does not compile or link.
        """
        runtime = self.runtime
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(runtime._executor, runtime._compiled, self._source, self.digest)

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> WasmOutput:
        """Run the module once with ``args`` as its stdin.

        Returns:
            exit status (0), stdout, stderr, fuel used, and ``result``: stdout
            parsed, when stdout is one JSON document.

        Raises:
            UserError: ``args`` cannot be written as JSON.
            ToolFailed: a limit was hit, the guest trapped or exited non-zero,
                or the module is invalid (see the module docstring).
            asyncio.CancelledError: the call was cancelled; the guest is
                stopped before this propagates.
        """
        if self.approval is not None:
            self.approval()
        try:
            stdin = json.dumps(args, separators=(",", ":"), allow_nan=False).encode("ascii")
        except (TypeError, ValueError) as exc:
            raise UserError(f"tool '{self.name}': arguments are not JSON: {exc}") from None
        if self._validator is not None:
            _check_arguments(self.name, self._validator, args)
        guard = _Guard(self.limits.max_output_bytes)
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self.runtime._executor, self._run, stdin, ctx, guard)
        try:
            outcome = await asyncio.shield(work)
        except asyncio.CancelledError:
            guard.stop("cancelled")
            work.add_done_callback(_retrieve)
            # The guest traps at the next tick; only a host call that blocked could
            # delay that (none is known to, with sleep denied), so the wait is bounded.
            await asyncio.wait({work}, timeout=_STOP_GRACE_SECONDS)
            raise
        return _judge(self.name, self.limits, outcome)

    def _run(self, stdin: bytes, ctx: ToolContext, guard: _Guard) -> _Outcome:
        """Compile (cached), instantiate and run the guest; blocking, in a worker thread."""
        runtime = self.runtime
        compiled = runtime._compiled(self._source, self.digest)
        limits = self.limits
        stdio = _Stdio(stdin, runtime.stdio_dir)
        try:
            wasi = wasmtime.WasiConfig()
            wasi.argv = [self.name]
            wasi.env = sorted(ctx.env.items())
            wasi.stdin_file = stdio.paths[0]
            wasi.stdout_file = stdio.paths[1]
            wasi.stderr_file = stdio.paths[2]
            _preopen_workspace(wasi, ctx.workspace, ctx.trusted or trusted_paths())
            store = wasmtime.Store(runtime.engine)
            store.set_limits(memory_size=limits.memory_mb * _MIB)
            store.set_fuel(limits.fuel)
            store.set_wasi(wasi)
            guard.output_fds = (stdio.fds[1], stdio.fds[2])
            exit_code: int | None = None
            error: str | None = None
            out_of_fuel = False
            instance: wasmtime.Instance | None = None
            with runtime._ticker.active(), _install_epoch_guard(store, guard):
                guard.deadline = time.monotonic() + limits.wall_seconds
                try:
                    instance = compiled.pre.instantiate(store)
                    start = instance.exports(store)["_start"]
                    assert isinstance(start, wasmtime.Func)  # checked when compiled
                    start(store)
                    exit_code = 0
                except wasmtime.ExitTrap as exc:
                    exit_code = exc.code
                except wasmtime.Trap as exc:
                    error = exc.message
                    out_of_fuel = exc.trap_code == wasmtime.TrapCode.OUT_OF_FUEL
                except wasmtime.WasmtimeError as exc:
                    error = str(exc)
            return _Outcome(
                exit_code=exit_code,
                error=error,
                out_of_fuel=out_of_fuel,
                instantiated=instance is not None,
                stop_reason=guard.reason,
                stdout=stdio.read(1, limits.max_output_bytes),
                stderr=stdio.read(2, limits.max_output_bytes),
                fuel_used=limits.fuel - store.get_fuel(),
                memory_bytes=_memory_bytes(instance, store),
            )
        finally:
            stdio.close()


#: The most subdirectories of a workspace preopened read-write; the rest stay read-only.
MAX_WRITABLE_DIRS = 256
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _preopen_workspace(wasi: wasmtime.WasiConfig, workspace: Path, trusted: TrustedPaths) -> None:
    """Preopen ``workspace`` for a guest in layers, so no trusted path in it is writable.

    wasmtime's preopen is read-write or read-only as a whole, with no way to
    except a path, so the workspace itself is preopened **read-only** as
    ``/workspace`` (fd 3), and each top-level subdirectory that neither is nor
    holds a trusted path (``nexus.toml``, ``.nexus``, a state directory or
    virtual environment configured there) is preopened **read-write** over it,
    as ``/workspace/<name>``. A guest's libc maps a path to the preopen with
    the longest matching prefix, so ``/workspace/out/x`` is writable and
    ``/workspace/nexus.toml`` is not. What WASI refuses in each preopen then
    holds for trusted paths too: ``..`` and absolute paths, symlinks leading
    out (resolved within the preopen the lookup started from), and renames or
    hard links into another preopen, which need write rights on both. New
    top-level entries cannot be made at all. While the workspace holds Nexus's
    state directory (``.nexus``, ``$NEXUS_HOME``), the read-only top level is
    not preopened either: the guest sees only the other subdirectories.

    Each directory is opened here without following symlinks and handed to
    wasmtime by its ``/proc/self/fd`` link, so a top-level symlink is never
    preopened, and one swapped in after the listing is not followed.

    Raises:
        ToolFailed: the workspace cannot be opened as a directory.
    """
    root = Path(os.path.abspath(workspace))
    protected = trusted.within([root])
    try:
        root_fd = os.open(root, _DIR_FLAGS)
    except OSError as exc:
        raise _failed(f"workspace {workspace} cannot be opened: {exc.strerror}", {}) from None
    # Nexus's state (the log, the audit key) must not even be readable: while the
    # workspace holds it, its top level is not preopened at all, only the other
    # subdirectories
    hidden = [p for p in protected if trusted.hides(p) and os.path.lexists(p)]
    try:
        if not hidden:
            _preopen_fd(wasi, root_fd, WORKSPACE_GUEST_PATH, mutable=False, what=str(workspace))
        with os.scandir(root_fd) as entries:
            names = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
        writable = 0
        for name in names:
            path = root / name
            if any(p == path or path in p.parents for p in protected):
                continue
            guest_path = f"{WORKSPACE_GUEST_PATH}/{name}"
            try:
                guest_path.encode("utf-8")
                fd = os.open(name, _DIR_FLAGS, dir_fd=root_fd)
            except (UnicodeEncodeError, OSError):
                continue  # not UTF-8 (no WASI path can name it), or gone or swapped since listed
            try:
                _preopen_fd(wasi, fd, guest_path, mutable=True, what=str(path))
            finally:
                os.close(fd)
            writable += 1
            if writable == MAX_WRITABLE_DIRS:
                break
    finally:
        os.close(root_fd)


def _preopen_fd(
    wasi: wasmtime.WasiConfig, fd: int, guest_path: str, *, mutable: bool, what: str
) -> None:
    # wasmtime opens the directory now, through the fd's magic link: the very
    # directory opened above, whatever has been renamed or swapped since
    try:
        wasi.preopen_dir(f"/proc/self/fd/{fd}", guest_path, mutable)
    except wasmtime.WasmtimeError:
        raise _failed(f"workspace directory {what} cannot be opened", {}) from None


def load_wasm_tool(
    path: str | os.PathLike[str],
    *,
    fuel: int,
    memory_mb: int,
    wall_seconds: float,
    max_output_bytes: int,
    name: str | None = None,
    description: str | None = None,
    pure: bool = False,
    runtime: WasmRuntime | None = None,
    input_schema: Mapping[str, Any] | None = None,
) -> WasmTool:
    """A :class:`WasmTool` from a ``.wasm`` or ``.wat`` file.

    The name defaults to the file's stem; a ``.wat`` file's description to the
    first line of its leading ``;;`` comment.

    Raises:
        NotFoundError: there is no such file.
    """
    file = Path(path)
    tool = WasmTool(
        name or file.stem,
        file,
        fuel=fuel,
        memory_mb=memory_mb,
        wall_seconds=wall_seconds,
        max_output_bytes=max_output_bytes,
        pure=pure,
        runtime=runtime,
        input_schema=input_schema,
    )
    if description is None and file.suffix == ".wat":
        first = tool._source.split(b"\n", 1)[0].decode("utf-8", "replace")
        description = first.removeprefix(";;").strip() if first.startswith(";;") else ""
    tool.description = description or ""
    return tool


def _judge(name: str, limits: WasmLimits, outcome: _Outcome) -> WasmOutput:
    """The call's result, or the :class:`ToolFailed` its outcome amounts to."""
    stdout = outcome.stdout.decode("utf-8", "replace")
    stderr = outcome.stderr.decode("utf-8", "replace")
    details: dict[str, Any] = {"stderr_tail": stderr[-_TAIL:]}
    if outcome.exit_code is not None or outcome.out_of_fuel:
        # exact only then: after a trap or a stop, wasmtime's count can lag behind
        details["fuel_used"] = outcome.fuel_used
    if outcome.exit_code is not None:
        details["exit_code"] = outcome.exit_code
    if outcome.error is not None:
        details["trap"] = outcome.error

    def limit_hit(limit: str, message: str, *, retryable: bool = False) -> ToolFailed:
        return _failed(f"wasm tool '{name}' {message}", {"limit": limit, **details}, retryable)

    over_output = max(len(outcome.stdout), len(outcome.stderr)) > limits.max_output_bytes
    if outcome.stop_reason == "output" or over_output:
        raise limit_hit("output", f"wrote more than {limits.max_output_bytes} bytes")
    if outcome.stop_reason == "wall":
        raise limit_hit("wall", f"ran past {limits.wall_seconds} s", retryable=True)
    if outcome.out_of_fuel:
        raise limit_hit("fuel", f"ran out of fuel ({limits.fuel})")
    limit_bytes = limits.memory_mb * _MIB
    if not outcome.instantiated and "exceeds memory limits" in (outcome.error or ""):
        raise limit_hit("memory", f"needs more than {limits.memory_mb} MiB of memory")
    failed = outcome.error is not None or outcome.exit_code != 0
    if failed and outcome.memory_bytes * 4 >= limit_bytes * 3:
        details["memory_bytes"] = outcome.memory_bytes
        raise limit_hit("memory", f"failed at its memory limit ({limits.memory_mb} MiB)")
    if outcome.error is not None:
        raise _failed(f"wasm tool '{name}' trapped: {_last_line(outcome.error)}", details)
    if outcome.exit_code != 0:
        details["stdout_tail"] = stdout[-_TAIL:]
        raise _failed(
            f"wasm tool '{name}' exited with status {outcome.exit_code}", details, retryable=True
        )
    result = WasmOutput(exit_code=0, stdout=stdout, stderr=stderr, fuel_used=outcome.fuel_used)
    parsed = _parse_json(stdout)
    if parsed is not _NOT_JSON:
        result["result"] = parsed
    return result


def _validator_for(name: str, schema: dict[str, Any]) -> Validator:
    """A validator for a tool's argument schema (checked once, here).

    Raises:
        UserError: the schema is not a valid JSON schema.
    """
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        at = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise UserError(
            f"tool '{name}': input_schema is not a valid JSON schema at {at}: {exc.message}"
        ) from None
    validator: Validator = cls(schema)
    return validator


def _check_arguments(name: str, validator: Validator, args: dict[str, Any]) -> None:
    error = jsonschema.exceptions.best_match(validator.iter_errors(args))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "arguments"
        raise UserError(f"tool '{name}': argument '{where}': {error.message}")


_NOT_JSON = object()


def _parse_json(text: str) -> object:
    if not text.strip():
        return _NOT_JSON
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _failed(message: str, details: dict[str, Any], retryable: bool = False) -> ToolFailed:
    error = ToolFailed(message, details=details)
    error.retryable = retryable
    return error


def _memory_bytes(instance: wasmtime.Instance | None, store: wasmtime.Store) -> int:
    if instance is None:
        return 0
    exports = instance.exports(store)
    sizes = [m.data_len(store) for m in exports.values() if isinstance(m, wasmtime.Memory)]
    return max(sizes, default=0)


def _last_line(message: str) -> str:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[-1] if lines else message


def _retrieve(work: asyncio.Future[Any]) -> None:
    """Mark a finished run's exception as seen (its caller was cancelled and left)."""
    if not work.cancelled():
        work.exception()
