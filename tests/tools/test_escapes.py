"""The sandbox escape suite: every attack must be blocked AND recorded.

Each case runs an attack through the ``shell`` tool exactly as an agent would,
then asserts two things:

* **blocked** -- the host is unchanged (no file written or read, no connection
  accepted, no process signalled, no privilege gained), checked from the host;
* **recorded** -- the outcome says why: a denial (``seccomp``/``network``) or a
  limit in the result or the error's details, or, for the file system (where
  the sandbox simply does not contain the target), the command's failure with
  its exit code and stderr in the ``ToolFailed`` details that the effect
  records.

Commands are written so that a *successful* escape exits 0 and would show up
as a plain result with no denial: the assertions then fail loudly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nexus.domain.errors import NexusError
from nexus.security.trusted import TrustedPaths
from nexus.tools import sandbox
from nexus.tools.base import ToolContext
from nexus.tools.builtins import ShellTool
from nexus.tools.profile import ExecProfile

TOKEN = "nexus-escape-3f9c2a"
FAST = ExecProfile(cpu_seconds=5, wall_seconds=15)


@dataclass
class Outcome:
    """What the ``shell`` tool returned or raised, as the effect would record it."""

    result: dict[str, Any] | None
    error: dict[str, Any] | None

    @property
    def record(self) -> dict[str, Any]:
        if self.error is not None:
            details: dict[str, Any] = self.error["details"]
            return details
        assert self.result is not None
        return self.result

    @property
    def text(self) -> str:
        return str(self.record.get("stdout", "")) + str(self.record.get("stderr", ""))

    def denied(self, reason: str, detail: str) -> bool:
        return any(
            d["reason"] == reason and d["detail"].startswith(detail)
            for d in self.record.get("denials", [])
        )

    def limited(self, limit: str) -> bool:
        return limit in self.record.get("limits_hit", [])

    def failed(self, *needles: str) -> bool:
        """The command failed, and its recorded stderr says one of ``needles``."""
        if self.error is None or self.record["exit_code"] == 0:
            return False
        return any(n in self.record["stderr"] for n in needles) if needles else True


def attack(
    cmd: str, ws: Path, profile: ExecProfile = FAST, trusted: TrustedPaths | None = None
) -> Outcome:
    ctx = ToolContext("run-escape", "attack", 1, ws, trusted=trusted)
    try:
        result = asyncio.run(ShellTool(profile=profile)({"cmd": cmd}, ctx))
    except NexusError as exc:
        return Outcome(None, exc.to_data())
    return Outcome(result, None)


def python(code: str, ws: Path, profile: ExecProfile = FAST) -> Outcome:
    (ws / "attack.py").write_text(code)
    return attack("python3 attack.py", ws, profile)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A host directory next to the workspace, holding a secret."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret").write_text(TOKEN)
    return path


# -- network ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "host"),
    [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")],
    ids=["ipv4", "ipv6"],
)
def test_loopback_listener_on_the_host(ws: Path, family: int, host: str) -> None:
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((host, 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        o = python(f"import socket\nsocket.create_connection(({host!r}, {port}), timeout=1)\n", ws)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody came
    finally:
        listener.close()
    family_name = "AF_INET6" if family == socket.AF_INET6 else "AF_INET"
    assert o.denied("network", f"socket({family_name})")
    assert o.failed("Operation not permitted")


def test_external_address(ws: Path) -> None:
    o = python("import socket\nsocket.create_connection(('10.255.255.1', 80), timeout=1)\n", ws)
    assert o.denied("network", "socket(AF_INET)")
    assert o.failed("Operation not permitted")


def test_external_address_when_another_host_is_allowed(ws: Path) -> None:
    profile = ExecProfile(network=("pypi.org:443",), wall_seconds=15)
    o = python(
        "import socket\nsocket.create_connection(('10.255.255.1', 80), timeout=1)\n", ws, profile
    )
    assert o.failed("Network is unreachable")  # no route: the namespace has only lo
    o = attack("curl -sSf --max-time 2 http://10.255.255.1/", ws, profile)
    assert o.denied("network", "10.255.255.1:80 is not in the allow-list")
    assert o.failed("403")


def test_dns_resolution(ws: Path) -> None:
    o = python("import socket\nprint(socket.getaddrinfo('example.com', 443))\n", ws)
    assert o.denied("network", "socket(AF_INET)")
    assert o.failed("Temporary failure in name resolution", "Name or service not known")


def test_abstract_unix_socket_on_the_host(ws: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(f"\0{TOKEN}")
    listener.listen()
    listener.setblocking(False)
    try:
        o = python(
            f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('\\0{TOKEN}')\n", ws
        )
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
    assert o.failed("Connection refused")  # another network namespace, another namespace


# -- reading the host -------------------------------------------------------------------


def test_read_etc_shadow(ws: Path) -> None:
    o = attack("cat /etc/shadow", ws)
    assert o.failed("No such file or directory")
    if os.access("/etc/shadow", os.R_OK):
        assert Path("/etc/shadow").read_text().split(":", 1)[0] not in o.record["stdout"]


def _bound_under(home: Path) -> set[str]:
    """Entries of ``home`` that exist in the sandbox only to hold the Python interpreter."""
    out = set()
    for prefix in {sys.prefix, sys.base_prefix}:
        rel = Path(prefix).relative_to(home) if Path(prefix).is_relative_to(home) else None
        if rel is not None:
            out.add(rel.parts[0])
    return out


@pytest.mark.parametrize("home", ["/root", str(Path.home())], ids=["root", "user-home"])
def test_read_home_directories(ws: Path, home: str) -> None:
    host = set(os.listdir(home)) if os.access(home, os.R_OK) else set()
    dotfiles = [f for f in (".bashrc", ".profile", ".ssh", ".netrc", ".gitconfig") if f in host]
    o = attack(f"ls -A {home}; cat {home}/.bashrc {home}/.profile {home}/.ssh/id_rsa", ws)
    listed = set(o.record["stdout"].split())
    assert listed <= _bound_under(Path(home))
    assert not (set(dotfiles) & listed)
    assert o.failed("No such file or directory")


def test_read_slash_home(ws: Path) -> None:
    o = attack("ls /home", ws)
    assert o.failed("No such file or directory")


def test_read_host_proc_of_pid_1_environment(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET", TOKEN)
    o = attack(f"grep -a {TOKEN} /proc/1/environ /proc/self/environ", ws)
    assert TOKEN not in o.record["stdout"]
    assert o.failed()  # grep found nothing
    assert o.record["exit_code"] in (1, 2)


def test_read_the_nexus_process_environment(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET", TOKEN)
    o = attack(f"cat /proc/{os.getpid()}/environ", ws)  # another PID namespace
    assert TOKEN not in o.text
    assert o.failed("No such file or directory")


def test_environment_secrets_do_not_leak(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET", TOKEN)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TOKEN)
    o = attack(f'env | grep -e {TOKEN} -e SECRET || test -n "$SECRET"', ws)
    assert TOKEN not in o.text
    assert o.failed()


def test_mountinfo_shows_no_host_paths(ws: Path) -> None:
    o = attack(
        "awk '{print $5}' /proc/self/mountinfo; "
        # /proc/sys is bound read-only over itself: its root in proc is /sys
        "grep -v ' - proc ' /proc/self/mountinfo "
        "| grep -qE ' /(sys|home|var|boot|opt|srv|mnt)[ /]'",
        ws,
    )
    assert o.failed()
    shim = str(Path(sandbox.__file__).with_name("_shim.py"))
    allowed = ["/usr", "/proc", "/dev", "/tmp", "/etc/", "/run/nexus", str(ws), shim]
    allowed += [sys.prefix, sys.base_prefix]
    points = o.record["stdout"].split()
    assert "/" in points
    assert str(ws) in points
    for point in points:
        assert point == "/" or any(
            point == a or point.startswith(a.rstrip("/") + "/") for a in allowed
        ), point


def test_sys_is_not_there(ws: Path) -> None:
    o = attack("ls /sys/class/net", ws)
    assert o.failed("No such file or directory")


# -- writing the host -------------------------------------------------------------------


def test_write_host_tmp(ws: Path, tmp_path: Path) -> None:
    target = Path("/tmp") / f"{TOKEN}-{os.getpid()}"
    (tmp_path / "marker").write_text("host")
    o = attack(f"echo pwned > {target} && cat {tmp_path}/marker", ws)
    assert not target.exists()  # the write landed in the sandbox's private /tmp
    assert o.failed("No such file or directory")  # and the host's /tmp is not there


def test_write_next_to_the_workspace(ws: Path, outside: Path) -> None:
    o = attack(f"echo pwned > {outside}/new", ws)
    assert not (outside / "new").exists()
    assert o.failed("nonexistent", "No such file or directory")


@pytest.mark.parametrize("target", ["/etc/passwd", "/etc/cron.d/evil", "/usr/bin/evil", "/evil"])
def test_write_system_paths(ws: Path, target: str) -> None:
    before = Path(target).read_bytes() if Path(target).exists() else None
    o = attack(f"echo pwned >> {target}", ws)
    assert (Path(target).read_bytes() if Path(target).exists() else None) == before
    # a root-owned file refuses the sandbox's uid before the read-only mount does
    assert o.failed("Read-only file system", "nonexistent", "Permission denied")


def test_tamper_with_the_shim_and_interpreter(ws: Path) -> None:
    shim = Path(sandbox.__file__).with_name("_shim.py")
    before = shim.read_bytes()
    o = attack(f"echo 'import os' >> {shim}; touch {sys.prefix}/pwned", ws)
    assert shim.read_bytes() == before
    assert not Path(sys.prefix, "pwned").exists()
    assert o.failed("Read-only file system")


def test_write_dev_and_proc_sys(ws: Path) -> None:
    o = attack("ls /dev; echo x > /dev/sda || echo 1 > /proc/sys/kernel/sysrq", ws)
    devices = set(o.record["stdout"].split())
    assert not devices & {"sda", "vda", "nvme0n1", "mem", "kmem", "kmsg", "port"}
    assert not Path("/dev/sda").is_file()
    assert o.failed("Read-only file system")


def test_symlink_to_etc_shadow(ws: Path) -> None:
    (ws / "link").symlink_to("/etc/shadow")
    o = attack("cat link", ws)
    assert o.failed("No such file or directory")


def test_symlink_to_a_directory_outside(ws: Path, outside: Path) -> None:
    (ws / "out").symlink_to(outside)
    o = attack("cat out/secret; echo pwned > out/new", ws)
    assert TOKEN not in o.text
    assert not (outside / "new").exists()
    assert o.failed("No such file or directory")


def test_dot_dot_escape(ws: Path, outside: Path) -> None:
    o = attack("cat ../outside/secret || cat $PWD/../../outside/secret", ws)
    assert TOKEN not in o.text
    assert o.failed("No such file or directory")


def test_setuid_file_in_the_workspace(ws: Path) -> None:
    o = attack("cp /bin/sh ./rootsh && chmod 4755 ./rootsh", ws)
    assert not (ws / "rootsh").stat().st_mode & 0o6000  # would be setuid-nexus-uid on the host
    assert o.denied("seccomp", "fchmodat: setting a setuid/setgid bit")
    assert o.failed("Operation not permitted")


# -- resources --------------------------------------------------------------------------


@pytest.mark.slow
def test_fork_bomb(ws: Path) -> None:
    profile = ExecProfile(max_processes=16, wall_seconds=10)
    o = attack("bomb() { bomb | bomb & }; bomb; sleep 1; exit 1", ws, profile)
    assert o.limited("processes")  # the process limit stopped it, not the wall time
    assert o.failed()


def test_memory_bomb(ws: Path) -> None:
    o = python(
        "hog = []\nwhile True:\n    hog.append(bytearray(16 * 2**20))\n",
        ws,
        ExecProfile(memory_mb=256, wall_seconds=15),
    )
    assert o.limited("memory")
    assert o.failed("MemoryError")


def test_disk_fill(ws: Path) -> None:
    o = attack("head -c 64M /dev/zero > big", ws, ExecProfile(max_file_mb=8, wall_seconds=15))
    assert (ws / "big").stat().st_size <= 8 * 2**20
    assert o.limited("file_size")
    assert o.record["exit_code"] == 128 + signal.SIGXFSZ
    assert o.denied("quota", "a file grew past the profile's max_file_mb of 8 MiB")


def test_disk_fill_with_many_files(ws: Path) -> None:
    o = attack(
        "i=0; while :; do i=$((i+1)); head -c 1M /dev/zero > f$i || exit 1; done",
        ws,
        ExecProfile(max_file_mb=2, max_write_mb=16, wall_seconds=15),
    )
    assert o.limited("disk_quota")
    assert o.denied("quota", "the call added")
    assert o.error is not None
    assert o.error["kind"] == "policy_denied"
    assert sum(f.stat().st_size for f in ws.iterdir()) < 200 * 2**20


@pytest.mark.slow
def test_endless_loop_hits_the_cpu_limit(ws: Path) -> None:
    o = attack("while :; do :; done", ws, ExecProfile(cpu_seconds=1, wall_seconds=15))
    assert o.limited("cpu")  # the CPU limit stopped it, not the wall time
    assert o.record["exit_code"] == 128 + signal.SIGXCPU


@pytest.mark.timeout(30)  # the sleep is 60 s
def test_endless_sleep_hits_the_wall_time(ws: Path) -> None:
    o = attack("sleep 60", ws, ExecProfile(wall_seconds=0.5))
    assert o.limited("wall_time")
    assert o.failed()


def test_huge_output(ws: Path) -> None:
    o = attack("yes", ws, ExecProfile(max_output_bytes=4096, wall_seconds=15))
    assert o.limited("output")
    assert len(o.record["stdout"]) <= 4096
    assert o.failed()


# -- processes and privileges ----------------------------------------------------------


@pytest.fixture
def victim() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_kill_the_parent(ws: Path) -> None:
    o = attack(f"kill -9 {os.getpid()}", ws)
    assert o.failed("No such process")  # still alive to read this


def test_signal_another_process(ws: Path, victim: subprocess.Popen[bytes]) -> None:
    o = attack(f"kill -TERM {victim.pid}", ws)
    assert victim.poll() is None
    assert o.failed("No such process")


def test_kill_everything_visible(ws: Path, victim: subprocess.Popen[bytes]) -> None:
    o = attack("kill -9 -1", ws)
    assert victim.poll() is None
    assert o.failed("No such process")  # nothing but itself and the init in sight


def test_take_over_the_sandbox_init(ws: Path) -> None:
    """PID 1 answers seccomp outside the filter: non-dumpable, it is out of reach."""
    o = attack(
        "grep -q _shim.py /proc/1/cmdline && kill -9 1; "
        "readlink /proc/1/fd/0 || cat /proc/1/environ || head -c 1 /proc/1/mem",
        ws,
    )
    assert o.failed("Permission denied")


def test_setuid_su(ws: Path) -> None:
    o = attack("grep NoNewPrivs /proc/self/status; su -c 'id -u' root < /dev/null", ws)
    assert "NoNewPrivs:\t1" in o.record["stdout"]
    assert "\n0\n" not in o.record["stdout"]
    assert o.failed()


def test_setuid_passwd(ws: Path) -> None:
    o = attack("id -u; passwd -d root", ws)
    assert o.record["stdout"].split()[0] != "0"
    assert o.failed()


# -- system calls -----------------------------------------------------------------------

_SYSCALLS: dict[str, tuple[str, str]] = {
    # name: (prelude, arguments)
    "ptrace": ("", "0, 0, 0, 0"),  # PTRACE_TRACEME
    "process_vm_readv": ("", "1, None, 0, None, 0, 0"),
    "mount": ("", "b'none', b'/tmp', b'tmpfs', 0, None"),
    "umount2": ("", "b'/proc', 0"),
    "pivot_root": ("", "b'/tmp', b'/tmp'"),
    "chroot": ("", "b'/tmp'"),
    "unshare": ("", "0x10000000"),  # CLONE_NEWUSER
    "setns": ("fd = os.open('/proc/self/ns/uts', os.O_RDONLY)", "fd, 0"),
    "keyctl": ("", "0, -3, 0"),  # KEYCTL_GET_KEYRING_ID, session keyring
    "add_key": ("", "b'user', b'k', b'v', 1, -3"),
    "request_key": ("", "b'user', b'k', None, -3"),
    "bpf": ("", "5, None, 0"),  # BPF_PROG_LOAD
    "perf_event_open": ("", "None, 0, -1, -1, 0"),
    "io_uring_setup": ("", "8, None"),
    "io_uring_enter": ("", "0, 1, 0, 0, None, 0"),
    "io_uring_register": ("", "0, 0, None, 0"),
    "kexec_load": ("", "0, 0, None, 0"),
    "init_module": ("", "None, 0, b''"),
    "finit_module": ("", "0, b'', 0"),
    "delete_module": ("", "b'ext4', 0"),
    "reboot": ("", "0xfee1dead, 672274793, 0x4321fedc, None"),  # RB_POWER_OFF
    "swapon": ("", "b'/tmp/swap', 0"),
    "open_by_handle_at": ("", "-100, None, 0"),
    "pidfd_getfd": ("", "0, 0, 0"),
}


def _syscall_nr(name: str) -> int:
    import pyseccomp

    return int(pyseccomp.resolve_syscall(pyseccomp.system_arch(), name))


@pytest.mark.parametrize("name", sorted(_SYSCALLS))
def test_forbidden_system_call(ws: Path, name: str) -> None:
    prelude, args = _SYSCALLS[name]
    o = python(
        "import ctypes, os, sys\n"
        f"{prelude}\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        f"r = libc.syscall({_syscall_nr(name)}, {args})\n"
        "print(r, ctypes.get_errno())\n"
        "sys.exit(0 if r >= 0 else 1)\n",
        ws,
    )
    assert o.record["stdout"] == "-1 1\n"  # EPERM, before the kernel looked at the arguments
    assert o.denied("seccomp", name)
    assert o.error is not None
    assert o.error["kind"] == "policy_denied"


def test_clone_into_new_namespaces(ws: Path) -> None:
    o = python(
        "import ctypes, os, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        f"r = libc.syscall({_syscall_nr('clone')}, 0x10000000 | 17, 0, 0, 0, 0)\n"
        "if r == 0:\n    os._exit(0)\n"
        "print(r, ctypes.get_errno())\n"
        "sys.exit(0 if r > 0 else 1)\n",
        ws,
    )
    assert o.record["stdout"] == "-1 1\n"
    assert o.denied("seccomp", "clone(flags=0x10000011)")


def test_unshare_binary(ws: Path) -> None:
    o = attack("unshare --user --map-root-user id -u", ws)
    assert o.denied("seccomp", "unshare")
    assert o.failed("Operation not permitted")


# -- the kernel's global settings and the host uid (issue 9, item 1) -------------------

#: Kernel-wide settings: only host root may write them, and the sandbox must not be it.
SYSCTLS = [
    "kernel/ctrl-alt-del",
    "kernel/core_pattern",
    "kernel/modprobe",
    "kernel/sysrq",
    "vm/drop_caches",
    "fs/protected_symlinks",
]


@pytest.mark.parametrize("name", SYSCTLS)
def test_write_a_kernel_setting(ws: Path, name: str) -> None:
    """Opening for writing is where the kernel checks; it must refuse (EROFS or EACCES)."""
    path = Path("/proc/sys", name)
    before = path.read_bytes() if os.access(path, os.R_OK) else None
    o = python(
        "import errno, os, sys\n"
        "try:\n"
        f"    fd = os.open({str(path)!r}, os.O_WRONLY)\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno]); sys.exit(1)\n"
        "print('OPENED')\n",  # and write nothing: today's code would let it through
        ws,
    )
    assert "OPENED" not in o.text
    assert o.record["stdout"].strip() in {"EROFS", "EACCES", "EPERM", "ENOENT"}, o.text
    assert o.failed()
    if before is not None and name != "vm/drop_caches":
        assert path.read_bytes() == before


def test_proc_sys_and_sysrq_are_read_only_mounts(ws: Path) -> None:
    o = attack(
        "grep -E ' /proc/(sys|sysrq-trigger|irq|bus|fs) ' /proc/self/mountinfo; "
        "echo b > /proc/sysrq-trigger",
        ws,
    )
    lines = o.record["stdout"].splitlines()
    mounted = {line.split()[4]: line.split()[5] for line in lines}
    assert mounted.get("/proc/sys", "").startswith("ro"), o.text
    if Path("/proc/sysrq-trigger").exists():
        assert mounted.get("/proc/sysrq-trigger", "").startswith("ro"), o.text
    assert o.failed("Read-only file system", "Permission denied", "nonexistent", "No such file")


def _host_status(marker: str, ws: Path, within: float = 10.0) -> dict[str, str]:
    """``/proc/PID/status`` on the host of the process whose argv has ``marker``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                if argv[:2] != [b"sleep", marker.encode()]:
                    continue
                text = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
        time.sleep(0.02)
    raise AssertionError(f"no sandboxed 'sleep {marker}' found on the host")


def _status_while_running(cmd: str, marker: str, ws: Path) -> tuple[dict[str, str], Outcome]:
    box: list[Outcome] = []
    runner = threading.Thread(target=lambda: box.append(attack(cmd, ws)))
    runner.start()
    try:
        status = _host_status(marker, ws)
    finally:
        runner.join()
    return status, box[0]


def test_the_command_is_not_host_root_seen_from_the_host(ws: Path) -> None:
    marker = f"3.{os.getpid()}"
    status, o = _status_while_running(f"sleep {marker}", marker, ws)
    uids = [int(u) for u in status["Uid"].split()]
    gids = [int(g) for g in status["Gid"].split()]
    assert 0 not in uids, status["Uid"]  # real, effective, saved, fs
    assert 0 not in gids, status["Gid"]
    if os.geteuid() != 0:
        assert uids == [os.getuid()] * 4
    for caps in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(status[caps], 16) == 0, (caps, status[caps])
    assert int(status["NoNewPrivs"]) == 1
    assert o.error is None


@pytest.mark.skipif(os.geteuid() != 0, reason="choosing the uid is root's")
def test_a_workspace_owned_by_a_user_runs_as_that_user(ws: Path) -> None:
    os.chown(ws, 4321, 4321)
    marker = f"3.{os.getpid()}1"
    status, o = _status_while_running(f"touch made; sleep {marker}", marker, ws)
    assert status["Uid"].split() == ["4321"] * 4
    assert (ws / "made").stat().st_uid == 4321
    assert o.error is None


@pytest.mark.skipif(os.geteuid() != 0, reason="idmapped mounts are for root")
def test_files_made_in_a_root_workspace_stay_root_on_disk(ws: Path) -> None:
    o = attack("echo x > made; mkdir dir; ls -ln made | awk '{print $3}'", ws)
    assert o.error is None
    assert o.record["stdout"].strip() == "1000"  # the sandbox's own uid inside
    assert (ws / "made").stat().st_uid == 0
    assert (ws / "dir").stat().st_uid == 0


# -- what Nexus trusts (issue 9, item 4) -----------------------------------------------


def test_overwrite_nexus_toml_in_the_workspace(ws: Path) -> None:
    (ws / "nexus.toml").write_text("[store]\n")
    o = attack("echo '[evil]' >> nexus.toml || rm -f nexus.toml || mv nexus.toml x", ws)
    assert (ws / "nexus.toml").read_text() == "[store]\n"
    assert o.failed("Read-only file system", "Device or resource busy")


def test_create_nexus_toml_when_absent(ws: Path) -> None:
    o = attack(
        "rm -f nexus.toml; echo '[evil]' > nexus.toml || mkdir nexus.toml || ln -s x nexus.toml",
        ws,
    )
    assert not os.path.lexists(ws / "nexus.toml")  # and the placeholder is gone again
    assert o.failed()


def test_a_workspace_the_caller_cannot_write_still_runs_and_stays_closed(ws: Path) -> None:
    """No placeholder can be made there (as a user); the call runs and makes nothing either."""
    (ws / "data").write_text("read me")
    ws.chmod(0o555)
    try:
        o = attack("cat data; echo '[evil]' > nexus.toml || mkdir .nexus", ws)
    finally:
        ws.chmod(0o755)
    assert "read me" in o.text  # it ran (before: an internal PermissionError as a user)
    assert not os.path.lexists(ws / "nexus.toml")
    assert not os.path.lexists(ws / ".nexus")
    assert o.failed()


def test_create_the_state_directory_when_absent(ws: Path) -> None:
    o = attack("mkdir -p .nexus && echo evil > .nexus/nexus.db || mv .nexus x", ws)
    assert not os.path.lexists(ws / ".nexus")
    assert not (ws / "x").exists()
    assert o.failed()


def test_write_into_a_virtualenv_inside_the_workspace(ws: Path) -> None:
    venv = ws / "sub" / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    trusted = TrustedPaths((venv,))
    o = attack(
        "echo evil > sub/.venv/bin/python; echo 'home = /evil' >> sub/.venv/pyvenv.cfg; "
        # rename the venv, or a directory above it, away with the protection
        "mv sub/.venv sub/old; mv sub sub2 && mkdir -p sub/.venv && "
        "echo evil > sub/.venv/pyvenv.cfg",
        ws,
        trusted=trusted,
    )
    assert (venv / "pyvenv.cfg").read_text() == "home = /usr/bin\n"
    assert not (venv / "bin" / "python").exists()
    assert not (ws / "sub2").exists()
    assert o.failed("Read-only file system", "Device or resource busy")


def test_create_a_trusted_path_under_a_missing_directory(ws: Path) -> None:
    trusted = TrustedPaths((ws / "state" / "home" / ".nexus",))
    o = attack(
        "mkdir -p state/home/.nexus && echo evil > state/home/.nexus/db", ws, trusted=trusted
    )
    assert not os.path.lexists(ws / "state")
    assert o.failed()


def test_this_process_s_own_trusted_paths_by_default(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no trusted set given, ``trusted_paths()`` of this process is protected."""
    home = ws / "home"
    home.mkdir()
    (home / "nexus.db").write_text("log")
    monkeypatch.setenv("NEXUS_HOME", str(home))
    o = attack("echo evil > home/nexus.db", ws)
    assert (home / "nexus.db").read_text() == "log"
    assert o.failed("Read-only file system")


@pytest.mark.parametrize("name", [".nexus", "state-home"])
def test_the_state_directory_is_not_even_readable(
    ws: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The audit signing key and the log in $NEXUS_HOME are hidden, not only read-only."""
    home = ws / name
    (home / "keys").mkdir(parents=True)
    (home / "keys" / "audit.ed25519").write_text(TOKEN)
    (home / "keys" / "audit.ed25519").chmod(0o600)
    (home / "nexus.db").write_text(TOKEN)
    monkeypatch.setenv("NEXUS_HOME", str(home))
    o = attack(
        f"cat {name}/keys/audit.ed25519 {name}/nexus.db; ls -a {name}; "
        f"grep -r {TOKEN} . ; mv {name} moved",
        ws,
    )
    assert TOKEN not in o.text
    assert (home / "nexus.db").read_text() == TOKEN
    assert not (ws / "moved").exists()
    assert o.failed("No such file or directory")


def test_concurrent_calls_keep_each_other_s_placeholder(ws: Path) -> None:
    """The first call to end must not remove the placeholder another call still relies on."""

    async def both() -> list[Any]:
        slow = ShellTool(profile=FAST)(
            {"cmd": "sleep 1; echo evil > nexus.toml"}, ToolContext("r", "slow", 1, ws)
        )
        fast = ShellTool(profile=FAST)({"cmd": "true"}, ToolContext("r", "fast", 1, ws))
        return await asyncio.gather(slow, fast, return_exceptions=True)

    slow, fast = asyncio.run(both())
    assert isinstance(slow, NexusError)
    assert not isinstance(fast, BaseException)
    assert not os.path.lexists(ws / "nexus.toml")
