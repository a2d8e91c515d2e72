"""The command line of one sandboxed call: launcher, bubblewrap, shim, and what the shim is told.

A call runs ``launcher UID GID USERNS REPORT [-m ...] -- bwrap ... -- python
_shim.py REPORT CONTROL -- argv`` (under the ``rlimits`` fallback the bwrap
part is left out). :class:`CommandLine` renders it from the call's
:class:`~nexus.tools.sandbox._layout.Layout` and profile, and renders the
control message the shim reads before it starts the command: the
environment, the rlimits and the seccomp filter go over a pipe rather than in
argv, which every process can read in ``/proc``.
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nexus.tools.profile import ExecProfile, SandboxKind
from nexus.tools.sandbox import _confine
from nexus.tools.sandbox._egress import PROXY_PORT, PROXY_SOCKET
from nexus.tools.sandbox._layout import PYTHON, SANDBOX_UID, SHIM, Layout
from nexus.tools.sandbox._seccomp import seccomp_filter

#: The namespaces of every call (also what the bubblewrap probe checks).
NAMESPACES = (
    "--unshare-user",
    "--unshare-pid",
    "--unshare-net",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--disable-userns",
)

#: Entries of /proc that are not per-process and could be written: bound read-only.
_PROC_COVERED = ("sys", "sysrq-trigger", "irq", "bus", "fs", "acpi", "driver", "sysvipc", "tty")
_MiB = 1 << 20


def environment(
    profile: ExecProfile, ws: Path, explicit: Mapping[str, str], kind: SandboxKind
) -> dict[str, str]:
    """The command's environment: ours, the host variables ``profile.env`` names, ``explicit``."""
    env = {"LANG": "C.UTF-8"}
    env.update({n: os.environ[n] for n in profile.env if n in os.environ})
    env.update(explicit)
    env.update(PATH="/usr/local/bin:/usr/bin:/bin", HOME=str(ws), TMPDIR="/tmp", NEXUS_SANDBOX=kind)
    if profile.network != "none":
        proxy = f"http://127.0.0.1:{PROXY_PORT}"
        for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            env[name] = proxy
        env["no_proxy"] = env["NO_PROXY"] = ""
    return env


@dataclass(frozen=True, slots=True)
class CommandLine:
    """How one call is started, once its layout is built.

    Attributes:
        profile: what the call may do.
        kind: ``bwrap``, or ``rlimits`` for the fallback without namespaces.
        layout: the call's file system.
        env: the command's environment (see :func:`environment`).
        nproc: the call's ``RLIMIT_NPROC``.
        bwrap: the bubblewrap executable.
    """

    profile: ExecProfile
    kind: SandboxKind
    layout: Layout
    env: dict[str, str]
    nproc: int
    bwrap: str

    def control(self) -> bytes:
        """The control message, in ``marshal`` (the shim reads it without importing json)."""
        bpf, names, seccomp_nr = seccomp_filter(self.profile.network == "none")
        message: dict[str, object] = {
            "env": self.env,
            "rlimits": self.rlimits(),
            "bpf": bpf,
            "names": names,
            "seccomp_nr": seccomp_nr,
        }
        if self.profile.network != "none":
            message["proxy"] = {"port": PROXY_PORT, "socket": PROXY_SOCKET}
        return marshal.dumps(message)

    def rlimits(self) -> dict[str, list[int]]:
        """The rlimits the shim sets, inherited by everything the command starts."""
        p = self.profile
        return {
            "cpu": [p.cpu_seconds, p.cpu_seconds + 1],
            "as": [p.memory_mb * _MiB] * 2,
            "fsize": [p.max_file_mb * _MiB] * 2,
            "nofile": [p.max_open_files] * 2,
            "nproc": [self.nproc] * 2,
            "core": [0, 0],
        }

    def argv(self, argv: list[str], report_fd: int, control_fd: int, info_fd: int) -> list[str]:
        """The launcher's arguments for ``argv``, with the pipes the shim and bwrap use."""
        fds = [str(report_fd), str(control_fd)]
        shim = [PYTHON, "-I", "-S", "-B", str(SHIM), *fds, "--", *argv]
        # for the launch server: it adds itself as the launcher's parent
        layout = self.layout
        launch = _confine.launch_args(
            layout.uid, layout.gid, layout.userns, report_fd, layout.mounts
        )
        if self.kind == "rlimits":
            return [*launch, *shim]
        return [*launch, *self.bwrap_args(), "--info-fd", str(info_fd), "--", *shim]

    def bwrap_args(self) -> list[str]:
        """bubblewrap up to its ``--info-fd``: namespaces, identity, and every mount."""
        p, layout = self.profile, self.layout
        ws, tmp, src = layout.ws, layout.tmp, layout.src
        assert tmp is not None
        # --as-pid-1: the shim is the namespace's init (see _shim.py for why)
        args = [self.bwrap, *NAMESPACES, "--as-pid-1", "--die-with-parent", "--new-session"]
        args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
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
        for path in [*layout.system_sources(), SHIM]:
            args += ["--ro-bind", src(path), str(path)]
        for path in p.resolve(p.read_paths, ws):
            args += ["--ro-bind-try", src(path), str(path)]
        for path in p.resolve(p.write_paths, ws):
            if path != ws:
                args += ["--bind", src(path), str(path)]
        args += ["--bind", src(ws), str(ws)]
        # what Nexus trusts, read-only over the writable binds (after them)
        for path in layout.ancestors:
            args += ["--bind", src(path), str(path)]
        for path in layout.protected:
            args += ["--ro-bind", src(path), str(path)]
        for path in layout.hidden:
            args += ["--perms", "0555", "--tmpfs", str(path), "--remount-ro", str(path)]
        if p.network != "none":
            args += ["--ro-bind", str(tmp / "egress.sock"), PROXY_SOCKET]
        args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", str(ws)]
        return args
