"""MCP call overhead: an MCP tool call over stdio vs calling the same Python function.

The same trivial function, ``echo(text) -> text``, is called four ways, one
call at a time after 20 unmeasured warm-up calls; each call is timed on its
own (``time.perf_counter`` around the ``await``):

1. ``direct``: ``await echo(text)``, the function itself;
2. ``FunctionTool``: through Nexus's function-tool wrapper (what a built-in costs);
3. ``SDK``: ``ClientSession.call_tool`` over stdio to a server that serves
   ``echo`` with the SDK's ``MCPServer`` (this script, run with ``--serve``):
   the protocol, the pipes, both sides' validation;
4. ``McpTool``: Nexus's MCP tool, on the *same* session as 3: adds the pin
   re-check (one ``stat`` of the pin file), the circuit breaker, the deadline
   scope and the conversion of the result to plain JSON.

3 and 4 alternate call by call (which goes first alternates too), so both see
the same server process and the same machine noise; the per-pair difference
(4 minus 3) is the Nexus layer's own cost. The server is started once per
repetition, outside the timed region; that start-up (spawn, ``initialize``,
``tools/list``) is reported on its own.

Usage: ``python bench/mcp_overhead.py [--quick] [--runs N] [--calls N] [--json PATH]``
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from _common import Metric, parser, percentile, report, runs_for
from nexus.tools.base import FunctionTool, ToolContext
from nexus.tools.mcp import McpConnection, McpServerSpec, McpTool
from nexus.tools.pins import PinStore

QUANTILES = (50, 95)
SERVER = [sys.executable, str(Path(__file__).resolve()), "--serve"]


async def echo(text: str) -> str:
    """The function under test."""
    return text


def serve() -> None:
    """Run ``echo`` as an MCP server over stdio."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bench", log_level="WARNING")
    server.tool()(echo)
    server.run("stdio")


async def timed(n: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    for _ in range(20):  # warm-up
        await call()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        out.append((time.perf_counter() - start) * 1e6)
    return sorted(out)


async def direct(n: int) -> list[float]:
    return await timed(n, lambda: echo("hello"))


async def function_tool(n: int) -> list[float]:
    tool = FunctionTool(name="echo", fn=echo)
    ctx = ToolContext(run_id="r", task="t", attempt=1, workspace=Path("."))
    return await timed(n, lambda: tool({"text": "hello"}, ctx))


async def over_mcp(n: int) -> tuple[list[float], list[float], list[float], float]:
    """SDK and McpTool call times (sorted), their paired differences, and start-up (ms)."""
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        pins = PinStore(Path(tmp) / "mcp-pins.json")
        spec = McpServerSpec(name="bench", command=SERVER[0], args=tuple(SERVER[1:]))
        start = time.perf_counter()
        async with McpConnection(spec, pins) as conn:
            await conn.wait_ready()
            startup = (time.perf_counter() - start) * 1000
            conn.approve("echo")
            tool = McpTool(conn, "echo")
            ctx = ToolContext(run_id="r", task="t", attempt=1, workspace=Path(tmp))
            live = conn._link.session  # the live SDK session, for the paired baseline
            assert live is not None
            session = live[1]

            async def sdk() -> float:
                t0 = time.perf_counter()
                await session.call_tool("echo", {"text": "hello"})
                return (time.perf_counter() - t0) * 1e6

            async def nexus() -> float:
                t0 = time.perf_counter()
                result = await tool({"text": "hello"}, ctx)
                took = (time.perf_counter() - t0) * 1e6
                assert result["structured"] == {"result": "hello"}, result
                return took

            for _ in range(20):  # warm-up
                await sdk()
                await nexus()
            sdk_us, nexus_us, diff_us = [], [], []
            for i in range(n):
                if i % 2:
                    a, b = await sdk(), await nexus()
                else:
                    b, a = await nexus(), await sdk()
                sdk_us.append(a)
                nexus_us.append(b)
                diff_us.append(b - a)
            return sorted(sdk_us), sorted(nexus_us), sorted(diff_us), startup


def quantiles(label: str, runs: list[list[float]], note: str = "") -> list[Metric]:
    return [
        Metric(
            f"{label} p{q}",
            "us",
            [percentile(r, q) for r in runs],
            higher_is_better=False,
            note=note if q == QUANTILES[0] else "",
        )
        for q in QUANTILES
    ]


def main() -> None:
    if "--serve" in sys.argv:
        serve()
        return
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--serve", action="store_true", help="run the echo MCP server (internal)")
    p.add_argument("--calls", type=int, default=None, help="calls per repetition (default 200)")
    args = p.parse_args()
    started = time.perf_counter()
    n = args.calls or (50 if args.quick else 200)
    runs = runs_for(args, 3)
    results: dict[str, list[list[float]]] = {
        "direct": [],
        "function": [],
        "sdk": [],
        "nexus": [],
        "diff": [],
    }
    startups: list[float] = []
    for _ in range(runs):
        results["direct"].append(asyncio.run(direct(n)))
        results["function"].append(asyncio.run(function_tool(n)))
        sdk, nexus, diff, startup = asyncio.run(over_mcp(n))
        results["sdk"].append(sdk)
        results["nexus"].append(nexus)
        results["diff"].append(diff)
        startups.append(startup)
    metrics = [
        *quantiles("direct await echo()", results["direct"]),
        *quantiles("FunctionTool", results["function"]),
        *quantiles("SDK ClientSession.call_tool, stdio", results["sdk"]),
        *quantiles("McpTool (Nexus), stdio", results["nexus"]),
        *quantiles("  Nexus layer (paired McpTool - SDK)", results["diff"]),
        Metric("McpConnection start-up (spawn+init+list)", "ms", startups, False),
    ]
    p50 = {k: sorted(percentile(r, 50) for r in v)[len(v) // 2] for k, v in results.items()}
    info = {
        "calls per repetition": n,
        "McpTool p50 / direct p50": f"{p50['nexus'] / p50['direct']:,.0f}x",
    }
    report("mcp_overhead", metrics, args, started, info)


if __name__ == "__main__":
    main()
