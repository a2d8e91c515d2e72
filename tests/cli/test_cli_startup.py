"""CLI start-up stays light: ``nexus --help`` and ``nexus runs`` load no heavy library.

Nor pydantic: Typer 0.29 coerces values through pydantic, which the CLI asks
for only when a value needs converting (:func:`nexus.cli.registry._deferred`).

Wall time belongs in ``bench/cli_startup.py``; these tests check what a fresh
interpreter has imported, which a loaded machine cannot blur.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from nexus.cli.commands_runs import Status
from nexus.domain.state import RunStatus

#: What neither the CLI's import nor ``--help`` nor a listing of an empty home may load.
HEAVY = (
    "sqlalchemy", "alembic", "openai", "anthropic", "mcp", "wasmtime", "httpx", "jinja2", "yaml",
)  # fmt: skip
#: The run-state fold and the engine: only commands that read or drive a run need them.
NOT_FOR_A_LISTING = ("nexus.domain.state", "nexus.domain.payloads", "nexus.engine", "nexus.app")


def loaded_after(code: str, home: Path) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "NEXUS_HOME": str(home), "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def offenders(loaded: set[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == r or m.startswith(r + ".") for r in roots))


def invoking(*args: str) -> str:
    return (
        "from nexus.cli.app import app\n"
        "try:\n"
        f"    app({list(args)!r})\n"
        "except SystemExit as done:\n"
        "    assert done.code in (0, None), done.code\n"
    )


def test_importing_the_cli_loads_nothing_heavy(tmp_path: Path) -> None:
    loaded = loaded_after("import nexus.cli.app", tmp_path / ".nexus")
    assert offenders(loaded, (*HEAVY, "pydantic", *NOT_FOR_A_LISTING)) == []
    assert "nexus.cli.commands_run" not in loaded  # commands load when they are used


@pytest.mark.parametrize("args", [["--help"], ["runs", "--help"], ["--version"]])
def test_help_loads_nothing_heavy(tmp_path: Path, args: list[str]) -> None:
    loaded = loaded_after(invoking(*args), tmp_path / ".nexus")
    assert offenders(loaded, (*HEAVY, "pydantic", *NOT_FOR_A_LISTING)) == []


@pytest.mark.parametrize("args", [["runs"], ["runs", "--name", "x"]])
def test_listing_an_empty_home_loads_nothing_heavy_and_creates_nothing(
    tmp_path: Path, args: list[str]
) -> None:
    home = tmp_path / ".nexus"
    loaded = loaded_after(invoking(*args), home)
    assert offenders(loaded, (*HEAVY, "pydantic", *NOT_FOR_A_LISTING)) == []
    assert not home.exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["runs", "-n", "0"], "greater than or equal to 1"),
        (["runs", "-n", "many"], "valid integer"),
        (["runs", "--status", "done"], "'done' is not one of"),
    ],
)
def test_values_still_get_typers_checks(tmp_path: Path, args: list[str], said: str) -> None:
    """What the CLI does without pydantic is only what needs no check; the rest is Typer's."""
    env = {**os.environ, "NEXUS_HOME": str(tmp_path / ".nexus"), "NO_COLOR": "1", "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-c", invoking(*args).replace("(0, None)", "(2,)")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert said in done.stderr


def test_the_status_choices_are_the_run_statuses() -> None:
    assert set(get_args(Status)) == {str(s) for s in RunStatus}
