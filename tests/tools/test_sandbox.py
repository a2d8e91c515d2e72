"""The process sandbox and the tools on it: behaviour, failure paths, fallback, egress.

Attacks live in ``test_escapes.py``; this file checks that ordinary work runs,
that results and errors say what happened, and that clean-up is complete.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nexus.domain.errors import ErrorKind, InfrastructureError, NexusError, PolicyDenied, UserError
from nexus.tools import sandbox
from nexus.tools.base import Tool, ToolContext, ToolFailed
from nexus.tools.builtins import PythonTool, ShellTool, builtin_tools
from nexus.tools.profile import ExecProfile
from nexus.tools.sandbox import SandboxDenied, SandboxResult, SandboxUnavailable, run_sandboxed

FAST = ExecProfile(cpu_seconds=10, wall_seconds=20)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


def sandboxed(
    cmd: str,
    ws: Path,
    profile: ExecProfile = FAST,
    *,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
) -> SandboxResult:
    return asyncio.run(
        run_sandboxed(
            ["/bin/sh", "-c", cmd], profile=profile, workspace=ws, env=env or {}, stdin=stdin
        )
    )


def call(tool: Tool, args: dict[str, Any], ws: Path, profile: ExecProfile | None = None) -> Any:
    return asyncio.run(tool(args, ToolContext("run-1", "t", 1, ws, profile=profile)))


def processes_in(ws: Path) -> list[int]:
    """Live processes whose working directory is ``ws`` (bwrap, the command, the helper)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/cwd") == str(ws):
                    with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                        if fh.read().rsplit(") ", 1)[1][:1] != "Z":
                            found.append(int(entry))
            except (OSError, IndexError):
                continue
    return found


def gone(ws: Path, within: float = 3.0) -> list[int]:
    deadline = time.monotonic() + within
    while (alive := processes_in(ws)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def leftover_cgroups() -> list[str]:
    root = Path("/sys/fs/cgroup/pids")
    if not root.is_dir():
        return []
    return [p.name for p in root.rglob(f"nexus-{os.getpid()}-*")]


# -- ordinary work ----------------------------------------------------------------------


def test_runs_in_the_workspace_with_only_our_environment(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    monkeypatch.setenv("GRANTED", "yes")
    profile = ExecProfile(env=("GRANTED",), wall_seconds=20)
    r = sandboxed("pwd; env", ws, profile, env={"EXPLICIT": "1"})
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0] == str(ws)
    env = dict(line.split("=", 1) for line in lines[1:])
    assert set(env) == {
        "PATH",
        "HOME",
        "LANG",
        "TMPDIR",
        "NEXUS_SANDBOX",
        "PWD",
        "EXPLICIT",
        "GRANTED",
    }
    assert env["HOME"] == str(ws)
    assert env["NEXUS_SANDBOX"] == "bwrap"
    assert env["GRANTED"] == "yes"
    assert "hunter2" not in r.stdout.decode()
    assert (r.sandbox, r.limits_hit, r.denials, r.truncated) == ("bwrap", [], [], False)
    assert r.duration_ms > 0


def test_writes_in_the_workspace_reach_the_host(ws: Path) -> None:
    (ws / "in.txt").write_text("from host\n")
    r = sandboxed("cat in.txt > out.txt; echo more >> out.txt; mkdir -p d/e; touch d/e/f", ws)
    assert r.exit_code == 0, r.stderr
    assert (ws / "out.txt").read_text() == "from host\nmore\n"
    assert (ws / "d" / "e" / "f").exists()


def test_stdin_exit_code_and_stderr(ws: Path) -> None:
    r = sandboxed("cat; echo oops >&2; exit 7", ws, stdin=b"abc")
    assert (r.exit_code, r.stdout, r.stderr) == (7, b"abc", b"oops\n")


def test_a_missing_command_exits_127(ws: Path) -> None:
    r = asyncio.run(run_sandboxed(["no-such-command"], profile=FAST, workspace=ws, env={}))
    assert r.exit_code == 127
    assert b"cannot execute 'no-such-command'" in r.stderr


def test_missing_workspace_and_write_path_are_user_errors(tmp_path: Path, ws: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        sandboxed("true", tmp_path / "nope")
    profile = ExecProfile(write_paths=("$WORKSPACE", str(tmp_path / "missing")))
    with pytest.raises(UserError, match=r"write path .*missing does not exist"):
        sandboxed("true", ws, profile)
    with pytest.raises(UserError, match="empty command"):
        asyncio.run(run_sandboxed([], profile=FAST, workspace=ws, env={}))


def test_granted_read_and_write_paths(tmp_path: Path, ws: Path) -> None:
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    (ro / "data").write_text("readable\n")
    profile = ExecProfile(read_paths=(str(ro),), write_paths=("$WORKSPACE", str(rw)))
    r = sandboxed(f"cat {ro}/data; touch {ro}/new; echo w > {rw}/new; exit 0", ws, profile)
    assert r.stdout == b"readable\n"
    assert b"Read-only file system" in r.stderr
    assert not (ro / "new").exists()
    assert (rw / "new").read_text() == "w\n"


@pytest.mark.timeout(20)  # a call that waits for the background sleep takes 30 s
def test_background_processes_die_with_the_command(ws: Path) -> None:
    r = sandboxed("sleep 30 & echo started", ws)
    assert r.stdout == b"started\n"
    assert gone(ws) == []


@pytest.mark.timeout(20)  # a call that waits for the sleeps takes 30 s
def test_wall_timeout_kills_everything(ws: Path) -> None:
    r = sandboxed("sleep 30 & sleep 30", ws, ExecProfile(wall_seconds=0.5))
    assert r.limits_hit == ["wall_time"]
    assert r.exit_code == 137
    assert gone(ws) == []
    assert leftover_cgroups() == []


def test_cancel_kills_the_whole_sandbox(ws: Path) -> None:
    async def go() -> None:
        task = asyncio.create_task(
            run_sandboxed(
                ["/bin/sh", "-c", "echo up > started; sleep 30 & sleep 30"],
                profile=FAST,
                workspace=ws,
                env={},
            )
        )
        deadline = time.monotonic() + 10
        while not (ws / "started").exists():
            assert time.monotonic() < deadline, "the command never started"
            await asyncio.sleep(0.02)
        assert processes_in(ws)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert gone(ws) == []
    assert leftover_cgroups() == []


def test_output_is_capped_and_the_command_killed(ws: Path) -> None:
    r = sandboxed("yes", ws, ExecProfile(max_output_bytes=1000))
    assert len(r.stdout) == 1000
    assert r.truncated
    assert r.limits_hit == ["output"]
    assert r.exit_code != 0


# -- the tools --------------------------------------------------------------------------


def test_shell_success_has_the_old_shape(ws: Path) -> None:
    out = call(ShellTool(), {"cmd": "echo hi; echo $NEXUS_RUN_ID $NEXUS_TASK"}, ws)
    assert out == {"exit_code": 0, "stdout": "hi\nrun-1 t\n", "stderr": ""}


def test_shell_non_zero_exit_is_a_retryable_tool_failure(ws: Path) -> None:
    with pytest.raises(ToolFailed) as info:
        call(ShellTool(), {"cmd": "echo out; echo err >&2; exit 3"}, ws)
    error = info.value
    assert error.retryable
    assert error.message == "command exited with 3"
    assert error.details["exit_code"] == 3
    assert error.details["stdout"] == "out\n"
    assert error.details["stderr"] == "err\n"
    assert error.details["limits_hit"] == []
    assert error.details["denials"] == []
    assert error.details["sandbox"] == "bwrap"


def test_shell_limit_hit_is_not_retryable(ws: Path) -> None:
    with pytest.raises(ToolFailed) as info:
        call(ShellTool(profile=ExecProfile(max_output_bytes=100)), {"cmd": "yes"}, ws)
    assert not info.value.retryable
    assert info.value.details["limits_hit"] == ["output"]
    assert "limits hit: output" in info.value.message


def test_shell_wall_timeout_stays_retryable(ws: Path) -> None:
    with pytest.raises(ToolFailed) as info:
        call(ShellTool(profile=ExecProfile(wall_seconds=0.3)), {"cmd": "sleep 5"}, ws)
    assert info.value.retryable
    assert info.value.details["limits_hit"] == ["wall_time"]


def test_shell_denial_with_failure_is_policy_denied(ws: Path) -> None:
    with pytest.raises(SandboxDenied) as info:
        call(ShellTool(), {"cmd": "unshare -U true"}, ws)
    error = info.value
    assert isinstance(error, PolicyDenied)
    assert error.kind is ErrorKind.POLICY_DENIED
    assert not error.retryable
    assert "seccomp: unshare" in error.message
    data = error.to_data()
    assert data["kind"] == "policy_denied"
    assert {"reason": "seccomp", "detail": "unshare"} in data["details"]["denials"]  # type: ignore[index]


def test_shell_denial_without_failure_is_recorded_in_the_result(ws: Path) -> None:
    out = call(ShellTool(), {"cmd": "unshare -U true || echo carried on"}, ws)
    assert out["stdout"] == "carried on\n"
    assert out["denials"] == [{"reason": "seccomp", "detail": "unshare"}]


def test_the_task_profile_narrows_the_tool_profile(ws: Path) -> None:
    out = call(ShellTool(), {"cmd": "yes | head -c 50"}, ws, profile=ExecProfile())
    assert len(out["stdout"]) == 50
    with pytest.raises(ToolFailed) as info:
        call(ShellTool(), {"cmd": "yes | head -c 50"}, ws, ExecProfile(max_output_bytes=10))
    assert info.value.details["limits_hit"] == ["output"]
    assert not info.value.retryable


def test_output_past_the_cap_fails_even_when_the_command_exits_first() -> None:
    # the command may exit 0 before the kill lands: the outcome must not depend on that race
    from nexus.tools.builtins._exec import _outcome

    raced = SandboxResult(
        exit_code=0,
        stdout=b"y\n" * 5,
        stderr=b"",
        truncated=True,
        limits_hit=["output"],
        denials=[],
        sandbox="bwrap",
        duration_ms=3,
        warnings=[],
    )
    with pytest.raises(ToolFailed, match="passed the profile's cap") as info:
        _outcome("shell", raced)
    assert info.value.details["exit_code"] == 0
    assert info.value.details["limits_hit"] == ["output"]
    assert not info.value.retryable


def test_shell_rejects_a_missing_command(ws: Path) -> None:
    with pytest.raises(NexusError, match=r"'with\.cmd' must be a non-empty string") as info:
        call(ShellTool(), {"cmd": "  "}, ws)
    assert not info.value.retryable


def test_python_reads_input_and_parses_the_last_line(ws: Path) -> None:
    code = "import json, sys\nx = json.load(sys.stdin)\nprint('adding')\nprint(json.dumps(sum(x)))"
    out = call(PythonTool(), {"code": code, "input": [1, 2, 3]}, ws)
    assert out == {"exit_code": 0, "stdout": "adding\n6\n", "stderr": "", "result": 6}


def test_python_without_json_output_has_no_result(ws: Path) -> None:
    out = call(PythonTool(), {"code": "import sys; print(sys.flags.isolated); print('x y')"}, ws)
    assert out["stdout"] == "1\nx y\n"
    assert "result" not in out
    assert call(PythonTool(), {"code": "pass"}, ws) == {"exit_code": 0, "stdout": "", "stderr": ""}


def test_python_failures(ws: Path) -> None:
    with pytest.raises(ToolFailed) as info:
        call(PythonTool(), {"code": "raise SystemExit(4)"}, ws)
    assert info.value.details["exit_code"] == 4
    with pytest.raises(ToolFailed) as info:
        call(PythonTool(), {"code": "1/0"}, ws)
    assert "ZeroDivisionError" in info.value.details["stderr"]
    with pytest.raises(NexusError, match=r"'with\.code' must be a non-empty string"):
        call(PythonTool(), {}, ws)
    with pytest.raises(NexusError, match=r"unknown arguments \['cmd'\]"):
        call(PythonTool(), {"code": "pass", "cmd": "x"}, ws)
    with pytest.raises(NexusError, match="'input' is not JSON"):
        call(PythonTool(), {"code": "pass", "input": {1, 2}}, ws)


def test_builtin_registry() -> None:
    registry = builtin_tools()
    assert registry.names() == [
        "file.list",
        "file.read",
        "file.write",
        "http",
        "noop",
        "python",
        "shell",
    ]


# -- set-up failures and the rlimits fallback -------------------------------------------


@pytest.fixture
def no_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "BWRAP", "/nonexistent/bwrap")


@pytest.mark.usefixtures("no_bwrap")
def test_without_bubblewrap_the_call_is_refused(ws: Path) -> None:
    with pytest.raises(PolicyDenied) as info:
        sandboxed("true", ws)
    assert "'/nonexistent/bwrap' is not installed" in info.value.message
    # the weaker fallback, and where a project opts a tool in to it
    assert '[tools.shell] sandbox = "rlimits" in nexus.toml' in info.value.message
    assert not info.value.retryable


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
user_only = pytest.mark.skipif(os.geteuid() == 0, reason="runs as an ordinary user (CI does)")


@root_only
@pytest.mark.usefixtures("no_bwrap")
def test_the_rlimits_fallback_refuses_to_run_tool_code_as_root(ws: Path) -> None:
    (ws / "marker").write_text("")
    with pytest.raises(SandboxUnavailable, match="cannot run tool code as root") as info:
        sandboxed("rm marker", ws, ExecProfile(sandbox="rlimits", wall_seconds=20))
    assert not info.value.retryable
    assert (ws / "marker").exists()


@user_only
@pytest.mark.usefixtures("no_bwrap")
def test_the_rlimits_fallback_runs_and_says_so(ws: Path) -> None:
    profile = ExecProfile(sandbox="rlimits", wall_seconds=20)
    r = sandboxed("echo $NEXUS_SANDBOX; python3 -c 'import socket; socket.socket()'", ws, profile)
    assert r.sandbox == "rlimits"
    assert r.stdout == b"rlimits\n"
    assert any("NOT isolated" in w for w in r.warnings)
    assert r.denials == [
        {"reason": "network", "detail": "socket(AF_INET): the profile allows no network"}
    ]
    out = call(ShellTool(profile=profile), {"cmd": "echo ok"}, ws)
    assert out["sandbox"] == "rlimits"
    assert out["warnings"] == r.warnings
    with pytest.raises(ToolFailed) as info:
        call(ShellTool(profile=profile), {"cmd": "exit 2"}, ws)
    assert info.value.details["sandbox"] == "rlimits"
    assert info.value.details["warnings"] == r.warnings


@user_only
@pytest.mark.usefixtures("no_bwrap")
@pytest.mark.timeout(20)  # a call that waits for the sleeps takes 30 s
def test_the_rlimits_fallback_still_limits_and_cleans_up(ws: Path) -> None:
    profile = ExecProfile(sandbox="rlimits", wall_seconds=0.5)
    r = sandboxed("setsid sleep 30 & sleep 30", ws, profile)
    assert r.limits_hit == ["wall_time"]
    if os.access("/sys/fs/cgroup/pids", os.W_OK):
        assert gone(ws) == []  # the cgroup catches the setsid escapee
    else:  # without a cgroup nothing can (the fallback's documented weakness)
        for pid in processes_in(ws):
            os.kill(pid, 9)


@pytest.mark.usefixtures("no_bwrap")
def test_an_allow_list_needs_bwrap(ws: Path) -> None:
    with pytest.raises(PolicyDenied, match="allow-list needs the bwrap sandbox"):
        sandboxed("true", ws, ExecProfile(sandbox="rlimits", network=("pypi.org:443",)))


def _fake_bwrap(path: Path, probe_ok: bool) -> str:
    path.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" --ro-bind / / "*) '
        + (
            "exit 0"
            if probe_ok
            else "echo 'bwrap: No permissions to create new namespace' >&2; exit 1"
        )
        + ";; esac\necho 'bwrap: Can not mount tmpfs' >&2\nexit 1\n"
    )
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every uid can reach (the sandbox's uid runs bwrap; tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp())
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_bwrap_without_user_namespaces_is_refused(
    open_dir: Path, ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "BWRAP", _fake_bwrap(open_dir / "bwrap-no-userns", False))
    with pytest.raises(PolicyDenied, match="No permissions to create new namespace"):
        sandboxed("true", ws)


def test_bwrap_failing_to_set_up_is_an_infrastructure_error(
    open_dir: Path, ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "BWRAP", _fake_bwrap(open_dir / "bwrap-broken", True))
    with pytest.raises(InfrastructureError, match=r"failed to start .*Can not mount tmpfs"):
        sandboxed("true", ws)


def test_the_init_outlives_attempts_to_kill_it(ws: Path) -> None:
    """PID 1 (the shim) ignores signals from inside, so denials stay recorded."""
    r = sandboxed("kill -9 1; kill -STOP 1; sleep 0.1; unshare -U true; echo $?", ws)
    assert r.stdout == b"1\n"
    assert r.denials == [{"reason": "seccomp", "detail": "unshare"}]


# -- the egress proxy -------------------------------------------------------------------


@pytest.fixture
def web() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello from the host\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_an_allow_listed_host_is_reached_through_the_proxy(ws: Path, web: int) -> None:
    profile = ExecProfile(network=(f"127.0.0.1:{web}",), wall_seconds=20)
    code = f"import urllib.request as u; print(u.urlopen('http://127.0.0.1:{web}/').read())"
    r = sandboxed(f'curl -sS http://127.0.0.1:{web}/; python3 -c "{code}"', ws, profile)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == b"hello from the host\nb'hello from the host\\n'\n"
    assert r.denials == []


def test_hosts_off_the_list_are_refused_and_recorded(ws: Path, web: int) -> None:
    profile = ExecProfile(network=(f"127.0.0.1:{web}",), wall_seconds=20)
    r = sandboxed("curl -sS https://example.com/ -o /dev/null", ws, profile)
    assert r.exit_code != 0
    assert b"403" in r.stderr
    assert r.denials == [
        {"reason": "network", "detail": "example.com:443 is not in the allow-list"}
    ]


def test_the_proxy_is_the_only_way_out(ws: Path, web: int) -> None:
    profile = ExecProfile(network=(f"127.0.0.1:{web}",), wall_seconds=20)
    r = sandboxed(f"curl -sS --noproxy '*' --max-time 2 http://127.0.0.1:{web}/", ws, profile)
    assert r.exit_code != 0  # the sandbox's own loopback, not the host's
    assert b"hello" not in r.stdout


# -- kill -9 of Nexus (issue 9, item 10) --------------------------------------------------

_NEXUS = """
import asyncio, sys
from pathlib import Path
from nexus.tools.profile import ExecProfile
from nexus.tools.sandbox import run_sandboxed
cmd = sys.argv[2]
asyncio.run(run_sandboxed(["/bin/sh", "-c", cmd], profile=ExecProfile(wall_seconds=60),
                          workspace=Path(sys.argv[1]), env={}))
"""


def _leftovers(pid: int) -> list[Path]:
    """Temp dirs and cgroups named after the Nexus process ``pid``."""
    found = list(Path(tempfile.gettempdir()).glob(f"nexus-sbx-{pid}-*"))
    for root in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup/memory")):
        if root.is_dir():
            found += [p for p in root.rglob(f"nexus-{pid}-*") if p.is_dir()]
    return found


@pytest.mark.slow
def test_a_killed_nexus_leaves_no_process_and_the_next_one_reaps(ws: Path, tmp_path: Path) -> None:
    nexus = subprocess.Popen(
        [sys.executable, "-c", _NEXUS, str(ws), "echo up > started; sleep 1000 & exec sleep 999"]
    )
    try:
        deadline = time.monotonic() + 15
        while not (ws / "started").exists():
            assert time.monotonic() < deadline, "the sandboxed command never started"
            time.sleep(0.02)
        assert processes_in(ws)  # bwrap, the init and both sleeps
        leftovers = _leftovers(nexus.pid)
        assert leftovers  # at least its temp dir
    finally:
        nexus.kill()
        nexus.wait()
    assert gone(ws, within=5) == []
    assert all(p.exists() for p in leftovers)  # nobody cleaned up after the dead process
    other = tmp_path / "other"
    other.mkdir()
    next_one = subprocess.run(
        [sys.executable, "-c", _NEXUS, str(other), "true"], capture_output=True, timeout=60
    )
    assert next_one.returncode == 0, next_one.stderr
    assert [p for p in leftovers if p.exists()] == []
