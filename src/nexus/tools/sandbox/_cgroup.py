"""The throw-away cgroup of one sandboxed call: caps on its processes and memory.

A cgroup caps the *whole* call -- every process the command starts, however
it escapes rlimits -- and, unlike rlimits, tells exactly when a cap was hit
(``pids.events``, ``memory.events``). It can only be made where this process
may create one (as root, or under a delegated cgroup); otherwise the call
runs without one, and says so when that leaves ``max_processes`` unenforced.
Its name carries the owner's pid and start time, so a later Nexus process
reaps it once the owner is gone (:func:`nexus.tools.sandbox._confine.reap_leftovers`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from pathlib import Path

from nexus.tools.sandbox import _confine


class Cgroup:
    """A throw-away cgroup capping the processes and memory of one call.

    Uses cgroup v2 when the unified hierarchy delegates ``pids`` to us, else the
    v1 ``pids`` and ``memory`` controllers. Every step may fail (no permission,
    read-only cgroupfs); then the call runs without one and says so.
    """

    def __init__(self, dirs: dict[str, Path], v2: bool) -> None:
        self.dirs = dirs
        self.v2 = v2

    @classmethod
    def create(cls, pids_max: int, memory_bytes: int) -> Cgroup | None:
        # the owner's pid and start time: a later process reaps it once the owner is gone
        name = f"nexus-{_confine.owner_tag()}-{secrets.token_hex(4)}"
        try:
            return cls._create_v2(name, pids_max, memory_bytes) or cls._create_v1(
                name, pids_max, memory_bytes
            )
        except OSError:
            return None

    @classmethod
    def _create_v2(cls, name: str, pids_max: int, memory_bytes: int) -> Cgroup | None:
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
    def _create_v1(cls, name: str, pids_max: int, memory_bytes: int) -> Cgroup | None:
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
        """``processes`` and/or ``memory``: the caps the call ran into, from event counters."""
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
        """Kill every process in the cgroup."""
        for path in {*self.dirs.values()}:
            with contextlib.suppress(OSError):
                if self.v2:
                    (path / "cgroup.kill").write_text("1")
                    continue
                for pid in (path / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(int(pid), signal.SIGKILL)

    def remove(self) -> None:
        """Kill what is left and remove the cgroup (blocking)."""
        for path in {*self.dirs.values()}:
            _confine.remove_cgroup(path, self.v2)


def _counters(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out
