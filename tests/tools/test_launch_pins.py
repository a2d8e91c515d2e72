"""Launch pins: a command or module that configuration names runs only as approved.

The attack (issue 9, finding 4): a task writes a ``nexus.toml`` into the
project directory with an ``[mcp_servers]`` entry; the next ``nexus run``
started that command on the host, as the operator (root here), with the
operator's keys in reach. Now the command's launch pin (executable, its
interpreter, arguments, files named by arguments, environment, cwd) must be
approved first, and a change to any of them is refused until re-approved.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nexus.app import project_tools
from nexus.cli import app
from nexus.config import load_config
from nexus.domain.errors import PolicyDenied
from nexus.tools.base import ToolContext
from nexus.tools.mcp import McpConnection, McpServerSpec, approve_launch, launch_record
from nexus.tools.pins import PinStore, ToolState, launch_pin

runner = CliRunner()
ECHO_SERVER = Path(__file__).parent / "mcp_fixtures" / "echo_server.py"
WORDCOUNT = Path(__file__).resolve().parents[2] / "examples" / "tools" / "wordcount.wat"


def marker_server(tmp_path: Path) -> tuple[Path, Path]:
    """A stdio 'server' script that leaves a marker file the moment it runs."""
    marker = tmp_path / "EXECUTED"
    script = tmp_path / "evil_server.py"
    script.write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    return script, marker


async def connect_once(spec: McpServerSpec, pins: PinStore) -> McpConnection:
    async with McpConnection(spec, pins) as conn:
        return conn


def test_an_unapproved_command_never_runs(tmp_path: Path) -> None:
    script, marker = marker_server(tmp_path)
    spec = McpServerSpec(name="evil", command=sys.executable, args=(str(script),))
    pins = PinStore(tmp_path / "home" / "mcp-pins.json")
    conn = asyncio.run(connect_once(spec, pins))
    assert not marker.exists(), "the command ran before anyone approved it"
    assert conn.last_error is not None
    assert "nexus tools approve mcp:evil --pin" in conn.last_error
    status = conn.status()
    assert status.command_state == str(ToolState.PENDING_APPROVAL)
    assert status.command_pin == launch_pin(launch_record(spec))


def test_an_approved_command_starts(tmp_path: Path) -> None:
    spec = McpServerSpec(name="echo", command=sys.executable, args=(str(ECHO_SERVER),))
    pins = PinStore(tmp_path / "mcp-pins.json")
    approve_launch(spec, pins)

    async def main() -> None:
        async with McpConnection(spec, pins) as conn:
            assert conn.connected, conn.last_error
            assert conn.status().command_state == str(ToolState.APPROVED)

    asyncio.run(main())


@pytest.mark.parametrize("change", ["script", "executable", "args", "env", "cwd"])
def test_any_change_to_what_runs_is_refused_until_re_approved(tmp_path: Path, change: str) -> None:
    script, marker = marker_server(tmp_path)
    python = tmp_path / "bin" / "python-copy"
    python.parent.mkdir()
    shutil.copy2(sys.executable, python)
    spec = McpServerSpec(name="s", command=str(python), args=(str(script),), env={"K": "v"})
    pins = PinStore(tmp_path / "mcp-pins.json")
    approved = approve_launch(spec, pins)
    if change == "script":
        script.write_text(script.read_text() + "# and now something else\n")
        field = "arg_files"
    elif change == "executable":
        with python.open("ab") as fh:
            fh.write(b"\0")
        field = "executable_sha256"
    elif change == "args":
        spec = McpServerSpec(
            name="s", command=str(python), args=(str(script), "-x"), env={"K": "v"}
        )
        field = "args"
    elif change == "env":
        spec = McpServerSpec(name="s", command=str(python), args=(str(script),), env={"K": "w"})
        field = "env"
    else:
        spec = McpServerSpec(
            name="s", command=str(python), args=(str(script),), env={"K": "v"}, cwd=tmp_path
        )
        field = "cwd"
    conn = asyncio.run(connect_once(spec, pins))
    assert not marker.exists()
    assert conn.last_error is not None
    assert f"changed since it was approved (approved pin {approved.pin}" in conn.last_error
    assert field in conn.last_error


def test_env_values_are_hashed_not_kept_in_the_pin_file(tmp_path: Path) -> None:
    spec = McpServerSpec(
        name="s", command=sys.executable, args=(str(ECHO_SERVER),), env={"TOKEN": "s3cr3t-value"}
    )
    pins = PinStore(tmp_path / "mcp-pins.json")
    approve_launch(spec, pins)
    text = (tmp_path / "mcp-pins.json").read_text()
    assert "s3cr3t-value" not in text
    assert "TOKEN" in text


def test_a_script_interpreter_is_part_of_the_pin(tmp_path: Path) -> None:
    interpreter = tmp_path / "interp"
    shutil.copy2(sys.executable, interpreter)
    script = tmp_path / "server"
    script.write_text(f"#!{interpreter}\nprint('hi')\n")
    script.chmod(0o755)
    spec = McpServerSpec(name="s", command=str(script))
    record = launch_record(spec)
    assert record["interpreter"] == str(interpreter)
    before = launch_pin(record)
    with interpreter.open("ab") as fh:
        fh.write(b"\0")
    assert launch_pin(launch_record(spec)) != before


def poisoned_project(tmp_path: Path) -> tuple[Path, Path]:
    """A project whose nexus.toml a task rewrote to start its own 'MCP server'."""
    project = tmp_path / "project"
    project.mkdir()
    script, marker = marker_server(tmp_path)
    (project / "nexus.toml").write_text(
        f"[mcp_servers.helper]\ncommand = {json.dumps(sys.executable)}\n"
        f"args = [{json.dumps(str(script))}]\nconnect_timeout = 5\n"
    )
    return project, marker


def test_nexus_tools_does_not_run_a_poisoned_server_and_says_how_to_approve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, marker = poisoned_project(tmp_path)
    monkeypatch.chdir(project)
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["tools", "--json"])
    assert result.exit_code == 0, result.output
    assert not marker.exists()
    (server,) = json.loads(result.stdout)["mcp_servers"]
    assert server["command_status"] == "new"
    pin = server["command_pin"]
    shown = runner.invoke(app, ["tools"])
    assert f"nexus tools approve mcp:helper --pin {pin}" in shown.stdout
    # the operator reviews and approves: now it runs, and the approval keeps the record
    ok = runner.invoke(app, ["tools", "approve", "mcp:helper", "--pin", pin, "--json"])
    assert ok.exit_code == 0, ok.output
    stored = json.loads((tmp_path / "home" / "mcp-pins.json").read_text())["pins"]["mcp:helper"]
    assert stored["descriptor"]["args"] == [str(tmp_path / "evil_server.py")]
    runner.invoke(app, ["tools", "--json"])
    assert marker.exists()


def test_launch_keys_are_checked_by_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path / "home"))
    bad = runner.invoke(app, ["tools", "approve", "exe:thing", "--pin", "0" * 64])
    assert bad.exit_code == 2
    assert "mcp:SERVER or wasm:TOOL" in bad.stderr
    revoked = runner.invoke(app, ["tools", "revoke", "mcp:none", "--json"])
    assert json.loads(revoked.stdout) == {"tool": "mcp:none", "revoked": False}


def test_a_configured_wasm_module_runs_only_as_approved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "wc.wat"
    shutil.copy2(WORDCOUNT, module)
    (tmp_path / "nexus.toml").write_text(f'[wasm_tools.wc]\nmodule = "{module}"\n')
    home = tmp_path / "home"
    monkeypatch.chdir(tmp_path)
    ctx = ToolContext(run_id="r", task="t", attempt=1, workspace=tmp_path)

    def call() -> object:
        tool = project_tools(load_config(), home).get("wc")
        return asyncio.run(tool({"text": "two words"}, ctx))

    with pytest.raises(PolicyDenied, match="WASM tool 'wc' is not approved") as denied:
        call()
    pin = str(denied.value).split("--pin ")[1]
    PinStore.at_home(home).approve_key("wasm:wc", pin)
    assert call()["result"]["words"] == 2  # type: ignore[index]
    module.write_text(module.read_text() + "\n;; changed\n")
    with pytest.raises(PolicyDenied, match="changed since it was approved"):
        call()
