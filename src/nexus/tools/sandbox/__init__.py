"""The process sandbox: run one command under an :class:`ExecProfile`, deny by default.

:func:`run_sandboxed` is the only entry point. Layers, outside in:

1. **bubblewrap** (``bwrap``) gives the call new user, PID, network, IPC, UTS
   and cgroup namespaces, ``--die-with-parent`` and ``--new-session``, and a
   file system built from nothing: a read-only root holding only ``/usr``, the
   ``/bin``/``/lib*`` links, the few ``/etc`` files the dynamic linker needs,
   synthetic ``passwd``/``group``/``hosts``, the Python interpreter (read-only),
   a fresh ``/proc``, a read-only minimal ``/dev`` (``null``, ``zero``,
   ``urandom``, ``tty``... and a private ``/dev/shm``), a private size-capped
   ``/tmp``, and the workspace bound writable at its own path (also the
   working directory). No ``/etc/shadow``, ``/root``, ``/home``, ``/sys`` or
   host ``/tmp``; the kernel-wide entries of ``/proc`` are read-only. The
   command runs as uid 1000 inside, mapped to an unprivileged host uid --
   never host root (below) -- with no capabilities and ``no_new_privs``. The
   environment is cleared; the command gets only the variables we set.
   Trusted paths (:mod:`nexus.security.trusted`) inside the writable binds are
   bound read-only over them, after them; absent ones are held by placeholders.
2. **A cgroup** (when this process may create one -- as root, or with a
   delegated cgroup) caps the processes and memory of the whole call and tells
   us exactly when a cap was hit.
3. **The shim** (:mod:`nexus.tools.sandbox._shim`) is the sandbox's PID 1 (``bwrap
   --as-pid-1``): it sets rlimits, forks the command under a seccomp filter
   (compiled here with ``pyseccomp``) and stays as a non-dumpable init. The
   filter refuses dangerous system calls (ptrace, mount, unshare, keyctl, bpf,
   io_uring, ... and setting setuid/setgid bits, since files written to the
   workspace belong to Nexus's uid on the host) with ``EPERM``; the init
   *reports* each one, so every refusal is recorded as a denial.

**The launcher** (:mod:`nexus.tools.sandbox._launch`) starts every call. When Nexus
is root it makes the call's mounts in a private mount namespace (idmapped
clones of root-owned writable paths, read-only clones of what the sandbox uid
cannot reach; :mod:`nexus.tools.sandbox._confine` plans them), drops to the sandbox
uid, then -- as root or not -- arms ``PR_SET_PDEATHSIG`` and execs bwrap, so
nothing outlives Nexus. It is not a new interpreter per call: each process
starts it once as a launch server and forks it per call
(:mod:`nexus.tools.sandbox._zygote`); the server kills what is left of a call's
process group and exits with Nexus. Cgroups and temp dirs are named after their owner's pid
and start time; the first call of each process reaps those of dead owners.

**Network.** ``network = "none"``: the namespace has only a loopback device,
and creating ``AF_INET``/``AF_INET6`` sockets is refused by seccomp (and
recorded). With an allow-list, the namespace still has no route out: the only
way out is an HTTP proxy (``http_proxy``/``https_proxy`` point at
``127.0.0.1:3128`` inside, forwarded by the shim's init to a Unix socket served
here) that accepts ``CONNECT host:port`` and absolute-form HTTP requests only
for allow-listed ``host:port`` pairs and records every refusal. So the
allow-list is *enforced*, fail-closed, at the cost that only proxy-aware
clients (curl, pip, httpx, requests, urllib, git over https) get out; raw
sockets to listed hosts do not. Names are resolved by the proxy, on the host.

**The ``rlimits`` fallback** (opt-in, ``profile.sandbox = "rlimits"``; refused
as root, which it could not drop) runs the shim in a new session without
namespaces: rlimits, seccomp (including the ``AF_INET`` refusal) and the cgroup
still apply, but the file system and the other processes of the user are *not*
isolated. Every result says so. It
refuses allow-lists (they need a network namespace to be enforceable).

**Disk.** Each file is capped by ``RLIMIT_FSIZE`` (``max_file_mb``); what a
call adds to its writable paths in total (``max_write_mb``) is watched from
outside and checked after the call by :mod:`nexus.tools.sandbox._quota`. Either
breach is a ``quota`` denial.

Limits are detected as well as the kernel lets us: our own clock (wall time)
and output cap, signals (``SIGXCPU``, ``SIGXFSZ``, ``SIGKILL`` after the CPU
budget), cgroup event counters (processes, OOM kills), then the usual error
messages on stderr (``MemoryError``, ``fork: Resource temporarily
unavailable``...). The last are hints: a command can print them on purpose.

This module is larger than the usual 400 lines (about 1,000) because the
sandbox, its cgroup and its egress proxy are one mechanism that must be read
together, and this change was confined to one module; ``_Cgroup`` and
``_EgressProxy`` are self-contained and are the natural first split
(``_cgroup.py``, ``_egress.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import marshal
import os
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from nexus.domain.errors import InfrastructureError, PolicyDenied, UserError
from nexus.security.trusted import TrustedPaths, trusted_paths
from nexus.tools.profile import ExecProfile, SandboxKind
from nexus.tools.sandbox import _confine, _zygote
from nexus.tools.sandbox._confine import (
    DEFAULT_SANDBOX_UID,
    SANDBOX_UID_ENV,
    SandboxUnavailable,
)
from nexus.tools.sandbox._quota import DiskQuota

#: The bubblewrap executable; a test may point it elsewhere.
BWRAP = "bwrap"

#: This interpreter, by a path that also exists inside the sandbox (``..`` in
#: ``sys.executable`` would not; symlinks are kept, so a venv stays a venv).
PYTHON = os.path.normpath(os.path.abspath(sys.executable))

#: System calls refused (``EPERM``) and recorded, on top of namespace creation
#: by ``clone`` and, with ``network = "none"``, ``AF_INET``/``AF_INET6`` sockets.
DENIED_SYSCALLS = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "mount",
    "umount2",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "open_by_handle_at",
)

#: Calls refused only when they would set a setuid/setgid bit (argument index of
#: the mode): files the sandbox creates belong to Nexus's uid on the host.
SETID_CALLS = {
    "chmod": 1,
    "fchmod": 1,
    "fchmodat": 2,
    "fchmodat2": 2,
    "creat": 1,
    "mknod": 1,
    "mknodat": 2,
    "open": 2,
    "openat": 3,
}
_S_ISUID, _S_ISGID, _O_CREAT = 0o4000, 0o2000, 0o100

#: CLONE_NEWNS, NEWUTS, NEWIPC, NEWUSER, NEWCGROUP, NEWPID, NEWNET, NEWTIME
_CLONE_NEW = (0x20000, 0x4000000, 0x8000000, 0x10000000, 0x2000000, 0x20000000, 0x40000000, 0x80)
_AF_INET, _AF_INET6 = 2, 10
_ENOSYS = 38
_SANDBOX_UID = 1000
#: why a placeholder could not be made where a trusted path is missing
_CANNOT_CREATE = (errno.EACCES, errno.EPERM, errno.EROFS)
_PROXY_PORT = 3128
_PROXY_SOCKET = "/run/nexus/egress.sock"
_MiB = 1 << 20
_SHIM = Path(__file__).with_name("_shim.py")

__all__ = [
    "BWRAP",
    "DEFAULT_SANDBOX_UID",
    "DENIED_SYSCALLS",
    "PYTHON",
    "SANDBOX_UID_ENV",
    "SETID_CALLS",
    "SandboxDenied",
    "SandboxResult",
    "SandboxUnavailable",
    "run_sandboxed",
]
_SIGXCPU, _SIGXFSZ, _SIGKILL = 128 + signal.SIGXCPU, 128 + signal.SIGXFSZ, 128 + signal.SIGKILL
_HINTS = {
    "memory": (b"MemoryError", b"Cannot allocate memory", b"memory exhausted", b"Out of memory"),
    "processes": (b"fork: Resource temporarily unavailable", b"Cannot fork", b"can't fork"),
    "file_size": (b"File too large",),
    "open_files": (b"Too many open files",),
}
_RLIMITS_WARNING = (
    "sandbox 'rlimits': no namespaces -- rlimits and seccomp only; the file system, "
    "other processes and abstract sockets of this user are NOT isolated"
)


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """What one sandboxed call did.

    Attributes:
        exit_code: the command's status; ``128 + n`` when killed by signal ``n``.
        stdout: at most ``max_output_bytes`` of standard output.
        stderr: at most ``max_output_bytes`` of standard error.
        truncated: whether an output stream was cut (and the call killed).
        limits_hit: ``wall_time``, ``cpu``, ``memory``, ``output``,
            ``processes``, ``file_size``, ``disk_quota`` or ``open_files``.
        denials: refusals, each ``{"reason", "detail"}``; reason is
            ``seccomp``, ``network`` or ``quota`` (a file past ``max_file_mb``,
            or the call past ``max_write_mb``).
        sandbox: ``"bwrap"``, or ``"rlimits"`` for the weaker fallback.
        duration_ms: wall time of the whole call.
        warnings: what was not enforced, e.g. the rlimits fallback.
    """

    exit_code: int
    stdout: bytes
    stderr: bytes
    truncated: bool
    limits_hit: list[str]
    denials: list[dict[str, str]]
    sandbox: SandboxKind
    duration_ms: int
    warnings: list[str] = field(default_factory=list)


class SandboxDenied(PolicyDenied):
    """The sandbox refused something the command tried; ``details`` says what."""

    def __init__(self, message: str, *, details: dict[str, Any]) -> None:
        super().__init__(message, retryable=False)
        self.details = details

    def to_data(self) -> dict[str, object]:
        data = super().to_data()
        data["details"] = self.details
        return data


# -- the one entry point ----------------------------------------------------------------


async def run_sandboxed(
    argv: Sequence[str],
    *,
    profile: ExecProfile,
    workspace: Path,
    env: Mapping[str, str],
    stdin: bytes | None = None,
    trusted: TrustedPaths | None = None,
) -> SandboxResult:
    """Run ``argv`` confined by ``profile``, with ``workspace`` as the writable cwd.

    Args:
        argv: the command; ``argv[0]`` is looked up on the sandbox's ``PATH``.
        profile: what the call may do.
        workspace: the run's workspace (must exist); ``$WORKSPACE`` in paths.
        env: variables set by Nexus for this call (always passed in). Host
            variables are passed only when named in ``profile.env``.
        stdin: bytes for standard input; ``None`` gives ``/dev/null``.
        trusted: what Nexus trusts (default: :func:`trusted_paths` of this
            process); every trusted path inside a writable path is bound
            read-only over it, and one that does not exist cannot be created.

    Returns:
        The result; a non-zero exit is a result, not an error.

    Raises:
        PolicyDenied: the sandbox cannot be applied here (no usable bubblewrap
            and no opt-in to ``rlimits``, no seccomp, or an allow-list under
            ``rlimits``, or ``rlimits`` as root), or idmapped mounts are
            unsupported where Nexus runs as root.
        UserError: the workspace or a write path does not exist.
        InfrastructureError: bubblewrap failed to set the sandbox up.

    Example:
        >>> result = await run_sandboxed(  # doctest: +SKIP
        ...     ["/bin/sh", "-c", "echo hi"], profile=SHELL_PROFILE,
        ...     workspace=Path("ws"), env={})
    """
    if not argv:
        raise UserError("run_sandboxed: empty command")
    kind = await _choose_sandbox(profile)
    if kind == "rlimits" and profile.network != "none":
        raise PolicyDenied(
            "a network allow-list needs the bwrap sandbox; the 'rlimits' fallback "
            "can only refuse all network access",
            retryable=False,
        )
    if kind == "rlimits" and os.geteuid() == 0:
        raise SandboxUnavailable(
            "the 'rlimits' fallback cannot run tool code as root (it has no user "
            "namespace to drop to an unprivileged uid in): install bubblewrap "
            "(scripts/system-deps.sh) or run Nexus as an ordinary user",
            retryable=False,
        )
    _seccomp_filter(profile.network == "none")  # refuse early when seccomp is missing
    await asyncio.to_thread(_confine.reap_leftovers_once)
    call = _Call(profile, kind, workspace, env, trusted)
    try:
        return await call.run(list(argv), stdin)
    finally:
        await asyncio.shield(call.aclose())


# -- choosing the sandbox ---------------------------------------------------------------

_bwrap_checked: dict[str, str | None] = {}


async def _choose_sandbox(profile: ExecProfile) -> SandboxKind:
    problem = await _bwrap_problem()
    if problem is None:
        return "bwrap"
    if profile.sandbox == "rlimits":
        return "rlimits"
    raise SandboxUnavailable(
        f"the process sandbox cannot run: {problem}. Install bubblewrap "
        "(scripts/system-deps.sh) and allow unprivileged user namespaces, or opt in "
        "to the weaker fallback with profile sandbox = 'rlimits'",
        retryable=False,
    )


async def _bwrap_problem() -> str | None:
    """Why bubblewrap cannot sandbox here, or None; probed once per executable."""
    exe = shutil.which(BWRAP)
    if exe is None:
        return f"{BWRAP!r} is not installed"
    if exe not in _bwrap_checked:
        true = shutil.which("true") or "/bin/true"
        # every option a call uses that older bubblewraps lack, so they fail here;
        # as the uid calls will run as (through the launcher, as calls do)
        uid = _confine.sandbox_uid() if os.geteuid() == 0 else os.getuid()
        gid = uid if os.geteuid() == 0 else os.getgid()
        # through the launch server like every call (see _zygote.py): a bwrap killed
        # in set-up must not leave its child behind
        probe = [exe, *_NAMESPACES, "--as-pid-1", "--clearenv", "--ro-bind", "/", "/"]
        probe += ["--size", str(_MiB), "--tmpfs", "/tmp", true]
        err_r, err_w = os.pipe()
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            proc = await _zygote.spawn(
                [*_confine.launch_args(uid, gid, -1, -1, []), *probe],
                stdin=devnull,
                stdout=devnull,
                stderr=err_w,
                pass_fds=[],
                cwd=Path("/"),
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            )
        except BaseException:
            os.close(err_r)
            raise
        finally:
            os.close(err_w)
            os.close(devnull)
        err = b""
        try:
            returncode = await proc.wait()
            # bwrap's complaint is one short line: it is in the pipe by now
            os.set_blocking(err_r, False)
            with contextlib.suppress(BlockingIOError):
                err = os.read(err_r, 65536)
        finally:
            proc.close()
            os.close(err_r)
        message = err.decode(errors="replace").strip() or f"exit status {returncode}"
        _bwrap_checked[exe] = (
            None if returncode == 0 else f"bubblewrap (>= 0.8 needed) fails: {message}"
        )
    return _bwrap_checked[exe]


#: Entries of /proc that are not per-process and could be written: bound read-only.
_PROC_COVERED = ("sys", "sysrq-trigger", "irq", "bus", "fs", "acpi", "driver", "sysvipc", "tty")

_NAMESPACES = (
    "--unshare-user",
    "--unshare-pid",
    "--unshare-net",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--disable-userns",
)


def _environment(
    profile: ExecProfile, ws: Path, explicit: Mapping[str, str], kind: SandboxKind
) -> dict[str, str]:
    env = {"LANG": "C.UTF-8"}
    env.update({n: os.environ[n] for n in profile.env if n in os.environ})
    env.update(explicit)
    env.update(PATH="/usr/local/bin:/usr/bin:/bin", HOME=str(ws), TMPDIR="/tmp", NEXUS_SANDBOX=kind)
    if profile.network != "none":
        proxy = f"http://127.0.0.1:{_PROXY_PORT}"
        for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            env[name] = proxy
        env["no_proxy"] = env["NO_PROXY"] = ""
    return env


# -- the seccomp filter -----------------------------------------------------------------


@lru_cache(maxsize=4)
def _seccomp_filter(deny_inet: bool) -> tuple[bytes, dict[int, str], int]:
    """The BPF program, syscall names by number, and ``seccomp``'s own number."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as exc:  # pyseccomp raises if libseccomp is missing
        raise SandboxUnavailable(
            f"seccomp is unavailable ({exc}); install libseccomp2 (scripts/system-deps.sh)",
            retryable=False,
        ) from exc
    arch = sc.system_arch()
    flt = sc.SyscallFilter(sc.ALLOW)
    names: dict[int, str] = {}

    def deny(name: str, *args: Any) -> None:
        nr = sc.resolve_syscall(arch, name)
        if nr >= 0:  # not every call exists on every architecture
            flt.add_rule(sc.NOTIFY, name, *args)
            names[int(nr)] = name

    for name in DENIED_SYSCALLS:
        deny(name)
    for flag in _CLONE_NEW:
        deny("clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    for name, mode in SETID_CALLS.items():
        for bit in (_S_ISUID, _S_ISGID):
            if name in ("open", "openat"):  # the mode only counts with O_CREAT
                flags = sc.Arg(mode - 1, sc.MASKED_EQ, _O_CREAT, _O_CREAT)
                deny(name, flags, sc.Arg(mode, sc.MASKED_EQ, bit, bit))
            else:
                deny(name, sc.Arg(mode, sc.MASKED_EQ, bit, bit))
    # these pass flags and modes in memory, out of seccomp's sight: ENOSYS makes
    # glibc fall back to clone and openat, which are checked
    flt.add_rule(sc.ERRNO(_ENOSYS), "clone3")
    flt.add_rule(sc.ERRNO(_ENOSYS), "openat2")
    if deny_inet:
        deny("socket", sc.Arg(0, sc.EQ, _AF_INET))
        deny("socket", sc.Arg(0, sc.EQ, _AF_INET6))
    with tempfile.TemporaryFile() as fh:
        flt.export_bpf(fh)
        fh.seek(0)
        bpf = fh.read()
    return bpf, names, int(sc.resolve_syscall(arch, "seccomp"))


# -- one call ---------------------------------------------------------------------------


class _Call:
    """The state of one sandboxed call: set-up, run, detection, clean-up."""

    def __init__(
        self,
        profile: ExecProfile,
        kind: SandboxKind,
        workspace: Path,
        env: Mapping[str, str],
        trusted: TrustedPaths | None = None,
    ) -> None:
        self.profile = profile
        self.kind = kind
        self.ws = workspace
        self.trusted = trusted
        # the host uid/gid the command runs as (never root), set in _prepare
        self.uid, self.gid = os.getuid(), os.getgid()
        self.userns = -1  # the idmap user namespace (root only)
        self.mounts: list[str] = []  # the launcher's -m KIND SOURCE TARGET
        self.staged: dict[Path, Path] = {}  # host path -> where the launcher mounts it
        self.ancestors: list[Path] = []  # dirs made mount points so they cannot be renamed
        self.protected: list[Path] = []  # trusted paths bound read-only over writable ones
        self.hidden: list[Path] = []  # state directories covered by an empty read-only tmpfs
        self.placeholders: list[tuple[Path, int]] = []
        self.explicit_env = env
        self.env: dict[str, str] = {}
        self.control: dict[str, Any] = {}
        self.denials: list[dict[str, str]] = []
        self.warnings: list[str] = [_RLIMITS_WARNING] if kind == "rlimits" else []
        self.limits: list[str] = []
        self.tmp: Path | None = None
        self.cgroup: _Cgroup | None = None
        self.quota: DiskQuota | None = None
        self.proxy: _EgressProxy | None = None
        self.proc: _zygote.Launched | None = None
        self.killed = False
        self.fatal: str | None = None
        self.out = bytearray()
        self.err = bytearray()
        self.transports: list[asyncio.BaseTransport] = []
        self.loose: set[int] = set()  # our pipe ends not yet owned by a transport
        # the shim's init (and, with an allow-list, its proxy threads)
        self.nproc = profile.max_processes + (2 if profile.network == "none" else 6)

    # -- set-up ----------------------------------------------------------------------

    def _prepare(self) -> None:
        p = self.profile
        self.ws = self.ws.resolve()
        if not self.ws.is_dir():
            raise UserError(f"workspace {self.ws} does not exist")
        writable = p.resolve(p.write_paths, self.ws)
        for path in writable:
            if not path.exists():
                raise UserError(f"write path {path} does not exist")
        self.quota = DiskQuota({self.ws, *writable}, p.max_write_mb * _MiB)
        self.quota.start()
        self.env = _environment(p, self.ws, self.explicit_env, self.kind)
        self.cgroup = _Cgroup.create(self.nproc, p.memory_mb * _MiB)
        if self.cgroup is None and os.geteuid() == 0:
            self.warnings.append(
                "max_processes is not enforced: running as root without a writable cgroup"
            )
        self.uid, self.gid = _confine.sandbox_identity(self.ws)
        if self.kind == "bwrap":
            self.tmp = _confine.temp_dir()
            self._protect([self.ws, *writable])
            if os.geteuid() == 0:
                self._stage([self.ws, *writable])
            (self.tmp / "passwd").write_text(
                f"sandbox:x:{_SANDBOX_UID}:{_SANDBOX_UID}:sandbox:{self.ws}:/bin/sh\n"
                "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            )
            (self.tmp / "group").write_text(f"sandbox:x:{_SANDBOX_UID}:\nnogroup:x:65534:\n")
            (self.tmp / "hosts").write_text("127.0.0.1 localhost sandbox\n::1 localhost\n")
            for name in ("passwd", "group", "hosts"):  # whatever Nexus's umask is
                (self.tmp / name).chmod(0o644)
        else:
            # without a user namespace RLIMIT_NPROC counts every process of the user
            self.nproc += _processes_of(self.uid)

    def _protect(self, writable: list[Path]) -> None:
        """Plan the read-only binds of trusted paths inside the writable ones.

        Each existing trusted path is bound read-only over itself after the
        writable binds; one that does not exist gets a placeholder at its first
        missing component (bound read-only too, so nothing can be created
        there). The directories between a writable root and a protected path
        are bound onto themselves, so they cannot be renamed away with the
        protection (a mount point cannot be renamed or removed).
        """
        trusted = self.trusted if self.trusted is not None else trusted_paths()
        for path in trusted.within(writable):
            root = next((r for r in writable if _within(path, r)), None)
            if root is None or path == root:
                continue
            # the first component that does not exist, or the path itself
            target = root
            for part in path.relative_to(root).parts:
                target = target / part
                if not os.path.lexists(target):
                    break
                if os.path.islink(target):
                    break  # bwrap binds over what it points to
            if os.path.lexists(target) and not os.path.isdir(target.parent):
                continue
            # a placeholder another call made is joined, so its end does not expose us
            if not os.path.lexists(target) or _confine.is_placeholder(os.lstat(target)):
                try:
                    fd = _confine.hold_placeholder(target)
                except OSError as exc:
                    if exc.errno not in _CANNOT_CREATE:
                        raise
                    # we may not create it here, so neither may the call (same
                    # uid, or a read-only file system): nothing to hold
                    continue
                if fd is not None:
                    self.placeholders.append((target, fd))
            for anc in reversed(target.parents):
                if _within(anc, root) and anc != root and anc not in self.ancestors:
                    self.ancestors.append(anc)
            hide = target == path and trusted.hides(path) and not os.path.islink(target)
            if hide and os.path.isdir(target):
                if target not in self.hidden:  # the audit key, the log: not even readable
                    self.hidden.append(target)
                continue
            if target not in self.protected:
                self.protected.append(target)

    def _stage(self, writable: list[Path]) -> None:
        """As root: plan the launcher's mounts, so the unprivileged uid can reach each source.

        Writable roots and read paths owned by root are idmapped (root's files
        appear as the sandbox uid's; what it creates is root's on disk); the
        interpreter, the shim and other read-only sources the uid cannot reach
        (a prefix under ``/root``) are cloned read-only.
        """
        assert self.tmp is not None
        self.tmp.chmod(0o711)  # the uid reads its passwd/group/hosts here
        stage = self.tmp / "m"
        stage.mkdir(mode=0o755)
        stage.chmod(0o755)  # mkdir's mode is cut by the umask (077: the uid could not pass)

        def add(path: Path, kind: str) -> None:
            if path in self.staged:
                return
            if kind.startswith("idmap") and os.stat(path).st_uid != 0:
                kind = kind.replace("idmap", "rw") if kind == "idmap" else "ro"
            if kind.startswith("idmap") and self.userns < 0:
                self.userns = _confine.idmap_userns(self.uid, self.gid)
            dst = stage / str(len(self.staged))
            if path.is_dir():
                dst.mkdir()
            else:
                dst.touch()
            self.staged[path] = dst
            self.mounts += ["-m", kind, str(path), str(dst)]

        for path in writable:
            add(path, "idmap")
        p = self.profile
        for path in p.resolve(p.read_paths, self.ws):
            if path.exists():
                add(path, "idmap-ro")
        for path in [*self._system_sources(), _SHIM]:
            if not _confine.reachable(path, self.uid, self.gid):
                add(path, "ro")

    def _system_sources(self) -> list[Path]:
        """The interpreter's directories bound read-only into the sandbox."""
        prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
        bound = [Path("/usr")]
        out = []
        for prefix in sorted(prefixes):
            if not _within(Path(prefix), Path("/usr")):
                out.append(Path(prefix))
                bound.append(Path(prefix))
        python_dir = Path(PYTHON).parent
        if not any(_within(python_dir, b) for b in bound):
            out.append(python_dir)
        return out

    def _src(self, path: Path) -> str:
        """Where bwrap finds ``path``: through the launcher's staged mount when there is one."""
        for root, staged in self.staged.items():
            if _within(path, root):
                return str(staged / path.relative_to(root))
        return str(path)

    def _rlimits(self) -> dict[str, list[int]]:
        p = self.profile
        return {
            "cpu": [p.cpu_seconds, p.cpu_seconds + 1],
            "as": [p.memory_mb * _MiB] * 2,
            "fsize": [p.max_file_mb * _MiB] * 2,
            "nofile": [p.max_open_files] * 2,
            "nproc": [self.nproc] * 2,
            "core": [0, 0],
        }

    def _command(self, argv: list[str], report_fd: int, control_fd: int, info_fd: int) -> list[str]:
        bpf, names, seccomp_nr = _seccomp_filter(self.profile.network == "none")
        # the bulk goes over the control pipe: argv is world-readable in /proc
        self.control = {
            "env": self.env,
            "rlimits": self._rlimits(),
            "bpf": bpf,
            "names": names,
            "seccomp_nr": seccomp_nr,
        }
        if self.proxy is not None:
            self.control["proxy"] = {"port": _PROXY_PORT, "socket": _PROXY_SOCKET}
        fds = [str(report_fd), str(control_fd)]
        shim = [PYTHON, "-I", "-S", "-B", str(_SHIM), *fds, "--", *argv]
        # for the launch server: it adds itself as the launcher's parent
        launch = _confine.launch_args(self.uid, self.gid, self.userns, report_fd, self.mounts)
        if self.kind == "rlimits":
            return [*launch, *shim]
        return [*launch, *self._bwrap_args(), "--info-fd", str(info_fd), "--", *shim]

    def _bwrap_args(self) -> list[str]:
        p, ws, tmp = self.profile, self.ws, self.tmp
        assert tmp is not None
        exe = shutil.which(BWRAP) or BWRAP
        # --as-pid-1: the shim is the namespace's init (see _shim.py for why)
        args = [exe, *_NAMESPACES, "--as-pid-1", "--die-with-parent", "--new-session"]
        args += ["--uid", str(_SANDBOX_UID), "--gid", str(_SANDBOX_UID)]
        args += ["--hostname", "sandbox", "--clearenv", "--cap-drop", "ALL"]
        args += ["--ro-bind", "/usr", "/usr"]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        etc = ["ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime"]
        if p.network != "none":  # TLS clients need the CA bundle
            etc += ["ssl", "ca-certificates", "pki", "crypto-policies"]
        for name in etc:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        for name in ("passwd", "group", "hosts"):
            args += ["--ro-bind", str(tmp / name), f"/etc/{name}"]
        # the private /tmp first: binds below may live under the host's /tmp
        # (a checkout, a venv or a workspace there) and must not be hidden by it
        size = str(p.max_file_mb * _MiB)
        args += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm"]
        # kernel-wide settings under /proc read-only (a uid that is not host root
        # cannot write them anyway; this is the second wall)
        for name in _PROC_COVERED:
            args += ["--ro-bind-try", f"/proc/{name}", f"/proc/{name}"]
        args += ["--size", size, "--tmpfs", "/tmp"]
        for path in [*self._system_sources(), _SHIM]:
            args += ["--ro-bind", self._src(path), str(path)]
        for path in p.resolve(p.read_paths, ws):
            args += ["--ro-bind-try", self._src(path), str(path)]
        for path in p.resolve(p.write_paths, ws):
            if path != ws:
                args += ["--bind", self._src(path), str(path)]
        args += ["--bind", self._src(ws), str(ws)]
        # what Nexus trusts, read-only over the writable binds (after them)
        for path in self.ancestors:
            args += ["--bind", self._src(path), str(path)]
        for path in self.protected:
            args += ["--ro-bind", self._src(path), str(path)]
        for path in self.hidden:
            args += ["--perms", "0555", "--tmpfs", str(path), "--remount-ro", str(path)]
        if self.proxy is not None:
            args += ["--ro-bind", str(tmp / "egress.sock"), _PROXY_SOCKET]
        args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", str(ws)]
        return args

    # -- running ---------------------------------------------------------------------

    async def run(self, argv: list[str], stdin: bytes | None) -> SandboxResult:
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._prepare)
        if self.profile.network != "none":
            assert self.tmp is not None
            self.proxy = _EgressProxy(self.profile.network, self.denials)
            await self.proxy.start(self.tmp / "egress.sock")
        # our own pipes rather than asyncio's: proc.wait() then waits for the
        # process only, not for pipes a leftover background process may hold
        report_r, report_w = os.pipe()
        control_r, control_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe() if stdin is not None else (-1, -1)
        # bwrap tells the host pid of the sandbox's PID 1 here
        info_r, info_w = os.pipe() if self.kind == "bwrap" else (-1, -1)
        child_ends = [report_w, control_r, out_w, err_w, in_r, info_w]
        ours = [report_r, control_w, out_r, err_r, in_w, info_r]
        started = loop.time()
        try:
            if stdin is None:
                in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                child_ends[4] = in_r
            # a fork of this process's launch server (see _zygote.py), in a new session
            self.proc = await _zygote.spawn(
                self._command(argv, report_w, control_r, info_w),
                stdin=in_r,
                stdout=out_w,
                stderr=err_w,
                pass_fds=[fd for fd in (report_w, control_r, info_w, self.userns) if fd >= 0],
                cwd=self.ws,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            )
        except OSError as exc:
            _close(ours)
            raise InfrastructureError(f"cannot start the sandbox: {exc}") from exc
        finally:
            _close(child_ends)
        self.loose = {fd for fd in ours if fd >= 0}
        code, ready = 0, False
        attach: asyncio.Task[None] | None = None
        assert self.quota is not None
        watch = asyncio.create_task(self.quota.watch(self._over_quota))
        try:
            async with asyncio.timeout(self.profile.wall_seconds):
                if self.cgroup is not None:
                    # moving a process costs an RCU grace period (~10 ms on cgroup
                    # v1): do it while bwrap and Python start, not after
                    attach = asyncio.create_task(self._attach(info_r))
                reports = await self._reader(report_r)
                out, err = await self._reader(out_r), await self._reader(err_r)
                ready = await self._handshake(reports, control_w, attach)
                code = await self._collect(reports, out, err, stdin, in_w)
        except TimeoutError:
            self.limits.append("wall_time")
            self._kill()
            code = _status(await asyncio.shield(self.proc.wait()))
        except BaseException:
            self._kill()
            with contextlib.suppress(Exception):
                await asyncio.shield(self.proc.wait())
            raise
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
            if attach is not None and not attach.done():
                attach.cancel()
                await asyncio.gather(attach, return_exceptions=True)
            for transport in self.transports:
                transport.close()
            _close(list(self.loose))
        duration_ms = round((loop.time() - started) * 1000)
        if self.fatal is not None:
            raise SandboxUnavailable(f"sandbox: {self.fatal}", retryable=False)
        if not ready and not self.limits:
            raise InfrastructureError(
                f"the sandbox failed to start (exit {code}): "
                + self.err.decode(errors="replace").strip()[-2000:]
            )
        self._detect(code, bytes(self.err), duration_ms)
        if "disk_quota" not in self.limits:  # the watcher may have missed the last burst
            grown = await asyncio.to_thread(self.quota.growth)
            if grown > self.quota.limit:
                self._over_quota(grown)
        if "file_size" in self.limits:
            self.denials.append(
                {
                    "reason": "quota",
                    "detail": f"a file grew past the profile's max_file_mb of "
                    f"{self.profile.max_file_mb} MiB (RLIMIT_FSIZE)",
                }
            )
        cap = self.profile.max_output_bytes
        return SandboxResult(
            exit_code=code,
            stdout=bytes(self.out[:cap]),
            stderr=bytes(self.err[:cap]),
            truncated="output" in self.limits,
            limits_hit=self.limits,
            denials=self.denials,
            sandbox=self.kind,
            duration_ms=duration_ms,
            warnings=self.warnings,
        )

    async def _reader(self, fd: int) -> asyncio.StreamReader:
        """A stream over our end of a pipe; its transport is closed at the end."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 16)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
        )
        self.loose.discard(fd)
        self.transports.append(transport)
        return reader

    async def _writer(self, fd: int, data: bytes) -> None:
        """Write ``data`` to our end of a pipe without blocking the loop, then close it."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(fd, "wb", buffering=0)
        )
        self.loose.discard(fd)
        self.transports.append(transport)
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
        attach: asyncio.Task[None] | None,
    ) -> bool:
        """Wait for the shim and its move into the cgroup, then send the control message.

        The shim forks nothing before it has the control message, so everything
        the command starts is born in the cgroup.
        """
        assert self.proc is not None
        line = await reports.readline()
        if not line:
            return False  # bwrap or python never got to the shim
        self._event(line)
        if attach is not None:
            await attach
        # marshal: the shim reads it with the same interpreter, without importing json
        await self._writer(control_w, marshal.dumps(self.control))
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
            asyncio.create_task(self._read_capped(out, self.out)),
            asyncio.create_task(self._read_capped(err, self.err)),
            asyncio.create_task(self._read_reports(reports)),
        ]
        try:
            if stdin is not None:
                await self._writer(in_w, stdin)
            code = _status(await proc.wait())
            self._kill()  # whatever the command left behind
            # the pipes close once every process holding them is gone
            await asyncio.wait(tasks, timeout=2)
            return code
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _read_capped(self, stream: asyncio.StreamReader, buf: bytearray) -> None:
        cap = self.profile.max_output_bytes
        while chunk := await stream.read(65536):
            buf += chunk[: cap + 1 - len(buf)]
            if len(buf) > cap:
                if "output" not in self.limits:
                    self.limits.append("output")
                self._kill()
                return

    async def _read_reports(self, reports: asyncio.StreamReader) -> None:
        while line := await reports.readline():
            self._event(line)

    def _event(self, line: bytes) -> None:
        """One report line from the shim: ``kind<TAB>field...``."""
        kind, *fields = line.decode(errors="replace").rstrip("\n").split("\t")
        if kind == "denied" and len(fields) == 2:
            syscall, detail = fields
            reason = "network" if syscall == "socket" else "seccomp"
            if reason == "network":
                detail += ": the profile allows no network"
            elif syscall in SETID_CALLS:
                detail += ": setting a setuid/setgid bit"
            self.denials.append({"reason": reason, "detail": detail})
        elif kind == "warning" and fields:
            self.warnings.append(fields[0])
        elif kind == "error" and fields and fields[0].startswith("cannot confine"):
            self.fatal = fields[0]

    def _over_quota(self, grown: int) -> None:
        """The call added more than ``max_write_mb``: record it and stop the call."""
        self.limits.append("disk_quota")
        self.denials.append(
            {
                "reason": "quota",
                "detail": f"the call added {grown / _MiB:.1f} MiB to its writable paths, "
                f"over the profile's max_write_mb of {self.profile.max_write_mb} MiB",
            }
        )
        self._kill()

    def _kill(self) -> None:
        """Kill the whole call: bwrap's group (its init dies with it) and the cgroup."""
        if self.proc is not None and self.proc.returncode is None:
            self.killed = True
        if self.proc is not None:
            self.proc.kill()  # by the launch server, which knows whether it is reaped
        if self.cgroup is not None:
            self.cgroup.kill()

    # -- after -----------------------------------------------------------------------

    def _detect(self, code: int, err: bytes, duration_ms: int) -> None:
        p, hit = self.profile, self.limits
        found: list[str] = []
        if self.cgroup is not None:
            found += self.cgroup.limits_hit()
        if code == _SIGXCPU or (
            code == _SIGKILL
            and "memory" not in found
            and not self.killed
            and duration_ms >= p.cpu_seconds * 1000  # the hard CPU limit is SIGKILL
        ):
            found.append("cpu")
        if code == _SIGXFSZ:
            found.append("file_size")
        if code != 0:
            for limit, needles in _HINTS.items():
                if any(n in err for n in needles):
                    found.append(limit)
        for limit in found:
            if limit not in hit:
                hit.append(limit)

    def cleanup(self) -> None:
        """Release the cgroup, the proxy socket directory and leftovers (blocking)."""
        if self.cgroup is not None:
            self.cgroup.remove()
        for path, fd in self.placeholders:
            with contextlib.suppress(OSError):
                _confine.release_placeholder(path, fd)
        self.placeholders = []
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    async def aclose(self) -> None:
        """Stop the proxy, then release everything else in a thread."""
        if self.proxy is not None:
            await self.proxy.close()
        if self.proc is not None:
            self.proc.close()  # a launcher still running is killed by the server
        await asyncio.to_thread(self.cleanup)


# -- pipes ------------------------------------------------------------------------------


def _status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _close(fds: list[int]) -> None:
    for fd in fds:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


def _within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += 1
    return count


# -- cgroups ----------------------------------------------------------------------------


class _Cgroup:
    """A throw-away cgroup capping the processes and memory of one call.

    Uses cgroup v2 when the unified hierarchy delegates ``pids`` to us, else the
    v1 ``pids`` and ``memory`` controllers. Every step may fail (no permission,
    read-only cgroupfs); then the call runs without one and says so.
    """

    def __init__(self, dirs: dict[str, Path], v2: bool) -> None:
        self.dirs = dirs
        self.v2 = v2

    @classmethod
    def create(cls, pids_max: int, memory_bytes: int) -> _Cgroup | None:
        # the owner's pid and start time: a later process reaps it once the owner is gone
        name = f"nexus-{_confine.owner_tag()}-{secrets.token_hex(4)}"
        try:
            return cls._create_v2(name, pids_max, memory_bytes) or cls._create_v1(
                name, pids_max, memory_bytes
            )
        except OSError:
            return None

    @classmethod
    def _create_v2(cls, name: str, pids_max: int, memory_bytes: int) -> _Cgroup | None:
        root = Path("/sys/fs/cgroup")
        if not (root / "cgroup.controllers").exists():
            return None
        parent = root / "nexus.sandbox"
        if not parent.exists():
            parent.mkdir()
            (parent / "cgroup.subtree_control").write_text("+pids +memory")
        if "pids" not in (parent / "cgroup.subtree_control").read_text().split():
            return None
        path = parent / name
        path.mkdir()
        (path / "pids.max").write_text(str(pids_max))
        with contextlib.suppress(OSError):
            (path / "memory.max").write_text(str(memory_bytes))
            (path / "memory.swap.max").write_text("0")
        return cls({"pids": path, "memory": path}, v2=True)

    @classmethod
    def _create_v1(cls, name: str, pids_max: int, memory_bytes: int) -> _Cgroup | None:
        own: dict[str, str] = {}
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, where = line.split(":", 2)
            for c in controllers.split(","):
                own[c] = where
        if "pids" not in own or not Path("/sys/fs/cgroup/pids/cgroup.procs").exists():
            return None
        dirs: dict[str, Path] = {}
        try:
            for controller in ("pids", "memory"):
                if controller in own:
                    path = Path("/sys/fs/cgroup", controller, own[controller].lstrip("/"), name)
                    path.mkdir()
                    dirs[controller] = path
            (dirs["pids"] / "pids.max").write_text(str(pids_max))
            if "memory" in dirs:
                (dirs["memory"] / "memory.limit_in_bytes").write_text(str(memory_bytes))
        except OSError:
            for made in dirs.values():
                with contextlib.suppress(OSError):
                    made.rmdir()
            return None
        return cls(dirs, v2=False)

    def add(self, pid: int) -> None:
        """Move ``pid`` into the cgroup (its future children are born there)."""
        for path in {*self.dirs.values()}:
            with contextlib.suppress(OSError):
                (path / "cgroup.procs").write_text(str(pid))

    def limits_hit(self) -> list[str]:
        hit = []
        with contextlib.suppress(OSError):
            events = _counters(self.dirs["pids"] / "pids.events")
            if events.get("max", 0) > 0:
                hit.append("processes")
        if "memory" in self.dirs:
            name = "memory.events" if self.v2 else "memory.oom_control"
            with contextlib.suppress(OSError):
                if _counters(self.dirs["memory"] / name).get("oom_kill", 0) > 0:
                    hit.append("memory")
        return hit

    def kill(self) -> None:
        for path in {*self.dirs.values()}:
            with contextlib.suppress(OSError):
                if self.v2:
                    (path / "cgroup.kill").write_text("1")
                    continue
                for pid in (path / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(int(pid), signal.SIGKILL)

    def remove(self) -> None:
        for path in {*self.dirs.values()}:
            _confine.remove_cgroup(path, self.v2)


def _counters(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


# -- the egress proxy -------------------------------------------------------------------


class _EgressProxy:
    """An allow-list HTTP proxy on a Unix socket, the sandbox's only way out."""

    def __init__(self, allowed: tuple[str, ...], denials: list[dict[str, str]]) -> None:
        self.allowed = {a.lower() for a in allowed}
        self.denials = denials
        self.server: asyncio.AbstractServer | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self, path: Path) -> None:
        self.server = await asyncio.start_unix_server(self._serve, path=str(path))
        os.chmod(path, 0o666)  # the sandbox's uid may differ from ours

    async def close(self) -> None:
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
