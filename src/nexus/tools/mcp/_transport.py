"""How bytes reach a server: a spawned stdio process or a streamable-HTTP endpoint.

:class:`Transport` opens the SDK transport for a spec -- a stdio server started
through ``env -i`` with exactly its configured environment (see
:func:`~nexus.tools.mcp._command.stdio_params`), its stderr kept in a temporary
file so a failure can quote its end; or the HTTP client for a ``url`` server.
:class:`WatchedReadStream` wraps the transport's read stream so the end of the
stream (the server went away) is reported at once, not at the next call.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any, Protocol, Self

import anyio
from mcp import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from nexus.tools.mcp._command import stdio_params
from nexus.tools.mcp._spec import McpServerSpec

__all__ = ["Transport", "WatchedReadStream", "describe_failure"]

_STDERR_TAIL = 2000


class Transport:
    """Opens one server's transport, one session at a time.

    Args:
        spec: the server.

    Raises:
        UserError: a stdio server's command is not found.
    """

    def __init__(self, spec: McpServerSpec) -> None:
        self.spec = spec
        self._stdio = stdio_params(spec) if spec.command is not None else None
        self._stderr: IO[str] | None = None

    @property
    def spawns(self) -> bool:
        """Whether opening starts a process here (a stdio server)."""
        return self._stdio is not None

    def open(self) -> contextlib.AbstractAsyncContextManager[tuple[Any, Any]]:
        """The SDK transport: ``(read stream, write stream)`` while entered."""
        if self._stdio is None:
            assert self.spec.url is not None
            return streamable_http_client(self.spec.url)
        # Closed by close_stderr once the session is over.
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        return stdio_client(self._stdio, errlog=self._stderr)

    def close_stderr(self) -> None:
        """Drop the finished process's stderr."""
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


def describe_failure(exc: BaseException, stderr_tail: str) -> str:
    """One line on why a connection attempt failed, with the end of the server's stderr."""
    leaf = _leaf(exc)
    message = str(leaf) or type(leaf).__name__
    if isinstance(leaf, MCPError):
        message = f"{leaf.message} (MCP error {leaf.code})"
    if stderr_tail:
        message += f"; server stderr: ...{stderr_tail[-500:]}"
    return message


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class _Receiver(Protocol):
    async def receive(self) -> Any: ...
    async def aclose(self) -> None: ...


class WatchedReadStream:
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
