"""Where a command finds its project: upward from the working directory, as git finds ``.git``.

Without ``NEXUS_HOME`` or ``--config``, a command started anywhere inside a
project uses the project's ``nexus.toml`` and ``.nexus`` home; paths inside
``nexus.toml`` are relative to the file, not to the shell; and a command that
finds no runs says which home it read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_support import NEXUS, WORKFLOWS, Out

from nexus.config import Settings, find_project, load_config

REPO = Path(__file__).resolve().parents[2]
WORDCOUNT = REPO / "examples" / "tools" / "wordcount.wat"

PROJECT_TOML = """\
tenant = "acme"

[providers.openai]
api_key_file = "secrets/openai.key"

[cache]
path = "state/cache.db"

[wasm_tools.wc]
module = "tools/wc.wat"

[mcp_servers.local]
command = "./bin/server"
args = ["data/index.json"]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "tools").mkdir(parents=True)
    shutil.copy(WORDCOUNT, root / "tools" / "wc.wat")
    (root / "nexus.toml").write_text(PROJECT_TOML, encoding="utf-8")
    shutil.copy(WORKFLOWS / "ok.yaml", root / "ok.yaml")
    (root / "src" / "deep").mkdir(parents=True)
    return root


def nexus_in(cwd: Path, *args: str | Path) -> Out:
    """The CLI started in ``cwd`` with neither NEXUS_HOME nor NEXUS_CONFIG set."""
    env = {k: v for k, v in os.environ.items() if k not in ("NEXUS_HOME", "NEXUS_CONFIG")}
    env["NO_COLOR"] = "1"
    proc = subprocess.run(
        [str(NEXUS), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )
    out = Out(proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in out.text, out.text
    return out


def test_find_project_looks_upward(project: Path, tmp_path: Path) -> None:
    deep = project / "src" / "deep"
    assert find_project(deep) == project
    assert find_project(project) == project
    assert find_project(tmp_path) is None
    # a home with a database marks a project as well (no nexus.toml needed)
    other = tmp_path / "other"
    (other / ".nexus").mkdir(parents=True)
    (other / "x").mkdir()
    assert find_project(other / "x") is None  # an empty .nexus is no home (yet)
    (other / ".nexus" / "nexus.db").touch()
    assert find_project(other / "x") == other


def test_settings_and_config_from_a_subdirectory(project: Path) -> None:
    deep = project / "src" / "deep"
    assert Settings(environ={}, cwd=deep).home == project / ".nexus"
    assert Settings(environ={}, cwd=project).home == Path(".nexus")  # as before: relative
    assert Settings(environ={"NEXUS_HOME": "/srv/x"}, cwd=deep).home == Path("/srv/x")
    config = load_config(environ={}, cwd=deep)
    assert config.path == project / "nexus.toml"
    assert config.tenant == "acme"
    # every relative path is the file's, not the shell's
    assert config.providers.openai.api_key_file == project / "secrets" / "openai.key"
    assert config.cache.path == project / "state" / "cache.db"
    assert config.wasm_tools["wc"].module == project / "tools" / "wc.wat"
    assert config.mcp_servers["local"]["cwd"] == str(project)
    (spec,) = config.mcp_specs()
    assert spec.cwd == project  # ./bin/server and data/index.json are the project's


def test_a_run_from_a_subdirectory_uses_the_project(project: Path) -> None:
    (project / "nexus.toml").write_text('tenant = "acme"\n', encoding="utf-8")
    deep = project / "src" / "deep"
    started = nexus_in(deep, "run", "../../ok.yaml", "--json")
    assert started.code == 0, started.text
    run_id = started.json()["run_id"]
    assert (project / ".nexus" / "nexus.db").is_file()
    assert not (deep / ".nexus").exists()
    # from anywhere else in the project: the same home and the same nexus.toml
    listed = nexus_in(project / "src", "runs", "--json")
    assert [r["run_id"] for r in listed.json()] == [run_id]
    cost = nexus_in(project, "cost", "latest", "--json")
    assert cost.json()["tenant"] == "acme"


def test_no_runs_says_which_home(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = nexus_in(elsewhere, "runs")
    assert out.code == 0, out.text
    assert out.stdout.startswith(f"no runs yet in {elsewhere / '.nexus'}")
    out = nexus_in(project / "src" / "deep", "runs")
    assert out.stdout.startswith(f"no runs yet in {project / '.nexus'}")
    out = nexus_in(project / "src", "status", "latest")
    assert out.code == 4, out.text
    assert out.stderr == f"error: no runs yet in {project / '.nexus'}\n"


def test_the_projects_nexus_toml_is_trusted_before_it_exists(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started in a subdirectory, no task may create the file the project would read."""
    from nexus.app import Project

    (project / "nexus.toml").unlink()
    (project / ".nexus").mkdir()
    (project / ".nexus" / "nexus.db").touch()  # the project is known by its home alone
    monkeypatch.delenv("NEXUS_HOME", raising=False)
    monkeypatch.delenv("NEXUS_CONFIG", raising=False)
    monkeypatch.chdir(project / "src" / "deep")
    loaded = Project.load()
    assert loaded.config.path is None
    assert loaded.home == project / ".nexus"
    assert loaded.trusted().covers(project / "nexus.toml")
