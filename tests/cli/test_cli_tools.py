"""`nexus tools`: the catalog (built-ins, declared WASM tools, MCP servers' tools with their
pin status), and approving / revoking MCP tool pins."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_support import nexus
from typer.testing import CliRunner

from nexus.cli import app
from nexus.tools.pins import PinStore

runner = CliRunner()
PIN = "0123456789abcdef" * 4
TIME_SERVER = Path(sys.executable).parent / "mcp-server-time"
WORDCOUNT = Path(__file__).resolve().parents[2] / "examples" / "tools" / "wordcount.wat"
FILES_SERVER = Path(__file__).resolve().parents[1] / "tools" / "mcp_fixtures" / "files_server.py"


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


def test_tools_shows_what_a_grant_may_get_each_builtin(tmp_path: Path) -> None:
    """A built-in's allowed profile: its own, widened by nexus.toml's [tools.<name>]."""
    (tmp_path / "nexus.toml").write_text(
        '[tools.http]\nnetwork = ["api.github.com:443"]\n'
        '[tools.shell]\nread_paths = ["/opt/data"]\n',
        encoding="utf-8",
    )
    home = tmp_path / "home"
    listing = nexus(home, "tools", "--json")
    assert listing.code == 0, listing.text
    tools = {e["name"]: e for e in listing.json()["tools"]}
    http, shell, python = tools["http"], tools["shell"], tools["python"]
    assert http["permissions"]["network"] == "none"  # its own: a task without a grant
    assert http["allowed"]["network"] == ["api.github.com:443"]
    assert shell["allowed"]["read_paths"] == ["/opt/data"]
    assert shell["allowed"]["network"] == "none"
    assert python["allowed"] == python["permissions"]  # no table: a grant may only narrow
    assert "allowed" not in tools["noop"]  # no exec profile: nothing to grant

    table = nexus(home, "tools")
    assert table.code == 0, table.text
    lines = table.stdout.splitlines()
    added = lines[lines.index("a task's profile: may add (nexus.toml's [tools.NAME]):") + 1 :]
    assert added == ["  http   net api.github.com:443", "  shell  read /opt/data"]
    (tmp_path / "nexus.toml").write_text("", encoding="utf-8")
    plain = nexus(home, "tools")
    assert "a task's profile: may only narrow these permissions" in plain.stdout


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
    assert "'nodot' names a server" in bad_name.stderr
    assert "nodot.TOOL" in bad_name.stderr
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


# -- reviewing and approving MCP tools: show, globs, --all, typos -----------------------------


def tools(*args: str, stdin: str | None = None) -> Any:
    """``nexus tools ARGS`` in process, 200 columns wide (no wrapped descriptions)."""
    return runner.invoke(app, ["tools", *args], input=stdin, env={"COLUMNS": "200"})


@pytest.fixture
def files_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose nexus.toml declares the files server, its command approved; the home."""
    home = tmp_path / "home"
    (tmp_path / "nexus.toml").write_text(
        f"[mcp_servers.files]\ncommand = {json.dumps(sys.executable)}\n"
        f"args = [{json.dumps(str(FILES_SERVER))}]\nconnect_timeout = 30\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEXUS_HOME", str(home))
    (server,) = json.loads(tools("--json").stdout)["mcp_servers"]
    assert tools("approve", "mcp:files", "--pin", server["command_pin"]).exit_code == 0
    return home


def approved_tools(home: Path) -> dict[str, str]:
    """The MCP tools approved in ``home`` (launch approvals left out), with their pins."""
    return {a.tool: a.pin for a in PinStore.at_home(home).approvals() if ":" not in a.tool}


@pytest.mark.slow
def test_show_prints_a_descriptor_readably(files_project: Path) -> None:
    shown = tools("show", "files.write_file")
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert "files.write_file  (Write a file)" in text
    assert "status: new: not approved yet" in text
    assert "Write text to a file, replacing it or appending to it." in text
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("    ")}
    assert rows["argument"].split()[:4] == ["argument", "type", "required", "description"]
    assert rows["path"].split()[:3] == ["path", "string", "yes"]
    assert rows["mode"].split()[:3] == ["mode", "string", "no"]
    assert 'one of "replace", "append"; default "replace"' in rows["mode"]
    assert "hints (the server's own, not checked): read-only: no, destructive: yes" in text
    pin = json.loads(tools("show", "files.write_file", "--json").stdout)["tools"][0]["pin"]
    assert f"pin: {pin}" in text
    assert f"approve it: nexus tools approve files.write_file --pin {pin}" in text

    # a server: all its tools, the linter's findings and what approval cannot override
    every = tools("show", "files", "--json")
    assert every.exit_code == 0, every.output
    listing = {t["tool"]: t for t in json.loads(every.stdout)["tools"]}
    assert sorted(listing) == ["read_dir", "read_file", "sneaky", "write_file"]
    read = listing["read_file"]
    assert read["annotations"] == {"read-only": "yes", "open world": "no"}
    assert read["arguments"] == [
        # no description: the schema's title stands in
        {"name": "path", "type": "string", "required": True, "description": "Path", "notes": ""},
        {
            "name": "max_bytes",
            "type": "integer",
            "required": False,
            "description": "Max Bytes",
            "notes": "default 4096",
        },
    ]
    sneaky = listing["sneaky"]
    assert sneaky["pin_status"] == "blocked-by-lint"
    assert {f["code"] for f in sneaky["findings"]} >= {"hidden-instruction", "secret-path"}
    table = tools("show", "files").stdout
    assert "status: blocked by the descriptor linter (approval does not override it)" in table
    assert "lint error hidden-instruction at description:" in table
    assert "3 not approved; approve them after review: nexus tools approve files --all" in table
    assert approved_tools(files_project) == {}  # showing approves nothing


@pytest.mark.slow
def test_a_typo_is_refused_with_a_suggestion_and_never_pinned(files_project: Path) -> None:
    for args in (
        ("approve", "files.raed_file"),
        ("approve", "files.raed_file", "--yes"),
        ("approve", "files.raed_file", "--pin", PIN),
        ("show", "files.raed_file"),
    ):
        refused = tools(*args)
        assert refused.exit_code == 4, (args, refused.output)
        assert "no such tool: 'files.raed_file'; did you mean 'files.read_file'?" in (
            refused.stderr
        )
    unmatched = tools("approve", "files.delete_*", "--yes")
    assert unmatched.exit_code == 4
    assert "no tool of MCP server 'files' matches 'delete_*'" in unmatched.stderr
    server = tools("approve", "flies", "--all", "--yes")
    assert server.exit_code == 4
    assert "no MCP server 'flies'; did you mean 'files'?" in server.stderr
    assert approved_tools(files_project) == {}


@pytest.mark.slow
def test_a_glob_is_approved_after_review_and_confirmation(files_project: Path) -> None:
    unconfirmed = tools("approve", "files.read_*")  # no terminal, no --yes
    assert unconfirmed.exit_code == 2, unconfirmed.output
    assert "standard input is not a terminal" in unconfirmed.stderr
    assert "--yes" in unconfirmed.stderr
    assert "files.read_dir" in unconfirmed.stdout  # shown all the same
    assert "files.read_file" in unconfirmed.stdout
    assert "write_file" not in unconfirmed.stdout
    assert approved_tools(files_project) == {}

    done = tools("approve", "files.read_*", "--yes", "--json")
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert [a["tool"] for a in result["approved"]] == ["files.read_dir", "files.read_file"]
    assert "List the entries of a directory." in done.stderr  # the review, beside the JSON
    approved = approved_tools(files_project)
    assert approved == {a["tool"]: a["pin"] for a in result["approved"]}
    stored = PinStore.at_home(files_project).get("files", "read_file")
    assert stored is not None
    assert stored.descriptor is not None
    assert stored.descriptor["description"] == "Read a text file under the served directory."
    listing = {
        t["tool"]: t["pin_status"]
        for t in json.loads(tools("show", "files", "--json").stdout)["tools"]
    }
    assert listing == {
        "read_dir": "approved",
        "read_file": "approved",
        "sneaky": "blocked-by-lint",
        "write_file": "new",
    }


@pytest.mark.slow
def test_all_asks_on_a_terminal_and_leaves_blocked_tools_alone(
    files_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nexus.cli.commands_tools as commands

    monkeypatch.setattr(commands, "_interactive", lambda: True)
    declined = tools("approve", "files", "--all", stdin="n\n")
    assert declined.exit_code == 1, declined.output
    assert "Approve 3 tools (files.read_dir, files.read_file, files.write_file)?" in (
        declined.output
    )
    assert "nothing approved" in declined.stderr
    assert approved_tools(files_project) == {}

    accepted = tools("approve", "files", "--all", stdin="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "blocked by the descriptor linter (approval does not override it): files.sneaky" in (
        accepted.stdout
    )
    assert "approved files.write_file at pin" in accepted.stdout
    assert set(approved_tools(files_project)) == {
        "files.read_dir",
        "files.read_file",
        "files.write_file",
    }
    again = tools("approve", "files", "--all")  # nothing left to confirm
    assert again.exit_code == 1, again.output
    assert "already approved: files.read_dir, files.read_file, files.write_file" in again.stdout
    assert "nothing approved: files.sneaky blocked by the linter" in again.stderr


@pytest.mark.slow
def test_a_pin_for_a_known_server_is_checked_and_launch_pins_still_work(
    files_project: Path,
) -> None:
    listing = json.loads(tools("show", "files.read_dir", "--json").stdout)["tools"]
    pin = listing[0]["pin"]
    ok = tools("approve", "files.read_dir", "--pin", pin, "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["checked"] is True
    assert approved_tools(files_project) == {"files.read_dir": pin}
    stale = tools("approve", "files.read_file", "--pin", PIN)
    assert stale.exit_code == 0
    assert "stays disabled" in stale.stderr
    # a server that is not configured here: pinned as asked, with a warning that says so
    elsewhere = tools("approve", "other.tool", "--pin", PIN, "--json")
    assert elsewhere.exit_code == 0
    assert json.loads(elsewhere.stdout)["checked"] is False
    assert "was not checked against its tools" in elsewhere.stderr
    # launch keys take a pin, as before
    no_pin = tools("approve", "mcp:files")
    assert no_pin.exit_code == 2
    assert "nexus tools approve mcp:files --pin PIN" in no_pin.stderr
    assert tools("revoke", "mcp:files").exit_code == 0
    refused = tools("show", "files")
    assert refused.exit_code == 1
    assert "MCP server 'files' is not approved to run" in refused.stderr
