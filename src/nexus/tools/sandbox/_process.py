"""The process tree of one sandboxed call: started, told what to do, read, and killed.

A call is a fork of this process's launch server (:mod:`._zygote`), in a new
session, wired to pipes of our own rather than asyncio's (so waiting for the
launcher waits for it only, not for pipes a leftover background process may
hold):

* **report** -- the shim's and the launcher's report lines (``ready``,
  ``denied``, ``warning``, ``error``), read into the :class:`Outcome`;
* **control** -- the control message, written once the shim is ready and,
  with a cgroup, once the shim is in it: the shim forks nothing before it
  has the message, so everything the command starts is born in the cgroup;
* **stdout**, **stderr** -- read up to the output cap (past it the call is killed);
* **stdin** -- the caller's bytes, or ``/dev/null``;
* **info** (bwrap only) -- bwrap's JSON naming the host pid of the sandbox's PID 1.

A kill takes down the launcher's process group (bwrap, and through it the
whole sandbox) by the launch server, and the cgroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path

from nexus.domain.errors import InfrastructureError
from nexus.tools.sandbox import _zygote
from nexus.tools.sandbox._cgroup import Cgroup
from nexus.tools.sandbox._command import CommandLine
from nexus.tools.sandbox._outcome import Outcome


class SandboxProcess:
    """One call's launcher and everything under it.

    Args:
        outcome: where output, reports and limits are recorded.
        cgroup: the call's cgroup, if it has one.
    """

    def __init__(self, outcome: Outcome, cgroup: Cgroup | None) -> None:
        self.outcome = outcome
        self.cgroup = cgroup
        self.proc: _zygote.Launched | None = None
        #: whether we killed the call while it ran
        self.killed = False
        self._fds: tuple[int, int, int, int, int, int] = (-1, -1, -1, -1, -1, -1)
        self._transports: list[asyncio.BaseTransport] = []
        self._loose: set[int] = set()  # our pipe ends not yet owned by a transport

    async def start(
        self, command: CommandLine, argv: list[str], stdin: bytes | None, cwd: Path
    ) -> None:
        """Start the launcher for ``argv`` through the launch server.

        Raises:
            InfrastructureError: the launcher could not be started.
        """
        report_r, report_w = os.pipe()
        control_r, control_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe() if stdin is not None else (-1, -1)
        # bwrap tells the host pid of the sandbox's PID 1 here
        info_r, info_w = os.pipe() if command.kind == "bwrap" else (-1, -1)
        child_ends = [report_w, control_r, out_w, err_w, in_r, info_w]
        ours = (report_r, control_w, out_r, err_r, in_w, info_r)
        userns = command.layout.userns
        try:
            if stdin is None:
                in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                child_ends[4] = in_r
            # a fork of this process's launch server (see _zygote.py), in a new session
            self.proc = await _zygote.spawn(
                command.argv(argv, report_w, control_r, info_w),
                stdin=in_r,
                stdout=out_w,
                stderr=err_w,
                pass_fds=[fd for fd in (report_w, control_r, info_w, userns) if fd >= 0],
                cwd=cwd,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            )
        except OSError as exc:
            _close(list(ours))
            raise InfrastructureError(f"cannot start the sandbox: {exc}") from exc
        finally:
            _close(child_ends)
        self._fds = ours
        self._loose = {fd for fd in ours if fd >= 0}

    async def communicate(
        self, control: bytes, stdin: bytes | None, wall_seconds: float
    ) -> tuple[int, bool]:
        """Run the call to its end, within ``wall_seconds``.

        Returns:
            The exit status (``128 + n`` for signal ``n``), and whether the shim
            started (it did not when bwrap or the launcher failed first).
        """
        proc = self.proc
        assert proc is not None
        report_r, control_w, out_r, err_r, in_w, info_r = self._fds
        code, ready = 0, False
        attach: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(wall_seconds):
                if self.cgroup is not None:
                    # moving a process costs an RCU grace period (~10 ms on cgroup
                    # v1): do it while bwrap and Python start, not after
                    attach = asyncio.create_task(self._attach(info_r))
                reports = await self._reader(report_r)
                out, err = await self._reader(out_r), await self._reader(err_r)
                ready = await self._handshake(reports, control_w, control, attach)
                code = await self._collect(reports, out, err, stdin, in_w)
        except TimeoutError:
            self.outcome.limits.append("wall_time")
            self.kill()
            code = _status(await asyncio.shield(proc.wait()))
        except BaseException:
            self.kill()
            with contextlib.suppress(Exception):
                await asyncio.shield(proc.wait())
            raise
        finally:
            if attach is not None and not attach.done():
                attach.cancel()
                await asyncio.gather(attach, return_exceptions=True)
            for transport in self._transports:
                transport.close()
            _close(list(self._loose))
        return code, ready

    def kill(self) -> None:
        """Kill the whole call: bwrap's group (its init dies with it) and the cgroup."""
        if self.proc is not None and self.proc.returncode is None:
            self.killed = True
        if self.proc is not None:
            self.proc.kill()  # by the launch server, which knows whether it is reaped
        if self.cgroup is not None:
            self.cgroup.kill()

    def close(self) -> None:
        """Let go of the launcher; one still running is killed by the launch server."""
        if self.proc is not None:
            self.proc.close()

    # -- pipes -----------------------------------------------------------------------

    async def _reader(self, fd: int) -> asyncio.StreamReader:
        """A stream over our end of a pipe; its transport is closed at the end."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 16)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
        )
        self._loose.discard(fd)
        self._transports.append(transport)
        return reader

    async def _writer(self, fd: int, data: bytes) -> None:
        """Write ``data`` to our end of a pipe without blocking the loop, then close it."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(fd, "wb", buffering=0)
        )
        self._loose.discard(fd)
        self._transports.append(transport)
        transport.write(data)
        transport.close()  # after the buffer is flushed (or the reader is gone)

    async def _attach(self, info_fd: int) -> None:
        """Move the shim -- the process that will start the command -- into the cgroup."""
        assert self.proc is not None
        assert self.cgroup is not None
        pid = self.proc.pid
        if info_fd >= 0:  # under bwrap, the shim is the sandbox's PID 1
            info = await self._reader(info_fd)
            with contextlib.suppress(asyncio.IncompleteReadError, ValueError, KeyError):
                pid = int(json.loads(await info.readuntil(b"}"))["child-pid"])
        await asyncio.to_thread(self.cgroup.add, pid)

    async def _handshake(
        self,
        reports: asyncio.StreamReader,
        control_w: int,
        control: bytes,
        attach: asyncio.Task[None] | None,
    ) -> bool:
        """Wait for the shim and its move into the cgroup, then send the control message.

        The shim forks nothing before it has the control message, so everything
        the command starts is born in the cgroup.
        """
        line = await reports.readline()
        if not line:
            return False  # bwrap or python never got to the shim
        self.outcome.report(line)
        if attach is not None:
            await attach
        await self._writer(control_w, control)
        return True

    async def _collect(
        self,
        reports: asyncio.StreamReader,
        out: asyncio.StreamReader,
        err: asyncio.StreamReader,
        stdin: bytes | None,
        in_w: int,
    ) -> int:
        proc = self.proc
        assert proc is not None
        tasks = [
            asyncio.create_task(self._read_capped(out, self.outcome.out)),
            asyncio.create_task(self._read_capped(err, self.outcome.err)),
            asyncio.create_task(self._read_reports(reports)),
        ]
        try:
            if stdin is not None:
                await self._writer(in_w, stdin)
            code = _status(await proc.wait())
            self.kill()  # whatever the command left behind
            # the pipes close once every process holding them is gone
            await asyncio.wait(tasks, timeout=2)
            return code
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _read_capped(self, stream: asyncio.StreamReader, buf: bytearray) -> None:
        while chunk := await stream.read(65536):
            if self.outcome.keep(buf, chunk):
                self.kill()
                return

    async def _read_reports(self, reports: asyncio.StreamReader) -> None:
        while line := await reports.readline():
            self.outcome.report(line)


def _status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _close(fds: list[int]) -> None:
    for fd in fds:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
