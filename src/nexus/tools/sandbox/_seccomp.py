"""The seccomp filter of every sandboxed call: which system calls are refused and recorded.

The host compiles the filter with ``pyseccomp`` (:func:`seccomp_filter`) and
sends it to the shim as BPF; the shim loads it with a user-notification
listener, so each refused call is answered with ``EPERM`` *and* reported
(see :mod:`nexus.tools.sandbox._shim`). Refused:

* the calls in :data:`DENIED_SYSCALLS` (tracing other processes, mounts,
  namespaces, keyrings, BPF, io_uring, kernel modules...);
* ``clone`` with a ``CLONE_NEW*`` flag (a new namespace);
* the calls in :data:`SETID_CALLS` when they would set a setuid or setgid bit:
  files the sandbox writes belong to Nexus's uid on the host;
* with ``network = "none"``, ``socket(AF_INET | AF_INET6, ...)``.

``clone3`` and ``openat2`` pass their flags in memory, out of seccomp's sight:
they fail with ``ENOSYS``, so glibc falls back to ``clone`` and ``openat``,
which are checked.
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from typing import Any

from nexus.tools.sandbox._confine import SandboxUnavailable

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


@lru_cache(maxsize=4)
def seccomp_filter(deny_inet: bool) -> tuple[bytes, dict[int, str], int]:
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
