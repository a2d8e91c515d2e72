"""The launch server (``_launch.py --serve``): one launcher Python per process, forked per call.

Attacks: a sandboxed command looking for the (root) server's socket to ask it
for a launch of its own; bubblewrap's child left waiting on its eventfd when
bubblewrap dies during set-up, then Nexus killed (the process that leaked in
``bench/kill9_leaks.py``); the server outliving its host.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_sandbox import processes_in

from nexus.tools.profile import ExecProfile
from nexus.tools.sandbox import _zygote, run_sandboxed

FAST = ExecProfile(cpu_seconds=10, wall_seconds=20)

_LIST_FDS = """
import os, stat
for fd in sorted(int(n) for n in os.listdir('/proc/self/fd')):
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        continue
    kind = 'sock' if stat.S_ISSOCK(mode) else 'fifo' if stat.S_ISFIFO(mode) else 'other'
    print(fd, kind)
"""


def _processes(match: bytes) -> list[int]:
    """Live, non-zombie processes whose command line contains ``match``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                state = fh.read().rsplit(") ", 1)[1][:1]
        except (OSError, IndexError):
            continue
        if match in cmdline and state != "Z":
            found.append(int(entry))
    return found


def _wait_until_empty(find: object, within: float) -> list[int]:
    deadline = time.monotonic() + within
    assert callable(find)
    while (alive := find()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return list(alive)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


def test_the_command_holds_no_socket_of_the_launch_server(ws: Path) -> None:
    """The server (root, when Nexus is) must not be reachable from inside: no socket fd."""
    r = asyncio.run(
        run_sandboxed(
            [sys.executable, "-I", "-S", "-c", _LIST_FDS], profile=FAST, workspace=ws, env={}
        )
    )
    assert r.exit_code == 0, r.stderr
    fds = dict(line.split() for line in r.stdout.decode().splitlines())
    assert "sock" not in fds.values(), fds
    assert set(fds) <= {"0", "1", "2", "3"}, fds  # stdio (+ the listing's own directory fd)


_KILLED_IN_SETUP = """
import asyncio, os, signal, sys, threading, time
from pathlib import Path
from nexus.tools import sandbox
from nexus.tools.profile import ExecProfile
from nexus.tools.sandbox._command import CommandLine

real = CommandLine.argv

def command(self, argv, report_fd, control_fd, info_fd):
    # bwrap's --info-fd now leads nowhere: bwrap dies of EPIPE right after cloning
    # its child, which then waits on its eventfd for good (no death signal yet)
    r, w = os.pipe()
    os.close(r)
    os.dup2(w, info_fd)
    os.close(w)
    return real(self, argv, report_fd, control_fd, info_fd)

CommandLine.argv = command
threading.Timer(float(sys.argv[2]), lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
asyncio.run(sandbox.run_sandboxed(["/bin/true"], profile=ExecProfile(wall_seconds=60),
                                  workspace=Path(sys.argv[1]), env={}))
"""


def test_bwraps_child_stuck_in_setup_does_not_outlive_a_killed_nexus(ws: Path) -> None:
    nexus = subprocess.Popen([sys.executable, "-c", _KILLED_IN_SETUP, str(ws), "2"])
    assert nexus.wait(timeout=30) == -signal.SIGKILL
    leaked = _wait_until_empty(lambda: processes_in(ws), within=5)
    for pid in leaked:  # do not let a failure pollute the machine
        os.kill(pid, signal.SIGKILL)
    assert leaked == []


_HOST = """
import asyncio, sys
from pathlib import Path
from nexus.tools.profile import ExecProfile
from nexus.tools.sandbox import run_sandboxed
asyncio.run(run_sandboxed(["/bin/sh", "-c", "echo up > started; exec sleep 998.25"],
                          profile=ExecProfile(wall_seconds=60), workspace=Path(sys.argv[1]),
                          env={}))
"""


def test_the_launch_server_and_the_sandbox_go_with_a_killed_host(ws: Path) -> None:
    host = subprocess.Popen([sys.executable, "-c", _HOST, str(ws)])
    serving = f"--serve\0{host.pid}\0".encode()
    try:
        deadline = time.monotonic() + 20
        while not (ws / "started").exists():
            assert time.monotonic() < deadline, "the sandboxed command never started"
            time.sleep(0.02)
        assert _processes(serving), "no launch server for the host"
    finally:
        host.kill()
        host.wait()
    assert _wait_until_empty(lambda: _processes(serving), within=5) == []
    assert _wait_until_empty(lambda: _processes(b"998.25"), within=5) == []


def test_a_dead_launch_server_is_replaced(ws: Path) -> None:
    async def twice() -> tuple[int, int]:
        first = await run_sandboxed(["/bin/true"], profile=FAST, workspace=ws, env={})
        proc, _ = _zygote._servers[os.getpid()]
        proc.kill()
        proc.wait()
        second = await run_sandboxed(["/bin/true"], profile=FAST, workspace=ws, env={})
        return first.exit_code, second.exit_code

    assert asyncio.run(twice()) == (0, 0)


def test_a_call_gets_the_hosts_umask_of_now_not_the_servers(ws: Path) -> None:
    async def touch(name: str) -> int:
        r = await run_sandboxed(
            ["/bin/sh", "-c", f"touch {name}"], profile=FAST, workspace=ws, env={}
        )
        return r.exit_code

    old = os.umask(0o022)
    try:
        assert asyncio.run(touch("first")) == 0  # the server now exists, with umask 022
        os.umask(0o077)
        assert asyncio.run(touch("second")) == 0
    finally:
        os.umask(old)
    assert (ws / "first").stat().st_mode & 0o777 == 0o644
    assert (ws / "second").stat().st_mode & 0o777 == 0o600
