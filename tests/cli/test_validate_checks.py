"""``nexus validate`` through the real CLI: every problem of a file, each naming where it is."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import nexus

BROKEN = """\
version: 1
name: broken
inputs: {topic: cats}
agents:
  writer:
    model: opnai:gpt-4.1
    capabilities: [write]
    instructions: "Write for {{ inputs.audience }}."
tasks:
  list:
    tool: shell
  count:
    tool: shell
    with: {cmd: [wc, -l]}
  each:
    tool: shell
    with: {cmd: "echo {{ item }}"}
  draft:
    capability: write
    prompt: "About {{ inputs.topic }}"
"""

EXPECTED = [
    ("writer.model", "agents.writer.model", "unknown model provider 'opnai'", "'openai'"),
    ("instructions", "agents.writer.instructions", "reads inputs.audience", "declared inputs"),
    ("list", "with", "missing argument 'cmd'", "tool 'shell' takes: cmd"),
    ("count", "with.cmd", "argument 'cmd' must be a string, not a list", ""),
    ("each", "with.cmd", "reads item, which only a foreach task has", ""),
]


def _write(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_validate_reports_every_problem_with_exit_2(tmp_path: Path) -> None:
    flow = _write(tmp_path, BROKEN)
    out = nexus(tmp_path / "home", "validate", flow)
    assert out.code == 2, out.text
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert lines[-1] == f"{len(EXPECTED)} problems"
    errors = lines[:-1]
    assert len(errors) == len(EXPECTED), out.stderr
    for line, (_, field, problem, hint) in zip(errors, EXPECTED, strict=True):
        assert line.startswith(f"error: {flow}, "), line
        assert f"field '{field}'" in line
        assert problem in line
        assert hint in line


def test_validate_json_lists_each_problem(tmp_path: Path) -> None:
    flow = _write(tmp_path, BROKEN)
    out = nexus(tmp_path / "home", "validate", flow, "--json")
    assert out.code == 2, out.text
    error = out.json()["error"]
    assert error["exit_code"] == 2
    problems = error["problems"]
    assert [p["field"] for p in problems] == [field for _, field, _, _ in EXPECTED]
    assert [p["task"] for p in problems] == [None, None, "list", "count", "each"]
    assert all(p["file"] == str(flow) for p in problems)
    assert "unknown model provider 'opnai'" in problems[0]["message"]
    assert error["message"].count("\n") == len(EXPECTED) - 1


def test_run_refuses_the_same_file_before_it_starts(tmp_path: Path) -> None:
    flow = _write(tmp_path, BROKEN)
    home = tmp_path / "home"
    out = nexus(home, "run", flow)
    assert out.code == 2, out.text
    assert "unknown model provider 'opnai'" in out.stderr
    assert "missing argument 'cmd'" in out.stderr
    assert not (home / "nexus.db").exists()


def test_a_valid_file_still_says_valid(tmp_path: Path) -> None:
    fixed = (
        BROKEN.replace("opnai:", "scripted:")
        .replace("inputs.audience", "inputs.topic")
        .replace("    tool: shell\n  count:", "    tool: shell\n    with: {cmd: ls}\n  count:")
        .replace("[wc, -l]", "wc -l")
        .replace(
            '    with: {cmd: "echo {{ item }}"}',
            '    foreach: [a, b]\n    with: {cmd: "echo {{ item }}"}',
        )
    )
    out = nexus(tmp_path / "home", "validate", _write(tmp_path, fixed), "--json")
    assert out.code == 0, out.text
    assert out.json() == {"valid": True, "name": "broken", "tasks": 4}


PROJECT_MCP = """\
[mcp_servers.git]
command = "mcp-server-git"
"""

USES_GIT = """\
version: 1
name: uses-git
tasks:
  log:
    tool: git.log
    with: {max_count: 5}
"""


def test_mcp_tools_of_the_project_need_a_grant(tmp_path: Path) -> None:
    (tmp_path / "nexus.toml").write_text(PROJECT_MCP, encoding="utf-8")
    flow = _write(tmp_path, USES_GIT)
    home = tmp_path / "home"
    out = nexus(home, "--config", tmp_path / "nexus.toml", "validate", flow)
    assert out.code == 2, out.text
    assert "task 'log', field 'profile'" in out.stderr
    assert "MCP tool 'git.log' is not granted by the task's profile" in out.stderr
    assert "unknown tool" not in out.stderr  # the project's server makes git.log a name

    granted = _write(tmp_path, USES_GIT + "    profile: {mcp_tools: [git.log]}\n", "ok.yaml")
    out = nexus(home, "--config", tmp_path / "nexus.toml", "validate", granted)
    assert out.code == 0, out.text


def test_mcp_arguments_are_checked_against_the_approved_descriptor(tmp_path: Path) -> None:
    (tmp_path / "nexus.toml").write_text(PROJECT_MCP, encoding="utf-8")
    home = tmp_path / "home"
    home.mkdir()
    descriptor = {
        "name": "log",
        "inputSchema": {
            "type": "object",
            "properties": {"repo_path": {"type": "string"}, "max_count": {"type": "integer"}},
            "required": ["repo_path"],
            "additionalProperties": False,
        },
    }
    pins = {"version": 1, "pins": {"git.log": {"pin": "0" * 64, "descriptor": descriptor}}}
    (home / "mcp-pins.json").write_text(json.dumps(pins), encoding="utf-8")
    flow = _write(tmp_path, USES_GIT + "    profile: {mcp_tools: [git.log]}\n")
    out = nexus(home, "--config", tmp_path / "nexus.toml", "validate", flow)
    assert out.code == 2, out.text
    assert "field 'with': missing argument 'repo_path'" in out.stderr
