"""The host's side of the launch server: one launcher Python per process, not per call.

Every sandboxed call starts with the launcher (:mod:`nexus.tools.sandbox._launch`):
private mount namespace and idmapped clones as root, the drop to the sandbox
uid, ``PR_SET_PDEATHSIG``, then ``exec bwrap``. Starting a fresh interpreter
for it cost ~8 ms of CPU per call (``ctypes`` another ~3.5 ms) -- on a busy
machine 20-40 ms of wall time. So each Nexus process starts the launcher once,
as a small server (``_launch.py --serve PID``), and every call is a ``fork``
of it (about a millisecond): :func:`spawn` sends it the launcher's arguments
and the call's fds over a ``SOCK_SEQPACKET`` socket (``SCM_RIGHTS``), with a
socket of the call's own over which the server tells the launcher's pid and,
once it is reaped, its exit status; the host asks it to kill the call there.

What this keeps:

* the same launcher code runs in the forked child, with the same checks (it
  arms the death signal after the uid change and exits if its parent -- now
  the server -- is gone);
* nothing outlives Nexus: the server exits as soon as its socket reports EOF
  (the kernel closes it when Nexus dies, ``kill -9`` included) or its parent
  changes, killing the process group of every launcher it started first; each
  bwrap also has ``PR_SET_PDEATHSIG`` on the server. The server's socket is
  close-on-exec, so no other child of Nexus keeps it open.
* a forked Nexus (another pid) starts its own server; a server that died is
  replaced at the next call.
"""

from __future__ import annotations

import array
import asyncio
import atexit
import contextlib
import marshal
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from nexus.tools.sandbox._confine import LAUNCH, SandboxUnavailable

_lock = threading.Lock()
_servers: dict[int, tuple[subprocess.Popen[bytes], socket.socket]] = {}


class Launched:
    """A launcher started by the server: its pid, and its exit status once reaped."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._sock = sock
        self._done: asyncio.Future[int] | None = None

    async def wait(self) -> int:
        """The exit status (negative for a signal, like :class:`asyncio.subprocess.Process`)."""
        if self._done is None:
            self._done = asyncio.ensure_future(self._receive())
        return await asyncio.shield(self._done)

    async def _receive(self) -> int:
        loop = asyncio.get_running_loop()
        data = b""
        with contextlib.suppress(OSError):
            data = await loop.sock_recv(self._sock, 64)
        kind, _, value = data.decode(errors="replace").partition(" ")
        # no status: the server died, and took the launcher's group with it
        self.returncode = int(value) if kind == "exit" else -9
        self.close()
        return self.returncode

    def kill(self) -> None:
        """Kill the launcher's process group (bwrap's), unless it is already reaped."""
        if self.returncode is None:
            with contextlib.suppress(OSError):
                self._sock.send(b"kill")

    def close(self) -> None:
        """Let go of the call; the server kills what is still running of it."""
        self._sock.close()


def _server() -> socket.socket:
    """The server of this process, started on first use."""
    key = os.getpid()  # a forked child does not share its parent's server
    with _lock:
        if key in _servers:
            proc, sock = _servers[key]
            if proc.poll() is None:
                return sock
            sock.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        python = os.path.normpath(os.path.abspath(sys.executable))
        try:
            proc = subprocess.Popen(
                [python, "-I", "-S", "-B", str(LAUNCH), "--serve", str(key)],
                stdin=theirs.fileno(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",
                start_new_session=True,  # a Ctrl-C of Nexus's process group is not for it
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            )
        except OSError as exc:
            ours.close()
            raise SandboxUnavailable(
                f"cannot start the sandbox launcher {LAUNCH}: {exc}", retryable=False
            ) from exc
        finally:
            theirs.close()
        _servers[key] = (proc, ours)
        return ours


async def spawn(
    argv: Sequence[str],
    *,
    stdin: int,
    stdout: int,
    stderr: int,
    pass_fds: Sequence[int],
    cwd: Path,
    env: Mapping[str, str],
) -> Launched:
    """Start a launcher with ``argv`` (``UID GID USERNS_FD REPORT_FD [-m ...]... -- cmd``).

    ``pass_fds`` keep their numbers in the launcher (``argv`` names them);
    ``stdin``/``stdout``/``stderr`` become its 0-2. In a new session, in ``cwd``,
    with exactly ``env``.

    Raises:
        OSError: the server could not start the launcher.
        SandboxUnavailable: the server itself cannot be started.
    """
    request = marshal.dumps(
        {
            "argv": list(argv),
            "targets": list(pass_fds),
            "cwd": str(cwd),
            "env": dict(env),
            "umask": _umask(),
        }
    )
    for attempt in (1, 2):
        sock = _server()
        call, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            fds = array.array("i", [theirs.fileno(), stdin, stdout, stderr, *pass_fds])
            with _lock:
                sock.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        except OSError:
            call.close()
            _forget(sock)
            if attempt == 2:
                raise
            continue  # a dead server: start another
        finally:
            theirs.close()
        call.setblocking(False)
        reply = b""
        with contextlib.suppress(OSError):
            reply = await asyncio.get_running_loop().sock_recv(call, 64)
        kind, _, pid = reply.decode(errors="replace").partition(" ")
        if kind != "pid" or not pid.isdigit():
            call.close()
            raise OSError(f"the sandbox launcher did not start the call (reply {reply!r})")
        return Launched(call, int(pid))
    raise AssertionError("unreachable")


def _umask() -> int:
    """This process's umask now (the server's may be older), read without changing it."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", "rb") as fh:
        for line in fh:
            if line.startswith(b"Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def _forget(sock: socket.socket) -> None:
    """Drop a server that no longer takes requests (it exits once its socket is closed)."""
    with _lock:
        for key, (proc, known) in list(_servers.items()):
            if known is sock:
                del _servers[key]
                sock.close()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(1)


@atexit.register
def _stop_servers() -> None:
    """At a normal exit: close the servers' sockets (they exit on EOF) and reap them."""
    for proc, sock in list(_servers.values()):
        sock.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(1)
    _servers.clear()
