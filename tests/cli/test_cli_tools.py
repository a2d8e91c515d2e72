"""`nexus tools`: the catalog (built-ins, declared WASM tools, MCP servers' tools with their
pin status), and approving / revoking MCP tool pins."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from cli_support import nexus
from typer.testing import CliRunner

from nexus.cli import app

runner = CliRunner()
PIN = "0123456789abcdef" * 4
TIME_SERVER = Path(sys.executable).parent / "mcp-server-time"
WORDCOUNT = Path(__file__).resolve().parents[2] / "examples" / "tools" / "wordcount.wat"


def test_tools_lists_builtins_with_schema_and_permissions(nexus_home: Path) -> None:
    result = runner.invoke(app, ["tools", "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    assert listing["mcp_servers"] == []
    entries = {e["name"]: e for e in listing["tools"]}
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


def _project(tmp_path: Path) -> tuple[Path, Path]:
    """nexus.toml declaring a WASM tool and the time server; a workflow adding a dead server."""
    home = tmp_path / "home"
    shutil.copy(WORDCOUNT, tmp_path / "wordcount.wat")
    (tmp_path / "nexus.toml").write_text(
        "[wasm_tools.wordcount]\n"
        'module = "wordcount.wat"\n'
        "pure = true\n"
        "[mcp_servers.time]\n"
        f'command = "{TIME_SERVER}"\n'
    )
    wf = tmp_path / "flow.yaml"
    wf.write_text(
        "version: 1\nname: flow\n"
        "mcp_servers:\n"
        f"  broken: {{command: '{sys.executable}', args: ['-c', 'import sys; sys.exit(3)'],"
        " connect_timeout: 3}\n"
        "tasks:\n  a: {tool: noop}\n"
    )
    return home, wf


def _approve_launches(home: Path) -> None:
    """Approve what nexus.toml would run (the time server, the WASM module) at their pins."""
    listing = nexus(home, "tools", "--json").json()
    for server in listing["mcp_servers"]:
        if server["command_status"] == "new":
            key = f"mcp:{server['name']}"
            assert nexus(home, "tools", "approve", key, "--pin", server["command_pin"]).code == 0
    for entry in listing["tools"]:
        if entry["source"] == "wasm" and entry["pin_status"] == "new":
            assert (
                nexus(home, "tools", "approve", entry["approve"], "--pin", entry["pin"]).code == 0
            )


@pytest.mark.slow
def test_tools_discovers_wasm_and_mcp_tools_with_their_pin_status(tmp_path: Path) -> None:
    home, _ = _project(tmp_path)
    _approve_launches(home)
    first = nexus(home, "tools", "--json")
    assert first.code == 0, first.text
    listing = first.json()
    tools = {e["name"]: e for e in listing["tools"]}
    assert {"shell", "wordcount", "time.get_current_time", "time.convert_time"} <= set(tools)
    wasm = tools["wordcount"]
    assert (wasm["source"], wasm["pure"], wasm["module"]) == (
        "wasm",
        True,
        str(tmp_path / "wordcount.wat"),
    )
    assert len(wasm["digest"]) == 64
    assert wasm["permissions"]["network"] == "none"
    now = tools["time.get_current_time"]
    assert (now["source"], now["server"], now["pin_status"]) == ("mcp:time", "time", "new")
    assert "timezone" in now["input_schema"]["properties"]
    (server,) = listing["mcp_servers"]
    assert server["command_status"] == "approved"
    assert len(server["command_pin"]) == 64
    del server["command_pin"], server["command_status"]
    assert server == {
        "name": "time",
        "transport": "stdio",
        "connected": True,
        "last_error": None,
        "tools": 2,
    }
    assert wasm["pin_status"] == "approved"

    # approve one at its pin; pretend another was approved at an older descriptor
    assert nexus(home, "tools", "approve", "time.get_current_time", "--pin", now["pin"]).code == 0
    assert nexus(home, "tools", "approve", "time.convert_time", "--pin", PIN).code == 0
    again = {e["name"]: e for e in nexus(home, "tools", "--json").json()["tools"]}
    assert again["time.get_current_time"]["pin_status"] == "approved"
    assert again["time.get_current_time"]["approved_pin"] == now["pin"]
    assert again["time.convert_time"]["pin_status"] == "changed"
    assert again["time.convert_time"]["approved_pin"] == PIN

    table = nexus(home, "tools")
    assert table.code == 0, table.text
    assert "wasm" in table.stdout
    assert "approved" in table.stdout
    assert f"nexus tools approve time.convert_time --pin {again['time.convert_time']['pin']}" in (
        table.stdout.replace("\n", "")
    )


@pytest.mark.slow
def test_a_workflows_servers_are_listed_and_a_dead_one_does_not_hide_the_rest(
    tmp_path: Path,
) -> None:
    home, wf = _project(tmp_path)
    _approve_launches(home)
    broken = nexus(home, "tools", "--workflow", wf, "--json").json()["mcp_servers"]
    pin = next(s["command_pin"] for s in broken if s["name"] == "broken")
    assert nexus(home, "tools", "approve", "mcp:broken", "--pin", pin).code == 0
    result = nexus(home, "tools", "--workflow", wf, "--json")
    assert result.code == 0, result.text
    listing = result.json()
    servers = {s["name"]: s for s in listing["mcp_servers"]}
    assert servers["time"]["connected"] is True
    assert servers["broken"]["connected"] is False
    assert servers["broken"]["tools"] == 0
    assert servers["broken"]["last_error"]
    assert "time.get_current_time" in {e["name"] for e in listing["tools"]}
    table = nexus(home, "tools", "--workflow", wf)
    assert "mcp server broken: not connected" in table.stdout


def test_a_bad_declaration_or_workflow_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "nexus.toml").write_text('[wasm_tools.shell]\nmodule = "missing.wat"\n')
    bad = nexus(home, "tools", "--json")
    assert bad.code == 2
    assert "wasm_tools.shell.module" in bad.stderr
    (tmp_path / "nexus.toml").write_text(f'[wasm_tools.shell]\nmodule = "{WORDCOUNT}"\n')
    taken = nexus(home, "tools")
    assert taken.code == 2
    assert "the name is taken by a builtin tool" in taken.stderr
    (tmp_path / "nexus.toml").unlink()
    missing = nexus(home, "tools", "--workflow", tmp_path / "nope.yaml")
    assert missing.code == 4
    assert "workflow file not found" in missing.stderr
