"""Denial and call counters: real refusals move ``nexus_tool_denials_total``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from nexus import metrics
from nexus.domain.errors import PolicyDenied, UserError
from nexus.metrics import count_denial, render_metrics, sample
from nexus.tools import sandbox
from nexus.tools.base import ToolContext, ToolRegistry, tool
from nexus.tools.builtins import FileRead, FileWrite, HttpTool, NoopTool, PythonTool, ShellTool
from nexus.tools.mcp import McpConnection, McpServerSpec, McpTool, approve_launch
from nexus.tools.pins import PinStore
from nexus.tools.profile import ExecProfile

T = TypeVar("T")
FIXTURES = Path(__file__).parent / "mcp_fixtures"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def denials(tool: str, reason: str) -> float:
    return sample("nexus_tool_denials_total", {"tool": tool, "reason": reason})


def calls(tool: str, outcome: str) -> float:
    return sample("nexus_tool_calls_total", {"tool": tool, "outcome": outcome})


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ToolContext("run", "task", 1, ws)


def test_a_forbidden_system_call_counts_a_seccomp_denial(ctx: ToolContext) -> None:
    import pyseccomp

    ptrace = pyseccomp.resolve_syscall(pyseccomp.system_arch(), "ptrace")
    code = (
        "import ctypes, sys\n"
        f"sys.exit(0 if ctypes.CDLL(None).syscall({ptrace}, 0, 0, 0, 0) == -1 else 1)\n"
    )
    before = denials("python", "seccomp")
    out = run(PythonTool()({"code": code}, ctx))
    assert out["denials"] == [{"reason": "seccomp", "detail": "ptrace"}]
    assert denials("python", "seccomp") == before + 1


def test_a_socket_without_network_counts_an_egress_denial(ctx: ToolContext) -> None:
    before = denials("shell", "egress")
    cmd = f"{sandbox.PYTHON} -c \"import socket; socket.create_connection(('10.1.1.1', 80))\""
    with pytest.raises(PolicyDenied, match="no network"):
        run(ShellTool()({"cmd": cmd}, ctx))
    assert denials("shell", "egress") == before + 1


def test_paths_outside_the_workspace_count_path_denials(ctx: ToolContext) -> None:
    before = denials("file.read", "path")
    with pytest.raises(PolicyDenied, match="outside the granted paths"):
        run(FileRead()({"path": "/etc/shadow"}, ctx))
    with pytest.raises(PolicyDenied):
        run(FileRead()({"path": "../../x"}, ctx))
    assert denials("file.read", "path") == before + 2


def test_an_oversized_write_counts_a_quota_denial(ctx: ToolContext) -> None:
    before = denials("file.write", "quota")
    small = FileWrite(profile=ExecProfile(max_file_mb=1))
    with pytest.raises(PolicyDenied, match="max_file_mb"):
        run(small({"path": "big.txt", "text": "x" * (2 << 20)}, ctx))
    assert denials("file.write", "quota") == before + 1
    assert not (ctx.workspace / "big.txt").exists()


def test_http_to_a_host_off_the_list_counts_an_egress_denial(ctx: ToolContext) -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("the request must not be sent")

    http = HttpTool(
        profile=ExecProfile(network=("api.example.com:443",)),
        transport=httpx.MockTransport(never),
    )
    before = denials("http", "egress")
    with pytest.raises(PolicyDenied, match="allow-list"):
        run(http({"url": "https://evil.example.net/"}, ctx))
    assert denials("http", "egress") == before + 1


def test_no_usable_sandbox_counts_sandbox_and_profile_denials(
    ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "BWRAP", "nexus-no-such-bwrap")
    before = denials("shell", "sandbox")
    with pytest.raises(sandbox.SandboxUnavailable, match="cannot run"):
        run(ShellTool()({"cmd": "true"}, ctx))
    assert denials("shell", "sandbox") == before + 1
    # the rlimits fallback cannot enforce an allow-list: refused by the profile
    weak = ShellTool(profile=ExecProfile(sandbox="rlimits", network=("pypi.org:443",)))
    before = denials("shell", "profile")
    with pytest.raises(PolicyDenied, match="allow-list needs the bwrap sandbox"):
        run(weak({"cmd": "true"}, ctx))
    assert denials("shell", "profile") == before + 1


def test_an_ungranted_mcp_tool_counts_without_connecting(ctx: ToolContext, tmp_path: Path) -> None:
    spec = McpServerSpec(name="echo", command=sys.executable, args=("-c", "pass"))
    conn = McpConnection(spec, PinStore(tmp_path / "pins.json"))
    before = denials("echo.echo", "mcp_not_granted")
    with pytest.raises(PolicyDenied, match="not allowed by the task's profile"):
        run(McpTool(conn, "echo")({"text": "hi"}, ctx))
    assert denials("echo.echo", "mcp_not_granted") == before + 1


@pytest.mark.slow
def test_an_unapproved_mcp_tool_counts(ctx: ToolContext, tmp_path: Path) -> None:
    spec = McpServerSpec(
        name="echo", command=sys.executable, args=(str(FIXTURES / "echo_server.py"),)
    )
    granted = ToolContext("run", "task", 1, ctx.workspace, grant={"mcp_tools": ["echo.*"]})

    pins = PinStore(tmp_path / "pins.json")
    approve_launch(spec, pins)

    async def main() -> None:
        async with McpConnection(spec, pins) as conn:
            await conn.wait_ready()
            with pytest.raises(PolicyDenied, match="is not approved"):
                await McpTool(conn, "echo")({"text": "hi"}, granted)

    before = denials("echo.echo", "mcp_unapproved")
    run(main())
    assert denials("echo.echo", "mcp_unapproved") == before + 1


def test_registry_calls_count_outcomes(ctx: ToolContext) -> None:
    @tool
    def double(n: int) -> int:
        return 2 * n

    registry = ToolRegistry([NoopTool(), double, FileRead()])
    ok, validation = calls("double", "ok"), calls("double", "validation")
    denied = calls("file.read", "policy_denied")
    assert run(registry.call("double", {"n": 2}, ctx)) == 4
    with pytest.raises(UserError, match="argument 'n'"):
        run(registry.call("double", {"n": "x"}, ctx))
    with pytest.raises(PolicyDenied):
        run(registry.call("file.read", {"path": "/etc/passwd"}, ctx))
    assert calls("double", "ok") == ok + 1
    assert calls("double", "validation") == validation + 1
    assert calls("file.read", "policy_denied") == denied + 1


def test_a_cancelled_call_counts_as_cancelled(ctx: ToolContext) -> None:
    async def slow(args: dict[str, Any], c: ToolContext) -> Any:
        await asyncio.sleep(10)

    class Slow:
        name, pure = "slow", False
        __call__ = staticmethod(slow)

    async def main() -> None:
        task = asyncio.create_task(ToolRegistry([Slow()]).call("slow", {}, ctx))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    before = calls("slow", "cancelled")
    run(main())
    assert calls("slow", "cancelled") == before + 1


def test_exposition_lists_both_series() -> None:
    count_denial("exposition-probe", "egress", 2)
    text = render_metrics().decode()
    assert "# TYPE nexus_tool_denials_total counter" in text
    assert "# TYPE nexus_tool_calls_total counter" in text
    assert 'nexus_tool_denials_total{reason="egress",tool="exposition-probe"} 2.0' in text
    assert metrics.CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_unknown_reasons_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown denial reason"):
        count_denial("x", "because")  # type: ignore[arg-type]
