"""One sandboxed call from start to end: set-up, run, verdict, clean-up.

:class:`Call` holds the parts together and owns their order:

1. **set-up** (blocking, in a thread): check the workspace and write paths,
   measure the disk quota's baseline (:mod:`._quota`), make the cgroup
   (:mod:`._cgroup`), pick the host uid (:mod:`._confine`) and, under bwrap,
   build the file system (:mod:`._layout`); start the egress proxy
   (:mod:`._egress`) when the profile has an allow-list;
2. **run**: start the process tree with its command line (:mod:`._command`,
   :mod:`._process`) while the quota watcher polls;
3. **verdict**: refuse a call that could not be confined or did not start,
   classify the limits it hit, measure the disk once more
   (:mod:`._outcome`);
4. **clean-up** (always): stop the proxy, let go of the launcher, remove the
   cgroup, the placeholders and the temp dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from nexus.domain.errors import InfrastructureError, UserError
from nexus.security.trusted import TrustedPaths
from nexus.tools.profile import ExecProfile, SandboxKind
from nexus.tools.sandbox import _confine
from nexus.tools.sandbox._cgroup import Cgroup
from nexus.tools.sandbox._command import CommandLine, environment
from nexus.tools.sandbox._confine import SandboxUnavailable
from nexus.tools.sandbox._egress import EgressProxy
from nexus.tools.sandbox._layout import Layout
from nexus.tools.sandbox._outcome import Outcome, SandboxResult
from nexus.tools.sandbox._process import SandboxProcess
from nexus.tools.sandbox._quota import DiskQuota

_MiB = 1 << 20


class Call:
    """The state of one sandboxed call.

    Args:
        profile: what the call may do.
        kind: the sandbox it runs in.
        workspace: the run's workspace (must exist).
        env: variables set by Nexus for this call.
        trusted: what Nexus trusts (default: that of this process).
        bwrap: the bubblewrap executable.
    """

    def __init__(
        self,
        profile: ExecProfile,
        kind: SandboxKind,
        workspace: Path,
        env: Mapping[str, str],
        trusted: TrustedPaths | None,
        bwrap: str,
    ) -> None:
        self.profile = profile
        self.kind = kind
        self.ws = workspace
        self.explicit_env = env
        self.trusted = trusted
        self.bwrap = bwrap
        self.outcome = Outcome(profile, kind)
        self.env: dict[str, str] = {}
        self.layout: Layout | None = None
        self.cgroup: Cgroup | None = None
        self.quota: DiskQuota | None = None
        self.proxy: EgressProxy | None = None
        self.process: SandboxProcess | None = None
        # the shim's init (and, with an allow-list, its proxy threads)
        self.nproc = profile.max_processes + (2 if profile.network == "none" else 6)

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
        self.env = environment(p, self.ws, self.explicit_env, self.kind)
        self.cgroup = Cgroup.create(self.nproc, p.memory_mb * _MiB)
        if self.cgroup is None and os.geteuid() == 0:
            self.outcome.warnings.append(
                "max_processes is not enforced: running as root without a writable cgroup"
            )
        uid, gid = _confine.sandbox_identity(self.ws)
        self.layout = Layout(p, self.ws, writable, uid, gid, self.trusted)
        if self.kind == "bwrap":
            self.layout.build()
        else:
            # without a user namespace RLIMIT_NPROC counts every process of the user
            self.nproc += _processes_of(uid)

    async def run(self, argv: list[str], stdin: bytes | None) -> SandboxResult:
        """Run ``argv``; the caller must :meth:`aclose` the call whatever happens."""
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._prepare)
        assert self.layout is not None
        assert self.quota is not None
        if self.profile.network != "none":
            assert self.layout.tmp is not None
            self.proxy = EgressProxy(self.profile.network, self.outcome.denials)
            await self.proxy.start(self.layout.tmp / "egress.sock")
        command = CommandLine(
            self.profile, self.kind, self.layout, self.env, self.nproc, self.bwrap
        )
        control = command.control()
        self.process = process = SandboxProcess(self.outcome, self.cgroup)
        started = loop.time()
        await process.start(command, argv, stdin, self.ws)
        watch = asyncio.create_task(self.quota.watch(self._over_quota))
        try:
            code, ready = await process.communicate(control, stdin, self.profile.wall_seconds)
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        duration_ms = round((loop.time() - started) * 1000)
        outcome = self.outcome
        if outcome.fatal is not None:
            raise SandboxUnavailable(f"sandbox: {outcome.fatal}", retryable=False)
        if not ready and not outcome.limits:
            raise InfrastructureError(
                f"the sandbox failed to start (exit {code}): "
                + outcome.err.decode(errors="replace").strip()[-2000:]
            )
        hits = self.cgroup.limits_hit() if self.cgroup is not None else []
        outcome.detect(code, duration_ms, hits, process.killed)
        if "disk_quota" not in outcome.limits:  # the watcher may have missed the last burst
            grown = await asyncio.to_thread(self.quota.growth)
            if grown > self.quota.limit:
                self._over_quota(grown)
        return outcome.finish(code, duration_ms)

    def _over_quota(self, grown: int) -> None:
        """The call added more than ``max_write_mb``: record it and stop the call."""
        self.outcome.over_quota(grown)
        if self.process is not None:
            self.process.kill()

    def cleanup(self) -> None:
        """Release the cgroup, the placeholders and the temp dir (blocking)."""
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.layout is not None:
            self.layout.release()

    async def aclose(self) -> None:
        """Stop the proxy, then release everything else in a thread."""
        if self.proxy is not None:
            await self.proxy.close()
        if self.process is not None:
            self.process.close()  # a launcher still running is killed by the server
        await asyncio.to_thread(self.cleanup)


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += 1
    return count
