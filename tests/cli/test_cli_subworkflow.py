"""``nexus validate`` and ``nexus run`` on sub-workflows, through the real ``nexus`` script:
a problem inside is named in both files (exit 2, no traceback), and a secret passed
down with ``with:`` is never recorded."""

from __future__ import annotations

from pathlib import Path

from cli_support import nexus

PARENT = """\
version: 1
name: parent
inputs: {db_password: {secret: true}}
tasks:
  use:
    workflow: steps/use.yaml
    with: {password: "{{ inputs.db_password }}"}
"""
SUB = """\
version: 1
name: use
inputs: {password: {secret: true}}
outputs: {seen: "{{ tasks.show.output.text }}"}
tasks:
  show: {tool: noop, with: {text: "connect with {{ inputs.password }}"}}
"""


def _files(tmp_path: Path, sub: str = SUB) -> Path:
    (tmp_path / "steps").mkdir(exist_ok=True)
    (tmp_path / "steps" / "use.yaml").write_text(sub, encoding="utf-8")
    parent = tmp_path / "workflow.yaml"
    parent.write_text(PARENT, encoding="utf-8")
    return parent


def test_validate_names_the_parent_and_the_sub_workflow(nexus_home: Path, tmp_path: Path) -> None:
    parent = _files(tmp_path, SUB.replace("tool: noop", "tool: nope"))
    out = nexus(nexus_home, "validate", parent, "--json")
    assert out.code == 2, out.text
    (problem,) = out.json()["error"]["problems"]
    assert problem["file"] == str(parent)
    assert problem["task"] == "use"
    assert problem["field"] == "workflow"
    assert "steps/use.yaml, task 'show', field 'tool'" in problem["message"]
    assert "unknown tool 'nope'" in problem["message"]
    text = nexus(nexus_home, "validate", parent)
    assert text.code == 2
    assert f"{parent}, task 'use', field 'workflow': in the sub-workflow" in text.text


def test_a_secret_passed_down_is_never_recorded(nexus_home: Path, tmp_path: Path) -> None:
    parent = _files(tmp_path)
    secret = "hunter2-d41d8cd98f"
    run = nexus(nexus_home, "run", parent, "-i", f"db_password={secret}", "--json")
    assert run.code == 0, run.text
    rid = run.json()["run_id"]
    shown = nexus(nexus_home, "inspect", rid, "--task", "use", "--json").json()
    assert shown["output"] == {"seen": "connect with [redacted]"}
    events = nexus(nexus_home, "events", rid, "--json")
    assert secret not in events.stdout
    assert "connect with [redacted]" in events.stdout
    for stored in nexus_home.rglob("*"):
        if stored.is_file():
            assert secret.encode() not in stored.read_bytes(), stored
