"""A stdio server's command: where it is, how it is started, and what its launch pin covers.

A stdio server is code that configuration chose, so it starts only at an
approved launch pin (:mod:`nexus.tools.pins`); :func:`launch_record` is what
that pin hashes, :func:`approve_launch` approves it from code, and
:func:`stdio_params` is the command line the SDK runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from mcp import StdioServerParameters

from nexus.domain.errors import UserError
from nexus.tools.mcp._spec import McpServerSpec
from nexus.tools.pins import Approval, PinStore, file_sha256, launch_pin

__all__ = ["approve_launch", "launch_record", "resolve_command", "stdio_params"]


def resolve_command(spec: McpServerSpec) -> str:
    """The executable a stdio server's ``command`` names, as it would be started.

    Raises:
        UserError: the command is not found, or its path holds ``=``.
    """
    assert spec.command is not None
    command = spec.command
    if "/" in command and not os.path.isabs(command) and spec.cwd is not None:
        command = str(spec.cwd / command)
    found = shutil.which(command)
    if found is None:
        raise UserError(f"MCP server '{spec.name}': command {spec.command!r} not found on PATH")
    if "=" in found:
        raise UserError(f"MCP server '{spec.name}': command path {found!r} may not contain '='")
    return found


def launch_record(spec: McpServerSpec) -> dict[str, Any]:
    """What starting a stdio server runs, as its launch pin covers it (blocking: it hashes).

    The executable by real path and SHA-256; for a script, its ``#!``
    interpreter too; the arguments, and the SHA-256 of each one that names a
    file (``python server.py``: the script is what runs); the environment's
    names with a hash of each literal value (values may be secrets, and the
    pin file must not hold them) and the names passed through; the working
    directory.

    Raises:
        UserError: the command is not found.
    """
    found = resolve_command(spec)
    real = os.path.realpath(found)
    record: dict[str, Any] = {
        "command": spec.command,
        "executable": real,
        "executable_sha256": file_sha256(real),
        "args": list(spec.args),
        "env": {k: hashlib.sha256(v.encode()).hexdigest() for k, v in sorted(spec.env.items())},
        "env_passthrough": sorted(spec.env_passthrough),
        "cwd": str(spec.cwd) if spec.cwd is not None else None,
    }
    interpreter = _interpreter_of(real)
    if interpreter is not None:
        record["interpreter"] = interpreter
        with contextlib.suppress(OSError):
            record["interpreter_sha256"] = file_sha256(os.path.realpath(interpreter))
    base = spec.cwd if spec.cwd is not None else Path.cwd()
    files: dict[str, str] = {}
    for arg in spec.args:
        candidate = base / arg
        with contextlib.suppress(OSError, ValueError):
            if candidate.is_file():
                files[arg] = file_sha256(candidate)
    if files:
        record["arg_files"] = files
    return record


def approve_launch(spec: McpServerSpec, pins: PinStore) -> Approval:
    """Approve ``spec``'s command as it is now (``nexus tools approve mcp:NAME``, in Python).

    For set-ups where the operator writes the server's spec in code and so has
    already reviewed it; a spec read from a file should be approved by a person.

    Raises:
        UserError: the command is not found.
    """
    record = launch_record(spec)
    return pins.approve_key(f"mcp:{spec.name}", launch_pin(record), descriptor=record)


def _interpreter_of(path: str) -> str | None:
    """The interpreter a ``#!`` line names (``/usr/bin/env X`` resolved on PATH), or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].decode(errors="replace").split()
    if not words:
        return None
    if os.path.basename(words[0]) == "env" and len(words) > 1:
        return shutil.which(words[-1]) or words[-1]
    return words[0]


def stdio_params(spec: McpServerSpec) -> StdioServerParameters:
    """How the SDK starts ``spec``'s server: through ``env -i``, with exactly its environment.

    Raises:
        UserError: the command is not found.
    """
    found = resolve_command(spec)
    env_cmd = shutil.which("env") or "/usr/bin/env"
    # The SDK adds HOME, PATH, USER... to every server's environment; `env -i`
    # starts the server with exactly the configured variables instead.
    assignments = [f"{k}={v}" for k, v in sorted(spec.child_env().items())]
    return StdioServerParameters(
        command=env_cmd,
        args=["-i", *assignments, found, *spec.args],
        cwd=spec.cwd,
    )
