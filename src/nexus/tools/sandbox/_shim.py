"""The sandbox shim: the sandbox's init, and the last step before the command.

``python -I -S -B _shim.py REPORT_FD CONTROL_FD -- argv...`` is run by
:mod:`nexus.tools.sandbox` as PID 1 of the sandbox (``bwrap --as-pid-1``) or,
under the opt-in ``rlimits`` fallback, directly in a new session. It:

1. reports ``ready`` on the report pipe and reads the control message (the
   environment, rlimits and seccomp filter, sent over a pipe so no value shows
   in any process's argv); the host uses that pause to put it into a cgroup
   before anything can fork;
2. sets rlimits -- CPU, address space, file size, open files, processes, no
   core dumps -- inherited by everything below;
3. makes itself non-dumpable, sets ``no_new_privs`` and loads the seccomp filter
   (compiled by the host with ``pyseccomp`` and passed in as BPF) with a
   user-notification listener, then starts the command with ``posix_spawn``
   (the listener is not inherited). The shim stays as init: it answers
   every forbidden system call with ``EPERM`` and reports it first (so each
   refusal is recorded, not only refused), forwards ``127.0.0.1:3128`` to the
   host's egress proxy when an allow-list is set, reaps orphans, and exits with
   the command's status (``128 + n`` for signal ``n``), which takes the whole
   PID namespace down with it.

Why an init of our own rather than bubblewrap's: bwrap's PID 1 is dumpable and
unfiltered, so the command could write into it through ``/proc/1/mem`` and make
system calls outside the filter. Ours is non-dumpable (no ``/proc`` access to
its memory or fds), is under the same filter, ignores signals from inside the
namespace (the kernel protects PID 1), and never runs the command's code. Why
not ``preexec_fn``: code between ``fork`` and ``exec`` in a threaded parent may
deadlock, and it would run outside the namespaces anyway.

Why this file looks austere: it is on every call's critical path, so it runs
by path with ``-S`` (no site-packages) rather than as ``python -m
nexus.tools.sandbox._shim`` (which would import the ``nexus`` package and its
dependencies, bound into the sandbox), and imports only C-level standard
modules: ``json``, ``base64``, ``signal``, ``socket``, ``contextlib`` and
``typing`` each pull in ``re``, ``enum`` or ``functools`` and together tripled
its start-up time. Hence ``marshal`` for the control message (the same
interpreter writes it), tab-separated report lines, a pidfd instead of a
SIGCHLD handler, and two signal numbers written out. It trusts nothing in the
sandbox.

If the init cannot answer, pending notifications fail with ``ENOSYS``: still
refused, only not recorded (fail closed). Under the ``rlimits`` fallback the
init is not PID 1 and the command could kill it; the host then ends the call.
"""

# ruff: noqa: SIM105 -- contextlib.suppress would import contextlib (see above)

from __future__ import annotations

import errno
import fcntl
import marshal
import os
import resource
import select
import struct
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # without importing typing (it imports re)
    import ctypes
    from typing import Any, NoReturn

_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
# _IOWR('!', 0, struct seccomp_notif) / _IOWR('!', 1, struct seccomp_notif_resp)
_NOTIF_RECV = 0xC0502100
_NOTIF_SEND = 0xC0182101
_NOTIF_SIZE = 80

# Linux's generic numbering (x86, arm, riscv, powerpc, s390); `signal` imports enum
_SIGPIPE, _SIGXFSZ = 13, 25
#: How often the init reaps orphans when nothing else wakes it.
_REAP_EVERY_MS = 200

#: Exit codes of the shim itself (the command's own codes pass through).
EXIT_SETUP = 125
EXIT_CANNOT_EXEC = 126
EXIT_NOT_FOUND = 127

_RLIMITS = {
    "cpu": resource.RLIMIT_CPU,
    "as": resource.RLIMIT_AS,
    "fsize": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
    "core": resource.RLIMIT_CORE,
}


def _report(fd: int, *fields: str) -> None:
    """One line of tab-separated fields: atomic on a pipe (< PIPE_BUF)."""
    clean = [f.replace("\t", " ").replace("\n", " ")[:1000] for f in fields]
    try:
        os.write(fd, ("\t".join(clean) + "\n").encode())
    except OSError:
        pass


def _fail(fd: int, message: str, code: int = EXIT_SETUP) -> NoReturn:
    _report(fd, "error", message)
    try:
        os.write(2, f"nexus sandbox: {message}\n".encode())
    except OSError:
        pass
    os._exit(code)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _set_rlimits(limits: dict[str, list[int]]) -> None:
    for name, (soft, hard) in limits.items():
        which = _RLIMITS[name]
        _, cur_hard = resource.getrlimit(which)
        if cur_hard != resource.RLIM_INFINITY:  # we cannot raise a hard limit
            hard = min(hard, cur_hard)
            soft = min(soft, hard)
        resource.setrlimit(which, (soft, hard))


def _load_filter(libc: ctypes.CDLL, seccomp_nr: int, bpf: bytes) -> int:
    """Load ``bpf`` with a notification listener; return the listener fd (or -1)."""
    import ctypes

    class _SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _SockFprog(len(bpf) // 8, ctypes.cast(buf, ctypes.c_void_p))
    flags = _SECCOMP_FILTER_FLAG_NEW_LISTENER
    fd = libc.syscall(seccomp_nr, _SECCOMP_SET_MODE_FILTER, flags, ctypes.byref(prog))
    if fd >= 0:
        return int(fd)
    err = ctypes.get_errno()
    if err != errno.EINVAL:
        raise OSError(err, "seccomp(SECCOMP_SET_MODE_FILTER)")
    # a kernel without user notification: the calls fail with ENOSYS, unrecorded
    if libc.syscall(seccomp_nr, _SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(prog)) != 0:
        raise OSError(ctypes.get_errno(), "seccomp(SECCOMP_SET_MODE_FILTER)")
    return -1


# -- init's side ---------------------------------------------------------------------------


def _answer_one(fd: int, report_fd: int, names: dict[int, str]) -> None:
    """Refuse one notified call with EPERM, reporting it first."""
    buf = bytearray(_NOTIF_SIZE)
    try:
        fcntl.ioctl(fd, _NOTIF_RECV, buf)
    except OSError:
        return  # ENOENT: the caller died meanwhile
    notif_id, _pid, _flags, nr = struct.unpack_from("<QIIi", buf, 0)
    arg0 = struct.unpack_from("<Q", buf, 32)[0]
    name = names.get(nr, f"syscall {nr}")
    detail = name
    if name == "socket":
        detail = f"socket({ {2: 'AF_INET', 10: 'AF_INET6'}.get(arg0, str(arg0)) })"
    elif name == "clone":
        detail = f"clone(flags={arg0:#x}): new namespaces"
    # record first, then answer: the report is written before the call returns
    _report(report_fd, "denied", name, detail)
    try:
        fcntl.ioctl(fd, _NOTIF_SEND, struct.pack("<QqiI", notif_id, 0, -errno.EPERM, 0))
    except OSError:
        pass


def _splice(a: Any, b: Any) -> None:
    pair = {a: b, b: a}
    try:
        while True:
            readable, _, _ = select.select([a, b], [], [])
            for src in readable:
                data = src.recv(65536)
                if not data:
                    return
                pair[src].sendall(data)
    except OSError:
        pass
    finally:
        a.close()
        b.close()


def _forward(listener: Any, target: str) -> None:
    """Accept on the sandbox's loopback; splice each connection to the host's proxy."""
    import socket
    import threading

    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(target)
            threading.Thread(target=_splice, args=(conn, upstream), daemon=True).start()
        except (OSError, RuntimeError):  # RuntimeError: no thread (process limit)
            conn.close()
            upstream.close()


def _be_init(config: dict[str, Any], child: int, notify_fd: int, proxy: Any) -> NoReturn:
    """Serve the child, reap everything, exit with the child's status.

    One thread does it all with ``poll`` -- seccomp notifications, the child's
    pidfd, and a periodic reap of orphans -- so the init needs no thread of its
    own (nor the ``signal`` module), only the proxy's when an allow-list is set.
    """
    report_fd: int = config["report_fd"]
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):  # never hold the command's pipes open
        os.dup2(null, std)
    os.close(null)
    if proxy is not None:
        import threading

        threading.stack_size(256 * 1024)
        target = str(config["proxy"]["socket"])
        threading.Thread(target=_forward, args=(proxy, target), daemon=True).start()
    poller = select.poll()
    try:
        child_fd = os.pidfd_open(child)
        poller.register(child_fd, select.POLLIN)
    except OSError:  # no pidfd (Linux < 5.3), or gone already: the reap below sees it
        child_fd = -1
    if notify_fd >= 0:
        poller.register(notify_fd, select.POLLIN)
    names: dict[int, str] = config["names"]
    while True:
        while True:  # reap: the command, and orphans handed to us
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                os._exit(EXIT_SETUP)
            if pid == 0:
                break
            if pid == child:
                if os.WIFSIGNALED(status):
                    os._exit(128 + os.WTERMSIG(status))
                os._exit(os.waitstatus_to_exitcode(status))
        for fd, events in poller.poll(_REAP_EVERY_MS):
            if fd == child_fd:
                continue  # exited: reaped at the top of the loop
            if events & select.POLLIN:
                _answer_one(fd, report_fd, names)
            else:  # POLLHUP: nothing left under the filter
                poller.unregister(fd)


def main(argv: list[str]) -> None:
    """Entry point: ``_shim.py REPORT_FD CONTROL_FD -- command...``."""
    if len(argv) < 5 or argv[3] != "--":
        os.write(2, b"usage: _shim.py REPORT_FD CONTROL_FD -- command...\n")
        os._exit(EXIT_SETUP)
    report_fd, control_fd, command = int(argv[1]), int(argv[2]), argv[4:]
    proxy: Any = None
    try:
        _report(report_fd, "ready")
        # the slowest import, done while the host moves us into the cgroup
        import ctypes

        control = _read_all(control_fd)
        if not control:
            _fail(report_fd, "no control message (the host went away)")
        config: dict[str, Any] = marshal.loads(control)
        config["report_fd"] = report_fd
        _set_rlimits(config["rlimits"])
        libc = ctypes.CDLL(None, use_errno=True)
        # the init is never dumpable; exec resets it for the command
        libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        if config.get("proxy"):
            import socket

            # bound before the command starts, so its first connect finds it
            proxy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            proxy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            proxy.bind(("127.0.0.1", int(config["proxy"]["port"])))
            proxy.listen(64)
        notify_fd = -1
        if config.get("bpf"):
            notify_fd = _load_filter(libc, config["seccomp_nr"], config["bpf"])
            if notify_fd < 0:
                _report(report_fd, "warning", "seccomp denials are refused but not recorded")
            else:  # the command must never answer its own notifications
                os.set_inheritable(notify_fd, False)
        os.set_inheritable(report_fd, False)
    except (OSError, ValueError, MemoryError) as exc:
        _fail(report_fd, f"cannot confine the command: {exc}")
    try:
        # posix_spawn, not fork + exec: no Python code runs in the child. Python
        # ignores SIGPIPE and SIGXFSZ; the command gets them back.
        child = os.posix_spawnp(command[0], command, config["env"], setsigdef=(_SIGPIPE, _SIGXFSZ))
    except FileNotFoundError as exc:
        _fail(report_fd, f"cannot execute {command[0]!r}: {exc.strerror}", EXIT_NOT_FOUND)
    except OSError as exc:
        _fail(report_fd, f"cannot execute {command[0]!r}: {exc.strerror}", EXIT_CANNOT_EXEC)
    _be_init(config, child, notify_fd, proxy)


if __name__ == "__main__":
    main(sys.argv)
