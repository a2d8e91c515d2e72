"""Built-in tools: ``shell`` and ``noop``.

``shell`` runs in its own session (process group) with the run's workspace as
working directory; a timeout or cancel kills the whole group. Real sandboxing
(namespaces, seccomp, rlimits) arrives behind the same port in ``tools``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from typing import Any

from nexus.domain.errors import NexusError
from nexus.tools.base import ToolContext, ToolFailed, ToolRegistry

#: Output beyond this many bytes per stream is cut, and the result says so.
MAX_OUTPUT = 1 << 20
_TAIL = 2000


def _decode(raw: bytes) -> tuple[str, bool]:
    cut = len(raw) > MAX_OUTPUT
    return raw[:MAX_OUTPUT].decode("utf-8", errors="replace"), cut


async def _read_capped(stream: asyncio.StreamReader | None) -> bytes:
    if stream is None:
        return b""
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(65536):
        if size <= MAX_OUTPUT:
            chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class ShellTool:
    """``shell``: ``{cmd}`` -> ``{exit_code, stdout, stderr}``; non-zero exit fails."""

    name: str = "shell"
    pure: bool = False

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        cmd = args.get("cmd")
        if not isinstance(cmd, str) or not cmd.strip():
            raise NexusError("tool 'shell': 'with.cmd' must be a non-empty string", retryable=False)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(ctx.workspace)}
        env.update(ctx.env)
        env.update({"NEXUS_RUN_ID": ctx.run_id, "NEXUS_TASK": ctx.task})
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                cmd,
                cwd=ctx.workspace,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise ToolFailed(f"tool 'shell': cannot start /bin/sh: {exc}") from exc
        try:
            out, err = await asyncio.gather(_read_capped(proc.stdout), _read_capped(proc.stderr))
            code = await proc.wait()
        except BaseException:
            _kill_group(proc.pid)
            with contextlib.suppress(Exception):
                await asyncio.shield(proc.wait())
            raise
        _kill_group(proc.pid)  # leftovers the command backgrounded
        stdout, out_cut = _decode(out)
        stderr, err_cut = _decode(err)
        result: dict[str, Any] = {"exit_code": code, "stdout": stdout, "stderr": stderr}
        if out_cut or err_cut:
            result["truncated"] = True
        if code != 0:
            raise ToolFailed(
                f"command exited with {code}",
                details={"exit_code": code, "stdout": stdout[-_TAIL:], "stderr": stderr[-_TAIL:]},
            )
        return result


@dataclass(frozen=True, slots=True)
class NoopTool:
    """``noop``: returns its arguments. For tests and benchmarks."""

    name: str = "noop"
    pure: bool = True

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        return args


def builtin_tools() -> ToolRegistry:
    """A registry holding the built-in tools."""
    return ToolRegistry([ShellTool(), NoopTool()])
