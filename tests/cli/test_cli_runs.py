"""``nexus runs``: filters by status, name and start time, a duration column, 80 columns."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_support import NEXUS, WORKFLOWS, Out, cli_env, nexus

LONG_NAME = "quarterly-release-notes-for-every-product-line"


@dataclass(frozen=True)
class Recorded:
    home: Path
    ok: str
    failed: str
    long: str


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    root = tmp_path_factory.mktemp("runs")
    home = root / "home"
    for name in ("ok.yaml", "failing.yaml"):
        shutil.copy(WORKFLOWS / name, root / name)
    long = (
        (WORKFLOWS / "ok.yaml")
        .read_text(encoding="utf-8")
        .replace("name: ok", f"name: {LONG_NAME}")
    )
    (root / "long.yaml").write_text(long, encoding="utf-8")
    ids = [
        nexus(home, "run", root / n, "--json").json()["run_id"]
        for n in ("ok.yaml", "failing.yaml", "long.yaml")
    ]
    return Recorded(home, *ids)


def listed(recorded: Recorded, *args: str) -> list[str]:
    out = nexus(recorded.home, "runs", "--json", *args)
    assert out.code == 0, out.text
    return [r["run_id"] for r in out.json()]


def test_filters(recorded: Recorded) -> None:
    everything = [recorded.long, recorded.failed, recorded.ok]
    assert listed(recorded) == everything
    assert listed(recorded, "--status", "failed") == [recorded.failed]
    assert listed(recorded, "--status", "succeeded", "--limit", "1") == [recorded.long]
    assert listed(recorded, "--name", "FAIL") == [recorded.failed]
    assert listed(recorded, "--name", "release", "--status", "failed") == []
    assert listed(recorded, "--since", "1h") == everything
    assert listed(recorded, "--since", "2000-01-01") == everything
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    assert listed(recorded, "--since", tomorrow) == []


def test_bad_filters_are_clear(recorded: Recorded) -> None:
    out = nexus(recorded.home, "runs", "--since", "last tuesday")
    assert out.code == 2, out.text
    assert out.stderr.startswith("error: --since 'last tuesday': give a duration back from now")
    out = nexus(recorded.home, "runs", "--status", "done")
    assert out.code == 2, out.text
    assert "'done' is not one of" in out.stderr


def test_no_match_says_what_and_where(recorded: Recorded) -> None:
    out = nexus(recorded.home, "runs", "--status", "paused", "--name", "x")
    assert out.code == 0, out.text
    assert out.stdout == f"no runs match status paused, name x in {recorded.home}\n"


def narrow(home: Path, *args: str) -> Out:
    env = {**cli_env(home), "COLUMNS": "80"}
    proc = subprocess.run(
        [str(NEXUS), "runs", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return Out(proc.returncode, proc.stdout, proc.stderr)


def test_the_table_fits_80_columns_with_a_duration(recorded: Recorded) -> None:
    out = narrow(recorded.home)
    assert out.code == 0, out.text
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["run", "name", "status", "started", "duration", "events"]
    assert all(len(line) <= 80 for line in lines), out.stdout
    for run_id, status in ((recorded.long, "succeeded"), (recorded.failed, "failed")):
        (row,) = [line for line in lines if line.startswith(run_id + " ")]  # never cut
        assert status in row.split()
        assert re.search(r" \d+\.\ds +\d+$", row), row  # duration, then the events
    (long_row,) = [line for line in lines if line.startswith(recorded.long)]
    assert re.search(r"  quarterly-rel\S*…  ", long_row), long_row  # cut, not wrapped
    assert len(lines) == 4
