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
3. **The shim** (:mod:`._shim`) is the sandbox's PID 1 (``bwrap --as-pid-1``):
   it sets rlimits, forks the command under a seccomp filter (compiled on the
   host with ``pyseccomp``) and stays as a non-dumpable init. The filter
   refuses dangerous system calls (ptrace, mount, unshare, keyctl, bpf,
   io_uring, ... and setting setuid/setgid bits, since files written to the
   workspace belong to Nexus's uid on the host) with ``EPERM``; the init
   *reports* each one, so every refusal is recorded as a denial.

**The launcher** (:mod:`._launch`) starts every call. When Nexus is root it
makes the call's mounts in a private mount namespace (idmapped clones of
root-owned writable paths, read-only clones of what the sandbox uid cannot
reach; :mod:`._layout` plans them), drops to the sandbox uid, then -- as root
or not -- arms ``PR_SET_PDEATHSIG`` and execs bwrap, so nothing outlives
Nexus. It is not a new interpreter per call: each process starts it once as a
launch server and forks it per call (:mod:`._zygote`); the server kills what
is left of a call's process group and exits with Nexus. Cgroups and temp dirs
are named after their owner's pid and start time; the first call of each
process reaps those of dead owners.

**Network.** ``network = "none"``: the namespace has only a loopback device,
and creating ``AF_INET``/``AF_INET6`` sockets is refused by seccomp (and
recorded). With an allow-list, the namespace still has no route out: the only
way out is an HTTP proxy (``http_proxy``/``https_proxy`` point at
``127.0.0.1:3128`` inside, forwarded by the shim's init to a Unix socket
served on the host) that accepts ``CONNECT host:port`` and absolute-form HTTP
requests only for allow-listed ``host:port`` pairs and records every refusal. So the
allow-list is *enforced*, fail-closed, at the cost that only proxy-aware
clients (curl, pip, httpx, requests, urllib, git over https) get out; raw
sockets to listed hosts do not. Names are resolved by the proxy, on the host.

**The ``rlimits`` fallback** (opt-in, ``profile.sandbox = "rlimits"``: a project
sets it for a tool in ``nexus.toml``, ``[tools.shell] sandbox = "rlimits"``; refused
as root, which it could not drop) runs the shim in a new session without
namespaces: rlimits, seccomp (including the ``AF_INET`` refusal) and the cgroup
still apply, but the file system and the other processes of the user are *not*
isolated. Every result says so. It
refuses allow-lists (they need a network namespace to be enforceable).

**Disk.** Each file is capped by ``RLIMIT_FSIZE`` (``max_file_mb``); what a
call adds to its writable paths in total (``max_write_mb``) is watched from
outside and checked after the call by :mod:`._quota`. Either breach is a
``quota`` denial.

Limits are detected (:mod:`._outcome`) as well as the kernel lets us: our own clock (wall time)
and output cap, signals (``SIGXCPU``, ``SIGXFSZ``, ``SIGKILL`` after the CPU
budget), cgroup event counters (processes, OOM kills), then the usual error
messages on stderr (``MemoryError``, ``fork: Resource temporarily
unavailable``...). The last are hints: a command can print them on purpose.

The package, one concern per module:

* :mod:`._call` -- one call from set-up to clean-up, holding the parts below;
* :mod:`._layout` -- the call's file system: binds, trusted paths,
  placeholders, the mounts staged as root;
* :mod:`._command` -- the launcher, bwrap and shim command line and the
  control message;
* :mod:`._process` -- the process tree: pipes, the shim handshake, capped
  output, kills, the wall-time limit;
* :mod:`._outcome` -- what the call did and which limits it hit
  (:class:`SandboxResult`, :class:`SandboxDenied`);
* :mod:`._seccomp`, :mod:`._cgroup`, :mod:`._egress`, :mod:`._quota` -- the
  filter, the cgroup, the egress proxy, the disk quota;
* :mod:`._confine`, :mod:`._zygote` -- the sandbox uid, placeholders and
  leftovers; the host's side of the launch server;
* ``_launch.py``, ``_shim.py`` -- the launcher and the sandbox's init. They run
  by path (``python -I -S -B``), never imported, and import nothing of Nexus.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from nexus.domain.errors import PolicyDenied, UserError
from nexus.security.trusted import TrustedPaths
from nexus.tools.profile import ExecProfile, SandboxKind
from nexus.tools.sandbox import _confine, _zygote
from nexus.tools.sandbox._call import Call
from nexus.tools.sandbox._command import NAMESPACES
from nexus.tools.sandbox._confine import (
    DEFAULT_SANDBOX_UID,
    SANDBOX_UID_ENV,
    SandboxUnavailable,
    remove_stale_placeholders,
)
from nexus.tools.sandbox._layout import PYTHON
from nexus.tools.sandbox._outcome import SandboxDenied, SandboxResult
from nexus.tools.sandbox._seccomp import DENIED_SYSCALLS, SETID_CALLS, seccomp_filter

#: The bubblewrap executable; a test may point it elsewhere (it is read at each call).
BWRAP = "bwrap"
_MiB = 1 << 20

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
    "remove_stale_placeholders",
    "run_sandboxed",
]


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
        trusted: what Nexus trusts (default:
            :func:`~nexus.security.trusted.trusted_paths` of this
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
    seccomp_filter(profile.network == "none")  # refuse early when seccomp is missing
    await asyncio.to_thread(_confine.reap_leftovers_once)
    call = Call(profile, kind, workspace, env, trusted, shutil.which(BWRAP) or BWRAP)
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
        "(scripts/system-deps.sh) and allow unprivileged user namespaces; or, knowing it "
        "is weaker (rlimits, seccomp and the cgroup only: no file-system or process "
        "isolation, no network allow-list), opt the tool in to that fallback with "
        '[tools.shell] sandbox = "rlimits" in nexus.toml (or [tools.python]; see '
        "docs/sandbox.md)",
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
        probe = [exe, *NAMESPACES, "--as-pid-1", "--clearenv", "--ro-bind", "/", "/"]
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
