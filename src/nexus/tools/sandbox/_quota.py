"""The disk quota of one sandboxed call: how many bytes it may add to its writable paths.

``RLIMIT_FSIZE`` (the profile's ``max_file_mb``) caps each file; nothing in
the kernel caps the *total* a process writes to a directory short of
filesystem quotas (ext4/XFS project quotas need a mount option and root; this
VM's ext4 root has neither) or a loop-mounted image per workspace. A
size-capped tmpfs would cap it, but the workspace must outlive the call. So
the total is enforced from the outside, in two steps:

1. **While the call runs**, a watcher polls ``statvfs`` of the writable
   paths' filesystems every :data:`POLL_SECONDS` (a few microseconds per
   poll). When their free space has dropped by more than the quota's
   headroom, it measures exactly (below); if the call is really over, the
   sandbox is killed. Another process filling the same disk only causes a
   measurement, never a kill: the measurement decides. Another process
   *freeing* space at the same time would hide the call's writes from
   ``statvfs`` (seen in tests on a shared machine), so the watcher also
   measures on a timer: every :data:`MIN_MEASURE_SECONDS`, or 20 times the
   last measurement's cost if that is longer (at most ~5% of a core spent
   walking a large workspace).
2. **After the call**, the writable paths are measured again; a call over
   its quota fails with ``policy_denied`` whatever its exit status.

*Measured* means the disk space allocated (``st_blocks * 512``) by every
file, directory and link under the paths, each inode counted once, symlinks
not followed. A sparse file counts what it occupies, not its length. The
baseline is taken before the call starts; the quota applies to the growth.
The overshoot before a kill is what the call writes in one poll interval plus
one measurement -- with ``max_file_mb`` bounding each file meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path

#: How often the watcher checks the filesystems' free space.
POLL_SECONDS = 0.05
#: The shortest time between two measurements made on the timer alone.
MIN_MEASURE_SECONDS = 0.25


def disk_usage(roots: Iterable[Path]) -> int:
    """Bytes allocated under ``roots`` (each inode once, symlinks not followed)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [str(r) for r in roots]
    while stack:
        path = stack.pop()
        try:
            info = os.lstat(path)
        except OSError:
            continue  # removed meanwhile, or unreadable
        key = (info.st_dev, info.st_ino)
        if key in seen:
            continue
        seen.add(key)
        total += info.st_blocks * 512
        if stat.S_ISDIR(info.st_mode):
            with contextlib.suppress(OSError), os.scandir(path) as entries:
                stack.extend(entry.path for entry in entries)
    return total


def _free(devices: dict[int, str]) -> int:
    free = 0
    for path in devices.values():
        with contextlib.suppress(OSError):
            vfs = os.statvfs(path)
            free += vfs.f_bfree * vfs.f_frsize
    return free


class DiskQuota:
    """Tracks how much one call adds under its writable paths.

    Args:
        roots: the writable paths (the workspace, and any other ``write_paths``).
        limit_bytes: the most the call may add.
    """

    def __init__(self, roots: Iterable[Path], limit_bytes: int) -> None:
        self.roots = [r for r in roots if r.exists()]
        self.limit = limit_bytes
        self.baseline = 0
        self.devices: dict[int, str] = {}
        self.free_at_start = 0
        #: how long the last measurement took (seconds)
        self.measure_seconds = 0.0

    def start(self) -> None:
        """Measure the baseline (blocking: call it from a thread)."""
        for root in self.roots:
            with contextlib.suppress(OSError):
                self.devices.setdefault(os.stat(root).st_dev, str(root))
        self.free_at_start = _free(self.devices)
        began = time.perf_counter()
        self.baseline = disk_usage(self.roots)
        self.measure_seconds = time.perf_counter() - began

    def growth(self) -> int:
        """Bytes added since :meth:`start` (blocking)."""
        began = time.perf_counter()
        used = disk_usage(self.roots)
        self.measure_seconds = time.perf_counter() - began
        return used - self.baseline

    async def watch(self, over: Callable[[int], None]) -> None:
        """Poll until the call is over its quota, then call ``over(growth)`` and return.

        Runs until cancelled otherwise.
        """
        loop = asyncio.get_running_loop()
        trigger = self.limit  # free space may drop this much before we measure
        measured = loop.time()
        while True:
            await asyncio.sleep(POLL_SECONDS)
            consumed = self.free_at_start - _free(self.devices)
            due = loop.time() - measured >= max(MIN_MEASURE_SECONDS, 20 * self.measure_seconds)
            if consumed <= trigger and not due:
                continue
            grown = await asyncio.to_thread(self.growth)
            measured = loop.time()
            if grown > self.limit:
                over(grown)
                return
            # someone else is writing to this disk: measure again only after
            # it has lost another quota's headroom
            trigger = consumed + (self.limit - grown)
