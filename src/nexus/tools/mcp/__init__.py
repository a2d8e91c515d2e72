"""MCP servers as tools, through the official ``mcp`` SDK.

A server is declared under ``mcp_servers:`` in a workflow or ``[mcp_servers]``
in ``nexus.toml`` and parsed into a :class:`McpServerSpec`. An
:class:`McpConnection` keeps one session to it alive in a background task;
each tool it lists becomes an :class:`McpTool` named ``<server>.<tool>`` that
implements the :class:`~nexus.tools.base.Tool` port. :class:`McpServers`
runs the connections of all configured servers together.

What a connection guarantees:

- **Deny by default, pinned.** A tool is callable only in state ``approved``:
  its descriptor hashes to the pin a user approved (:mod:`nexus.tools.pins`)
  and the descriptor linter (:mod:`nexus.tools.lint`) found no error. Pins are
  checked on every ``tools/list`` -- at connect, on reconnect and on each
  ``notifications/tools/list_changed`` -- and a changed descriptor disables
  the tool at once (``PolicyDenied`` naming the old and new pins).
- **A hung server never stalls a run.** Each call has a deadline
  (``call_timeout``, :class:`~nexus.domain.errors.EffectTimeout`); after a
  timeout the connection pings the server and, if it does not answer,
  restarts it. A transport failure (the process died, the stream closed)
  reconnects with capped, jittered exponential backoff. A per-server
  circuit breaker opens after ``breaker_threshold`` consecutive failures and
  fails calls fast (transient, with ``retry_after``) until ``breaker_cooldown``
  has passed; then one trial call decides (half-open).
- **Output is untrusted.** Every result carries
  ``provenance: {"source": "mcp:<server>", "trusted": false}``.

The SDK's transports and sessions are context managers that own anyio task
groups; they must be entered and exited by the same task. So one task (the
connection's :meth:`McpConnection.run`) owns the whole stack and is signalled
through flags and an event; tool calls from other tasks only send requests on
the live session, which the SDK supports.

Why one module of ~1,300 lines (STYLE.md asks for a reason past 800): it is
one concept, an MCP server as tools, whose parts share private state (the
connection's session, flags and tool states are read by the tool and the
server group). About half is docstrings. The split that suggests itself --
``tools/mcp/`` with ``_config.py`` (the spec), ``_breaker.py`` and
``_connection.py`` -- is left for when the package layout of ``tools/``
settles; the public names here would not change.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Protocol, Self

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nexus.domain.canonical import plain_json
from nexus.domain.errors import (
    EffectTimeout,
    InfrastructureError,
    NexusError,
    NotFoundError,
    PolicyDenied,
    UserError,
)
from nexus.metrics import count_denial
from nexus.tools.base import ToolContext, ToolFailed, ToolRegistry
from nexus.tools.lint import Finding, LintConfig, Severity, errors, lint_descriptor
from nexus.tools.pins import (
    Approval,
    PinStore,
    ToolState,
    changed_fields,
    descriptor_of,
    file_sha256,
    launch_pin,
    tool_pin,
)
from nexus.tools.profile import allows_mcp_tool

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "McpConnection",
    "McpServerSpec",
    "McpServers",
    "McpTool",
    "McpToolStatus",
    "ServerStatus",
    "map_mcp_error",
    "parse_mcp_servers",
]

logger = logging.getLogger(__name__)

_CLIENT_INFO = types.Implementation(name="nexus", version="0.1.0")
_BACKOFF_INITIAL = 0.25
_BACKOFF_MAX = 30.0
_PROBE_TIMEOUT = 5.0
_SHUTDOWN_GRACE = 10.0
_MAX_PAGES = 100
_MAX_TOOLS = 2000
_MAX_TEXT = 1 << 20
_STDERR_TAIL = 2000
_SERVER_NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"


# -- configuration ---------------------------------------------------------------------


class _SpecModel(BaseModel):
    """The wire shape of one server entry (workflow YAML or ``nexus.toml``)."""

    model_config = ConfigDict(extra="forbid")

    command: str | None = Field(default=None, min_length=1)
    args: list[str] = Field(default_factory=list)
    env: list[str] | dict[str, str] = Field(default_factory=list)
    cwd: str | None = None
    url: str | None = None
    call_timeout: float = Field(default=30.0, gt=0, le=86400)
    connect_timeout: float = Field(default=15.0, gt=0, le=3600)
    breaker_threshold: int = Field(default=5, ge=1, le=1000)
    breaker_cooldown: float = Field(default=30.0, gt=0, le=86400)
    lint_ignore: list[str] = Field(default_factory=list)

    @field_validator("env", mode="before")
    @classmethod
    def _env_shape(cls, value: Any) -> Any:
        if isinstance(value, list):
            bad = [v for v in value if not isinstance(v, str) or not v or "=" in v]
            if bad:
                raise ValueError(
                    f"names to pass through must be non-empty strings without '=' ({bad[0]!r})"
                )
        elif isinstance(value, dict):
            bad = [k for k, v in value.items() if not k or "=" in k or not isinstance(v, str)]
            if bad:
                raise ValueError(
                    f"'{bad[0]}': a variable needs a name without '=' and a string value"
                )
        else:
            raise ValueError(
                "must be a list of variable names to pass through, or a table of NAME = value"
            )
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL (got {value!r})")
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> _SpecModel:
        if (self.command is None) == (self.url is None):
            raise ValueError(
                "give either 'command' (stdio) or 'url' (streamable HTTP), exactly one"
            )
        if self.url is not None and (self.args or self.env or self.cwd):
            raise ValueError("'args', 'env' and 'cwd' apply to 'command' servers only, not 'url'")
        return self


@dataclass(frozen=True, slots=True)
class McpServerSpec:
    """One MCP server, as configured.

    Attributes:
        name: the server's name; its tools are ``<name>.<tool>``.
        command: executable of a stdio server (looked up on the parent's ``PATH``).
        args: its arguments.
        env: variables given to the server, literally. Nothing else is passed:
            not even ``PATH`` or ``HOME`` unless listed here or in ``env_passthrough``.
        env_passthrough: names whose values are copied from Nexus's environment.
        cwd: the server's working directory (default: Nexus's).
        url: endpoint of a streamable-HTTP server (instead of ``command``).
        call_timeout: seconds a ``tools/call`` may take.
        connect_timeout: seconds for the handshake and the first listing.
        breaker_threshold: consecutive failures that open the circuit.
        breaker_cooldown: seconds the circuit stays open before a trial call.
        lint_ignore: linter finding codes not to hold against this server's tools.
    """

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    env_passthrough: tuple[str, ...] = ()
    cwd: Path | None = None
    url: str | None = None
    call_timeout: float = 30.0
    connect_timeout: float = 15.0
    breaker_threshold: int = 5
    breaker_cooldown: float = 30.0
    lint_ignore: frozenset[str] = frozenset()

    @property
    def transport(self) -> Literal["stdio", "http"]:
        """``stdio`` for a ``command`` server, ``http`` for a ``url`` one."""
        return "http" if self.url is not None else "stdio"

    @classmethod
    def from_dict(cls, name: str, data: Any, *, where: str = "mcp_servers") -> McpServerSpec:
        """Parse one entry of ``mcp_servers``.

        Raises:
            UserError: the entry is invalid; the message names the field
                (``mcp_servers.git.call_timeout: ...``).
        """
        prefix = f"{where}.{name}"
        if not isinstance(name, str) or not re.match(_SERVER_NAME, name):
            raise UserError(
                f"{where}: server name {name!r} must start with a letter and hold only "
                "letters, digits, '_' and '-' (no '.': tools are named <server>.<tool>)"
            )
        if not isinstance(data, Mapping):
            raise UserError(f"{prefix}: expected a table with 'command' or 'url'")
        try:
            model = _SpecModel.model_validate(dict(data))
        except ValidationError as exc:
            raise UserError(_describe_validation(prefix, exc)) from None
        env = model.env
        return cls(
            name=name,
            command=model.command,
            args=tuple(model.args),
            env=dict(env) if isinstance(env, dict) else {},
            env_passthrough=tuple(env) if isinstance(env, list) else (),
            cwd=Path(model.cwd) if model.cwd is not None else None,
            url=model.url,
            call_timeout=model.call_timeout,
            connect_timeout=model.connect_timeout,
            breaker_threshold=model.breaker_threshold,
            breaker_cooldown=model.breaker_cooldown,
            lint_ignore=frozenset(model.lint_ignore),
        )

    def child_env(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The complete environment of the server process."""
        source = os.environ if environ is None else environ
        out = {k: source[k] for k in self.env_passthrough if k in source}
        out.update(self.env)
        return out


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


def _describe_validation(prefix: str, exc: ValidationError) -> str:
    known = ", ".join(sorted(_SpecModel.model_fields))
    problems = []
    for err in exc.errors(include_url=False):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        where = f"{prefix}{path}"
        if err["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown field (known: {known})")
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
    return "; ".join(problems)


def parse_mcp_servers(data: Any, *, where: str = "mcp_servers") -> list[McpServerSpec]:
    """Parse a whole ``mcp_servers`` table (name -> entry).

    Example:
        >>> [s.name for s in parse_mcp_servers({"time": {"command": "mcp-server-time"}})]
        ['time']

    Raises:
        UserError: the table or one of its entries is invalid.
    """
    if data is None:
        return []
    if not isinstance(data, Mapping):
        raise UserError(f"{where}: expected a table of server name -> settings")
    return [McpServerSpec.from_dict(name, entry, where=where) for name, entry in data.items()]


# -- the circuit breaker ----------------------------------------------------------------


class BreakerState(StrEnum):
    """Circuit breaker states."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Consecutive-failure circuit breaker for one server.

    Closed: calls pass; ``threshold`` consecutive failures open it. Open: calls
    fail fast until ``cooldown`` seconds have passed, then it is half-open and
    lets one trial call through: success closes it, failure re-opens it.

    Args:
        name: the server's name, for messages.
        threshold: consecutive failures that open the circuit.
        cooldown: seconds before an open circuit lets a trial through.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        name: str,
        threshold: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False
        self.last_failure = ""

    @property
    def state(self) -> BreakerState:
        """The current state (an open circuit turns half-open once cooled down)."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def acquire(self) -> bool:
        """Admit a call, or raise; returns whether the call is the half-open trial.

        Raises:
            InfrastructureError: the circuit is open (or a trial is in flight);
                ``retry_after`` says when to try again.
        """
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.HALF_OPEN and not self._trial:
            self._trial = True
            return True
        assert self._opened_at is not None
        remaining = max(0.0, self.cooldown - (self._clock() - self._opened_at))
        raise InfrastructureError(
            f"MCP server '{self.name}': circuit open after {self._failures} consecutive "
            f"failure(s) (last: {self.last_failure}); calls fail fast for {remaining:.1f}s",
            retry_after=remaining or self.cooldown,
        )

    def record(self, ok: bool | None, *, trial: bool, reason: str = "") -> None:
        """Record a call's outcome: ``True`` success, ``False`` failure, ``None`` neither
        (cancelled, or refused before reaching the server)."""
        if trial:
            self._trial = False
        if ok is None:
            return
        if ok:
            self._failures = 0
            self._opened_at = None
            return
        self._failures += 1
        self.last_failure = reason
        if trial or self._failures >= self.threshold:
            if self._opened_at is None or trial:
                logger.warning("MCP server %r: circuit opened (%s)", self.name, reason)
            self._opened_at = self._clock()


# -- errors ----------------------------------------------------------------------------

_MCP_ERRORS: dict[int, tuple[type[NexusError], bool, str]] = {
    types.CONNECTION_CLOSED: (InfrastructureError, True, "connection closed"),
    types.REQUEST_TIMEOUT: (EffectTimeout, True, "request timed out"),
    types.PARSE_ERROR: (ToolFailed, True, "the server could not parse the request"),
    types.INVALID_REQUEST: (ToolFailed, False, "invalid request"),
    types.METHOD_NOT_FOUND: (NotFoundError, False, "method not found"),
    types.INVALID_PARAMS: (UserError, False, "invalid arguments"),
    types.INTERNAL_ERROR: (ToolFailed, True, "server error"),
    types.HEADER_MISMATCH: (ToolFailed, False, "header mismatch"),
    types.MISSING_REQUIRED_CLIENT_CAPABILITY: (ToolFailed, False, "missing client capability"),
    types.UNSUPPORTED_PROTOCOL_VERSION: (ToolFailed, False, "unsupported protocol version"),
    types.URL_ELICITATION_REQUIRED: (PolicyDenied, False, "URL elicitation required"),
}


def _error(
    cls: type[NexusError], message: str, *, retryable: bool, details: dict[str, Any]
) -> NexusError:
    if cls is ToolFailed:
        failed = ToolFailed(message, details=details)
        failed.retryable = retryable
        return failed
    return cls(message, retryable=retryable)


def map_mcp_error(server: str, tool: str, exc: BaseException) -> NexusError:
    """Translate an error from the SDK into the Nexus error tree.

    ``MCPError`` codes map by :data:`_MCP_ERRORS`; a result the SDK rejects
    (invalid structured content, a shape we did not opt into) is a
    non-retryable :class:`ToolFailed`; a broken stream or OS error is a
    transient :class:`InfrastructureError`.
    """
    where = f"MCP tool '{server}.{tool}'"
    if isinstance(exc, MCPError):
        cls, retryable, what = _MCP_ERRORS.get(exc.code, (ToolFailed, False, "error"))
        details = {"code": exc.code, "data": _jsonable(exc.data)}
        return _error(cls, f"{where}: {what}: {exc.message}", retryable=retryable, details=details)
    if isinstance(exc, ValidationError | RuntimeError):
        return _error(ToolFailed, f"{where}: unusable result: {exc}", retryable=False, details={})
    if isinstance(exc, OSError | anyio.BrokenResourceError | anyio.ClosedResourceError):
        return InfrastructureError(f"{where}: transport failed: {exc!r}")
    return _error(ToolFailed, f"{where}: {type(exc).__name__}: {exc}", retryable=False, details={})


def _jsonable(value: Any) -> Any:
    try:
        return plain_json(value)
    except ValueError:
        return repr(value)


# -- results ---------------------------------------------------------------------------


def _binary(kind: str, data: str, mime: str | None) -> dict[str, Any]:
    raw = data.encode("ascii", errors="replace")
    return {
        "type": kind,
        "mime_type": mime,
        "base64_chars": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def _block(block: types.ContentBlock, budget: list[int]) -> dict[str, Any]:
    def text(value: str) -> dict[str, Any]:
        room = max(0, budget[0])
        budget[0] -= len(value)
        if len(value) > room:
            return {"text": value[:room], "truncated": True}
        return {"text": value}

    if isinstance(block, types.TextContent):
        return {"type": "text", **text(block.text)}
    if isinstance(block, types.ImageContent | types.AudioContent):
        return _binary(block.type, block.data, block.mime_type)
    if isinstance(block, types.ResourceLink):
        return {"type": "resource_link", "uri": str(block.uri), "name": block.name}
    resource = block.resource
    if isinstance(resource, types.TextResourceContents):
        return {"type": "resource", "uri": str(resource.uri), **text(resource.text)}
    return {"uri": str(resource.uri), **_binary("resource", resource.blob, resource.mime_type)}


def _result_json(server: str, result: types.CallToolResult) -> dict[str, Any]:
    budget = [_MAX_TEXT]
    return {
        "content": [_block(b, budget) for b in result.content],
        "structured": _jsonable(result.structured_content),
        "is_error": bool(result.is_error),
        "provenance": {"source": f"mcp:{server}", "trusted": False},
    }


# -- status ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class McpToolStatus:
    """One MCP tool as the connection last saw it.

    Attributes:
        name: ``<server>.<tool>``.
        tool: the name on the server.
        state: ``approved`` tools are callable; see :class:`~nexus.tools.pins.ToolState`.
        pin: the current descriptor's pin.
        approved_pin: the approved pin, if any.
        changed: descriptor fields that differ from the approved descriptor.
        findings: the linter's findings.
        descriptor: the pinned descriptor (what the agent is shown).
    """

    name: str
    tool: str
    state: ToolState
    pin: str
    approved_pin: str | None
    changed: tuple[str, ...]
    findings: tuple[Finding, ...]
    descriptor: Mapping[str, Any]

    def to_data(self) -> dict[str, Any]:
        """Plain JSON, for ``nexus tools`` and events."""
        return {
            "name": self.name,
            "state": str(self.state),
            "pin": self.pin,
            "approved_pin": self.approved_pin,
            "changed": list(self.changed),
            "findings": [f.to_data() for f in self.findings],
            "description": self.descriptor.get("description", ""),
            "input_schema": self.descriptor.get("inputSchema", {}),
        }


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """A server's connection, breaker and tools."""

    name: str
    transport: str
    connected: bool
    connects: int
    breaker: BreakerState
    last_error: str | None
    tools: tuple[McpToolStatus, ...]
    #: a stdio server's launch pin and its state (``None`` for HTTP servers)
    command_pin: str | None = None
    command_state: str | None = None

    def to_data(self) -> dict[str, Any]:
        """Plain JSON."""
        return {
            "name": self.name,
            "transport": self.transport,
            "connected": self.connected,
            "connects": self.connects,
            "breaker": str(self.breaker),
            "last_error": self.last_error,
            "tools": [t.to_data() for t in self.tools],
            "command_pin": self.command_pin,
            "command_state": self.command_state,
        }


# -- the connection --------------------------------------------------------------------


class _Receiver(Protocol):
    async def receive(self) -> Any: ...
    async def aclose(self) -> None: ...


class _WatchedReadStream:
    """The transport's read stream, reporting its end (the server went away)."""

    def __init__(self, inner: _Receiver, on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self._on_end()
        await self.aclose()


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class McpConnection:
    """One MCP server: its session, its tools and their states.

    Use as ``async with McpConnection(spec, pins) as conn:`` (the session is
    run by a task the connection owns), or run :meth:`run` in your own task
    group and call :meth:`shutdown`.

    Args:
        spec: the server.
        pins: the approved pins (shared by all servers).
        other_tools: names of every tool *not* from this server (built-ins,
            other servers' ``<server>.<tool>``), for the linter's
            cross-reference check; a callable is asked on each listing.
        lint_config: linter limits; ``spec.lint_ignore`` is added to its ignores.
        clock: monotonic clock for the circuit breaker.

    Raises:
        UserError: the command is not found.

    Example:
        >>> async def main(pins: PinStore) -> None:  # doctest: +SKIP
        ...     spec = McpServerSpec(name="time", command="mcp-server-time")
        ...     async with McpConnection(spec, pins) as conn:
        ...         conn.approve("get_current_time")
        ...         print(await conn.call("get_current_time", {"timezone": "UTC"}))
    """

    def __init__(
        self,
        spec: McpServerSpec,
        pins: PinStore,
        *,
        other_tools: Callable[[], Iterable[str]] | Iterable[str] = (),
        lint_config: LintConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self._pins = pins
        self._other_tools = other_tools
        base = lint_config or LintConfig()
        self._lint = dataclasses.replace(base, ignore=base.ignore | spec.lint_ignore)
        self._breaker = CircuitBreaker(
            spec.name, spec.breaker_threshold, spec.breaker_cooldown, clock
        )
        self._stdio = self._stdio_params() if spec.command is not None else None
        self._tools: dict[str, McpToolStatus] = {}
        self._session: tuple[int, ClientSession] | None = None
        self._generation = 0
        self._connects = 0
        self._flags: set[str] = set()
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._attempted = asyncio.Event()
        self._stopped = asyncio.Event()
        self._closing = False
        self._noted = False
        self._down = False  # the latest connection attempt failed
        self._scope: anyio.CancelScope | None = None
        self._task: asyncio.Task[None] | None = None
        self._group: asyncio.TaskGroup | None = None
        self._stderr: IO[str] | None = None
        self.last_error: str | None = None
        #: the command's launch pin as last computed (stdio servers)
        self.command_pin: str | None = None
        #: why the command was last refused a start (its launch pin not approved)
        self.refused: PolicyDenied | None = None

    @property
    def name(self) -> str:
        """The server's name."""
        return self.spec.name

    @property
    def connected(self) -> bool:
        """Whether a session is up."""
        return self._session is not None

    @property
    def connects(self) -> int:
        """How many sessions were established so far (1 after the first connect)."""
        return self._connects

    @property
    def closing(self) -> bool:
        """Whether :meth:`shutdown` was called."""
        return self._closing

    @property
    def breaker(self) -> CircuitBreaker:
        """The server's circuit breaker."""
        return self._breaker

    # -- lifecycle -----------------------------------------------------------------------

    def _stdio_params(self) -> StdioServerParameters:
        spec = self.spec
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

    async def __aenter__(self) -> Self:
        group = asyncio.TaskGroup()
        await group.__aenter__()
        self._group = group
        self._task = group.create_task(self.run(), name=f"mcp:{self.name}")
        # Wait for the first attempt, whatever its outcome: a server that is
        # down now is retried in the background, and calls say why it is down.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.spec.connect_timeout + 1.0):
                await self._attempted.wait()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.shutdown()
        group, self._group = self._group, None
        if group is not None:
            # The run task has ended; an error of the body is the caller's to
            # see as it is, not wrapped in the group's ExceptionGroup.
            await group.__aexit__(None, None, None)

    async def run(self) -> None:
        """Keep a session to the server until :meth:`shutdown`; reconnect with backoff."""
        if self._task is None:
            self._task = asyncio.current_task()
        delay = _BACKOFF_INITIAL
        try:
            while not self._stopping():
                before = self._connects
                self._noted = False
                try:
                    await self._serve_once()
                except Exception as exc:
                    if not self._noted:
                        self._note_failure(exc)
                finally:
                    self._session = None
                    self._ready.clear()
                    self._attempted.set()
                    self._close_stderr()
                if self._stopping():
                    break
                if self._connects > before:
                    delay = _BACKOFF_INITIAL
                await self._sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, _BACKOFF_MAX)
        finally:
            self._stopped.set()

    def _stopping(self) -> bool:  # a call, so that type checkers do not narrow it
        return self._closing

    async def shutdown(self) -> None:
        """Close the session and stop the server process; idempotent.

        The session's task is stopped cooperatively (an anyio cancel scope
        around the handshake and the serving loop), never by cancelling the
        task: the SDK's stdio transport stops its server process in a shielded
        scope that a native ``Task.cancel()`` would cut short, leaking the process.
        """
        self._closing = True
        self._wake.set()
        if self._scope is not None:
            self._scope.cancel()
        task = self._task
        if task is None or task.done() or task is asyncio.current_task():
            return
        await asyncio.wait({task}, timeout=_SHUTDOWN_GRACE)
        if not task.done():  # only if the SDK's own bounded shutdown overran
            task.cancel()
            await asyncio.wait({task})

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not self._closing:
                    await self._wake.wait()
                    self._wake.clear()

    def _signal(self, generation: int, flag: str) -> None:
        if generation == self._generation:
            self._flags.add(flag)
            self._wake.set()

    def _open_transport(self) -> contextlib.AbstractAsyncContextManager[tuple[Any, Any]]:
        if self._stdio is None:
            assert self.spec.url is not None
            return streamable_http_client(self.spec.url)
        # Closed by _close_stderr once the session is over.
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        return stdio_client(self._stdio, errlog=self._stderr)

    def _close_stderr(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def stderr_tail(self) -> str:
        """The end of the current server process's stderr (stdio servers)."""
        if self._stderr is None:
            return ""
        fd = self._stderr.fileno()
        size = os.fstat(fd).st_size
        raw = os.pread(fd, _STDERR_TAIL, max(0, size - _STDERR_TAIL))
        return raw.decode("utf-8", errors="replace").strip()

    def _check_launch(self) -> None:
        """Refuse to start a command whose launch pin is not approved (see ``pins``)."""
        record = launch_record(self.spec)
        self.command_pin = launch_pin(record)
        self._pins.check_launch("mcp", self.name, record)

    def approve_launch(self) -> Approval:
        """Approve the server's command as it is now (``nexus tools approve mcp:NAME``)."""
        approval = approve_launch(self.spec, self._pins)
        self.command_pin = approval.pin
        return approval

    def _note_failure(self, exc: BaseException) -> None:
        leaf = _leaf(exc)
        message = str(leaf) or type(leaf).__name__
        if isinstance(leaf, MCPError):
            message = f"{leaf.message} (MCP error {leaf.code})"
        tail = self.stderr_tail()
        if tail:
            message += f"; server stderr: ...{tail[-500:]}"
        self.last_error = message
        self._noted = True
        self._down = True
        self._attempted.set()
        logger.warning("MCP server %r: %s", self.name, message)

    async def _serve_once(self) -> None:
        self._generation += 1
        generation = self._generation
        self._flags.clear()

        async def on_message(message: Any) -> None:
            if isinstance(message, types.ToolListChangedNotification):
                self._signal(generation, "relist")
            elif isinstance(message, Exception):
                logger.debug("MCP server %r: transport fault: %r", self.name, message)

        if self._stdio is not None:
            # checked before every start: the executable may have changed since
            try:
                await asyncio.to_thread(self._check_launch)
            except PolicyDenied as exc:
                self.refused = exc
                raise
            self.refused = None
        async with AsyncExitStack() as stack:
            read, write = await stack.enter_async_context(self._open_transport())
            watched = _WatchedReadStream(read, lambda: self._signal(generation, "broken"))
            session = await stack.enter_async_context(
                ClientSession(watched, write, message_handler=on_message, client_info=_CLIENT_INFO)
            )
            # Scopes inside the SDK's context managers are anyio scopes, so that
            # they nest (LIFO) with the SDK's own; shutdown() cancels this one.
            with anyio.CancelScope() as scope:
                self._scope = scope
                if self._closing:
                    scope.cancel()
                try:
                    with anyio.fail_after(self.spec.connect_timeout):
                        await session.initialize()
                        await self._refresh(session)
                except TimeoutError:
                    error = InfrastructureError(
                        f"no MCP handshake within connect_timeout={self.spec.connect_timeout}s"
                    )
                    self._note_failure(error)
                    raise error from None
                except Exception as exc:
                    self._note_failure(exc)
                    raise
                self._session = (generation, session)
                self._connects += 1
                self.last_error = None
                self._down = False
                self._ready.set()
                self._attempted.set()
                logger.info("MCP server %r: connected (%d tools)", self.name, len(self._tools))
                try:
                    await self._serve(session)
                finally:
                    # Calls from now on wait for the next session instead of
                    # reaching this one while it is torn down.
                    self._session = None
                    self._ready.clear()
            self._scope = None

    async def _serve(self, session: ClientSession) -> None:
        """React to signals until the session breaks or the connection closes."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._closing or "broken" in self._flags:
                if "broken" in self._flags and not self._closing:
                    self.last_error = "the server closed the connection"
                    logger.warning("MCP server %r: connection lost; reconnecting", self.name)
                return
            if "probe" in self._flags:
                self._flags.discard("probe")
                try:
                    with anyio.fail_after(min(_PROBE_TIMEOUT, self.spec.connect_timeout)):
                        await session.send_ping()
                except (TimeoutError, MCPError) as exc:
                    self.last_error = f"server did not answer a ping after a timeout ({exc!r})"
                    logger.warning("MCP server %r: unresponsive; restarting it", self.name)
                    return
            if "relist" in self._flags:
                self._flags.discard("relist")
                try:
                    with anyio.fail_after(self.spec.connect_timeout):
                        await self._refresh(session)
                except (TimeoutError, MCPError, InfrastructureError) as exc:
                    self.last_error = f"tools/list failed: {exc!r}"
                    logger.warning("MCP server %r: %s; reconnecting", self.name, self.last_error)
                    return

    # -- tools and pins ------------------------------------------------------------------

    async def _refresh(self, session: ClientSession) -> None:
        listed: list[types.Tool] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            listed.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
            if len(listed) > _MAX_TOOLS:
                raise InfrastructureError(f"server lists more than {_MAX_TOOLS} tools")
        else:
            raise InfrastructureError(f"tools/list did not end within {_MAX_PAGES} pages")
        self._apply_listing(listed)

    def _apply_listing(self, listed: list[types.Tool]) -> None:
        descriptors: dict[str, dict[str, Any]] = {}
        duplicates: set[str] = set()
        for tool in listed:
            if tool.name in descriptors:
                duplicates.add(tool.name)
            descriptors[tool.name] = descriptor_of(tool)
        fresh = {
            name: self._evaluate(name, descriptor, descriptors, name in duplicates)
            for name, descriptor in descriptors.items()
        }
        for name, old in self._tools.items():
            if name not in fresh:
                fresh[name] = dataclasses.replace(old, state=ToolState.REMOVED)
            elif old.state is ToolState.APPROVED and fresh[name].state is not ToolState.APPROVED:
                new = fresh[name]
                logger.warning(
                    "MCP tool %r is now %s (pin %s -> %s; changed: %s)",
                    new.name,
                    new.state,
                    old.pin[:12],
                    new.pin[:12],
                    ", ".join(new.changed) or "-",
                )
        self._tools = fresh

    def _other_names(self) -> list[str]:
        source = self._other_tools
        names = source() if callable(source) else source
        return [n for n in names if not n.startswith(f"{self.name}.")]

    def _evaluate(
        self,
        tool: str,
        descriptor: Mapping[str, Any],
        siblings: Mapping[str, Any],
        duplicate: bool,
    ) -> McpToolStatus:
        findings = lint_descriptor(
            descriptor,
            other_tools=self._other_names(),
            sibling_tools=[s for s in siblings if s != tool],
            config=self._lint,
        )
        if duplicate and "duplicate-name" not in self._lint.ignore:
            findings.insert(
                0,
                Finding(
                    Severity.ERROR, "duplicate-name", f"listed more than once: {tool!r}", "name"
                ),
            )
        pin = tool_pin(descriptor)
        return self._with_pin_state(
            McpToolStatus(
                name=f"{self.name}.{tool}",
                tool=tool,
                state=ToolState.PENDING_APPROVAL,
                pin=pin,
                approved_pin=None,
                changed=(),
                findings=tuple(findings),
                descriptor=descriptor,
            )
        )

    def _with_pin_state(self, status: McpToolStatus) -> McpToolStatus:
        state, approval = self._pins.state_of(self.name, status.tool, status.pin)
        if errors(status.findings):
            state = ToolState.BLOCKED_BY_LINT
        changed: tuple[str, ...] = ()
        if approval is not None and approval.pin != status.pin:
            changed = tuple(changed_fields(approval.descriptor, status.descriptor))
        return dataclasses.replace(
            status,
            state=state,
            approved_pin=approval.pin if approval is not None else None,
            changed=changed,
        )

    def tool_status(self, tool: str) -> McpToolStatus:
        """``tool``'s current state, its pin re-checked against the store.

        Raises:
            NotFoundError: the server never listed ``tool``.
        """
        status = self._tools.get(tool)
        if status is None:
            known = ", ".join(sorted(self._tools)) or "none yet"
            raise NotFoundError(f"MCP server '{self.name}' has no tool '{tool}' (known: {known})")
        if status.state is ToolState.REMOVED:
            return status
        # Another process may have approved or revoked it since: one stat() tells.
        state, approval = self._pins.state_of(self.name, tool, status.pin)
        approved = approval.pin if approval is not None else None
        if errors(status.findings):
            state = ToolState.BLOCKED_BY_LINT
        if state is not status.state or approved != status.approved_pin:
            self._tools[tool] = status = self._with_pin_state(status)
        return status

    def relint(self) -> None:
        """Re-run the linter and the pin check on the known descriptors (after other
        servers' tools became known)."""
        siblings = {name: s.descriptor for name, s in self._tools.items()}
        self._tools = {
            name: s
            if s.state is ToolState.REMOVED
            else self._evaluate(
                name, s.descriptor, siblings, any(f.code == "duplicate-name" for f in s.findings)
            )
            for name, s in self._tools.items()
        }

    def approve(self, tool: str, pin: str | None = None) -> Approval:
        """Approve ``tool``'s descriptor (the current one, or the one with ``pin``).

        Returns:
            The recorded approval; the tool is ``approved`` if ``pin`` is its
            current pin and the linter holds nothing against it.
        """
        status = self.tool_status(tool)
        chosen = pin or status.pin
        approval = self._pins.approve(
            self.name, tool, chosen, descriptor=status.descriptor if chosen == status.pin else None
        )
        self._tools[tool] = self._with_pin_state(status)
        return approval

    def status(self) -> ServerStatus:
        """The connection, breaker and every known tool's state (pins re-checked)."""
        tools = tuple(self.tool_status(name) for name in sorted(self._tools))
        state = None
        if self.command_pin is not None:
            state = str(self._pins.launch_state("mcp", self.name, self.command_pin)[0])
        return ServerStatus(
            name=self.name,
            transport=self.spec.transport,
            connected=self.connected,
            connects=self._connects,
            breaker=self._breaker.state,
            last_error=self.last_error,
            tools=tools,
            command_pin=self.command_pin,
            command_state=state,
        )

    def tools(self) -> list[McpTool]:
        """A :class:`McpTool` per known tool, whatever its state (calls say why not)."""
        return [McpTool(self, name) for name in sorted(self._tools)]

    def offered(self) -> list[McpTool]:
        """The tools an agent may be shown: approved and lint-clean."""
        return [
            McpTool(self, n)
            for n in sorted(self._tools)
            if self.tool_status(n).state is ToolState.APPROVED
        ]

    async def wait_ready(self) -> None:
        """Wait until a session is up (for longer or shorter, wrap it in ``asyncio.timeout``).

        Raises:
            InfrastructureError: not connected within ``connect_timeout``.
        """
        try:
            async with asyncio.timeout(self.spec.connect_timeout):
                await self._ready.wait()
        except TimeoutError:
            raise InfrastructureError(
                f"MCP server '{self.name}' is not connected (last error: {self.last_error})"
            ) from None

    # -- calls ---------------------------------------------------------------------------

    def _refuse(self, status: McpToolStatus) -> NexusError:
        name = status.name
        if status.state is ToolState.REMOVED:
            return NotFoundError(f"MCP server '{self.name}' no longer lists tool '{status.tool}'")
        if status.state is ToolState.BLOCKED_BY_LINT:
            shown = "; ".join(
                f"{f.code} at {f.where}: {f.message}" for f in errors(status.findings)
            )
            return PolicyDenied(f"MCP tool '{name}' is blocked by the descriptor linter: {shown}")
        if status.state is ToolState.CHANGED:
            fields = ", ".join(status.changed) or "unknown fields"
            return PolicyDenied(
                f"MCP tool '{name}' changed its descriptor since it was approved "
                f"(approved pin {status.approved_pin}, now {status.pin}; changed: {fields}); "
                f"it is disabled until re-approved: nexus tools approve {name} --pin {status.pin}"
            )
        return PolicyDenied(
            f"MCP tool '{name}' is not approved (pin {status.pin}); "
            f"review it (nexus tools), then: nexus tools approve {name} --pin {status.pin}"
        )

    async def call(self, tool: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Call ``tool`` with ``args``: ``{content, structured, is_error, provenance}``.

        Raises:
            PolicyDenied: the tool is not ``approved`` (pending, changed, blocked by lint).
            NotFoundError: the server does not list the tool.
            EffectTimeout: no answer within ``call_timeout``.
            InfrastructureError: not connected, the connection broke, or the circuit is open.
            ToolFailed / UserError: the server rejected the call (see :func:`map_mcp_error`).
        """
        status = self.tool_status(tool)
        if status.state is not ToolState.APPROVED:
            if status.state is ToolState.BLOCKED_BY_LINT:
                count_denial(status.name, "mcp_lint")
            elif status.state is not ToolState.REMOVED:
                count_denial(status.name, "mcp_unapproved")
            raise self._refuse(status)
        trial = self._breaker.acquire()
        outcome: bool | None = None
        reason = ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.spec.call_timeout
        try:
            try:
                if self._session is None and self._down:
                    raise TimeoutError  # known down: fail now, the breaker counts it
                if self._session is None:  # a (re)connection is under way: wait for it
                    async with asyncio.timeout_at(deadline):
                        while self._session is None:
                            await self._ready.wait()
            except TimeoutError:
                reason = f"not connected ({self.last_error})"
                outcome = False
                raise InfrastructureError(f"MCP server '{self.name}' is {reason}") from None
            assert self._session is not None
            generation, session = self._session
            try:
                async with asyncio.timeout_at(deadline):
                    result = await session.call_tool(tool, dict(args))
            except TimeoutError:
                reason = f"timeout after {self.spec.call_timeout}s"
                outcome = False
                self._signal(generation, "probe")
                raise EffectTimeout(
                    f"MCP tool '{status.name}' did not answer within call_timeout="
                    f"{self.spec.call_timeout}s"
                ) from None
            except Exception as exc:
                error = map_mcp_error(self.name, tool, exc)
                transient = isinstance(error, InfrastructureError)
                if transient:
                    broken = not isinstance(error, EffectTimeout)
                    self._signal(generation, "broken" if broken else "probe")
                outcome = not transient
                reason = error.message
                raise error from exc
            outcome = True
            return _result_json(self.name, result)
        finally:
            self._breaker.record(outcome, trial=trial, reason=reason)


@dataclass(frozen=True, slots=True)
class McpTool:
    """``<server>.<tool>`` as a Nexus :class:`~nexus.tools.base.Tool`.

    Never ``pure``: annotations such as ``readOnlyHint`` come from an untrusted
    server and are not relied on.
    """

    connection: McpConnection
    tool: str
    pure: bool = False

    @property
    def name(self) -> str:
        """``<server>.<tool>``."""
        return f"{self.connection.name}.{self.tool}"

    @property
    def status(self) -> McpToolStatus:
        """The tool's current state, pin and descriptor."""
        return self.connection.tool_status(self.tool)

    @property
    def source(self) -> str:
        """``mcp:<server>``, for ``nexus tools``."""
        return f"mcp:{self.connection.name}"

    @property
    def permissions(self) -> dict[str, Any]:
        """What calling it means, for ``nexus tools``: the server's rights, not an exec profile."""
        return {
            "runs": "in the MCP server's process, with the environment its table gives",
            "needs": f"an approved pin and a profile grant (mcp_tools: ['{self.name}'])",
            "output": "untrusted (provenance marked)",
        }

    @property
    def description(self) -> str:
        """The server's description of the tool (untrusted text; linted)."""
        return str(self.status.descriptor.get("description", ""))

    @property
    def input_schema(self) -> dict[str, Any]:
        """The tool's JSON schema for its arguments, as the server lists it."""
        return dict(self.status.descriptor.get("inputSchema", {}))

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        """Call the tool (``ctx`` is unused: the server's environment is fixed at start).

        A result the server marks ``isError`` fails the call as a task would
        expect (:class:`~nexus.tools.base.ToolFailed`, its text in the details);
        :meth:`McpConnection.call` returns it as data for callers that want it.
        """
        if not allows_mcp_tool(ctx, self.name):
            count_denial(self.name, "mcp_not_granted")
            raise PolicyDenied(
                f"MCP tool '{self.name}' is not allowed by the task's profile; grant it "
                f"with profile: {{mcp_tools: ['{self.name}']}} (patterns like "
                f"'{self.connection.name}.*' work too)"
            )
        result = await self.connection.call(self.tool, args)
        if result.get("is_error"):
            texts = [c.get("text", "") for c in result.get("content", []) if c.get("text")]
            message = "; ".join(texts)[:500] or "the tool reported an error"
            raise ToolFailed(f"{self.name}: {message}", details=result)
        return result


class McpServers:
    """All configured MCP servers of a run, connected together.

    Args:
        specs: the servers.
        pins: the approved pins.
        builtin_tools: names of the non-MCP tools (for the linter's
            cross-reference check).
        lint_config: linter limits.

    Example:
        >>> async def main() -> None:  # doctest: +SKIP
        ...     specs = parse_mcp_servers({"time": {"command": "mcp-server-time"}})
        ...     async with McpServers(specs, PinStore.at_home(Path(".nexus"))) as servers:
        ...         servers.register(registry)
    """

    def __init__(
        self,
        specs: Iterable[McpServerSpec],
        pins: PinStore,
        *,
        builtin_tools: Iterable[str] = (),
        lint_config: LintConfig | None = None,
    ) -> None:
        self._builtin = list(builtin_tools)
        self._connections: dict[str, McpConnection] = {}
        for spec in specs:
            if spec.name in self._connections:
                raise UserError(f"mcp_servers: server '{spec.name}' is declared twice")
            self._connections[spec.name] = McpConnection(
                spec, pins, other_tools=self._all_names, lint_config=lint_config
            )
        self._stack: AsyncExitStack | None = None

    def _all_names(self) -> list[str]:
        names = list(self._builtin)
        for conn in self._connections.values():
            names.extend(f"{conn.name}.{t}" for t in conn._tools)
        return names

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        try:
            # Entered one by one, but each waits only for its first attempt;
            # connect concurrently by entering all, then waiting together.
            for conn in self._connections.values():
                conn._attempted.clear()
                await stack.enter_async_context(_started(conn))
            await asyncio.gather(*(_first_attempt(c) for c in self._connections.values()))
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        for conn in self._connections.values():
            conn.relint()  # now that every server's tool names are known
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    async def shutdown(self) -> None:
        """Stop every connection; idempotent."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await asyncio.gather(*(c.shutdown() for c in self._connections.values()))
            await stack.aclose()

    def connection(self, name: str) -> McpConnection:
        """The connection to server ``name``.

        Raises:
            NotFoundError: no such server.
        """
        try:
            return self._connections[name]
        except KeyError:
            raise NotFoundError(
                f"no MCP server '{name}' (configured: {', '.join(sorted(self._connections))})"
            ) from None

    def refusal(self, name: str) -> NexusError | None:
        """Why ``<server>.<tool>`` cannot be had, when its server was refused a start."""
        server, dot, _ = name.partition(".")
        conn = self._connections.get(server) if dot else None
        return conn.refused if conn is not None else None

    def tools(self) -> list[McpTool]:
        """Every known tool of every server."""
        return [t for c in self._connections.values() for t in c.tools()]

    def register(self, registry: ToolRegistry) -> list[str]:
        """Add every known tool to ``registry``; the names added."""
        added = []
        for t in self.tools():
            registry.add(t)
            added.append(t.name)
        return added

    def status(self) -> list[ServerStatus]:
        """Every server's status."""
        return [c.status() for c in self._connections.values()]


@contextlib.asynccontextmanager
async def _started(conn: McpConnection) -> AsyncIterator[McpConnection]:
    """Run ``conn`` in a task of its own, without waiting for its first attempt."""
    group = asyncio.TaskGroup()
    await group.__aenter__()
    conn._task = group.create_task(conn.run(), name=f"mcp:{conn.name}")
    try:
        yield conn
    finally:
        await conn.shutdown()
        await group.__aexit__(None, None, None)  # see McpConnection.__aexit__


async def _first_attempt(conn: McpConnection) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(conn.spec.connect_timeout + 1.0):
            await conn._attempted.wait()
