"""The egress proxy of one sandboxed call: the only way out of its network namespace.

A profile with a ``network`` allow-list gets a namespace with no route out;
the shim's init forwards ``127.0.0.1:PROXY_PORT`` inside to a Unix socket
bound at ``PROXY_SOCKET``, served here, on the host. The proxy accepts
``CONNECT host:port`` and absolute-form HTTP requests for allow-listed
``host:port`` pairs only, resolves names itself, and records every refusal
as a ``network`` denial of the call. Only proxy-aware clients get out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

#: Where the proxy listens inside the sandbox (the shim forwards it).
PROXY_PORT = 3128
#: Where the proxy's Unix socket is bound inside the sandbox.
PROXY_SOCKET = "/run/nexus/egress.sock"


class EgressProxy:
    """An allow-list HTTP proxy on a Unix socket, the sandbox's only way out."""

    def __init__(self, allowed: tuple[str, ...], denials: list[dict[str, str]]) -> None:
        self.allowed = {a.lower() for a in allowed}
        self.denials = denials
        self.server: asyncio.AbstractServer | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self, path: Path) -> None:
        """Serve on the Unix socket ``path`` (bound into the sandbox by bwrap)."""
        self.server = await asyncio.start_unix_server(self._serve, path=str(path))
        os.chmod(path, 0o666)  # the sandbox's uid may differ from ours

    async def close(self) -> None:
        """Stop serving and end every open connection."""
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self.tasks.discard(task)
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if method.upper() == "CONNECT":
            host, _, port = target.rpartition(":")
        else:
            rest = target.split("://", 1)[1] if target.startswith("http://") else ""
            hostport = rest.split("/", 1)[0]
            host, sep, port = hostport.rpartition(":")
            if not sep or not port.isdigit():
                host, port = hostport, "80"
        where = f"{host}:{port}".lower()
        if not host or where not in self.allowed:
            self.denials.append(
                {"reason": "network", "detail": f"{where or target} is not in the allow-list"}
            )
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        try:
            async with asyncio.timeout(10):
                up_r, up_w = await asyncio.open_connection(host.strip("[]"), int(port))
        except (OSError, TimeoutError):
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        if method.upper() == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            up_w.write(head)
        try:
            await asyncio.gather(_pump(reader, up_w), _pump(up_r, writer))
        finally:
            up_w.close()


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
