"""The built-in tools that run code: ``shell`` and ``python``.

Both run their command through
:func:`~nexus.tools.sandbox.run_sandboxed` under the tool's
:class:`~nexus.tools.profile.ExecProfile` (narrowed by the agent's or task's
grant in ``ToolContext.profile``), with the run's workspace as the writable
working directory. Outcomes map onto the error taxonomy:

* exit 0 within the output cap -> the result, with ``limits_hit``, ``denials`` and
  ``sandbox``/``warnings`` added when they say something (the ``rlimits``
  fallback is flagged in every result);
* output past the cap (the sandbox kills the command, which may have exited
  already) -> :class:`~nexus.tools.base.ToolFailed`, not retryable, whatever
  the exit code;
* non-zero exit after the sandbox refused something, or any exit after the
  call went over a disk quota (``max_file_mb``, ``max_write_mb``) ->
  :class:`SandboxDenied` (``policy_denied``, not retryable), its details
  naming each denial;
* other non-zero exits -> :class:`~nexus.tools.base.ToolFailed` with the exit
  code, output tails and limits hit; retryable unless a deterministic limit
  (CPU, memory, processes, output, file size, open files) was hit -- running
  the same command again would hit it again.

A cancelled call (task timeout, fail-fast, user stop) kills the whole sandbox.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nexus.domain.errors import PolicyDenied, UserError
from nexus.metrics import DenialReason, count_denial
from nexus.tools.base import ToolContext, ToolFailed
from nexus.tools.profile import SHELL_PROFILE, ExecProfile, effective_profile
from nexus.tools.sandbox import (
    PYTHON,
    SandboxDenied,
    SandboxResult,
    SandboxUnavailable,
    run_sandboxed,
)

#: Output beyond this many bytes per stream is cut (the shell profile's default).
MAX_OUTPUT = SHELL_PROFILE.max_output_bytes
_TAIL = 2000
#: Limits that a retry would hit again.
_DETERMINISTIC = frozenset(
    {"cpu", "memory", "processes", "output", "file_size", "disk_quota", "open_files"}
)


def _effective(tool: ShellTool | PythonTool, ctx: ToolContext) -> ExecProfile:
    return effective_profile(tool.profile, ctx, tool.allowed)


def _env(ctx: ToolContext) -> dict[str, str]:
    return {**ctx.env, "NEXUS_RUN_ID": ctx.run_id, "NEXUS_TASK": ctx.task}


#: A sandbox denial's ``reason`` as a ``nexus_tool_denials_total`` reason.
_METRIC_REASON: dict[str, DenialReason] = {
    "network": "egress",
    "seccomp": "seccomp",
    "quota": "quota",
}


async def _sandboxed(
    tool: str,
    argv: Sequence[str],
    profile: ExecProfile,
    ctx: ToolContext,
    stdin: bytes | None = None,
) -> SandboxResult:
    """:func:`run_sandboxed` for ``tool``, counting the refusals that stop it from starting."""
    try:
        return await run_sandboxed(
            argv,
            profile=profile,
            workspace=ctx.workspace,
            env=_env(ctx),
            stdin=stdin,
            trusted=ctx.trusted,
        )
    except SandboxUnavailable:
        count_denial(tool, "sandbox")
        raise
    except PolicyDenied:
        count_denial(tool, "profile")
        raise


def _outcome(tool: str, result: SandboxResult) -> dict[str, Any]:
    """The tool's result for a sandboxed run, or the error it must raise."""
    for denial in result.denials:
        count_denial(tool, _METRIC_REASON.get(denial["reason"], "profile"))
    stdout = result.stdout.decode("utf-8", errors="replace")
    stderr = result.stderr.decode("utf-8", errors="replace")
    out: dict[str, Any] = {"exit_code": result.exit_code, "stdout": stdout, "stderr": stderr}
    if result.limits_hit:
        out["limits_hit"] = list(result.limits_hit)
    if result.denials:
        out["denials"] = [dict(d) for d in result.denials]
    if result.sandbox != "bwrap" or result.warnings:
        out["sandbox"] = result.sandbox
        out["warnings"] = list(result.warnings)
    over_quota = any(d["reason"] == "quota" for d in result.denials)
    # past the output cap the sandbox is killed, but the command may exit first: either
    # way the output is cut, so the call fails either way (the outcome must not be a race)
    over_cap = "output" in result.limits_hit
    if result.exit_code == 0 and not over_quota and not over_cap:
        return out
    details: dict[str, Any] = {
        "exit_code": result.exit_code,
        "stdout": stdout[-_TAIL:],
        "stderr": stderr[-_TAIL:],
        "limits_hit": list(result.limits_hit),
        "denials": [dict(d) for d in result.denials],
        "sandbox": result.sandbox,
        "duration_ms": result.duration_ms,
    }
    if result.warnings:
        details["warnings"] = list(result.warnings)
    if result.denials:
        reasons = "; ".join(f"{d['reason']}: {d['detail']}" for d in result.denials[:5])
        raise SandboxDenied(
            f"tool '{tool}': the sandbox refused {reasons} (exit {result.exit_code})",
            details=details,
        )
    message = f"command exited with {result.exit_code}"
    if over_cap:
        message = f"command output passed the profile's cap and was cut (exit {result.exit_code})"
    if result.limits_hit:
        message += f" (limits hit: {', '.join(result.limits_hit)})"
    error = ToolFailed(message, details=details)
    if _DETERMINISTIC.intersection(result.limits_hit):
        error.retryable = False
    raise error


@dataclass(frozen=True, slots=True)
class ShellTool:
    """``shell``: ``{cmd}`` -> ``{exit_code, stdout, stderr}``, sandboxed; non-zero fails.

    Args:
        name: the registered name.
        pure: always False: a command may change the workspace.
        profile: what the command may do (deny by default).
        allowed: the most a workflow's grant may get (``nexus.toml``'s
            ``[tools.shell]``); default: ``profile``.
    """

    name: str = "shell"
    pure: bool = False
    profile: ExecProfile = SHELL_PROFILE
    allowed: ExecProfile | None = None

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        cmd = args.get("cmd")
        if not isinstance(cmd, str) or not cmd.strip():
            raise UserError("tool 'shell': 'with.cmd' must be a non-empty string", retryable=False)
        result = await _sandboxed(self.name, ["/bin/sh", "-c", cmd], _effective(self, ctx), ctx)
        return _outcome(self.name, result)


@dataclass(frozen=True, slots=True)
class PythonTool:
    """``python``: ``{code, input?}`` -> ``{exit_code, stdout, stderr, result?}``, sandboxed.

    ``code`` runs as ``python -I -c code`` (isolated mode: no user site, no
    ``PYTHON*`` variables, no script directory on ``sys.path``) with ``input``
    as JSON on standard input. When the last non-empty line of stdout is JSON,
    it is parsed into ``result``.

    Example:
        ``{code: "import json,sys; print(json.dumps(sum(json.load(sys.stdin))))",
        input: [1, 2]}`` gives ``result: 3``.
    """

    name: str = "python"
    pure: bool = False
    profile: ExecProfile = SHELL_PROFILE
    #: the most a workflow's grant may get (``[tools.python]``); default: ``profile``
    allowed: ExecProfile | None = None

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        code = args.get("code")
        if not isinstance(code, str) or not code.strip():
            raise UserError(
                "tool 'python': 'with.code' must be a non-empty string", retryable=False
            )
        unknown = set(args) - {"code", "input"}
        if unknown:
            raise UserError(
                f"tool 'python': unknown arguments {sorted(unknown)} (known: code, input)",
                retryable=False,
            )
        try:
            stdin = json.dumps(args.get("input")).encode() if "input" in args else b""
        except (TypeError, ValueError) as exc:
            raise UserError(f"tool 'python': 'input' is not JSON: {exc}", retryable=False) from exc
        result = await _sandboxed(
            self.name, [PYTHON, "-I", "-c", code], _effective(self, ctx), ctx, stdin
        )
        out = _outcome(self.name, result)
        lines = [line for line in out["stdout"].splitlines() if line.strip()]
        if lines:
            with contextlib.suppress(ValueError):
                out["result"] = json.loads(lines[-1])
        return out
