"""What a user reads first: ``--version``, ``--help`` of every command, completion, ``--config``.

The help of every command is walked from the command table: each one ends with
an example, and shows metavars that read as words (no ``<bool>``, ``<path>``).
"""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from cli_support import NEXUS, WORKFLOWS, Out, cli_env, nexus
from typer.testing import CliRunner

from nexus.cli.app import COMMANDS, app
from nexus.cli.registry import LazyGroup


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    """The CLI in process, 200 columns wide and without colour."""
    return CliRunner().invoke(
        app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    )


def every_command() -> Iterator[tuple[tuple[str, ...], Any]]:
    """``(path, click command)`` of every command and sub-command, each loaded."""
    root = typer.main.get_command(app)
    assert isinstance(root, LazyGroup)
    ctx = typer.Context(root)
    for name in root.list_commands(ctx):
        cmd = root.load(ctx, name)
        yield (name,), cmd
        for sub_name, sub in getattr(cmd, "commands", {}).items():
            yield (name, sub_name), sub


COMMAND_PATHS = [path for path, _ in every_command()]


def test_version_is_the_package_version() -> None:
    out = invoke("--version")
    assert out.exit_code == 0, out.output
    assert out.output == f"nexus {version('nexus-missions')}\n"


def nexus_with(env: dict[str, str], *args: str) -> Out:
    proc = subprocess.run(
        [str(NEXUS), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    return Out(proc.returncode, proc.stdout, proc.stderr)


def test_shell_completion_is_offered_and_works(tmp_path: Path) -> None:
    help_text = invoke("--help").output
    assert "--install-completion" in help_text
    assert "--show-completion" in help_text
    env = {**cli_env(tmp_path / "home"), "SHELL": "/bin/bash"}
    script = nexus_with(env, "--show-completion")
    assert script.code == 0, script.text
    assert "_NEXUS_COMPLETE=complete_bash" in script.stdout
    # what bash asks when the user types `nexus ru<TAB>`
    env.update(_NEXUS_COMPLETE="complete_bash", COMP_WORDS="nexus ru", COMP_CWORD="1")
    completed = nexus_with(env)
    assert completed.stdout.split() == ["run", "runs"], completed.text
    # and an option of a command not loaded before
    env.update(COMP_WORDS="nexus runs --js", COMP_CWORD="2")
    assert nexus_with(env).stdout.split() == ["--json"]


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=[" ".join(p) for p in COMMAND_PATHS])
def test_every_command_has_an_example_and_readable_metavars(path: tuple[str, ...]) -> None:
    out = invoke(*path, "--help")
    assert out.exit_code == 0, out.output
    text = out.output
    assert re.search(r"^ Examples?: *$", text, re.MULTILINE), text
    # Typer's own labels are not words: <bool>, <path>, <int>, <list[str]>, {file}
    assert not re.search(r"(?<=\s)<[a-z][\w\[\], |]*>(?=\s)", text), text
    assert not re.search(r"\{[a-z_]+\}", text), text
    # a flag shows no metavar: its row is the option, then its help
    assert re.search(r"--help +Show this message and exit\.", text), text


def test_metavars_are_words() -> None:
    seen = set()
    for path, cmd in every_command():
        ctx = typer.Context(cmd)
        for param in cmd.get_params(ctx):
            flag = getattr(param, "is_flag", False)
            if flag:
                assert param.metavar == "", (path, param.name)
                continue
            assert re.fullmatch(r"[A-Z][A-Z_=]*|\[[\w|.-]+\]", param.metavar or ""), (
                path,
                param.name,
                param.metavar,
            )
            seen.add(param.metavar)
    assert {"PATH", "INTEGER", "TEXT", "RUN", "FILE"} <= seen, seen


def test_the_table_summaries_are_the_commands_docstrings() -> None:
    """``nexus --help`` shows the table's line without loading a command: it must not drift."""
    for entry in COMMANDS:
        target = entry.load()
        if isinstance(target, typer.Typer):
            shown = target.info.help
        else:
            doc = inspect.getdoc(target) or ""
            shown = " ".join(doc.split("\n\n")[0].split())
        assert entry.summary == shown, entry.name


def test_help_lists_every_command_of_the_table() -> None:
    text = invoke("--help").output
    for entry in COMMANDS:
        assert re.search(rf"^│ {entry.name} +{re.escape(entry.summary[:30])}", text, re.M), (
            entry.name,
            text,
        )


# --------------------------------------------------------------------------- --config


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(WORKFLOWS / "ok.yaml", tmp_path / "ok.yaml")
    (tmp_path / "team.toml").write_text('tenant = "team-a"\n', encoding="utf-8")
    (tmp_path / "other.toml").write_text('tenant = "team-b"\n', encoding="utf-8")
    return tmp_path


def tenant_of(home: Path, run_id: str) -> str:
    out = nexus(home, "cost", run_id, "--json")
    assert out.code == 0, out.text
    return str(out.json()["tenant"])


def test_config_after_the_command_means_the_same(project: Path) -> None:
    home = project / "home"
    before = nexus(home, "--config", project / "team.toml", "run", project / "ok.yaml", "--json")
    after = nexus(home, "run", project / "ok.yaml", "--config", project / "team.toml", "--json")
    assert before.code == after.code == 0, before.text + after.text
    assert tenant_of(home, before.json()["run_id"]) == "team-a"
    assert tenant_of(home, after.json()["run_id"]) == "team-a"


def test_config_named_twice_or_missing(project: Path) -> None:
    home = project / "home"
    twice = nexus(
        home, "--config", project / "team.toml", "validate", project / "ok.yaml",
        "--config", project / "other.toml",
    )  # fmt: skip
    assert twice.code == 2, twice.text
    assert "--config is given twice" in twice.stderr
    same = nexus(
        home, "--config", project / "team.toml", "validate", project / "ok.yaml",
        "--config", project / "team.toml",
    )  # fmt: skip
    assert same.code == 0, same.text
    missing = nexus(home, "validate", project / "ok.yaml", "--config", project / "nope.toml")
    assert missing.code == 4, missing.text
    assert "nope.toml: no such file" in missing.stderr
