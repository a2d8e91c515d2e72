"""Running checks for real, in the sandbox, on tiny repositories."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from nexus.domain.errors import UserError
from nexus.missions.verify import (
    CheckResult,
    CheckSpec,
    default_checks,
    gate,
    run_checks,
    user_checks,
)

pytestmark = pytest.mark.slow

GOOD = '''"""A tiny library."""


def add(a: int, b: int) -> int:
    """The sum of ``a`` and ``b``."""
    return a + b
'''
GOOD_TEST = """from lib import add


def test_add() -> None:
    assert add(1, 2) == 3
"""


def _repo(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _committed(root: Path, files: dict[str, str]) -> Path:
    """``_repo`` as a git repository with the files committed (the base of a change)."""
    import subprocess

    _repo(root, files)
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    return root


def _run(
    root: Path,
    checks: Sequence[CheckSpec] | None = None,
    changed: Sequence[str] = ("lib.py",),
    owns: Sequence[str] = ("**",),
    **kw: object,
) -> dict[str, CheckResult]:
    specs = default_checks(root) if checks is None else checks
    results = asyncio.run(run_checks(root, specs, changed=changed, owns=owns, **kw))  # type: ignore[arg-type]
    return {r.name: r for r in results}


def test_a_clean_change_passes_every_check(tmp_path: Path) -> None:
    root = _repo(
        tmp_path,
        {"lib.py": GOOD, "tests/test_lib.py": GOOD_TEST, "pyproject.toml": "[tool.mypy]\n"},
    )
    started = time.monotonic()
    results = _run(root, changed=["lib.py", "tests/test_lib.py", "README.md"])
    took = time.monotonic() - started
    assert {n: r.passed for n, r in results.items()} == dict.fromkeys(
        ["scope", "build", "lint", "types", "tests", "security", "secrets", "docs"], True
    )
    assert results["tests"].exit_code == 0
    assert gate(list(results.values())).accepted
    assert took < 60, took
    # nothing was left in the work tree: no bytecode, no caches
    leftovers = {p.name for p in root.rglob("*")}
    assert not leftovers & {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def test_failures_come_back_as_precise_diagnostics(tmp_path: Path) -> None:
    root = _repo(
        tmp_path,
        {
            "lib.py": "import os\n\n\ndef add(a, b):\n    return a - b\n",
            "broken.py": "def f(:\n",
            "tests/test_lib.py": GOOD_TEST,
            "pyproject.toml": "[tool.mypy]\nstrict = true\n",
        },
    )
    results = _run(root, changed=["lib.py", "broken.py"])
    assert not results["build"].passed
    [syntax] = results["build"].diagnostics
    assert (syntax.file, syntax.line, syntax.code) == ("broken.py", 1, "SyntaxError")
    lint = results["lint"]
    assert not lint.passed
    assert ("lib.py", 1, "F401") in [(d.file, d.line, d.code) for d in lint.diagnostics]
    assert not results["types"].passed
    # a syntax error blocks mypy: it reports that first
    assert ("broken.py", 1, "syntax") in [
        (d.file, d.line, d.code) for d in results["types"].diagnostics
    ]
    tests = results["tests"]
    assert not tests.passed
    assert tests.exit_code == 1
    failure = next(d for d in tests.diagnostics if d.code == "failure")
    assert failure.file == "tests/test_lib.py"
    assert "test_add" in failure.message
    verdict = gate(list(results.values()))
    assert not verdict.accepted
    assert {"build", "lint", "types", "tests"} <= set(verdict.failed)
    assert "[F401]" in verdict.feedback
    assert "test_add" in verdict.feedback


def test_a_conftest_that_fakes_a_pass_loses_to_the_junit_report(tmp_path: Path) -> None:
    root = _repo(
        tmp_path,
        {
            "lib.py": GOOD,
            "tests/test_lib.py": "def test_no() -> None:\n    assert False\n",
            "conftest.py": (
                "def pytest_sessionfinish(session, exitstatus):\n    session.exitstatus = 0\n"
            ),
        },
    )
    tests = next(c for c in default_checks(root) if c.name == "tests")
    result = _run(root, [tests])["tests"]
    assert result.exit_code == 0  # the fake worked on the exit status...
    assert not result.passed  # ...but not on the gate
    assert result.diagnostics[0].message.startswith("1 failed, 0 errors of 1 tests (exit 0)")


def test_no_junit_report_fails_the_junit_rule(tmp_path: Path) -> None:
    root = _repo(tmp_path, {"lib.py": GOOD})
    spec = CheckSpec(name="t", kind="command", command=("/bin/true",), passes="junit")
    result = _run(root, [spec])["t"]
    assert not result.passed
    assert result.diagnostics[0].code == "no-junit"


def test_user_commands_follow_their_pass_rules(tmp_path: Path) -> None:
    root = _repo(tmp_path, {"lib.py": GOOD + "# TODO: more\n"})
    checks = user_checks(
        {
            "todo": {"command": "grep -n TODO lib.py", "passes": "no_findings"},
            "no-fixme": {"command": "grep -n FIXME lib.py", "passes": "no_findings"},
            "exits": {"command": ["sh", "-c", "echo compiling; echo oops >&2; exit 3"]},
            "broken": {"command": ["sh", "-c", "exit 2"], "passes": "no_findings"},
            "fine": {"command": "true"},
        },
        source="nexus.toml",
    )
    results = _run(root, checks)
    assert not results["todo"].passed
    assert [d.message for d in results["todo"].diagnostics] == ["7:# TODO: more"]
    assert results["no-fixme"].passed  # grep exits 1 when it finds nothing
    assert not results["exits"].passed
    [tail] = results["exits"].diagnostics
    assert tail.code == "exit-3"
    assert "oops" in tail.message
    assert not results["broken"].passed
    assert "the tool failed (exit 2)" in results["broken"].diagnostics[0].message
    assert results["fine"].passed


def test_a_missing_tool_is_skipped_and_fails_only_when_required(tmp_path: Path) -> None:
    root = _repo(tmp_path, {"lib.py": GOOD})
    checks = [
        CheckSpec(name="req", kind="command", command=("no-such-tool-xyz",)),
        CheckSpec(name="opt", kind="command", command=("no-such-tool-xyz",), required=False),
        CheckSpec(name="mod", kind="command", command=(_python(), "-m", "no_such_module_xyz")),
    ]
    results = _run(root, checks)
    assert not results["req"].passed
    assert "not on the sandbox's PATH" in (results["req"].skipped or "")
    assert results["opt"].passed
    assert results["opt"].skipped
    assert not results["mod"].passed
    assert "not installed" in (results["mod"].skipped or "")
    assert gate(list(results.values())).failed == ["req", "mod"]


def _python() -> str:
    from nexus.tools.sandbox import PYTHON

    return PYTHON


def test_nothing_to_check_is_a_skip_that_passes(tmp_path: Path) -> None:
    root = _repo(tmp_path, {"lib.py": GOOD, "notes.md": "x\n"})
    results = _run(root, changed=["notes.md"])
    assert results["lint"].passed
    assert results["lint"].skipped == "no changed file matches *.py"


def test_changed_names_never_read_as_options(tmp_path: Path) -> None:
    root = _repo(tmp_path, {"--version.py": "x = 1\n", "-rf": "y\n"})
    spec = CheckSpec(
        name="args", kind="command", command=("/bin/sh", "-c", 'printf "%s\\n" "$@"', "sh",
                                                "{changed}"),
    )  # fmt: skip
    result = _run(root, [spec], changed=["--version.py", "-rf", "gone.py", "../x"])["args"]
    assert result.passed
    assert result.output.split() == ["./--version.py", "./-rf"]


def test_secrets_found_are_redacted_from_every_output(tmp_path: Path) -> None:
    key = "AKIA" + "QWERTYUIOPASDFGH"
    root = _repo(tmp_path, {"conf.py": f'AWS = "{key}"\n'})
    checks = [
        CheckSpec(name="secrets", kind="secrets", passes="no_findings"),
        CheckSpec(name="echo", kind="command", command=("cat", "conf.py")),
    ]
    results = _run(root, checks, changed=["conf.py"])
    assert not results["secrets"].passed
    assert key not in results["echo"].output
    assert "[redacted]" in results["echo"].output
    for result in results.values():
        assert key not in str(result.to_data())


def test_a_timeout_fails_the_check_and_says_so(tmp_path: Path) -> None:
    root = _repo(tmp_path, {"lib.py": GOOD})
    spec = CheckSpec(name="slow", kind="command", command=("sleep", "30"), timeout_s=1)
    started = time.monotonic()
    result = _run(root, [spec])["slow"]
    assert time.monotonic() - started < 15
    assert not result.passed
    assert "wall_time" in result.limits_hit
    assert result.diagnostics[0].code == "limit-wall_time"


def test_checks_run_in_parallel_within_the_limit(tmp_path: Path) -> None:
    root = _repo(tmp_path, {"lib.py": GOOD})
    checks = [CheckSpec(name=f"s{i}", kind="command", command=("sleep", "1")) for i in range(4)]
    started = time.monotonic()
    _run(root, checks, parallel=4)
    parallel = time.monotonic() - started
    assert parallel < 3.5, parallel


def test_bad_calls_are_user_errors(tmp_path: Path) -> None:
    spec = CheckSpec(name="a", kind="scope")
    with pytest.raises(UserError, match="not a directory"):
        asyncio.run(run_checks(tmp_path / "nope", [spec], changed=[], owns=[]))
    with pytest.raises(UserError, match="two checks are named 'a'"):
        asyncio.run(run_checks(tmp_path, [spec, spec], changed=[], owns=[]))
    with pytest.raises(UserError, match="parallel"):
        asyncio.run(run_checks(tmp_path, [spec], changed=[], owns=[], parallel=0))


def test_docs_compare_against_a_git_base(tmp_path: Path) -> None:
    root = _committed(tmp_path, {"lib.py": GOOD})
    (root / "lib.py").write_text(GOOD + "\n\ndef sub(a: int, b: int) -> int:\n    return a - b\n")
    docs = CheckSpec(name="docs", kind="docs", required=False)
    result = _run(root, [docs], base_ref="HEAD")["docs"]
    assert [d.code for d in result.diagnostics] == ["missing-docstring", "docs-not-updated"]
    assert "lib.py:sub" in result.diagnostics[1].message
    assert "signatures against the base" in result.output
    # an option-looking or unknown ref falls back to docstrings only
    result = _run(root, [docs], base_ref="--output=/tmp/x")["docs"]
    assert [d.code for d in result.diagnostics] == ["missing-docstring"]
    assert not os.path.exists("/tmp/x")


def test_a_check_reads_outside_the_tree_only_where_it_may(tmp_path: Path) -> None:
    toolchain = tmp_path / "toolchain"
    toolchain.mkdir()
    (toolchain / "VERSION").write_text("toolchain 1.0\n")
    root = _repo(tmp_path / "repo", {"lib.py": GOOD})
    [allowed, denied] = user_checks(
        {
            "allowed": {"command": ["cat", str(toolchain / "VERSION")],
                        "read_paths": [str(toolchain)]},
            "denied": {"command": ["cat", str(toolchain / "VERSION")]},
        },
        source="nexus.toml",
    )  # fmt: skip
    results = _run(root, [allowed, denied])
    assert results["allowed"].passed
    assert "toolchain 1.0" in results["allowed"].output
    assert not results["denied"].passed
    assert "toolchain 1.0" not in results["denied"].output


def test_the_api_check_compares_against_the_git_base(tmp_path: Path) -> None:
    root = _committed(tmp_path, {"lib.py": GOOD})
    api = CheckSpec(name="api", kind="api")
    (root / "lib.py").write_text(GOOD + "\n\ndef _helper() -> int:\n    return 1\n")
    assert _run(root, [api], base_ref="HEAD")["api"].passed
    (root / "lib.py").write_text(GOOD + "\n\ndef helper() -> int:\n    return 1\n")
    result = _run(root, [api], base_ref="HEAD")["api"]
    assert not result.passed
    assert [(d.code, d.file) for d in result.diagnostics] == [("api-added", "lib.py")]
    # with no base to compare with, the check fails rather than pass blind
    for ref in (None, "--output=/tmp/x"):
        blind = _run(root, [api], base_ref=ref)["api"]
        assert not blind.passed
        assert [d.code for d in blind.diagnostics] == ["no-base"]
