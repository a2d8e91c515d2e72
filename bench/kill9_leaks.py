"""What a ``kill -9`` of ``nexus run`` leaves behind: processes, cgroups, temp dirs.

Each trial starts ``nexus run`` on a workflow of parallel sandboxed shell tasks
that sleep, kills it with ``SIGKILL`` at a varying moment -- as soon as a
sandbox is being set up (a ``bwrap`` in the project), or once 1..N tasks have
written their marker file -- and counts:

* **processes**: live processes whose command line carries the trial's unique
  sleep duration, or whose working directory is the trial's project (bwrap),
  and the killed process's launch server (``_launch.py --serve PID``); a
  trial waits up to 3 s for them to go (most are gone in a few ms);
* **cgroups** and **temp dirs** named after the killed process
  (``nexus-PID-...``, ``nexus-sbx-PID-...``) that a *later* Nexus process did
  not reap: the bench process runs the same reaper
  (:func:`nexus.tools.sandbox._confine.reap_leftovers`) a new Nexus runs at its first
  sandboxed call; ``--reap-with-call`` runs a trivial sandboxed call in a new
  process instead (slower, ~1.5 s a trial).

Usage: ``python bench/kill9_leaks.py [--quick] [--trials N] [--tasks N] [--reap-with-call]
[--json PATH]``; ``--quick`` runs 2 trials; exits 1 on any leak.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common
from nexus.tools.sandbox._confine import reap_leftovers

ROOT = Path(__file__).resolve().parent.parent
NEXUS = [sys.executable, "-m", "nexus"]
REAP = (
    "import asyncio; from pathlib import Path; from nexus.tools.profile import ExecProfile; "
    "from nexus.tools.sandbox import run_sandboxed; "
    "asyncio.run(run_sandboxed(['true'], profile=ExecProfile(), workspace=Path('.'), env={}))"
)


def workflow(tasks: int, duration: str) -> str:
    lines = ["version: 1", "name: kill9", "tasks:"]
    for i in range(tasks):
        lines += [
            f"  t{i}:",
            "    tool: shell",
            f'    with: {{cmd: "touch up-{i}; sleep {duration} & exec sleep {duration}"}}',
        ]
    return "\n".join(lines) + "\n"


def sandbox_processes(duration: str, project: Path, killed: int) -> list[int]:
    serving = f"--serve\0{killed}\0".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                if fh.read().rsplit(") ", 1)[1][:1] == "Z":
                    continue
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except (OSError, IndexError):
            continue
        if duration.encode() in cmdline or cwd.startswith(str(project)) or serving in cmdline:
            found.append(int(entry))
    return found


def setting_up(project: Path) -> bool:
    """Whether a sandbox of the trial is being set up (a bwrap in the project)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/cwd").startswith(str(project)) and Path(
                    f"/proc/{entry}/comm"
                ).read_text().startswith("bwrap"):
                    return True
            except OSError:
                continue
    return False


def named_after(pid: int) -> tuple[list[Path], list[Path]]:
    dirs = list(Path(tempfile.gettempdir()).glob(f"nexus-sbx-{pid}-*"))
    cgroups: list[Path] = []
    for root in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup/memory")):
        if root.is_dir():
            cgroups += [p for p in root.rglob(f"nexus-{pid}-*") if p.is_dir()]
    return cgroups, dirs


def trial(n: int, tasks: int, reap_with_call: bool) -> tuple[int, int, int, int]:
    """One kill; returns (leaked processes, cgroups, temp dirs, sandboxes that were up)."""
    project = Path(tempfile.mkdtemp(prefix="nexus-kill9-"))
    duration = f"{900 + n}.{os.getpid() % 1000:03d}"
    (project / "flow.yaml").write_text(workflow(tasks, duration))
    env = {**os.environ, "NEXUS_HOME": str(project / ".nexus")}
    proc = subprocess.Popen(
        [*NEXUS, "run", "flow.yaml"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        # kill at a varying moment: a sandbox in set-up, or 1..tasks sandboxes up
        want = n % (tasks + 1)
        while time.monotonic() < deadline:
            if want == 0 and setting_up(project):
                break
            if want and len(list(project.rglob("up-*"))) >= want:
                break
            time.sleep(0.005)
        up = len(list(project.rglob("up-*")))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 3
    while (leaked := sandbox_processes(duration, project, proc.pid)) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.02)
    for pid in leaked:  # say what it was, then do not let it pollute the next trial
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            print(f"trial {n}: leaked pid {pid}: {argv.decode(errors='replace')[:300]}")
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if reap_with_call:
        subprocess.run([sys.executable, "-c", REAP], cwd=project, env=env, check=True, timeout=60)
    else:
        reap_leftovers()
    cgroups, dirs = named_after(proc.pid)
    shutil.rmtree(project, ignore_errors=True)
    return len(leaked), len(cgroups), len(dirs), up


def main() -> None:
    parser = _common.parser(__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=None, help="kills (default 10, quick 2)")
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--reap-with-call", action="store_true")
    args = parser.parse_args()
    trials = args.trials if args.trials is not None else (2 if args.quick else 10)
    totals = [0, 0, 0]
    ups = 0
    began = time.monotonic()
    started = time.perf_counter()
    for n in range(trials):
        *leaks, up = trial(n, args.tasks, args.reap_with_call)
        ups += up
        for i, v in enumerate(leaks):
            totals[i] += v
        if any(leaks):
            print(f"trial {n}: leaked processes={leaks[0]} cgroups={leaks[1]} temp dirs={leaks[2]}")
    print(
        f"{trials} kill -9 trials ({args.tasks} sandboxed tasks each, {ups} sandboxes "
        f"up at the kills, uid {os.geteuid()}): leaked processes={totals[0]}, "
        f"cgroups={totals[1]}, temp dirs={totals[2]} ({time.monotonic() - began:.0f} s)"
    )
    metrics = [
        _common.Metric(f"leaked {what}", "count", [float(total)], False, floor=1)
        for what, total in zip(("processes", "cgroups", "temp dirs"), totals, strict=True)
    ]
    info = {"trials": trials, "tasks": args.tasks, "sandboxes up": ups, "uid": os.geteuid()}
    _common.report("kill9_leaks", metrics, args, started, info)
    sys.exit(1 if any(totals) else 0)


if __name__ == "__main__":
    main()
