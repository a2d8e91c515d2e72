"""The WASM tool: a WASI command module run once per call, on a :class:`WasmRuntime`.

What the guest sees and what limits it are described in :mod:`nexus.tools.wasm`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import wasmtime
from jsonschema.protocols import Validator

from nexus.domain.errors import NotFoundError, UserError
from nexus.security.trusted import trusted_paths
from nexus.tools.base import ToolContext
from nexus.tools.wasm._guard import Guard, install_epoch_guard
from nexus.tools.wasm._limits import MIB, Outcome, WasmLimits, WasmOutput, judge
from nexus.tools.wasm._preopen import WORKSPACE_GUEST_PATH, preopen_workspace
from nexus.tools.wasm._runtime import WasmRuntime

__all__ = ["WasmTool", "load_wasm_tool"]

_STOP_GRACE_SECONDS = 2.0  # how long a cancelled call waits for its guest to stop


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
    """A WASI command module as a tool (see :mod:`nexus.tools.wasm` for the guest's world).

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
                or the module is invalid (see :mod:`nexus.tools.wasm`).
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
        guard = Guard(self.limits.max_output_bytes)
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
        return judge(self.name, self.limits, outcome)

    def _run(self, stdin: bytes, ctx: ToolContext, guard: Guard) -> Outcome:
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
            preopen_workspace(wasi, ctx.workspace, ctx.trusted or trusted_paths())
            store = wasmtime.Store(runtime.engine)
            store.set_limits(memory_size=limits.memory_mb * MIB)
            store.set_fuel(limits.fuel)
            store.set_wasi(wasi)
            guard.output_fds = (stdio.fds[1], stdio.fds[2])
            exit_code: int | None = None
            error: str | None = None
            out_of_fuel = False
            instance: wasmtime.Instance | None = None
            with runtime._ticker.active(), install_epoch_guard(store, guard):
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
            return Outcome(
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


def _memory_bytes(instance: wasmtime.Instance | None, store: wasmtime.Store) -> int:
    if instance is None:
        return 0
    exports = instance.exports(store)
    sizes = [m.data_len(store) for m in exports.values() if isinstance(m, wasmtime.Memory)]
    return max(sizes, default=0)


def _retrieve(work: asyncio.Future[Any]) -> None:
    """Mark a finished run's exception as seen (its caller was cancelled and left)."""
    if not work.cancelled():
        work.exception()
