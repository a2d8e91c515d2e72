"""Sandbox start-up overhead per call: bubblewrap + shim vs a bare subprocess.

Each variant runs the same trivial command N times in a row (after a few
unmeasured warm-up calls) and records the wall time of each whole call, from
spawning to having the exit status and the output:

* ``bare``: ``asyncio.create_subprocess_exec`` with pipes -- the floor, what the
  old unsandboxed ``shell`` tool paid;
* ``bwrap only``: bubblewrap with the same namespaces and mounts, no shim -- the
  cost of the namespaces alone;
* ``sandbox (bwrap)``: :func:`~nexus.tools.sandbox.run_sandboxed` with the
  default profile -- bubblewrap, the cgroup (when available), the shim's
  rlimits and seccomp filter, the init process and the report pipe;
* ``sandbox (bwrap, no cgroup)``: the same without the per-call cgroup, as when
  Nexus runs as an ordinary user (moving a process into a cgroup v1 costs an
  RCU grace period, several milliseconds);
* ``sandbox (rlimits)``: the opt-in fallback: the shim without namespaces.

The commands are ``/bin/true`` (process start-up only) and ``python -c pass``
(an interpreter start-up on top). Per repetition the p50 and p95 of the N calls
are taken; the table shows best and median of those over the repetitions.
The overhead (sandbox minus bare) is printed at the end.

Usage: ``python bench/sandbox_overhead.py [--quick] [--runs N] [--calls N] [--json PATH]``
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from _common import Metric, parser, percentile, report, runs_for
from nexus.tools import sandbox
from nexus.tools.profile import ExecProfile
from nexus.tools.sandbox import run_sandboxed
from nexus.tools.sandbox._cgroup import Cgroup

Call = Callable[[], Awaitable[None]]
COMMANDS = {"/bin/true": ["/bin/true"], "python -c pass": [sandbox.PYTHON, "-c", "pass"]}
WARMUP = 3


def bare(argv: list[str], ws: Path) -> Call:
    async def call() -> None:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=ws,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{argv} exited {proc.returncode}")

    return call


def bwrap_only(argv: list[str], ws: Path) -> Call:
    prefixes = sorted({sys.prefix, sys.base_prefix})
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]
    args += ["--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin"]
    args += ["--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64"]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    for prefix in prefixes:
        args += ["--ro-bind", prefix, prefix]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", str(ws), str(ws)]
    return bare([*args, "--chdir", str(ws), "--", *argv], ws)


def sandboxed(argv: list[str], ws: Path, profile: ExecProfile) -> Call:
    async def call() -> None:
        result = await run_sandboxed(argv, profile=profile, workspace=ws, env={})
        if result.exit_code != 0:
            raise RuntimeError(f"{argv} exited {result.exit_code}: {result.stderr!r}")

    return call


async def timed(call: Call, n: int) -> list[float]:
    for _ in range(WARMUP):
        await call()
    samples = []
    for _ in range(n):
        began = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - began) * 1000)
    return sorted(samples)


VARIANTS = (
    "bare",
    "bwrap only",
    "sandbox (bwrap)",
    "sandbox (bwrap, no cgroup)",
    "sandbox (rlimits)",
)


def make_call(variant: str, argv: list[str], ws: Path) -> Call:
    if variant == "bare":
        return bare(argv, ws)
    if variant == "bwrap only":
        return bwrap_only(argv, ws)
    rlimits = variant == "sandbox (rlimits)"
    return sandboxed(argv, ws, ExecProfile(sandbox="rlimits" if rlimits else "bwrap"))


def _no_cgroup(*args: object) -> None:
    return None


@contextmanager
def conditions(variant: str) -> Iterator[None]:
    """For one variant: bubblewrap made to look absent, or the cgroup switched off."""
    real_bwrap, real_create = sandbox.BWRAP, Cgroup.__dict__["create"]
    if variant == "sandbox (rlimits)":
        sandbox.BWRAP = "/nonexistent/bwrap"
    elif variant == "sandbox (bwrap, no cgroup)":
        setattr(Cgroup, "create", staticmethod(_no_cgroup))  # noqa: B010
    try:
        yield
    finally:
        sandbox.BWRAP = real_bwrap
        setattr(Cgroup, "create", real_create)  # noqa: B010


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=None, help="calls per variant and run")
    args = p.parse_args()
    started = time.perf_counter()
    calls = args.calls or (10 if args.quick else 50)
    runs = runs_for(args, 3)
    metrics: list[Metric] = []
    medians: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        ws = Path(tmp)
        for label, argv in COMMANDS.items():
            for variant in VARIANTS if os.geteuid() != 0 else VARIANTS[:-1]:  # rlimits: not as root
                with conditions(variant):
                    call = make_call(variant, argv, ws)
                    samples = [asyncio.run(timed(call, calls)) for _ in range(runs)]
                for q in (50, 95):
                    name = f"{label}: {variant} p{q}"
                    values = [percentile(s, q) for s in samples]
                    metrics.append(Metric(name, "ms", values, higher_is_better=False))
                    medians[name] = statistics.median(values)
    info: dict[str, object] = {"calls per variant and run": calls}
    for label in COMMANDS:
        for q in (50, 95):
            over = medians[f"{label}: sandbox (bwrap) p{q}"] - medians[f"{label}: bare p{q}"]
            info[f"overhead of the sandbox, {label}, p{q}"] = f"{over:.1f} ms"
    report("sandbox_overhead", metrics, args, started, info)


if __name__ == "__main__":
    main()
