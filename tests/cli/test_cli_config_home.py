"""``--config`` names settings, not a home: audit, backup/restore and cancel use run's home.

``nexus.toml`` holds no state directory: the home is ``NEXUS_HOME``, else the
``.nexus`` of the project the working directory is in, else ``./.nexus``,
whichever file ``--config`` names. ``nexus run`` reads it through its
:class:`~nexus.app.Project` and the store commands through the same
:class:`~nexus.config.Settings`; these tests hold them to one answer, so that
``nexus --config other.toml audit verify`` checks the runs that
``nexus --config other.toml run`` wrote.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_support import NEXUS, WORKFLOWS, Out

pytestmark = pytest.mark.slow


def nexus_in(cwd: Path, *args: str | Path, home: Path | None = None) -> Out:
    """The CLI started in ``cwd``; NEXUS_HOME only when ``home`` is given, never NEXUS_CONFIG."""
    env = {k: v for k, v in os.environ.items() if k not in ("NEXUS_HOME", "NEXUS_CONFIG")}
    env["NO_COLOR"] = "1"
    if home is not None:
        env["NEXUS_HOME"] = str(home)
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


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path]:
    """A project (its nexus.toml, a workflow, a subdirectory) and a folder outside it."""
    project = tmp_path / "project"
    (project / "src" / "deep").mkdir(parents=True)
    (project / "nexus.toml").write_text('tenant = "acme"\n', encoding="utf-8")
    shutil.copy(WORKFLOWS / "ok.yaml", project / "ok.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return project, elsewhere


def run_ok(cwd: Path, config: Path, home: Path | None = None) -> str:
    done = nexus_in(cwd, "--config", config, "run", config.parent / "ok.yaml", "--json", home=home)
    assert done.code == 0, done.text
    run_id: str = done.json()["run_id"]
    return run_id


def test_audit_reads_the_home_run_wrote_with_the_same_config(
    places: tuple[Path, Path], tmp_path: Path
) -> None:
    project, elsewhere = places
    config = project / "nexus.toml"
    # outside the project, the config names settings only: the home is ./.nexus
    outside = run_ok(elsewhere, config)
    assert (elsewhere / ".nexus" / "nexus.db").is_file()
    assert not (project / ".nexus").exists()
    verify = nexus_in(elsewhere, "--config", config, "audit", "verify", "--require-signed")
    assert verify.code == 0, verify.text
    assert "1 run(s)" in verify.stdout
    assert "1 signed head(s) hold" in verify.stdout
    heads = nexus_in(elsewhere, "audit", "head", "--json", "--config", config)
    assert [h["run_id"] for h in heads.json()["heads"]] == [outside]
    # NEXUS_HOME wins over both, for run and audit alike
    home = tmp_path / "env-home"
    pinned = run_ok(elsewhere, config, home=home)
    heads = nexus_in(elsewhere, "--config", config, "audit", "head", "--json", home=home)
    assert [h["run_id"] for h in heads.json()["heads"]] == [pinned]


def test_backup_and_restore_use_the_home_run_used(
    places: tuple[Path, Path], tmp_path: Path
) -> None:
    project, _ = places
    config = project / "nexus.toml"
    deep = project / "src" / "deep"
    run_ok(deep, config)  # in a subdirectory: the project's .nexus
    db = project / ".nexus" / "nexus.db"
    assert db.is_file()
    assert not (deep / ".nexus").exists()
    target = tmp_path / "backup"
    done = nexus_in(deep, "--config", config, "backup", target, "--json")
    assert done.code == 0, done.text
    backup = done.json()
    assert backup["audit"]["runs"] == 1
    meta = (target / "backup.json").read_text(encoding="utf-8")
    assert str(db.resolve()) in meta
    back = nexus_in(deep, "restore", target, "--force", "--json", "--config", config)
    assert back.code == 0, back.text
    assert back.json()["restored"] is True
    assert list((project / ".nexus").glob("nexus.db.replaced-*")), (
        "the project's store was replaced"
    )
    assert not (deep / ".nexus").exists()


def test_cancel_finds_the_run_in_the_home_run_used(places: tuple[Path, Path]) -> None:
    project, elsewhere = places
    config = project / "nexus.toml"
    run_id = run_ok(project / "src" / "deep", config)
    done = nexus_in(project / "src", "--config", config, "cancel", run_id, "--json")
    assert done.code == 0, done.text
    answer = done.json()
    assert {key: answer[key] for key in ("run_id", "outcome")} == {
        "run_id": run_id,
        "outcome": "finished",
    }
    assert answer["reason"] == "cancelled by user"  # and who: `--by`, else the user
    # from outside the project the same config reads another home, which has no such run
    away = nexus_in(elsewhere, "--config", config, "cancel", run_id, "--json")
    assert away.code == 4, away.text
