"""In-process CLI tests (Typer's runner): time travel and template lookups."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from nexus.cli import app

runner = CliRunner()


def _run(workflow: Path, *extra: str) -> dict[str, object]:
    result = runner.invoke(app, ["run", str(workflow), "--json", *extra])
    assert "Traceback" not in result.output
    doc: dict[str, object] = json.loads(result.stdout)
    return doc


def test_status_at_shows_the_state_as_of_an_event(nexus_home: Path, tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        "version: 1\nname: tt\ntasks:\n"
        "  a: {tool: noop, with: {x: 1}}\n"
        "  b: {needs: [a], tool: noop, with: {y: 2}}\n"
    )
    run_id = str(_run(wf)["run_id"])
    events = json.loads(runner.invoke(app, ["events", run_id, "--json"]).stdout)
    first_done = next(e["seq"] for e in events if e["type"] == "task.succeeded")

    then = json.loads(
        runner.invoke(app, ["status", run_id, "--at", str(first_done), "--json"]).stdout
    )
    assert then["status"] == "running"
    assert then["tasks"]["a"]["status"] == "succeeded"
    assert then["tasks"]["b"]["status"] in {"pending", "running"}
    assert then["events"] == first_done

    now = json.loads(runner.invoke(app, ["inspect", run_id, "--json"]).stdout)
    assert now["status"] == "succeeded"

    bad = runner.invoke(app, ["status", run_id, "--at", "0"])
    assert bad.exit_code == 2
    assert "--at must be between 1 and" in bad.stderr


def test_template_keys_win_over_dict_methods(nexus_home: Path, tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        "version: 1\nname: keys\ninputs: {items: [x, y]}\ntasks:\n"
        "  each: {foreach: '{{ inputs.items }}', tool: noop, with: {v: '{{ item }}'}}\n"
    )
    doc = _run(wf)
    assert doc["status"] == "succeeded"
    run_id = str(doc["run_id"])
    task = json.loads(runner.invoke(app, ["inspect", run_id, "--task", "each", "--json"]).stdout)
    assert task["output"] == [{"v": "x"}, {"v": "y"}]
