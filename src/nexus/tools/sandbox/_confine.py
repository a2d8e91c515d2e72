"""The host's side of confinement: who tool code runs as, what it may not write, what is left.

Every call uses these (:mod:`nexus.tools.sandbox._call`), as do the launch
server (:mod:`nexus.tools.sandbox._zygote`) and the bubblewrap probe.

* **The sandbox's host uid.** Tool code never runs as host root. When Nexus
  runs as root, :func:`sandbox_identity` picks the workspace's owner when that
  owner is not root, else ``$NEXUS_SANDBOX_UID`` (default ``2147483646``). The
  launcher (:mod:`nexus.tools.sandbox._launch`) drops to it; root-owned writable paths
  are made writable for it by **idmapped mounts** through the user namespace
  from :func:`idmap_userns` (``0 -> uid``), made once per process and uid.
* **Trusted paths.** :func:`hold_placeholder` and :func:`release_placeholder`
  manage the empty read-only stand-in bound over a trusted path that does not
  exist yet (``nexus.toml``), so a task cannot create it either. A placeholder
  is an empty regular file of mode ``0400``; each call holding one keeps a
  shared ``flock`` on it, and the last one to let go removes it -- so
  concurrent calls (in any process) never expose each other.
* **Leftovers of dead owners.** Cgroups (``nexus-PID-START-x``) and temp
  dirs (``nexus-sbx-PID-START-x``) carry their owner's pid *and* start time
  (clock ticks since boot), so a reused pid is not mistaken for the owner.
  :func:`reap_leftovers` removes those whose owner is gone, killing any
  process still in such a cgroup; the sandbox runs it once per process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from nexus.domain.errors import PolicyDenied

#: The host uid tool code runs as when Nexus and the workspace belong to root.
DEFAULT_SANDBOX_UID = 2147483646
SANDBOX_UID_ENV = "NEXUS_SANDBOX_UID"
LAUNCH = Path(__file__).with_name("_launch.py")

_PLACEHOLDER_MODE = 0o400
_TMP_PREFIX = "nexus-sbx-"
_CGROUP_RE = re.compile(r"nexus-(\d+)-(?:(\d+)-)?[0-9a-f]+")
_TMP_RE = re.compile(r"nexus-sbx-(\d+)-(?:(\d+)-)?")


class SandboxUnavailable(PolicyDenied):
    """The sandbox cannot be applied on this machine (no usable bubblewrap or seccomp)."""


# -- who tool code runs as --------------------------------------------------------------


def sandbox_uid() -> int:
    """The dedicated sandbox uid (``$NEXUS_SANDBOX_UID`` or the default).

    Raises:
        SandboxUnavailable: the variable is not a uid other than root's.
    """
    raw = os.environ.get(SANDBOX_UID_ENV, "").strip()
    if not raw:
        return DEFAULT_SANDBOX_UID
    if not raw.isdigit() or not 0 < int(raw) < 2**32 - 1:
        raise SandboxUnavailable(
            f"${SANDBOX_UID_ENV}={raw!r} is not a uid between 1 and 4294967294",
            retryable=False,
        )
    return int(raw)


def sandbox_identity(workspace: Path) -> tuple[int, int]:
    """The host ``(uid, gid)`` a call in ``workspace`` runs as.

    Not root: this process's own. Root: the workspace's owner if not root,
    else :func:`sandbox_uid` -- never 0.
    """
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    st = workspace.stat()
    if st.st_uid != 0:
        return st.st_uid, st.st_gid if st.st_gid != 0 else st.st_uid
    uid = sandbox_uid()
    return uid, uid


def launch_args(uid: int, gid: int, userns: int, report: int, mounts: list[str]) -> list[str]:
    """The launcher's arguments after ``PARENT``, up to (and including) ``--``."""
    return [str(uid), str(gid), str(userns), str(report), *mounts, "--"]


_userns_lock = threading.Lock()
_userns: dict[tuple[int, int, int], int] = {}


def idmap_userns(uid: int, gid: int) -> int:
    """An fd of a user namespace mapping 0 to ``uid``/``gid`` (made once per process).

    Raises:
        SandboxUnavailable: user namespaces cannot be made here.
    """
    key = (os.getpid(), uid, gid)  # an fd is not shared with a forked child's namespace cache
    with _userns_lock:
        if key in _userns:
            return _userns[key]
        python = os.path.normpath(os.path.abspath(sys.executable))
        proc = subprocess.Popen(
            [python, "-I", "-S", "-B", str(LAUNCH), "--userns"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            if proc.stdout.readline() != b"ready\n":
                raise OSError(proc.wait(5), (proc.stderr.read() if proc.stderr else b"").decode())
            Path(f"/proc/{proc.pid}/uid_map").write_text(f"0 {uid} 1\n")
            Path(f"/proc/{proc.pid}/setgroups").write_text("deny")
            Path(f"/proc/{proc.pid}/gid_map").write_text(f"0 {gid} 1\n")
            fd = os.open(f"/proc/{proc.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise SandboxUnavailable(
                f"cannot make the user namespace for idmapped mounts ({exc}); the sandbox "
                "needs user namespaces to run tool code as an unprivileged uid",
                retryable=False,
            ) from exc
        finally:
            proc.stdin.close()
            proc.wait()
            proc.stdout.close()
            if proc.stderr is not None:
                proc.stderr.close()
        _userns[key] = fd
        return fd


def reachable(path: Path, uid: int, gid: int) -> bool:
    """Whether ``uid``/``gid`` (no other groups) can reach and read ``path`` (mode bits only)."""

    def allows(st: os.stat_result, bit: int) -> bool:
        if st.st_uid == uid:
            return bool(st.st_mode & (bit << 6))
        if st.st_gid == gid:
            return bool(st.st_mode & (bit << 3))
        return bool(st.st_mode & bit)

    try:
        for parent in reversed(path.parents):
            if not allows(os.stat(parent), 1):
                return False
        st = os.stat(path)
    except OSError:
        return False
    return allows(st, 4 | (1 if stat.S_ISDIR(st.st_mode) else 0))


# -- placeholders for trusted paths that do not exist ----------------------------------


def is_placeholder(st: os.stat_result) -> bool:
    """Whether ``st`` is a placeholder's: an empty regular file of mode 0400."""
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_size == 0
        and stat.S_IMODE(st.st_mode) == _PLACEHOLDER_MODE
    )


def hold_placeholder(path: Path) -> int | None:
    """Create or join the placeholder at ``path``; an fd holding a shared lock on it.

    None when something real is there (it is then bound read-only as it is).
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    for _ in range(100):
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, _PLACEHOLDER_MODE)
        except FileExistsError:
            try:
                fd = os.open(path, flags)
            except FileNotFoundError:
                continue  # removed meanwhile: create it
            except OSError:
                return None  # a symlink, a socket...: not ours
            if not is_placeholder(os.fstat(fd)):
                os.close(fd)
                return None
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            now = os.lstat(path)
        except FileNotFoundError:
            now = None
        st = os.fstat(fd)
        if now is not None and (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
            return fd
        os.close(fd)  # its last holder removed it before we locked it: again
    raise OSError(f"{path}: cannot hold a placeholder (it keeps changing)")


def release_placeholder(path: Path, fd: int) -> None:
    """Let go of a placeholder; remove it if no other call holds it and it is still ours."""
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another call still relies on it
        st = os.fstat(fd)
        with contextlib.suppress(FileNotFoundError):
            now = os.lstat(path)
            if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino) and is_placeholder(st):
                os.unlink(path)
    finally:
        os.close(fd)


def remove_stale_placeholders(directory: Path, names: Iterable[str]) -> list[Path]:
    """Remove the placeholders named ``names`` in ``directory`` that no call holds any more.

    A process killed in the middle of a call (``kill -9``) leaves its
    placeholders behind: empty files where a trusted path would be. A later
    call joins and reuses them, but code that commits a directory's files (a
    code mission's worktree) must not take them for work. Only a placeholder
    (empty, mode 0400, not a link) that no one holds a lock on is removed.

    Returns:
        The placeholders removed.
    """
    removed = []
    for name in names:
        path = directory / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            continue  # absent, a link, a directory one cannot read...: not a placeholder
        try:
            st = os.fstat(fd)
            if not is_placeholder(st):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a running call holds it
            now = os.lstat(path)
            if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
                os.unlink(path)
                removed.append(path)
        except FileNotFoundError:
            continue
        finally:
            os.close(fd)
    return removed


# -- owners and leftovers ---------------------------------------------------------------


def start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data.rsplit(b")", 1)[-1].split()
    # fields[0] is the state (field 3), so the start time (field 22) is fields[19]
    return int(fields[19]) if len(fields) > 19 else None


def owner_tag() -> str:
    """``PID-START`` of this process, for the names of what it creates."""
    pid = os.getpid()
    return f"{pid}-{start_time(pid) or 0}"


def _owner_gone(pid: str, start: str | None) -> bool:
    now = start_time(int(pid))
    if now is None:
        return True
    return start is not None and int(start) != now  # the pid was reused


def temp_dir() -> Path:
    """A fresh temp dir for one call, named after its owner."""
    return Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{owner_tag()}-"))


def cgroup_parents() -> list[Path]:
    """Where this process's sandbox cgroups are made (v2 parent, v1 per controller)."""
    out = []
    v2 = Path("/sys/fs/cgroup/nexus.sandbox")
    if v2.is_dir():
        out.append(v2)
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, where = line.split(":", 2)
            for c in controllers.split(","):
                if c in ("pids", "memory"):
                    out.append(Path("/sys/fs/cgroup", c, where.lstrip("/")))
    return out


def remove_cgroup(path: Path, v2: bool) -> None:
    """Kill every process in the cgroup ``path``, then remove it (blocking, <= 1 s)."""
    for _ in range(100):  # processes leave once reaped
        with contextlib.suppress(OSError):
            if v2:
                (path / "cgroup.kill").write_text("1")
            else:
                for pid in (path / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(int(pid), signal.SIGKILL)
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def reap_leftovers() -> tuple[int, int]:
    """Remove cgroups and temp dirs whose owning Nexus process is gone.

    Returns:
        How many cgroups and temp dirs were removed.
    """
    cgroups = dirs = 0
    for parent in cgroup_parents():
        with contextlib.suppress(OSError):
            for entry in os.scandir(parent):
                m = _CGROUP_RE.fullmatch(entry.name)
                if m and entry.is_dir(follow_symlinks=False) and _owner_gone(*m.groups()):
                    remove_cgroup(Path(entry.path), v2=parent.name == "nexus.sandbox")
                    cgroups += not os.path.exists(entry.path)
    me = os.geteuid()
    with contextlib.suppress(OSError):
        for entry in os.scandir(tempfile.gettempdir()):
            m = _TMP_RE.match(entry.name)
            if not m or not _owner_gone(*m.groups()):
                continue
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode) and st.st_uid == me:  # never another user's
                    shutil.rmtree(entry.path, ignore_errors=True)
                    dirs += not os.path.lexists(entry.path)
    return cgroups, dirs


_reaped: set[int] = set()
_reap_lock = threading.Lock()


def reap_leftovers_once() -> None:
    """:func:`reap_leftovers` at the first sandbox use of this process (cheap after)."""
    pid = os.getpid()
    if pid in _reaped:
        return
    with _reap_lock:
        if pid not in _reaped:
            with contextlib.suppress(OSError):
                reap_leftovers()
            _reaped.add(pid)
