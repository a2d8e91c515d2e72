"""Hostile repositories: the code under check attacks the checkers, the host and the gate.

Each repository's tests are written so that a *successful* attack would pass
or leave a trace on the host; the assertions check both the host (from
outside) and that the check failed, saying why. Runs as root and, in CI, as
an ordinary user (``.ci/run``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from nexus.missions.verify import (
    MAX_OUTPUT,
    CheckResult,
    CheckSandbox,
    CheckSpec,
    default_checks,
    gate,
    run_checks,
)
from nexus.missions.verify._run import CHECK_PROFILE

pytestmark = pytest.mark.slow

LIB = '"""Lib."""\n\n\ndef one() -> int:\n    """One."""\n    return 1\n'


def _tests_check(root: Path, timeout: float = 60) -> CheckSpec:
    spec = next(c for c in default_checks(root) if c.name == "tests")
    return spec.model_copy(update={"timeout_s": timeout})


def _run_tests(
    root: Path, files: dict[str, str], *, timeout: float = 60, sandbox: CheckSandbox | None = None
) -> CheckResult:
    for name, text in {"lib.py": LIB, **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    spec = _tests_check(root, timeout)
    [result] = asyncio.run(
        run_checks(root, [spec], changed=list(files), owns=["**"], sandbox=sandbox)
    )
    return result


def test_tests_cannot_read_host_secrets(tmp_path: Path) -> None:
    host_secret = tmp_path / "host-secret.txt"
    host_secret.write_text("TOP-SECRET-7f3a\n")
    host_secret.chmod(0o600)
    root = tmp_path / "repo"
    root.mkdir()
    result = _run_tests(
        root,
        {
            "tests/test_read.py": (
                "def test_read() -> None:\n"
                "    got = []\n"
                f"    for p in ('/etc/shadow', {str(host_secret)!r}, '/root/.bashrc'):\n"
                "        try:\n"
                "            got.append(open(p).read())\n"
                "        except OSError:\n"
                "            pass\n"
                "    open('leak.txt', 'w').write(''.join(got))\n"
                "    assert got\n"
            )
        },
    )
    assert not result.passed
    assert (root / "leak.txt").read_text() == ""
    assert "TOP-SECRET" not in result.output


def test_tests_cannot_reach_the_network_or_the_hosts_loopback(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = _run_tests(
            tmp_path,
            {
                "tests/test_net.py": (
                    "import socket\n\n\n"
                    "def test_net() -> None:\n"
                    f"    socket.create_connection(('127.0.0.1', {port}), timeout=3).close()\n\n\n"
                    "def test_out() -> None:\n"
                    "    socket.create_connection(('1.1.1.1', 53), timeout=3).close()\n"
                )
            },
        )
    finally:
        stop.set()
        thread.join()
        server.close()
    assert accepted == []
    assert not result.passed
    codes = [d.code for d in result.diagnostics]
    assert codes.count("failure") == 2
    assert "denied-network" in codes  # the sandbox recorded the refusal


def test_a_fork_bomb_is_contained_and_the_check_fails(tmp_path: Path) -> None:
    started = time.monotonic()
    result = _run_tests(
        tmp_path,
        {
            "tests/test_bomb.py": (
                "import os\n\n\n"
                "def test_bomb() -> None:\n"
                "    while True:\n"
                "        try:\n"
                "            os.fork()\n"
                "        except OSError:\n"
                "            pass\n"
            )
        },
        timeout=8,
    )
    took = time.monotonic() - started
    assert took < 40, took
    assert not result.passed
    assert result.limits_hit  # wall time at least; processes where a cgroup counts them
    assert any(d.code and d.code.startswith("limit-") for d in result.diagnostics)


def test_tests_cannot_write_outside_the_work_tree(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    outside.chmod(0o777)
    root = tmp_path / "repo"
    root.mkdir()
    result = _run_tests(
        root,
        {
            "tests/test_write.py": (
                "import os\n\n\n"
                "def test_write() -> None:\n"
                "    wrote = 0\n"
                f"    for p in ({str(outside / 'pwned')!r}, '/tmp/nexus-verify-pwned',\n"
                "              '../pwned', '/etc/pwned'):\n"
                "        try:\n"
                "            with open(p, 'w') as fh:\n"
                "                fh.write('x')\n"
                "            wrote += 1\n"
                "        except OSError:\n"
                "            pass\n"
                "    assert wrote == 0\n"
            )
        },
    )
    assert not (outside / "pwned").exists()
    assert not Path("/tmp/nexus-verify-pwned").exists()
    assert not (tmp_path / "pwned").exists()
    assert not Path("/etc/pwned").exists()
    # '/tmp' inside is the sandbox's own and the work tree's parent is not the host's:
    # a write that 'succeeded' inside went nowhere the host sees (checked above)
    assert result.exit_code is not None


def test_a_flood_of_output_is_cut_and_fails(tmp_path: Path) -> None:
    # pytest captures what tests print; a hook after the session prints to the real stdout
    flood = (
        "import os\n\n\n"
        "def pytest_unconfigure(config):\n"
        "    chunk = b'x' * (1 << 20)\n"
        "    for _ in range(100):\n"
        "        os.write(1, chunk)\n"
    )
    started = time.monotonic()
    result = _run_tests(
        tmp_path, {"conftest.py": flood, "tests/test_ok.py": "def test_ok() -> None:\n    pass\n"}
    )
    assert time.monotonic() - started < 60
    assert not result.passed
    assert "output" in result.limits_hit
    assert result.diagnostics[0].code == "limit-output"
    assert len(result.output.encode()) <= MAX_OUTPUT
    assert len(str(result.to_data())) < 2 * MAX_OUTPUT


def test_a_flooding_command_is_cut_and_fails(tmp_path: Path) -> None:
    spec = CheckSpec(
        name="loud", kind="command",
        command=("/bin/sh", "-c", "head -c 104857600 /dev/zero | tr '\\0' x"),
    )  # fmt: skip
    [result] = asyncio.run(run_checks(tmp_path, [spec], changed=[], owns=[]))
    assert not result.passed
    assert "output" in result.limits_hit
    assert len(result.output.encode()) <= MAX_OUTPUT


_REWRITE = """\
import os


def pytest_unconfigure(config):
    path = config.option.xmlpath
    if path:
        os.unlink(path)
        {action}
"""


@pytest.mark.parametrize(
    ("action", "code"),
    [
        # a report too large to read
        (
            "open(path, 'w').write('<testsuite>' + ' ' * (17 << 20) + '</testsuite>')",
            "junit-refused",
        ),
        # a billion-laughs report
        (
            'open(path, \'w\').write(\'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><testsuite>&b;</testsuite>\')',
            "junit-refused",
        ),
        # a link to a host file in place of the report
        ("os.symlink('/etc/shadow', path)", "no-junit"),
        ("os.mkfifo(path)", "no-junit"),
    ],
)
def test_a_report_rewritten_by_the_tests_is_refused(tmp_path: Path, action: str, code: str) -> None:
    result = _run_tests(
        tmp_path,
        {
            "conftest.py": _REWRITE.format(action=action),
            "tests/test_ok.py": "def test_ok() -> None:\n    pass\n",
        },
    )
    assert not result.passed
    assert result.exit_code == 0
    assert result.diagnostics[0].code == code
    assert not gate([result]).accepted


def test_the_checks_limits_come_from_the_sandbox_profile(tmp_path: Path) -> None:
    from dataclasses import replace

    small = CheckSandbox(profile=replace(CHECK_PROFILE, max_output_bytes=4096))
    result = _run_tests(
        tmp_path,
        {"tests/test_loud.py": "def test_loud() -> None:\n    print('y' * 10000)\n    assert 0\n"},
        sandbox=small,
    )
    assert not result.passed
    assert "output" in result.limits_hit
    assert os.path.isdir(tmp_path)
