"""WASM tools: the wordcount example, every limit, the WASI sandbox, cancellation, the Tool port.

The hostile guests are small WAT modules written inline below; each does one
thing (loop, grow memory, open a path, print its environment...).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.domain.errors import NotFoundError, UserError
from nexus.tools.base import Tool, ToolContext, ToolFailed, ToolRegistry
from nexus.tools.wasm import (
    WORKSPACE_GUEST_PATH,
    WasmOutput,
    WasmRuntime,
    WasmTool,
    load_wasm_tool,
)

T = TypeVar("T")

WORDCOUNT = Path(__file__).resolve().parents[2] / "examples" / "tools" / "wordcount.wat"
LIMITS: dict[str, Any] = {
    "fuel": 50_000_000,
    "memory_mb": 4,
    "wall_seconds": 10.0,
    "max_output_bytes": 64 * 1024,
}
EPERM, ENOENT, ENOTCAPABLE = 63, 44, 76  # WASI preview 1 errno values


def _wasi(name: str, params: str, result: bool = True) -> str:
    ret = " (result i32)" if result else ""
    return f'(import "wasi_snapshot_preview1" "{name}" (func ${name} (param {params}){ret}))'


def _wat_bytes(data: bytes) -> str:
    return "".join(f"\\{b:02x}" for b in data)


LOOP = b'(module (func (export "_start") (loop $l (br $l))))'
TRAP = b'(module (memory (export "memory") 1) (func (export "_start") unreachable))'
EXIT_3 = f"""(module {_wasi("proc_exit", "i32", result=False)}
  (memory (export "memory") 1)
  (func (export "_start") (call $proc_exit (i32.const 3))))""".encode()
# Grows one page at a time until refused, then traps, as an allocator would.
MEMORY_BOMB = b"""(module (memory (export "memory") 1)
  (func (export "_start")
    (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable))"""
# Asks for 1 GiB at once: refused with memory far below the limit.
ONE_HUGE_GROW = b"""(module (memory (export "memory") 1)
  (func (export "_start")
    (if (i32.eq (memory.grow (i32.const 16384)) (i32.const -1)) (then unreachable))))"""
TOO_BIG_TO_START = b'(module (memory (export "memory") 1000) (func (export "_start")))'
ECHO = f"""(module {_wasi("fd_read", "i32 i32 i32 i32")} {_wasi("fd_write", "i32 i32 i32 i32")}
  (memory (export "memory") 2)
  (func (export "_start")
    (loop $more
      (i32.store (i32.const 0) (i32.const 1024))
      (i32.store (i32.const 4) (i32.const 60000))
      (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (if (i32.load (i32.const 8))
        (then
          (i32.store (i32.const 4) (i32.load (i32.const 8)))
          (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
          (br $more))))))""".encode()
SPAM = f"""(module {_wasi("fd_write", "i32 i32 i32 i32")}
  (memory (export "memory") 2)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 60000))
    (loop $forever
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (br $forever))))""".encode()
SLEEP_5_S = f"""(module {_wasi("poll_oneoff", "i32 i32 i32 i32")} {_wasi("proc_exit", "i32", False)}
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store8 (i32.const 8) (i32.const 0))              ;; a clock subscription
    (i32.store (i32.const 16) (i32.const 1))               ;; monotonic
    (i64.store (i32.const 24) (i64.const 5000000000))      ;; 5 s, relative
    (call $proc_exit
      (call $poll_oneoff (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))""".encode()
PREOPEN_NAME = f"""(module
  {_wasi("fd_prestat_get", "i32 i32")} {_wasi("fd_prestat_dir_name", "i32 i32 i32")}
  {_wasi("fd_write", "i32 i32 i32 i32")}
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $fd_prestat_get (i32.const 3) (i32.const 0)))
    (drop (call $fd_prestat_dir_name (i32.const 3) (i32.const 1024) (i32.load (i32.const 4))))
    (i32.store (i32.const 16) (i32.const 1024))
    (i32.store (i32.const 20) (i32.load (i32.const 4)))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))))""".encode()


def print_module(data: bytes, fd: int = 1) -> bytes:
    """A module writing ``data`` to ``fd``."""
    return f"""(module {_wasi("fd_write", "i32 i32 i32 i32")}
  (memory (export "memory") 1)
  (data (i32.const 1024) "{_wat_bytes(data)}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const {len(data)}))
    (drop (call $fd_write (i32.const {fd}) (i32.const 0) (i32.const 1) (i32.const 8)))))""".encode()


def strings_module(kind: str) -> bytes:
    """A module printing its ``args`` or ``environ`` strings, NUL-separated."""
    return f"""(module
  {_wasi(kind + "_sizes_get", "i32 i32")} {_wasi(kind + "_get", "i32 i32")}
  {_wasi("fd_write", "i32 i32 i32 i32")}
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call ${kind}_sizes_get (i32.const 0) (i32.const 4)))
    (drop (call ${kind}_get (i32.const 1024) (i32.const 8192)))
    (i32.store (i32.const 16) (i32.const 8192))
    (i32.store (i32.const 20) (i32.load (i32.const 4)))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))))""".encode()


def open_module(
    path: str, *, write: bytes = b"", create: bool = False, follow: bool = True, dirfd: int = 3
) -> bytes:
    """A module opening ``path`` under a preopened directory (fd 3: the workspace).

    It writes ``write`` into the file if given, else copies the file to stdout
    (asking only for read rights, as a libc does for ``O_RDONLY``); it exits
    with the errno of a failed ``path_open``.
    """
    raw = path.encode()
    oflags = 1 | 8 if create else 0  # O_CREAT | O_TRUNC
    rights = 0x1FFFFFFF if write else 0x26  # all, or FD_READ | FD_SEEK | FD_TELL
    return f"""(module
  {_wasi("path_open", "i32 i32 i32 i32 i32 i64 i64 i32 i32")}
  {_wasi("fd_read", "i32 i32 i32 i32")} {_wasi("fd_write", "i32 i32 i32 i32")}
  {_wasi("proc_exit", "i32", result=False)}
  (memory (export "memory") 1)
  (data (i32.const 1024) "{_wat_bytes(raw)}")
  (data (i32.const 4096) "{_wat_bytes(write)}")
  (func (export "_start") (local $errno i32) (local $fd i32)
    (local.set $errno
      (call $path_open (i32.const {dirfd}) (i32.const {int(follow)}) (i32.const 1024)
        (i32.const {len(raw)}) (i32.const {oflags}) (i64.const {rights})
        (i64.const {rights}) (i32.const 0) (i32.const 0)))
    (if (local.get $errno) (then (call $proc_exit (local.get $errno))))
    (local.set $fd (i32.load (i32.const 0)))
    (i32.store (i32.const 16) (i32.const 4096))
    (if (i32.const {len(write)})
      (then
        (i32.store (i32.const 20) (i32.const {len(write)}))
        (drop (call $fd_write (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 24))))
      (else
        (i32.store (i32.const 20) (i32.const 8192))
        (drop (call $fd_read (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 24)))
        (i32.store (i32.const 20) (i32.load (i32.const 24)))
        (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))))))
""".encode()


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def ctx_for(workspace: Path, env: dict[str, str] | None = None) -> ToolContext:
    return ToolContext("run-1", "task-1", 1, workspace, env=env or {})


def tool(module: bytes | Path, name: str = "guest", **limits: Any) -> WasmTool:
    return WasmTool(name, module, **{**LIMITS, **limits})


def failure(module: bytes, workspace: Path, **limits: Any) -> ToolFailed:
    with pytest.raises(ToolFailed) as info:
        run(tool(module, **limits)({}, ctx_for(workspace)))
    return info.value


def reference_counts(text: str) -> dict[str, int]:
    """What wordcount should say: wc's byte, word and line counts, plus code points."""
    data = text.encode("utf-8")
    return {
        "bytes": len(data),
        "chars": len(text),
        "words": len(data.split()),
        "lines": text.count("\n"),
    }


# -- the example tool -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "hello world\n",
        "  leading and trailing  \n\n",
        "tabs\tand\vvertical\fform\rfeeds",
        'quotes " and \\ backslashes / slashes',
        "héllo wörld 😀 \U0001f600x\n",
        "control \x00\x01\x1f chars",
        "line\u2028separator is not a newline",
        "x" * 200_000,  # more than the guest's 64 KiB read buffer
        "word " * 30_000 + "\n" * 1000,
    ],
)
def test_wordcount_counts_like_python(text: str, tmp_path: Path) -> None:
    wordcount = load_wasm_tool(WORDCOUNT, **LIMITS)
    out = run(wordcount({"text": text}, ctx_for(tmp_path)))
    assert out["exit_code"] == 0
    assert out["result"] == reference_counts(text)
    assert json.loads(out["stdout"]) == out["result"]
    assert out["fuel_used"] > 0


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text())
def test_wordcount_on_random_text(text: str, tmp_path: Path) -> None:
    wordcount = load_wasm_tool(WORDCOUNT, **LIMITS)
    assert run(wordcount({"text": text}, ctx_for(tmp_path)))["result"] == reference_counts(text)


def test_wordcount_rejects_other_arguments(tmp_path: Path) -> None:
    wordcount = load_wasm_tool(WORDCOUNT, **LIMITS)
    with pytest.raises(ToolFailed) as info:
        run(wordcount({"words": "no"}, ctx_for(tmp_path)))
    assert info.value.details["exit_code"] == 2
    assert "expected" in info.value.details["stderr_tail"]
    assert info.value.retryable  # a non-zero exit is an ordinary tool failure


def test_load_takes_name_and_description_from_the_file() -> None:
    wordcount = load_wasm_tool(WORDCOUNT, **LIMITS)
    assert wordcount.name == "wordcount"
    assert wordcount.description.startswith("wordcount: a WASI")
    assert wordcount.pure is False
    with pytest.raises(NotFoundError):
        load_wasm_tool(WORDCOUNT.with_name("missing.wat"), **LIMITS)


# -- the Tool port ----------------------------------------------------------------------


def test_called_through_the_registry_and_the_tool_protocol(tmp_path: Path) -> None:
    registry = ToolRegistry([load_wasm_tool(WORDCOUNT, **LIMITS, pure=True)])
    found: Tool = registry.get("wordcount")
    assert found.pure
    ctx = ToolContext(run_id="r1", task="count", attempt=2, workspace=tmp_path)
    out = run(found({"text": "one two three"}, ctx))
    assert out["result"] == {"bytes": 13, "chars": 13, "words": 3, "lines": 0}


def test_results_are_json(tmp_path: Path) -> None:
    args = {"n": 1, "nested": {"list": [1.5, None, True]}, "s": "é\n\u2028"}
    out = run(tool(ECHO)(args, ctx_for(tmp_path)))
    assert out["result"] == args  # stdin is the arguments as JSON
    assert out["stdout"].isascii()
    assert json.loads(json.dumps(out)) == out
    plain = run(tool(print_module(b"not json"))({}, ctx_for(tmp_path)))
    assert "result" not in plain
    assert plain["stdout"] == "not json"
    nan = run(tool(print_module(b"NaN"))({}, ctx_for(tmp_path)))
    assert "result" not in nan  # Python's json would take it; JSON does not


def test_arguments_that_are_not_json_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not JSON"):
        run(tool(ECHO)({"x": object()}, ctx_for(tmp_path)))
    with pytest.raises(UserError, match="not JSON"):
        run(tool(ECHO)({"x": float("nan")}, ctx_for(tmp_path)))


def test_stderr_is_captured(tmp_path: Path) -> None:
    out = run(tool(print_module(b"a warning\n", fd=2))({}, ctx_for(tmp_path)))
    assert out["stderr"] == "a warning\n"
    assert out["stdout"] == ""


def test_concurrent_calls(tmp_path: Path) -> None:
    wordcount = load_wasm_tool(WORDCOUNT, **LIMITS)

    async def go() -> list[WasmOutput]:
        texts = [f"{'w ' * i}\n" for i in range(16)]
        return list(
            await asyncio.gather(*(wordcount({"text": t}, ctx_for(tmp_path)) for t in texts))
        )

    assert [o["result"]["words"] for o in run(go())] == list(range(16))


# -- limits -----------------------------------------------------------------------------


def test_fuel_exhaustion_is_a_limit(tmp_path: Path) -> None:
    error = failure(LOOP, tmp_path, fuel=1_000_000)
    assert error.details["limit"] == "fuel"
    assert error.details["fuel_used"] == 1_000_000
    assert error.retryable is False


def test_growing_past_the_memory_limit_is_a_limit(tmp_path: Path) -> None:
    error = failure(MEMORY_BOMB, tmp_path, memory_mb=4)
    assert error.details["limit"] == "memory"
    assert error.details["memory_bytes"] == 4 << 20  # grew to the limit, not past it
    assert error.retryable is False


def test_declaring_more_memory_than_the_limit_is_a_limit(tmp_path: Path) -> None:
    error = failure(TOO_BIG_TO_START, tmp_path, memory_mb=4)
    assert error.details["limit"] == "memory"


def test_one_refused_huge_grow_is_reported_as_the_guests_trap(tmp_path: Path) -> None:
    # The host cannot see a refused memory.grow; far below the limit, the guest's own
    # reaction (here a trap) is what is reported. See the module docstring.
    error = failure(ONE_HUGE_GROW, tmp_path, memory_mb=4)
    assert "limit" not in error.details
    assert "unreachable" in error.message


@pytest.mark.timeout(20)  # the guest spams for ever: a limit that does not stop it hangs
def test_output_beyond_the_limit_stops_the_guest(tmp_path: Path) -> None:
    error = failure(SPAM, tmp_path, fuel=10**15, max_output_bytes=100_000)
    assert error.details["limit"] == "output"
    assert error.retryable is False


@pytest.mark.timeout(20)  # the guest loops for ever: a limit that does not stop it hangs
def test_wall_time_limit(tmp_path: Path) -> None:
    started = time.monotonic()
    error = failure(LOOP, tmp_path, fuel=10**15, wall_seconds=0.3)
    elapsed = time.monotonic() - started
    assert error.details["limit"] == "wall"
    assert error.retryable is True  # depends on load; fuel is the deterministic bound
    assert elapsed >= 0.3  # not before its time (a load only makes it later)


def test_sleeping_is_refused_not_waited_for(tmp_path: Path) -> None:
    error = failure(SLEEP_5_S, tmp_path)
    assert error.details["exit_code"] == 58  # ENOTSUP from poll_oneoff: not slept


def test_limits_must_be_positive() -> None:
    with pytest.raises(UserError, match="fuel"):
        tool(LOOP, fuel=0)


# -- traps, exits, bad modules ----------------------------------------------------------


def test_a_trap_fails_with_its_message(tmp_path: Path) -> None:
    error = failure(TRAP, tmp_path)
    assert "unreachable" in error.message
    assert "unreachable" in error.details["trap"]
    assert error.retryable is False


def test_a_non_zero_exit_fails_with_its_code(tmp_path: Path) -> None:
    error = failure(EXIT_3, tmp_path)
    assert error.details["exit_code"] == 3
    assert "status 3" in error.message


@pytest.mark.parametrize(
    ("module", "stage"),
    [
        (b"(module (func $oops", "compile"),
        (b"\0asm\x01\0\0\0garbage", "compile"),
        (b'(module (func (export "main")))', "compile"),  # no _start
        (b'(module (import "env" "f" (func)) (func (export "_start")))', "link"),
    ],
)
def test_invalid_modules_fail_without_retry(module: bytes, stage: str, tmp_path: Path) -> None:
    error = failure(module, tmp_path)
    assert error.details["stage"] == stage
    assert error.retryable is False


def test_prepare_compiles_ahead_and_reports_errors() -> None:
    runtime = WasmRuntime()
    run(tool(WORDCOUNT, runtime=runtime).prepare())
    assert runtime.cached_modules == 1
    with pytest.raises(ToolFailed):
        run(tool(b"(module", runtime=runtime).prepare())


def test_a_module_is_compiled_once_per_runtime(tmp_path: Path) -> None:
    runtime = WasmRuntime()
    first, second = tool(ECHO, runtime=runtime), tool(ECHO, "other", runtime=runtime)
    run(first({}, ctx_for(tmp_path)))
    run(second({}, ctx_for(tmp_path)))
    assert first.digest == second.digest
    assert runtime.cached_modules == 1


def test_stdio_files_are_removed_after_each_call(tmp_path: Path) -> None:
    stdio = tmp_path / "stdio"
    stdio.mkdir()
    runtime = WasmRuntime(stdio_dir=stdio)
    run(tool(ECHO, runtime=runtime)({"a": 1}, ctx_for(tmp_path)))
    failure(TRAP, tmp_path, runtime=runtime)
    assert list(stdio.iterdir()) == []


# -- the WASI sandbox -------------------------------------------------------------------


def test_the_workspace_is_preopened_as_documented(tmp_path: Path) -> None:
    out = run(tool(PREOPEN_NAME)({}, ctx_for(tmp_path)))
    assert out["stdout"] == WORKSPACE_GUEST_PATH == "/workspace"


def test_writing_into_the_workspace_is_allowed(tmp_path: Path) -> None:
    # /workspace/out is preopened read-write as fd 4 (a libc maps "/workspace/out/..."
    # onto it); fd 3, the workspace itself, is read-only
    module = open_module("result.txt", write=b"written by wasm", create=True, dirfd=4)
    (tmp_path / "out").mkdir()
    run(tool(module)({}, ctx_for(tmp_path)))
    assert (tmp_path / "out" / "result.txt").read_bytes() == b"written by wasm"
    error = failure(open_module("top.txt", write=b"x", create=True), tmp_path)
    assert error.details["exit_code"] in (EPERM, ENOTCAPABLE)
    assert not (tmp_path / "top.txt").exists()


def test_reading_from_the_workspace_is_allowed(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("input data")
    out = run(tool(open_module("in.txt"))({}, ctx_for(tmp_path)))
    assert out["stdout"] == "input data"


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "../outside.txt", "sub/../../outside.txt", "link-out", "/workspace/in.txt"],
)
def test_files_outside_the_workspace_are_denied(path: str, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "sub").mkdir()
    (workspace / "in.txt").write_text("inside")
    (tmp_path / "outside.txt").write_text("secret")
    (workspace / "link-out").symlink_to(tmp_path / "outside.txt")
    error = failure(open_module(path), workspace)
    # raw path_open is relative to the preopened fd: absolute paths are refused
    # (a libc would map "/workspace/..." onto fd 3 before calling it)
    assert error.details["exit_code"] in (EPERM, ENOTCAPABLE)
    assert "secret" not in json.dumps(error.to_data())


def test_writing_outside_the_workspace_is_denied(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    error = failure(open_module("../escaped.txt", write=b"x", create=True), workspace)
    assert error.details["exit_code"] in (EPERM, ENOTCAPABLE)
    assert not (tmp_path / "escaped.txt").exists()


def test_a_missing_workspace_fails_the_call(tmp_path: Path) -> None:
    error = failure(ECHO, tmp_path / "missing")
    assert "workspace" in error.message


def test_environment_is_only_what_the_context_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXUS_TEST_SECRET", "hunter2")
    env_tool = tool(strings_module("environ"))
    bare = run(env_tool({}, ctx_for(tmp_path)))
    assert bare["stdout"] == ""
    given_env = run(env_tool({}, ctx_for(tmp_path, {"LANG": "C", "ONLY": "this"})))
    assert given_env["stdout"].split("\0")[:-1] == ["LANG=C", "ONLY=this"]
    assert "hunter2" not in given_env["stdout"]


def test_argv_is_the_tool_name(tmp_path: Path) -> None:
    out = run(tool(strings_module("args"), name="my-tool")({"x": 1}, ctx_for(tmp_path)))
    assert out["stdout"] == "my-tool\0"


# -- cancellation -----------------------------------------------------------------------


@pytest.mark.timeout(20)  # a third of the guest's wall limit: a cancel it ignores hangs
def test_cancellation_stops_an_endless_loop_promptly(tmp_path: Path) -> None:
    runtime = WasmRuntime()
    endless = tool(LOOP, fuel=10**15, wall_seconds=60, runtime=runtime)

    async def go() -> None:
        call = asyncio.create_task(endless({}, ctx_for(tmp_path)))
        await asyncio.sleep(0.2)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    run(go())
    assert runtime._ticker._active == 0  # the guest is gone, not merely abandoned


@pytest.mark.timeout(20)  # a third of the guest's wall limit: a scope it ignores hangs
def test_a_timeout_scope_stops_the_guest(tmp_path: Path) -> None:
    endless = tool(LOOP, fuel=10**15, wall_seconds=60)

    async def go() -> None:
        async with asyncio.timeout(0.2):
            await endless({}, ctx_for(tmp_path))

    with pytest.raises(TimeoutError):
        run(go())


def test_cancelling_one_guest_leaves_the_others_running(tmp_path: Path) -> None:
    runtime = WasmRuntime()
    endless = tool(LOOP, fuel=10**15, wall_seconds=0.8, runtime=runtime)

    async def go() -> tuple[BaseException | None, float]:
        victim = asyncio.create_task(endless({}, ctx_for(tmp_path)))
        bystander = asyncio.create_task(endless({}, ctx_for(tmp_path)))
        await asyncio.sleep(0.1)
        victim.cancel()
        started = time.monotonic()
        results = await asyncio.gather(victim, bystander, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        return results[1] if isinstance(results[1], BaseException) else None, started

    error, started = run(go())
    assert isinstance(error, ToolFailed)
    assert error.details["limit"] == "wall"  # ran on to its own deadline
    assert time.monotonic() - started >= 0.6
