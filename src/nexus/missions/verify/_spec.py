"""Which checks a work tree gets: what the repository holds, and what ``nexus.toml`` adds.

:func:`default_checks` looks at the work tree (Python files, a test suite, a
mypy configuration) and gives the built-in checks that apply;
:func:`user_checks` reads ``[mission.checks.NAME]`` tables. Both give
:class:`~nexus.missions.verify.CheckSpec` values; the built-in checks run the
interpreter Nexus runs on (its virtual environment's ruff, mypy, pytest and
bandit), inside the sandbox.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nexus.domain.errors import UserError
from nexus.missions.verify._model import CheckSpec, check_name_ok
from nexus.tools.sandbox import PYTHON

__all__ = ["BUILD_SCRIPT", "default_checks", "merge_checks", "parse_duration", "user_checks"]

#: Directories never walked when looking at what a repository holds.
SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", "env", "node_modules", "__pycache__", ".tox", ".nox"}
)
_WALK_LIMIT = 20_000  # entries looked at before deciding; a huge tree is not read whole

#: The ``build`` check: compile each file given (no bytecode written), one JSON line per error.
BUILD_SCRIPT = """\
import json, sys
failed = 0
for path in sys.argv[1:]:
    try:
        with open(path, 'rb') as fh:
            source = fh.read(8 << 20)
        compile(source, path, 'exec', dont_inherit=True)
    except SyntaxError as exc:
        failed += 1
        print(json.dumps({'file': path, 'line': exc.lineno, 'code': type(exc).__name__,
                          'message': str(exc.msg)}))
    except (ValueError, OSError, RecursionError, MemoryError) as exc:
        failed += 1
        print(json.dumps({'file': path, 'line': None, 'code': type(exc).__name__,
                          'message': str(exc)[:500]}))
sys.exit(1 if failed else 0)
"""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_USER_FIELDS = ("command", "passes", "timeout", "required", "read_paths")


def default_checks(worktree: Path) -> list[CheckSpec]:
    """The built-in checks that apply to what ``worktree`` holds.

    Always ``scope`` and ``secrets``. With Python files: ``build`` (every
    changed ``.py`` file compiles), ``lint`` (ruff on the changed files, with
    the repository's ruff configuration), ``security`` (bandit, medium
    severity and confidence and up, on the changed files) and ``docs``
    (advisory: ``required=False``); ``tests`` (pytest, JUnit XML) when there
    is a test suite (a ``tests``/``test`` directory, or ``test_*.py`` /
    ``*_test.py`` files); ``types`` (mypy) when mypy is configured
    (``[tool.mypy]`` in ``pyproject.toml``, ``mypy.ini``, ``.mypy.ini``, or
    ``[mypy]`` in ``setup.cfg``).

    Args:
        worktree: the work tree (a directory).

    Returns:
        The checks, in the order they are best reported.
    """
    checks = [CheckSpec(name="scope", kind="scope", timeout_s=30)]
    python, tests = _looks(worktree)
    if python:
        py = [PYTHON, "-I"]
        checks.append(
            CheckSpec(
                name="build",
                kind="build",
                command=(*py, "-c", BUILD_SCRIPT, "{changed:*.py}"),
                timeout_s=120,
            )
        )
        checks.append(
            CheckSpec(
                name="lint",
                kind="lint",
                command=(*py, "-m", "ruff", "check", "--no-cache", "--output-format=json",
                         "--force-exclude", "{changed:*.py}"),
                timeout_s=120,
            )
        )  # fmt: skip
        mypy_targets = _mypy_targets(worktree)
        if mypy_targets is not None:
            checks.append(
                CheckSpec(
                    name="types",
                    kind="types",
                    command=(*py, "-m", "mypy", "--no-error-summary", "--show-error-codes",
                             "--no-pretty", "--no-color-output", "--show-column-numbers",
                             "--cache-dir={scratch}/mypy", *mypy_targets),
                    timeout_s=600,
                )
            )  # fmt: skip
        if tests:
            checks.append(
                CheckSpec(
                    name="tests",
                    kind="tests",
                    passes="junit",
                    # not -I: a project's tests import it from the work tree (its cwd)
                    command=(PYTHON, "-s", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "--junitxml={junit}", "-o", "junit_family=xunit2"),
                    timeout_s=900,
                )
            )  # fmt: skip
        checks.append(
            CheckSpec(
                name="security",
                kind="security",
                passes="no_findings",
                command=(*py, "-m", "bandit", "-q", "-f", "json", "--severity-level", "medium",
                         "--confidence-level", "medium", "{changed:*.py}"),
                timeout_s=300,
            )
        )  # fmt: skip
    checks.append(CheckSpec(name="secrets", kind="secrets", passes="no_findings", timeout_s=60))
    if python:
        checks.append(CheckSpec(name="docs", kind="docs", timeout_s=60, required=False))
    return checks


def user_checks(table: Mapping[str, Any], *, source: str) -> list[CheckSpec]:
    """The checks of ``nexus.toml``'s ``[mission.checks]`` table.

    Each ``[mission.checks.NAME]`` has ``command`` (a list of strings, or one
    string split like a shell would, without running one), ``passes``
    (``exit_zero``, the default; ``junit``; ``no_findings``), ``timeout``
    (seconds, or a string such as ``"90s"``, ``"2m"``, ``"1h"``; default 5
    minutes), ``required`` (default true) and ``read_paths`` (absolute paths
    the command may also read, such as the project's own virtual
    environment). Such a check has kind ``command``.

    Args:
        table: the ``[mission.checks]`` table (NAME -> its table).
        source: the file it was read from, for messages.

    Returns:
        One check per entry, in the table's order.

    Raises:
        UserError: naming ``source``, the table and the field that is wrong.
    """
    if not isinstance(table, Mapping):
        raise UserError(f"{source}: [mission.checks] must be a table of checks")
    out = []
    for name, entry in table.items():
        where = f"{source}: [mission.checks.{name}]"
        if not isinstance(name, str) or not check_name_ok(name):
            raise UserError(
                f"{where}: a check's name is 1 to 64 letters, digits, '.', '_', ':' or '-', "
                "starting with a letter or digit"
            )
        if not isinstance(entry, Mapping):
            raise UserError(f"{where}: must be a table (command = [...], passes = ...)")
        unknown = [k for k in entry if k not in _USER_FIELDS]
        if unknown:
            raise UserError(
                f"{where}: unknown field {unknown[0]!r} (known: {', '.join(_USER_FIELDS)})"
            )
        if "command" not in entry:
            raise UserError(f"{where}: field 'command' is missing")
        command = _command(entry["command"], f"{where}: field 'command'")
        passes = entry.get("passes", "exit_zero")
        if passes not in ("exit_zero", "junit", "no_findings"):
            raise UserError(
                f"{where}: field 'passes' is {passes!r}; use exit_zero, junit or no_findings"
            )
        required = entry.get("required", True)
        if not isinstance(required, bool):
            raise UserError(f"{where}: field 'required' must be true or false")
        timeout = parse_duration(entry.get("timeout", 300), f"{where}: field 'timeout'")
        read_paths = entry.get("read_paths", [])
        if not isinstance(read_paths, list) or not all(isinstance(p, str) for p in read_paths):
            raise UserError(f"{where}: field 'read_paths' must be a list of absolute paths")
        try:
            spec = CheckSpec(
                name=name,
                kind="command",
                command=command,
                passes=passes,
                timeout_s=timeout,
                required=required,
                read_paths=tuple(read_paths),
            )
        except ValidationError as exc:
            problem = exc.errors()[0]
            field = ".".join(str(p) for p in problem["loc"])
            if not field:  # a check across fields: the message names what is wrong
                raise UserError(f"{where}: {problem['msg']}") from None
            raise UserError(f"{where}: field {field!r}: {problem['msg']}") from None
        out.append(spec)
    return out


def merge_checks(*groups: Sequence[CheckSpec]) -> list[CheckSpec]:
    """The checks of ``groups`` in order, a later check replacing an earlier one of its name.

    ``merge_checks(default_checks(tree), user_checks(table, source=...))``
    lets ``[mission.checks.tests]`` replace the built-in ``tests`` check, in
    its place.
    """
    out: dict[str, CheckSpec] = {}
    for group in groups:
        for spec in group:
            out[spec.name] = spec
    return list(out.values())


def parse_duration(value: object, where: str) -> float:
    """Seconds from a number or a string such as ``"500ms"``, ``"90s"``, ``"2m"``, ``"1h"``.

    Raises:
        UserError: naming ``where``, when it is not a positive duration of at most a day.
    """
    seconds: float | None = None
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds is None or not 0 < seconds <= 86400:
        raise UserError(
            f"{where}: {value!r} is not a duration (seconds, or '500ms', '90s', '2m', '1h'; "
            "more than 0 and at most a day)"
        )
    return seconds


def _command(raw: object, where: str) -> tuple[str, ...]:
    if isinstance(raw, str):
        try:
            argv = shlex.split(raw)
        except ValueError as exc:
            raise UserError(f"{where}: cannot be split into arguments: {exc}") from None
    elif isinstance(raw, list) and all(isinstance(a, str) for a in raw):
        argv = list(raw)
    else:
        raise UserError(f"{where}: must be a string or a list of strings")
    if not argv or any(not a or "\0" in a for a in argv):
        raise UserError(f"{where}: must be non-empty, with no empty argument or NUL byte")
    return tuple(argv)


def _walk(root: Path) -> Iterator[str]:
    """Relative paths of the files beneath ``root``, skipping tool and VCS directories."""
    seen = 0
    for here, dirs, files in os.walk(root):  # never follows links to directories
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        rel = os.path.relpath(here, root)
        for name in sorted(files):
            seen += 1
            if seen > _WALK_LIMIT:
                return
            yield name if rel == "." else f"{rel}/{name}"


def _looks(root: Path) -> tuple[bool, bool]:
    """Whether ``root`` holds Python files, and a test suite."""
    python = tests = False
    if (root / "tests").is_dir() or (root / "test").is_dir():
        tests = True
    for rel in _walk(root):
        if not rel.endswith(".py"):
            continue
        python = True
        base = rel.rsplit("/", 1)[-1]
        if base.startswith("test_") or base.endswith("_test.py"):
            tests = True
        if tests:
            break
    return python, python and tests


def _mypy_targets(root: Path) -> list[str] | None:
    """What mypy is given: nothing when its configuration names ``files``; None: not configured."""
    configured, has_files = False, False
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and not pyproject.is_symlink():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8")[: 1 << 20])
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError):
            data = {}
        tool = data.get("tool")
        mypy = tool.get("mypy") if isinstance(tool, dict) else None
        if isinstance(mypy, dict):
            configured, has_files = True, bool(mypy.get("files"))
    for name, section in (("mypy.ini", "mypy"), (".mypy.ini", "mypy"), ("setup.cfg", "mypy")):
        path = root / name
        if configured or not path.is_file() or path.is_symlink():
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(path.read_text(encoding="utf-8")[: 1 << 20])
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        if parser.has_section(section):
            configured = True
            has_files = bool(parser.get(section, "files", fallback=""))
    if not configured:
        return None
    if has_files:
        return []
    return ["src"] if (root / "src").is_dir() else ["."]
