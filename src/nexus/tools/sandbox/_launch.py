"""The sandbox launcher: the stage between Nexus and bubblewrap.

``python -I -S -B _launch.py PARENT UID GID USERNS_FD REPORT_FD [MOUNT...] -- argv...``
is run by :mod:`nexus.tools.sandbox` in front of ``bwrap`` on every call. It:

1. when it is root (Nexus runs as root): enters a **private mount namespace**
   (``unshare(CLONE_NEWNS)``, then ``/`` made ``MS_REC|MS_PRIVATE``) -- so
   nothing it mounts is ever seen by, or left behind in, the host's mount
   table, whatever happens to Nexus -- and there stages each ``MOUNT``
   (``-m KIND SOURCE TARGET``): a recursive clone of ``SOURCE``
   (``open_tree(OPEN_TREE_CLONE|AT_RECURSIVE)``) made ``nosuid``, ``nodev``
   and, for the ``ro`` kinds, read-only, moved onto ``TARGET`` (a staging path
   the sandbox's uid can reach). The ``idmap`` kinds are also **idmapped**
   through the user namespace ``USERNS_FD`` (``uid_map``/``gid_map``
   ``0 UID 1``): through that mount, root-owned files appear owned by ``UID``,
   and what ``UID`` creates is stored as root on disk;
2. drops to ``UID``/``GID`` with no supplementary groups (all three of real,
   effective and saved ids), which also drops every capability;
3. sets ``PR_SET_PDEATHSIG(SIGKILL)`` -- after the uid change, which would
   clear it -- and exits if ``PARENT`` is no longer its parent (Nexus died
   before the signal was armed), so bubblewrap, and through its
   ``--die-with-parent`` the whole sandbox, never outlives Nexus;
4. ``exec``\\s ``argv`` (bubblewrap, not setuid: it keeps the death signal).

When it is not root, steps 1-2 are skipped (``UID`` must then be its own).
Every failure is reported on ``REPORT_FD`` as ``error<TAB>cannot confine the
command: ...`` (the host turns it into ``SandboxUnavailable``: it fails
closed) and ends the launcher with status 125.

``_launch.py --userns`` is the helper that makes the idmap user namespace: it
unshares a user namespace, says ``ready`` on stdout and waits for stdin to
close; meanwhile the host writes its maps and opens ``/proc/PID/ns/user``.

``_launch.py --serve PARENT`` is the same launcher as a server: started once
per Nexus process, it forks one launcher per call (see :func:`_serve` and
:mod:`nexus.tools.sandbox._zygote`), so a call pays a ``fork``, not an interpreter.

Like :mod:`nexus.tools.sandbox._shim`, it runs by path with ``-S`` and imports only
C-level standard modules plus ``ctypes``: it is on every call's critical path.
"""

# ruff: noqa: SIM105 -- contextlib.suppress would import contextlib (see above)

from __future__ import annotations

import ctypes
import fcntl
import os
import struct
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # without importing typing (it imports re)
    from typing import Any, NoReturn

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_REC, _MS_PRIVATE = 0x4000, 1 << 18
_PR_SET_PDEATHSIG = 1
_SIGKILL = 9
# the same numbers on x86_64 and aarch64 (and every architecture using the generic table)
_SYS_OPEN_TREE, _SYS_MOVE_MOUNT, _SYS_MOUNT_SETATTR = 428, 429, 442
_AT_FDCWD = -100
_OPEN_TREE_CLONE, _OPEN_TREE_CLOEXEC = 1, 0o2000000
_AT_EMPTY_PATH, _AT_RECURSIVE = 0x1000, 0x8000
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOUNT_ATTR_RDONLY, _MOUNT_ATTR_NOSUID, _MOUNT_ATTR_NODEV = 0x1, 0x2, 0x4
_MOUNT_ATTR_IDMAP = 0x00100000
#: mount kinds: (read-only, idmapped)
KINDS = {
    "rw": (False, False),
    "ro": (True, False),
    "idmap": (False, True),
    "idmap-ro": (True, True),
}
EXIT_SETUP = 125

_libc = ctypes.CDLL(None, use_errno=True)


def _fail(report_fd: int, message: str) -> NoReturn:
    line = f"error\tcannot confine the command: {message}".replace("\n", " ")[:1000] + "\n"
    for fd in (report_fd, 2):
        if fd >= 0:
            try:
                os.write(fd, (line if fd == report_fd else "nexus sandbox: " + line[6:]).encode())
            except OSError:
                pass
    os._exit(EXIT_SETUP)


def _check(rc: int, what: str) -> int:
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return rc


def _stage(kind: str, source: str, target: str, userns_fd: int) -> None:
    """Clone ``source`` with the attributes of ``kind`` and mount it on ``target``."""
    readonly, idmap = KINDS[kind]
    flags = _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | _AT_RECURSIVE
    tree = _check(_libc.syscall(_SYS_OPEN_TREE, _AT_FDCWD, source.encode(), flags), source)
    try:
        attr = _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV
        if readonly:
            attr |= _MOUNT_ATTR_RDONLY
        if idmap:
            attr |= _MOUNT_ATTR_IDMAP
        # struct mount_attr { u64 attr_set, attr_clr, propagation, userns_fd }
        buf = ctypes.create_string_buffer(struct.pack("QQQQ", attr, 0, 0, max(userns_fd, 0)))
        rc = _libc.syscall(_SYS_MOUNT_SETATTR, tree, b"", _AT_EMPTY_PATH | _AT_RECURSIVE, buf, 32)
        if rc < 0:
            err = ctypes.get_errno()
            why = "idmapped mounts are not supported there" if idmap else "mount_setattr"
            raise OSError(err, f"{source}: {why} ({os.strerror(err)})")
        rc = _libc.syscall(
            _SYS_MOVE_MOUNT, tree, b"", _AT_FDCWD, target.encode(), _MOVE_MOUNT_F_EMPTY_PATH
        )
        _check(rc, f"move_mount {source} -> {target}")
    finally:
        os.close(tree)


def _make_userns() -> NoReturn:
    """``--userns``: unshare a user namespace and wait for the host to map and open it."""
    if _libc.unshare(_CLONE_NEWUSER) != 0:
        os.write(2, f"unshare(CLONE_NEWUSER): {os.strerror(ctypes.get_errno())}\n".encode())
        os._exit(EXIT_SETUP)
    os.write(1, b"ready\n")
    os.read(0, 1)  # EOF once the host has opened our namespace
    os._exit(0)


def _launch(
    parent: int,
    uid: int,
    gid: int,
    userns_fd: int,
    report_fd: int,
    specs: list[str],
    command: list[str],
    env: dict[str, str] | None,
) -> NoReturn:
    """Steps 1-4 of the module docstring; never returns (exec, or exit 125)."""
    try:
        if len(specs) % 4 or not command:
            raise ValueError("expected [-m KIND SOURCE TARGET]... -- argv")
        if os.geteuid() == 0:
            _check(_libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
            _check(_libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "private /")
            for i in range(0, len(specs), 4):
                _stage(specs[i + 1], specs[i + 2], specs[i + 3], userns_fd)
            if userns_fd >= 0:
                os.close(userns_fd)
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        if os.getuid() != uid or os.geteuid() != uid or uid == 0:
            raise OSError(0, f"would run as uid {os.geteuid()}, not the sandbox's uid {uid}")
        # after the uid change: changing credentials clears the death signal
        _check(_libc.prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0), "PR_SET_PDEATHSIG")
        if os.getppid() != parent:
            os._exit(EXIT_SETUP)  # our parent died before the signal was armed
        if env is None:
            os.execv(command[0], command)
        os.execve(command[0], command, env)
    except OSError as exc:
        _fail(report_fd, str(exc.args[-1]))
    except Exception as exc:  # a bad argument: still a clear line, never a traceback
        _fail(report_fd, f"{type(exc).__name__}: {exc}")


def _parse(args: list[str]) -> tuple[int, int, int, int, int, list[str], list[str]]:
    """``PARENT UID GID USERNS_FD REPORT_FD [-m KIND SOURCE TARGET]... -- argv``."""
    sep = args.index("--")
    parent, uid, gid, userns_fd, report_fd = (int(a) for a in args[0:5])
    return parent, uid, gid, userns_fd, report_fd, args[5:sep], args[sep + 1 :]


def _spawn(request: dict[str, Any], fds: list[int], zygote: int) -> int:
    """Fork one call's launcher (the caller is single-threaded, so fork is safe)."""
    targets = [int(t) for t in request["targets"]]
    argv = [str(a) for a in request["argv"]]
    env = {str(k): str(v) for k, v in request["env"].items()}
    cwd = str(request["cwd"])
    umask = int(request.get("umask", 0o022))
    if len(fds) != 4 + len(targets) or min([3, *targets]) < 3:
        raise ValueError("the fds do not match the request")
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()  # its own process group: the host kills the call's whole group
        # the call's fds out of the way first, then onto 0-2 and the numbers argv names
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 256) for fd in fds[1:]]
        for target, fd in zip([0, 1, 2, *targets], high, strict=True):
            os.dup2(fd, target)
        keep = sorted({0, 1, 2, *targets})
        for low, above in zip(keep, [*keep[1:], 1 << 20], strict=True):
            os.closerange(low + 1, above)
        os.chdir(cwd)
        os.umask(umask)  # the host's now, as a child of the host would have
        parent, uid, gid, userns_fd, report_fd, specs, command = _parse([str(zygote), *argv])
        _launch(parent, uid, gid, userns_fd, report_fd, specs, command, env)
    except BaseException:
        pass
    os._exit(EXIT_SETUP)


def _serve(parent: int) -> NoReturn:
    r"""``--serve PARENT``: the launch server (see :mod:`nexus.tools.sandbox._zygote`).

    Reads requests on fd 0 (a ``SOCK_SEQPACKET`` socket): a ``marshal``\ ed dict
    ``{argv, targets, cwd, env}`` with the fds ``[call, stdin, stdout, stderr,
    *targets]``. Forks a launcher for each, tells its pid on ``call``, kills its
    process group when ``call`` says ``kill`` or is closed, and sends ``exit
    STATUS`` there once it is reaped. Once the host is gone (EOF on fd 0, or
    another parent) it kills every launcher it started and exits; each one's
    bubblewrap also dies with it through ``PR_SET_PDEATHSIG``.
    """
    import marshal  # start-up is paid once per host process here
    import select
    import socket

    server = socket.socket(fileno=0)
    zygote = os.getpid()
    calls: dict[int, tuple[socket.socket, int]] = {}  # pidfd -> (call socket, pid)
    listening: set[int] = set()  # call sockets polled
    poller = select.poll()
    poller.register(0, select.POLLIN)

    def shut_down() -> NoReturn:
        for _, pid in calls.values():
            _kill_group(pid)
        os._exit(0)

    while True:
        if os.getppid() != parent:
            shut_down()
        # requests last: the fds they bring may reuse numbers closed in this round
        for fd, _ in sorted(poller.poll(1000), key=lambda event: event[0] == 0):
            if fd == 0:
                try:
                    msg, anc, _, _ = server.recvmsg(
                        1 << 20, socket.CMSG_SPACE(64 * 4), socket.MSG_CMSG_CLOEXEC
                    )
                except OSError:
                    shut_down()
                if not msg:
                    shut_down()  # the host is gone
                fds = [
                    int.from_bytes(data[i : i + 4], sys.byteorder, signed=True)
                    for level, kind, data in anc
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
                    for i in range(0, len(data) - len(data) % 4, 4)
                ]
                if not fds:
                    continue
                call = socket.socket(fileno=fds[0])
                try:
                    pid = _spawn(marshal.loads(msg), fds, zygote)
                except (OSError, ValueError, EOFError, TypeError):
                    call.close()
                    continue
                finally:
                    for extra in fds[1:]:
                        os.close(extra)
                pidfd = os.pidfd_open(pid)
                calls[pidfd] = (call, pid)
                poller.register(pidfd, select.POLLIN)
                poller.register(call.fileno(), select.POLLIN)
                listening.add(call.fileno())
                with_pid = f"pid {pid}".encode()
                try:
                    call.send(with_pid)
                except OSError:
                    _kill_group(pid)
            elif fd in calls:  # a launcher ended
                call, pid = calls.pop(fd)
                poller.unregister(fd)
                os.close(fd)
                # while it is a zombie its pid cannot be reused: kill what is left of its
                # group. bwrap's child waits on an eventfd for bwrap to finish set-up,
                # with no death signal yet: if bwrap died first (killed, or EPIPE on
                # --info-fd once Nexus is gone) it would wait there forever.
                _kill_group(pid, group_only=True)
                _, status = os.waitpid(pid, 0)
                if call.fileno() in listening:
                    listening.discard(call.fileno())
                    poller.unregister(call.fileno())
                try:
                    call.send(f"exit {os.waitstatus_to_exitcode(status)}".encode())
                except OSError:
                    pass
                call.close()
            else:  # a call socket: "kill", or the host let go of the call
                for call, pid in calls.values():
                    if call.fileno() == fd:
                        try:
                            wanted = call.recv(64)
                        except OSError:
                            wanted = b""
                        if not wanted:
                            listening.discard(fd)
                            poller.unregister(fd)  # killed; reaped through its pidfd
                        _kill_group(pid)
                        break


def _kill_group(pid: int, group_only: bool = False) -> None:
    for kill in (os.killpg,) if group_only else (os.killpg, os.kill):
        try:
            kill(pid, _SIGKILL)
            return
        except OSError:
            pass


def main(argv: list[str]) -> None:
    """Entry point; see the module docstring for the arguments."""
    if argv[1:2] == ["--userns"]:
        _make_userns()
    if argv[1:2] == ["--serve"] and len(argv) == 3 and argv[2].isdigit():
        _serve(int(argv[2]))
    try:
        parent, uid, gid, userns_fd, report_fd, specs, command = _parse(argv[1:])
    except (ValueError, IndexError):
        usage = "PARENT UID GID USERNS_FD REPORT_FD [-m KIND SOURCE TARGET]... -- argv"
        os.write(2, f"usage: _launch.py {usage}\n".encode())
        os._exit(EXIT_SETUP)
    _launch(parent, uid, gid, userns_fd, report_fd, specs, command, None)


if __name__ == "__main__":
    main(sys.argv)
