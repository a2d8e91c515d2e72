"""What one sandboxed call did: its output, the limits it hit, what the sandbox refused.

:class:`Outcome` is filled while the call runs -- capped output, the shim's
report lines, the egress proxy's and the quota watcher's refusals -- and,
once it is over, classifies what the kernel lets us see into ``limits_hit``:
our own clock (wall time) and output cap, signals (``SIGXCPU``, ``SIGXFSZ``,
``SIGKILL`` after the CPU budget), cgroup event counters (processes, OOM
kills), then the usual error messages on stderr (``MemoryError``, ``fork:
Resource temporarily unavailable``...). The last are hints: a command can
print them on purpose. :meth:`Outcome.finish` gives the call's
:class:`SandboxResult`.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any

from nexus.domain.errors import PolicyDenied
from nexus.tools.profile import ExecProfile, SandboxKind
from nexus.tools.sandbox._seccomp import SETID_CALLS

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
_MiB = 1 << 20


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


class Outcome:
    """The record of one call, kept as it runs and classified at its end.

    Args:
        profile: the call's profile (its output cap and limits).
        kind: the sandbox the call runs in.
    """

    def __init__(self, profile: ExecProfile, kind: SandboxKind) -> None:
        self.profile = profile
        self.kind = kind
        self.out = bytearray()
        self.err = bytearray()
        self.limits: list[str] = []
        self.denials: list[dict[str, str]] = []
        self.warnings: list[str] = [_RLIMITS_WARNING] if kind == "rlimits" else []
        #: the launcher or the shim could not confine the command
        self.fatal: str | None = None

    # -- while the call runs -----------------------------------------------------------

    def keep(self, buf: bytearray, chunk: bytes) -> bool:
        """Add ``chunk`` to ``buf`` up to the output cap; True once the cap is passed."""
        cap = self.profile.max_output_bytes
        buf += chunk[: cap + 1 - len(buf)]
        if len(buf) <= cap:
            return False
        if "output" not in self.limits:
            self.limits.append("output")
        return True

    def report(self, line: bytes) -> None:
        """One report line from the shim or the launcher: ``kind<TAB>field...``."""
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

    def over_quota(self, grown: int) -> None:
        """The call added ``grown`` bytes, more than ``max_write_mb``: record it."""
        self.limits.append("disk_quota")
        self.denials.append(
            {
                "reason": "quota",
                "detail": f"the call added {grown / _MiB:.1f} MiB to its writable paths, "
                f"over the profile's max_write_mb of {self.profile.max_write_mb} MiB",
            }
        )

    # -- after it ----------------------------------------------------------------------

    def detect(self, code: int, duration_ms: int, cgroup_hits: list[str], killed: bool) -> None:
        """Add the limits the exit status, the cgroup and stderr show to ``limits``.

        Args:
            code: the exit status (``128 + n`` for signal ``n``).
            duration_ms: wall time of the call.
            cgroup_hits: what the call's cgroup counted (see ``Cgroup.limits_hit``).
            killed: whether we killed the call while it ran.
        """
        p, hit = self.profile, self.limits
        found = list(cgroup_hits)
        if code == _SIGXCPU or (
            code == _SIGKILL
            and "memory" not in found
            and not killed
            and duration_ms >= p.cpu_seconds * 1000  # the hard CPU limit is SIGKILL
        ):
            found.append("cpu")
        if code == _SIGXFSZ:
            found.append("file_size")
        if code != 0:
            for limit, needles in _HINTS.items():
                if any(n in self.err for n in needles):
                    found.append(limit)
        for limit in found:
            if limit not in hit:
                hit.append(limit)

    def finish(self, code: int, duration_ms: int) -> SandboxResult:
        """Close the record and return the call's result, output cut to the cap.

        A file that grew past ``max_file_mb`` becomes a ``quota`` denial here,
        after every other one.
        """
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
