"""Bad input to the ``nexus`` CLI: a clear message and an exit code, never a traceback.

Every case runs the real console script against a home that already holds a
finished run, and that run must survive every failed command untouched.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_support import WORKFLOWS, Out, nexus

INVALID = WORKFLOWS / "invalid"

EXIT_USER, EXIT_NOT_FOUND = 2, 4


@dataclass(frozen=True)
class Recorded:
    home: Path
    run_id: str
    events: int


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """A home holding one finished run that no failed command may disturb."""
    root = tmp_path_factory.mktemp("errors")
    home = root / "home"
    file = Path(shutil.copy(WORKFLOWS / "ok.yaml", root / "ok.yaml"))
    out = nexus(home, "run", file, "--json")
    assert out.code == 0, out.text
    rid = out.json()["run_id"]
    (record,) = nexus(home, "runs", "--json").json()
    return Recorded(home, rid, record["events"])


def assert_clear_error(out: Out, code: int, *fragments: str) -> None:
    assert out.code == code, out.text
    assert out.stdout == ""
    assert out.stderr.startswith("error: "), out.stderr
    for fragment in fragments:
        assert fragment in out.stderr, (fragment, out.stderr)


# --------------------------------------------------------------------------- workflow files

WORKFLOW_CASES = [
    # (file, command, exit code, what the message must name)
    ("bad_yaml.yaml", "validate", EXIT_USER, ["bad_yaml.yaml", "invalid YAML", "line 6"]),
    ("cycle.yaml", "run", EXIT_USER, ["cycle.yaml", "dependency cycle", "a -> b -> a"]),
    (
        "unknown_needs.yaml",
        "plan",
        EXIT_USER,
        ["unknown_needs.yaml", "task 'b'", "needs unknown task 'nope'"],
    ),
    (
        "unknown_agent.yaml",
        "run",
        EXIT_USER,
        ["unknown_agent.yaml", "task 'a'", "unknown agent 'ghost'", "writer"],
    ),
    (
        "unknown_capability.yaml",
        "validate",
        EXIT_USER,
        ["unknown_capability.yaml", "task 'a'", "no agent has capability 'fly'", "write"],
    ),
    (
        "template_syntax.yaml",
        "run",
        EXIT_USER,
        ["template_syntax.yaml", "task 'a'", "with.cmd", "template syntax error"],
    ),
    (
        "template_non_dependency.yaml",
        "plan",
        EXIT_USER,
        ["task 'b'", "reads tasks.a but does not depend on it", "needs"],
    ),
    (
        "unknown_tool.yaml",
        "run",
        EXIT_USER,
        ["unknown_tool.yaml", "task 'a'", "unknown tool 'hammer'", "shell"],
    ),
    # text that looks like terminal markup is shown as written
    ("markup_tool.yaml", "validate", EXIT_USER, ["unknown tool '[/x][bold]hammer'"]),
    ("no_such_workflow.yaml", "run", EXIT_NOT_FOUND, ["no_such_workflow.yaml", "not found"]),
]


@pytest.mark.parametrize(
    ("name", "command", "code", "fragments"),
    WORKFLOW_CASES,
    ids=[f"{case[1]}-{case[0].removesuffix('.yaml')}" for case in WORKFLOW_CASES],
)
def test_invalid_workflow(
    recorded: Recorded, name: str, command: str, code: int, fragments: list[str]
) -> None:
    out = nexus(recorded.home, command, INVALID / name)
    assert_clear_error(out, code, *fragments)


# --------------------------------------------------------------------------- unknown runs

RUN_CASES = [
    ["status", "NOPE"],
    ["inspect", "NOPE"],
    ["events", "NOPE"],
    ["resume", "NOPE"],
    ["replay", "NOPE"],
    ["audit", "verify", "NOPE"],
]


@pytest.mark.parametrize("args", RUN_CASES, ids=[" ".join(case[:-1]) for case in RUN_CASES])
def test_unknown_run_id(recorded: Recorded, args: list[str]) -> None:
    out = nexus(recorded.home, *args)
    assert_clear_error(out, EXIT_NOT_FOUND, "no run with id NOPE")


def test_unknown_run_id_as_json(recorded: Recorded) -> None:
    out = nexus(recorded.home, "status", "NOPE", "--json")
    assert out.code == EXIT_NOT_FOUND
    assert out.json() == {"error": {"message": "no run with id NOPE", "exit_code": 4}}


def test_an_error_message_is_printed_as_written(recorded: Recorded) -> None:
    # Rich would turn ':x:' into an emoji and '[bold]' into markup: a message is text
    out = nexus(recorded.home, "status", "opnai:x:[bold]y")
    assert_clear_error(out, EXIT_NOT_FOUND, "no run with id opnai:x:[bold]y")


def test_unknown_task(recorded: Recorded) -> None:
    out = nexus(recorded.home, "inspect", recorded.run_id, "--task", "zzz")
    assert_clear_error(out, EXIT_NOT_FOUND, recorded.run_id, "no task 'zzz'", "hello")


def test_export_to_a_missing_directory(recorded: Recorded, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "bundle.json"
    out = nexus(recorded.home, "export", recorded.run_id, "-o", target)
    assert_clear_error(out, EXIT_USER, "cannot write", str(target))


def test_nothing_recorded_is_lost(recorded: Recorded) -> None:
    """Failed commands neither add runs nor touch the recorded one."""
    assert nexus(recorded.home, "run", INVALID / "cycle.yaml").code == EXIT_USER
    assert nexus(recorded.home, "resume", "NOPE").code == EXIT_NOT_FOUND

    (record,) = nexus(recorded.home, "runs", "--json").json()
    assert record["run_id"] == recorded.run_id
    assert record["status"] == "succeeded"
    assert record["events"] == recorded.events
    audit = nexus(recorded.home, "audit", "verify", "--json")
    assert audit.code == 0, audit.text
    assert audit.json()["ok"] is True
    assert audit.json()["events"] == recorded.events
