"""`nexus tools`: the catalog, and approving / revoking MCP tool pins."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from nexus.cli import app

runner = CliRunner()
PIN = "0123456789abcdef" * 4


def test_tools_lists_builtins_with_schema_and_permissions(nexus_home: Path) -> None:
    result = runner.invoke(app, ["tools", "--json"])
    assert result.exit_code == 0, result.output
    entries = {e["name"]: e for e in json.loads(result.stdout)}
    assert {"shell", "noop"} <= set(entries)
    shell = entries["shell"]
    assert shell["source"] == "builtin"
    assert shell["input_schema"]["required"] == ["cmd"]
    assert shell["permissions"]["network"] == "none"
    assert entries["noop"]["pure"] is True
    table = runner.invoke(app, ["tools"])
    assert "shell" in table.stdout
    assert "net none" in table.stdout


def test_approve_list_and_revoke_a_pin(nexus_home: Path) -> None:
    ok = runner.invoke(app, ["tools", "approve", "git.git_status", "--pin", PIN, "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["pin"] == PIN
    listed = json.loads(runner.invoke(app, ["tools", "pins", "--json"]).stdout)
    assert [(e["tool"], e["pin"]) for e in listed] == [("git.git_status", PIN)]
    revoked = runner.invoke(app, ["tools", "revoke", "git.git_status", "--json"])
    assert json.loads(revoked.stdout) == {"tool": "git.git_status", "revoked": True}
    assert json.loads(runner.invoke(app, ["tools", "pins", "--json"]).stdout) == []


def test_bad_names_and_pins_are_clear_errors(nexus_home: Path) -> None:
    bad_name = runner.invoke(app, ["tools", "approve", "nodot", "--pin", PIN])
    assert bad_name.exit_code == 2
    assert "must be written SERVER.TOOL" in bad_name.stderr
    bad_pin = runner.invoke(app, ["tools", "approve", "a.b", "--pin", "xyz"])
    assert bad_pin.exit_code == 2
    assert "64 lowercase hex digits" in bad_pin.stderr
    assert "Traceback" not in bad_pin.output
