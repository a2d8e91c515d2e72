"""A workflow's MCP servers: tools denied until their pin is approved, then used."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from cli_support import nexus

pytestmark = pytest.mark.slow

SERVER = Path(sys.executable).parent / "mcp-server-time"


def _workflow(tmp_path: Path) -> Path:
    wf = tmp_path / "clock.yaml"
    wf.write_text(
        "version: 1\nname: clock\n"
        f"mcp_servers:\n  time: {{command: '{SERVER}', call_timeout: 20}}\n"
        "tasks:\n"
        "  now:\n"
        "    tool: time.get_current_time\n"
        "    with: {timezone: UTC}\n"
        "    retries: 0\n"
        "    profile: {mcp_tools: [time.get_current_time]}\n"
    )
    return wf


def _approve_server(home: Path, wf: Path) -> None:
    """Approve the server's command, as an operator would after `nexus tools`."""
    listing = nexus(home, "tools", "--workflow", wf, "--json").json()
    (server,) = listing["mcp_servers"]
    assert server["command_status"] == "new"
    approved = nexus(home, "tools", "approve", "mcp:time", "--pin", server["command_pin"])
    assert approved.code == 0, approved.text


def test_mcp_tools_are_denied_until_approved_then_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    wf = _workflow(tmp_path)
    assert nexus(home, "validate", wf).code == 0

    # first the server's command itself: it is not started until approved
    refused = nexus(home, "run", wf, "--json")
    assert refused.code == 1, refused.text
    task = nexus(home, "inspect", refused.json()["run_id"], "--task", "now", "--json").json()
    assert task["error"]["kind"] == "policy_denied"
    assert "MCP server 'time' is not approved to run" in task["error"]["message"]
    command_pin = re.search(r"mcp:time --pin ([0-9a-f]{64})", task["error"]["message"])
    assert command_pin is not None, task["error"]["message"]
    assert nexus(home, "tools", "approve", "mcp:time", "--pin", command_pin.group(1)).code == 0

    denied = nexus(home, "run", wf, "--json")
    assert denied.code == 1, denied.text
    run_id = denied.json()["run_id"]
    task = nexus(home, "inspect", run_id, "--task", "now", "--json").json()
    assert task["error"]["kind"] == "policy_denied"
    pin = re.search(r"--pin ([0-9a-f]{64})", task["error"]["message"])
    assert pin is not None, task["error"]["message"]

    approved = nexus(home, "tools", "approve", "time.get_current_time", "--pin", pin.group(1))
    assert approved.code == 0, approved.text

    ran = nexus(home, "run", wf, "--json")
    assert ran.code == 0, ran.text
    output = nexus(home, "inspect", ran.json()["run_id"], "--task", "now", "--json").json()
    assert output["output"]["is_error"] is False
    assert output["output"]["provenance"] == {"source": "mcp:time", "trusted": False}
    assert "UTC" in str(output["output"]["structured"] or output["output"]["content"])
    assert nexus(home, "replay", ran.json()["run_id"], "--json").json()["identical"] is True


def test_mcp_tools_need_a_profile_grant(tmp_path: Path) -> None:
    home = tmp_path / "home"
    wf = tmp_path / "ungranted.yaml"
    wf.write_text(
        "version: 1\nname: ungranted\n"
        f"mcp_servers:\n  time: {{command: '{SERVER}', call_timeout: 20}}\n"
        "tasks:\n  now: {tool: time.get_current_time, with: {timezone: UTC}}\n"
    )
    _approve_server(home, wf)
    # refused before the run starts (the engine would deny the call: see test_mcp.py)
    denied = nexus(home, "run", wf, "--json")
    assert denied.code == 2, denied.text
    assert "task 'now', field 'profile'" in denied.stderr
    assert "mcp_tools: ['time.get_current_time']" in denied.stderr
    assert not (home / "nexus.db").exists()


def test_a_bad_server_table_names_the_field(tmp_path: Path) -> None:
    wf = tmp_path / "bad.yaml"
    wf.write_text(
        "version: 1\nname: bad\nmcp_servers:\n  time: {command: x, call_timeout: -1}\n"
        "tasks:\n  a: {tool: noop}\n"
    )
    result = nexus(tmp_path / "home", "validate", wf)
    assert result.code == 2
    assert "mcp_servers" in result.stderr
    assert "call_timeout" in result.stderr
