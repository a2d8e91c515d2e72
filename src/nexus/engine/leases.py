"""Whether a run's lease still has a live holder: the process that drives the run.

A process driving a run holds its lease in the store and renews it every
few seconds (``Engine._heartbeat``). A lease is taken to be dead when its
heartbeat is older than :data:`LEASE_STALE_S`, or when its holder is a process
of this host that no longer exists (or is a zombie). The engine takes over a
run only from a dead lease; ``nexus status`` and ``nexus stop --all`` judge
the same way. Standard library only: the stop's command line loads no engine.
"""

from __future__ import annotations

import os
import socket
import time

from nexus.store.base import Lease

__all__ = ["LEASE_STALE_S", "lease_alive", "pid_alive"]

#: A lease whose heartbeat is older than this is stale even if its pid looks alive.
LEASE_STALE_S = 30.0


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def lease_alive(lease: Lease) -> bool:
    """Whether a lease's holder may still drive its run (judged as ``Engine._acquire`` does)."""
    if time.time() - lease.heartbeat > LEASE_STALE_S:
        return False
    return lease.host != socket.gethostname() or pid_alive(lease.pid)
