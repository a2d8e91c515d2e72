"""Which checks a work tree gets (default_checks) and what nexus.toml adds (user_checks)."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from nexus.domain.errors import UserError
from nexus.missions.verify import (
    CheckResult,
    CheckSpec,
    Diagnostic,
    default_checks,
    merge_checks,
    user_checks,
)
from nexus.missions.verify._model import MAX_DIAGNOSTICS, MAX_OUTPUT
from nexus.missions.verify._spec import parse_duration
from nexus.tools.sandbox import PYTHON


def _names(root: Path) -> list[str]:
    return [c.name for c in default_checks(root)]


def test_a_tree_without_python_gets_scope_and_secrets(tmp_path: Path) -> None:
    (tmp_path / "index.js").write_text("console.log(1)\n")
    assert _names(tmp_path) == ["scope", "secrets"]


def test_python_files_add_build_lint_security_and_advisory_docs(tmp_path: Path) -> None:
    (tmp_path / "lib.py").write_text("x = 1\n")
    checks = {c.name: c for c in default_checks(tmp_path)}
    assert list(checks) == ["scope", "build", "lint", "security", "secrets", "docs"]
    assert checks["docs"].required is False
    assert checks["lint"].command is not None
    assert checks["lint"].command[0] == PYTHON
    assert "{changed:*.py}" in checks["lint"].command
    assert checks["security"].passes == "no_findings"


@pytest.mark.parametrize(
    "layout",
    [{"tests/test_a.py": ""}, {"test_a.py": ""}, {"pkg/thing_test.py": ""}],
)
def test_a_test_suite_adds_pytest_with_junit(tmp_path: Path, layout: dict[str, str]) -> None:
    for name, text in layout.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    tests = next(c for c in default_checks(tmp_path) if c.name == "tests")
    assert tests.passes == "junit"
    assert tests.command is not None
    assert "--junitxml={junit}" in tests.command


@pytest.mark.parametrize(
    ("name", "text", "targets"),
    [
        ("pyproject.toml", "[tool.mypy]\nstrict = true\n", ["."]),
        ("pyproject.toml", '[tool.mypy]\nfiles = ["lib.py"]\n', []),
        ("mypy.ini", "[mypy]\nstrict = True\n", ["."]),
        ("setup.cfg", "[mypy]\nfiles = lib.py\n", []),
    ],
)
def test_mypy_runs_only_when_configured(
    tmp_path: Path, name: str, text: str, targets: list[str]
) -> None:
    (tmp_path / "lib.py").write_text("x = 1\n")
    assert "types" not in _names(tmp_path)
    (tmp_path / name).write_text(text)
    types = next(c for c in default_checks(tmp_path) if c.name == "types")
    assert types.command is not None
    assert list(types.command[types.command.index("--cache-dir={scratch}/mypy") + 1 :]) == targets


def test_a_broken_or_linked_config_does_not_enable_mypy(tmp_path: Path) -> None:
    (tmp_path / "lib.py").write_text("x = 1\n")
    (tmp_path / "pyproject.toml").write_text("[tool.mypy\n")  # not TOML
    (tmp_path / "real.ini").write_text("[mypy]\n")
    (tmp_path / "mypy.ini").symlink_to(tmp_path / "real.ini")
    assert "types" not in _names(tmp_path)


def test_vendored_directories_are_not_looked_at(tmp_path: Path) -> None:
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / ".venv" / "lib" / "x.py").write_text("")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "test_y.py").write_text("")
    assert _names(tmp_path) == ["scope", "secrets"]


# -- nexus.toml ---------------------------------------------------------------------------


def _toml(text: str) -> Any:
    return tomllib.loads(text, parse_float=Decimal)["mission"]["checks"]


def test_user_checks_read_every_field() -> None:
    table = _toml(
        """
        [mission.checks.npm-test]
        command = "npm test -- --ci"
        timeout = "2m"
        [mission.checks.grep-todo]
        command = ["sh", "-c", "grep -rn TODO src || true"]
        passes = "no_findings"
        required = false
        timeout = 1.5
        """
    )
    first, second = user_checks(table, source="nexus.toml")
    assert first == CheckSpec(
        name="npm-test", kind="command", command=("npm", "test", "--", "--ci"), timeout_s=120.0
    )
    assert second.passes == "no_findings"
    assert second.required is False
    assert second.timeout_s == 1.5


@pytest.mark.parametrize(
    ("entry", "field", "words"),
    [
        ('command = "x"\nretries = 2', "retries", "unknown field 'retries'"),
        ('passes = "junit"', "command", "field 'command' is missing"),
        ("command = 3", "command", "string or a list of strings"),
        ("command = []", "command", "non-empty"),
        ('command = ["a", ""]', "command", "non-empty"),
        ('command = "a \'unclosed"', "command", "cannot be split"),
        ('command = "x"\npasses = "green"', "passes", "exit_zero, junit or no_findings"),
        ('command = "x"\ntimeout = "soon"', "timeout", "not a duration"),
        ('command = "x"\ntimeout = -1', "timeout", "not a duration"),
        ('command = "x"\ntimeout = "3d"', "timeout", "not a duration"),
        ('command = "x"\nrequired = "yes"', "required", "true or false"),
        ('command = "x"\nread_paths = "/opt"', "read_paths", "list of absolute paths"),
        ('command = "x"\nread_paths = ["opt/venv"]', "read path", "must be absolute"),
        ('command = "x"\nread_paths = ["/opt/../etc"]', "read path", "without '..'"),
    ],
)
def test_bad_user_checks_name_file_table_and_field(entry: str, field: str, words: str) -> None:
    table = _toml(f"[mission.checks.mine]\n{entry}\n")
    with pytest.raises(UserError) as err:
        user_checks(table, source="/repo/nexus.toml")
    message = str(err.value)
    assert message.startswith("/repo/nexus.toml: [mission.checks.mine]")
    assert field in message
    assert words in message


@pytest.mark.parametrize("name", ["../evil", "has space", "-dash", "x" * 65])
def test_a_check_name_that_could_name_a_path_is_refused(name: str) -> None:
    with pytest.raises(UserError, match="a check's name is"):
        user_checks({name: {"command": "x"}}, source="nexus.toml")


def test_a_check_that_is_not_a_table_is_refused() -> None:
    with pytest.raises(UserError, match=r"\[mission.checks.a\]: must be a table"):
        user_checks({"a": "npm test"}, source="nexus.toml")
    with pytest.raises(UserError, match="must be a table of checks"):
        user_checks(["a"], source="nexus.toml")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "seconds"), [("500ms", 0.5), ("90s", 90), ("2m", 120), ("1h", 3600), (7, 7)]
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value, "here") == seconds


def test_durations_refuse_booleans() -> None:
    with pytest.raises(UserError, match="here"):
        parse_duration(True, "here")


# -- the model ----------------------------------------------------------------------------


def test_kinds_and_commands_must_agree() -> None:
    with pytest.raises(ValidationError, match="takes no command"):
        CheckSpec(name="s", kind="scope", command=("x",))
    with pytest.raises(ValidationError, match="needs a non-empty command"):
        CheckSpec(name="c", kind="command")
    with pytest.raises(ValidationError, match="NUL"):
        CheckSpec(name="c", kind="command", command=("a\0b",))


def test_results_round_trip_and_bound_their_output() -> None:
    spec = CheckSpec(name="c", kind="command", command=("x",))
    found = [Diagnostic("c", "a.py", i, "E1", f"m{i}") for i in range(MAX_DIAGNOSTICS + 50)]
    result = CheckResult.make(spec, passed=False, diagnostics=found, output="é" * MAX_OUTPUT)
    assert len(result.output.encode()) <= MAX_OUTPUT
    assert result.output.startswith("[... ")
    assert len(result.diagnostics) == MAX_DIAGNOSTICS
    assert result.diagnostics[-1].message == "... and 51 more diagnostics"
    again = CheckResult.from_data(result.to_data())
    assert again == result


def test_a_tampered_result_is_refused() -> None:
    spec = CheckSpec(name="c", kind="command", command=("x",))
    data = CheckResult.make(spec, passed=True, diagnostics=[]).to_data()
    with pytest.raises(UserError, match="wrong type"):
        CheckResult.from_data({**data, "passed": "yes"})
    with pytest.raises(UserError, match="missing or invalid field"):
        CheckResult.from_data({k: v for k, v in data.items() if k != "output"})
    with pytest.raises(UserError, match="wrong type"):
        CheckResult.from_data({**data, "diagnostics": [{"check": "c", "message": 3}]})


def test_user_checks_replace_built_ins_of_their_name_in_place(tmp_path: Path) -> None:
    (tmp_path / "lib.py").write_text("x = 1\n")
    (tmp_path / "tests").mkdir()
    mine = user_checks({"tests": {"command": "make test"}, "e2e": {"command": "make e2e"}},
                       source="nexus.toml")  # fmt: skip
    merged = merge_checks(default_checks(tmp_path), mine)
    names = [c.name for c in merged]
    assert names == ["scope", "build", "lint", "tests", "security", "secrets", "docs", "e2e"]
    assert merged[3].command == ("make", "test")


def _verdict(**kw: Any) -> CheckResult:
    spec = CheckSpec(name="c", kind="command", command=("x",))
    fields: dict[str, Any] = {"passed": True, "diagnostics": []}
    fields.update(kw)
    return CheckResult.make(spec, **fields)


def test_results_say_their_evidence_verdict_and_summary() -> None:
    failing = [
        Diagnostic("c", "a.py", 3, "E1", "bad thing\ndetail"),
        Diagnostic("c", None, None, None, "x"),
    ]
    assert (_verdict().verdict, _verdict().summary) == ("pass", "passed")
    bad = _verdict(passed=False, diagnostics=failing)
    assert (bad.verdict, bad.summary) == ("fail", "a.py:3: bad thing (+1 more)")
    assert _verdict(skipped="nothing to do").verdict == "skipped"
    assert _verdict(passed=False, skipped="no tool").verdict == "error"
    assert _verdict(passed=False, limits_hit=["wall_time"]).verdict == "error"
