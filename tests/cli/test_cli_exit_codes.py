"""Exit codes: a preflight refusal is not "the run failed" (issue 11, bug 8).

A run whose estimate exceeds a budget never starts: nothing ran and nothing
was recorded, so it must not exit 1 like a run whose task failed. It exits 6,
and so does ``nexus plan --estimate`` for the same verdict; every command maps
the error through one function, so resume and replay cannot disagree.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_support import nexus

from nexus.cli import output
from nexus.domain.errors import BudgetExceeded, ConflictError, NexusError, NotFoundError, UserError

WORKFLOW = """\
version: 1
name: priced
budget: {usd: 1}
agents:
  a:
    model: scripted:a
    max_tokens: 4
    scripted: ["one two three four"]
tasks:
  t1: {agent: a, prompt: "go"}
  t2: {agent: a, prompt: "go"}
"""
#: $1 a completion token: each call is estimated at $4, the budget is $1
PRICED = '[pricing."scripted:a"]\ninput = 0\noutput = 1000000\n'
DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _project(tmp_path: Path) -> Path:
    (tmp_path / "nexus.toml").write_text(PRICED, encoding="utf-8")
    (tmp_path / "priced.yaml").write_text(WORKFLOW, encoding="utf-8")
    return tmp_path / "home"


def test_a_refused_run_exits_6_and_records_nothing(tmp_path: Path) -> None:
    home = _project(tmp_path)
    refused = nexus(home, "run", "priced.yaml")
    assert refused.code == 6, refused.text
    assert "the run was not started" in refused.stderr
    assert "--force" in refused.stderr
    assert nexus(home, "runs", "--json").json() == []

    as_json = nexus(home, "run", "priced.yaml", "--json")
    assert as_json.code == 6, as_json.text
    assert as_json.json()["error"]["exit_code"] == 6


def test_the_estimate_exits_6_for_the_same_verdict(tmp_path: Path) -> None:
    home = _project(tmp_path)
    estimate = nexus(home, "plan", "priced.yaml", "--estimate")
    assert estimate.code == 6, estimate.text
    assert "over budget" in estimate.stderr


@pytest.mark.slow
def test_a_forced_run_that_runs_out_pauses_with_5_not_6(tmp_path: Path) -> None:
    home = _project(tmp_path)
    forced = nexus(home, "run", "priced.yaml", "--force")
    assert forced.code == 5, forced.text


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BudgetExceeded("over"), output.EXIT_REFUSED),
        (UserError("bad"), output.EXIT_USER),
        (NotFoundError("gone"), output.EXIT_NOT_FOUND),
        (ConflictError("busy"), output.EXIT_CONFLICT),
    ],
)
def test_one_mapping_for_every_command(error: NexusError, code: int) -> None:
    assert output.exit_code_for(error) == code


def test_every_exit_code_is_documented() -> None:
    section = DOCS.read_text(encoding="utf-8").split("## Exit codes", 1)[1]
    documented = {int(n) for n in re.findall(r"^\| (\d+) \|", section, re.MULTILINE)}
    codes = {value for name, value in vars(output).items() if name.startswith("EXIT_")}
    assert {0, *codes} == documented
