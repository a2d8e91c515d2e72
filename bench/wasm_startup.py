"""WASM tool start-up: cold start (compile + instantiate + run) and warm call (cached module).

Every figure is one ``await tool(args, ctx)`` of the ``wordcount`` example
(``examples/tools/wordcount.wat``) on a 44-byte text, timed end to end from the
event loop: argument encoding, the hop to a worker thread, temporary stdio
files, store and WASI set-up, instantiation, the run, reading the output back,
parsing the JSON result.

* **cold, new module**: the first call of a module this runtime has not seen.
  Each sample uses different module bytes (the WAT text plus a unique comment),
  so it includes WAT parsing, Cranelift compilation and pre-linking.
* **cold, new module from .wasm**: the same from binary WASM, converted
  beforehand (no WAT parsing) and made unique by a custom section: what a
  shipped ``.wasm`` tool costs.
* **cold, new runtime**: a new :class:`WasmRuntime` (engine + linker) as well,
  which a process pays once.
* **first call after prepare()**: compilation done ahead by ``prepare()``; the
  call instantiates and runs (the "instantiate-only" cold start).
* **warm call**: the same tool called again and again.
* **new process**: ``import wasmtime``, the rest of ``import nexus.tools.wasm``
  (the whole ``nexus`` package), then the first call, in a fresh interpreter
  (``python -c``), each timed inside it: what a one-shot CLI run pays.
* **thread hop**: ``await asyncio.to_thread(noop)``, the floor every call stands on.

Usage: ``python bench/wasm_startup.py [--quick] [--runs N] [--json PATH]``
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path

import wasmtime

from _common import ROOT, Metric, parser, percentile, repeat, report, runs_for
from nexus.tools.base import ToolContext
from nexus.tools.wasm import WasmRuntime, WasmTool

FLOOR_COLD_MS = 50.0
FLOOR_WARM_MS = 5.0
WAT = (ROOT / "examples" / "tools" / "wordcount.wat").read_bytes()
ARGS = {"text": "the quick brown fox\njumps over the lazy dog\n"}
EXPECTED = {"bytes": 44, "chars": 44, "words": 9, "lines": 2}


def make_tool(source: bytes, runtime: WasmRuntime) -> WasmTool:
    return WasmTool(
        "wordcount",
        source,
        fuel=10_000_000,
        memory_mb=16,
        wall_seconds=5.0,
        max_output_bytes=65536,
        runtime=runtime,
    )


def unique_wat(tag: str) -> bytes:
    """The wordcount module with a comment that makes its bytes (and cache key) new."""
    return WAT + f"\n;; {tag}\n".encode()


def with_custom_section(wat: bytes, tag: str) -> bytes:
    """The module as binary WASM, made unique by a custom section (comments do not survive)."""
    wasm = bytes(wasmtime.wat2wasm(wat))
    name = b"nexus-bench"
    payload = bytes([len(name)]) + name + tag.encode()
    assert len(payload) < 128  # one-byte LEB128 size
    return wasm + bytes([0, len(payload)]) + payload


async def time_calls(calls: list[Callable[[], Awaitable[object]]]) -> list[float]:
    """Milliseconds each call took, in order."""
    took = []
    for call in calls:
        started = time.perf_counter()
        await call()
        took.append((time.perf_counter() - started) * 1000)
    return took


async def one_repetition(cold_n: int, warm_n: int, workspace: Path) -> dict[str, list[float]]:
    """Milliseconds per call for each scenario, sorted."""
    ctx = ToolContext("bench", "wordcount", 1, workspace)
    salt = time.time_ns()
    runtime = WasmRuntime()

    def call(tool: WasmTool) -> Callable[[], Awaitable[object]]:
        return lambda: tool(ARGS, ctx)

    def call_on_new_runtime(source: bytes) -> Callable[[], Awaitable[object]]:
        return lambda: make_tool(source, WasmRuntime())(ARGS, ctx)

    def sources(scenario: int) -> list[bytes]:
        return [unique_wat(f"{salt} {scenario} {i}") for i in range(cold_n)]

    warm = make_tool(WAT, runtime)
    out = await warm(ARGS, ctx)  # also warms imports, the ticker thread, temp files
    if out["result"] != EXPECTED:
        raise RuntimeError(f"wordcount said {out['result']}")
    prepared = [make_tool(s, runtime) for s in sources(3)]
    for tool in prepared:
        await tool.prepare()
    binaries = [with_custom_section(WAT, f"{salt} 1 {i}") for i in range(cold_n)]
    scenarios: dict[str, list[Callable[[], Awaitable[object]]]] = {
        "cold, new module": [call(make_tool(s, runtime)) for s in sources(0)],
        "cold, new module from .wasm": [call(make_tool(b, runtime)) for b in binaries],
        "cold, new runtime": [call_on_new_runtime(s) for s in sources(2)],
        "first call after prepare()": [call(t) for t in prepared],
        "warm call": [call(warm)] * warm_n,
        "thread hop (asyncio.to_thread)": [lambda: asyncio.to_thread(_noop)] * warm_n,
    }
    return {name: sorted(await time_calls(calls)) for name, calls in scenarios.items()}


def _noop() -> None:
    return None


NEW_PROCESS = """
import asyncio, json, sys, time
started = time.perf_counter()
import wasmtime
wasmtime_imported = time.perf_counter()
from nexus.tools.base import ToolContext
from nexus.tools.wasm import load_wasm_tool
imported = time.perf_counter()
tool = load_wasm_tool(sys.argv[1], fuel=10**7, memory_mb=16, wall_seconds=5, max_output_bytes=65536)
out = asyncio.run(tool({"text": "a b"}, ToolContext("bench", "t", 1, sys.argv[2])))
assert out["result"]["words"] == 2
done = time.perf_counter()
print(json.dumps({
    "import wasmtime": (wasmtime_imported - started) * 1000,
    "import nexus (the rest)": (imported - wasmtime_imported) * 1000,
    "first call": (done - imported) * 1000,
}))
"""


def new_processes(n: int, workspace: Path) -> dict[str, list[float]]:
    """Milliseconds for the import and the first call, in ``n`` fresh interpreters."""
    wat = ROOT / "examples" / "tools" / "wordcount.wat"
    samples: dict[str, list[float]] = {}
    for _ in range(n):
        done = subprocess.run(
            [sys.executable, "-c", NEW_PROCESS, str(wat), str(workspace)],
            capture_output=True,
            check=True,
            text=True,
        )
        for key, value in json.loads(done.stdout).items():
            samples.setdefault(key, []).append(value)
    return {f"new process: {key}": sorted(values) for key, values in samples.items()}


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    cold_n, warm_n, process_n = (10, 50, 2) if args.quick else (30, 200, 5)
    runs = runs_for(args, 3)
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        reps = repeat(
            runs,
            lambda: {
                **asyncio.run(one_repetition(cold_n, warm_n, Path(tmp))),
                **new_processes(process_n, Path(tmp)),
            },
        )
    floors = {"cold, new module": FLOOR_COLD_MS, "warm call": FLOOR_WARM_MS}
    metrics: list[Metric] = []
    for name in reps[0]:
        for q in (50, 95):
            metrics.append(
                Metric(
                    f"{name} p{q}",
                    "ms",
                    [percentile(r[name], q) for r in reps],
                    higher_is_better=False,
                    floor=floors.get(name) if q == 95 else None,
                )
            )
    info = {
        "calls per repetition": f"{cold_n} per cold scenario, {warm_n} warm, "
        f"{process_n} new processes",
        "wasmtime": version("wasmtime"),
        "module": f"wordcount.wat, {len(WAT)} bytes of WAT, "
        f"{len(wasmtime.wat2wasm(WAT))} bytes of WASM",
    }
    report("wasm_startup", metrics, args, started, info)


if __name__ == "__main__":
    main()
