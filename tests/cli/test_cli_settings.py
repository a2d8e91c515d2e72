"""Every bad setting is a clear error naming it, with exit 2: never a traceback, never exit 70.

A table of bad environment variables and bad ``nexus.toml`` values, each tried
on a command that reads runs and on one that starts a run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cli_support import NEXUS, WORKFLOWS, Out, cli_env

ENV_CASES = [
    # (variable, value, what the message must say)
    ("NEXUS_DURABILITY", "bogus", "NEXUS_DURABILITY='bogus' is not a durability"),
    ("NEXUS_DURABILITY", "fsync", "use 'normal' (survives a killed process) or 'full'"),
    ("NEXUS_SANDBOX_UID", "abc", "NEXUS_SANDBOX_UID='abc' is not a uid between 1 and 4294967294"),
    ("NEXUS_SANDBOX_UID", "0", "NEXUS_SANDBOX_UID='0' is not a uid"),
    ("NEXUS_SANDBOX_UID", "99999999999", "NEXUS_SANDBOX_UID='99999999999' is not a uid"),
    ("NEXUS_HOME", "{file}", "NEXUS_HOME={file} is not a directory"),
    ("NEXUS_CONFIG", "{folder}", "config file {folder} is a directory"),
]

TOML_CASES = [
    # (nexus.toml, what the message must say after the file's name)
    ("tenant = 5\n", "tenant: must be a string, got 5"),
    ("[cache]\nttl = 'soon'\n", "cache.ttl: must be a number of seconds"),
    ("[budgets.run]\nusd = 'lots'\n", "budgets.run.usd: must be an amount in USD"),
    (
        "[budgets.run]\ntokens = -1\n",
        "budgets.run.tokens: Input should be greater than or equal to 0",
    ),
    ("[residency]\nproviders = ['opnai']\n", "'opnai' is not a provider"),
    ("[wasm_tools.wc]\nmodule = 'wc.wat'\n", "wasm_tools.wc.module:"),
    ("[cache\n", "line 1, column 7: "),
    ("[budgets.run]\nusdd = 1\n", "budgets.run.usdd: unknown key (did you mean 'usd'?)"),
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(WORKFLOWS / "ok.yaml", tmp_path / "ok.yaml")
    (tmp_path / "a-file").write_text("not a folder\n", encoding="utf-8")
    (tmp_path / "a-folder").mkdir()
    return tmp_path


def run(project: Path, env: dict[str, str], *args: str | Path) -> Out:
    proc = subprocess.run(
        [str(NEXUS), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=project,
        timeout=60,
        check=False,
    )
    return Out(proc.returncode, proc.stdout, proc.stderr)


def assert_clear(out: Out, said: str) -> None:
    assert out.code == 2, out.text
    assert "Traceback" not in out.text
    assert out.stderr.startswith("error: "), out.stderr
    assert said in out.stderr, (said, out.stderr)
    assert "internal error" not in out.stderr


@pytest.mark.parametrize(
    ("variable", "value", "said"), ENV_CASES, ids=[f"{c[0]}={c[1]}" for c in ENV_CASES]
)
def test_a_bad_environment_variable(project: Path, variable: str, value: str, said: str) -> None:
    places = {"file": str(project / "a-file"), "folder": str(project / "a-folder")}
    env = {**cli_env(project / "home"), variable: value.format(**places)}
    said = said.format(**places)
    assert_clear(run(project, env, "run", project / "ok.yaml"), said)
    if variable != "NEXUS_CONFIG":  # a listing reads no nexus.toml
        assert_clear(run(project, env, "runs"), said)
    assert not (project / "home").exists()  # nothing was started


@pytest.mark.parametrize(("text", "said"), TOML_CASES, ids=[c[1][:30] for c in TOML_CASES])
def test_a_bad_nexus_toml_value(project: Path, text: str, said: str) -> None:
    (project / "nexus.toml").write_text(text, encoding="utf-8")
    env = cli_env(project / "home")
    for command in ("run", "validate"):
        out = run(project, env, command, project / "ok.yaml")
        assert_clear(out, f"{project / 'nexus.toml'}: ")
        assert said in out.stderr, (said, out.stderr)


def test_a_missing_file_named_by_nexus_config_is_not_found(project: Path) -> None:
    env = {**cli_env(project / "home"), "NEXUS_CONFIG": str(project / "nope.toml")}
    out = run(project, env, "run", project / "ok.yaml")
    assert out.code == 4, out.text
    assert (
        out.stderr == f"error: NEXUS_CONFIG names {project / 'nope.toml'}, which does not exist\n"
    )
