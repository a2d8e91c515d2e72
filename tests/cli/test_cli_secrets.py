"""Secret workflow inputs end to end: never written anywhere; the run still resumes and replays.

The test runs the real ``nexus`` script and then looks for each secret value
in every byte Nexus wrote or printed: the SQLite files (WAL included), the
cassette, ``export``/``events``/``inspect`` output and every command's stdout
and stderr (which is where Nexus logs).
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import textwrap
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from cli_support import NEXUS, cli_env, nexus

from nexus.redaction import REDACTED

PASSWORD = "hunter2"  # 7 characters: shorter than an environment secret must be
API_KEY = "plain-api-key-0xC0FFEE"
TOKEN = "tok-3f9a77c1e2"
PG = "pg-Secret-4471"
CONN = "conn-from-env-5521"
SECRETS = (PASSWORD, API_KEY, TOKEN, PG, CONN)

WORKFLOW = textwrap.dedent(
    """\
    version: 1
    name: secrets
    inputs:
      user: admin
      password: not-the-real-one
      api_key: ""
      token: {secret: true}
      PGPASSWORD: {description: libpq's variable, env: NEXUS_TEST_PG}
      conn: {secret: true, env: NEXUS_TEST_CONN}
    agents:
      helper:
        model: scripted:helper
        capabilities: [help]
        scripted: ["I used {{ inputs.token }} for {{ inputs.user }}"]
    tasks:
      login:
        tool: shell
        with:
          cmd: >-
            printf '%s\\n' "curl -u {{ inputs.user }}:{{ inputs.password }}"
            "key={{ inputs.api_key }}" "PGPASSWORD={{ inputs.PGPASSWORD }} psql"
            "conn {{ inputs.conn }}";
            printf '%s' '{{ inputs.password }}' | sha256sum
      ask:
        needs: [login]
        capability: help
        prompt: "Log in with token {{ inputs.token }}: {{ tasks.login.output.stdout }}"
      gate:
        needs: [ask]
        approval: required
        tool: shell
        with: {cmd: "echo after approval {{ inputs.password }}"}
    """
)


def _leaks(data: bytes | str) -> list[str]:
    raw = data.encode() if isinstance(data, str) else data
    return [s for s in SECRETS if s.encode() in raw]


def _wait_for_approval(home: Path, proc: subprocess.Popen[bytes]) -> str:
    """The run's id once it asks for approval (read from the store, read-only)."""
    deadline = time.monotonic() + 60
    db = home / "nexus.db"
    while time.monotonic() < deadline:
        assert proc.poll() is None, "nexus run ended before asking for approval"
        if db.exists():
            try:
                with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as c:
                    rows = c.execute(
                        "SELECT run_id FROM events WHERE type = 'approval.requested'"
                    ).fetchall()
            except sqlite3.OperationalError:  # the schema is being created
                rows = []
            if rows:
                return str(rows[0][0])
        time.sleep(0.05)
    pytest.fail("the run never asked for approval")


@pytest.mark.slow
def test_secret_inputs_are_written_nowhere_and_the_run_resumes_and_replays(
    nexus_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow = tmp_path / "secrets.yaml"
    workflow.write_text(WORKFLOW)
    cassette = tmp_path / "cassette.yaml"
    monkeypatch.setenv("NEXUS_TEST_CONN", CONN)  # `env:` gives the value
    printed: list[str] = []

    def cli(*args: str | Path) -> Any:
        out = nexus(nexus_home, *args)
        printed.append(out.text)
        return out

    secrets = ["-i", f"password={PASSWORD}", "-i", f"api_key={API_KEY}"]
    secrets += ["-i", f"token={TOKEN}", "-i", f"PGPASSWORD={PG}"]
    # the run stops at the approval: its process is killed there
    args = [str(NEXUS), "run", str(workflow), "--json", "--record", str(cassette), *secrets]
    with (tmp_path / "run.out").open("wb") as out:
        proc = subprocess.Popen(
            args, env=cli_env(nexus_home), cwd=tmp_path, stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip
    try:
        run_id = _wait_for_approval(nexus_home, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    printed.append((tmp_path / "run.out").read_text())

    resumed = cli("resume", run_id, "--json")
    assert resumed.code == 2, resumed.text
    assert f"nexus resume {run_id} -i PGPASSWORD=" in resumed.text

    # approving in another process continues the run: it needs the secrets again
    missing = cli("approve", run_id, "gate", "--json")
    assert missing.code == 2, missing.text
    assert "secret input 'PGPASSWORD'" in missing.text
    assert "NEXUS_TEST_PG" in missing.text  # where else it may come from
    wrong = cli("approve", run_id, "gate", *secrets, "-i", "password=hunter3")
    assert wrong.code == 2, wrong.text
    assert "secret input 'password' is not the value" in wrong.text
    approved = cli("approve", run_id, "gate", "--json", *secrets)
    assert approved.code == 0, approved.text
    assert approved.json()["status"] == "succeeded"

    events = cli("events", run_id, "--json")
    exported = cli("export", run_id, "--json")
    inspected = cli("inspect", run_id, "--json")
    for out in (events, exported, inspected):
        assert out.code == 0, out.text
    log = exported.json()["events"]
    first = log[0]["data"]
    assert first["inputs"]["password"] == REDACTED
    assert first["inputs"]["user"] == "admin"
    assert set(first["secrets"]["digests"]) == {
        "password",
        "api_key",
        "token",
        "PGPASSWORD",
        "conn",
    }
    # the tool got the real value: its hash is in the (redacted) record
    assert hashlib.sha256(PASSWORD.encode()).hexdigest() in events.stdout
    login = next(e for e in log if e["type"] == "attempt.started" and e["data"]["task"] == "login")
    assert "curl -u admin:[redacted]" in login["data"]["args"]["cmd"]
    ask = next(e for e in log if e["type"] == "attempt.started" and e["data"]["task"] == "ask")
    assert ask["data"]["prompt"].startswith(
        "Log in with token [redacted]: curl -u admin:[redacted]"
    )

    # replay: without the values, with the same ones, with a different one
    for given in ([], ["-i", f"token={TOKEN}", "-i", f"password={PASSWORD}"]):
        replayed = cli("replay", run_id, "--json", *given)
        assert replayed.code == 0, replayed.text
        assert replayed.json()["identical"], replayed.json()["first_divergence"]
    diverged = cli("replay", run_id, "--json", "-i", "token=tok-other-value")
    assert diverged.code == 1
    assert "secret input 'token'" in diverged.json()["first_divergence"]["reason"]

    written = [p for p in nexus_home.rglob("*") if p.is_file()] + [cassette]
    assert any(p.name == "nexus.db" for p in written)
    for path in written:
        assert _leaks(path.read_bytes()) == [], path
    assert "[redacted]" in cassette.read_text()
    for text in printed:
        assert _leaks(text) == [], text


def test_a_finished_run_with_secrets_leaves_no_trace(nexus_home: Path, tmp_path: Path) -> None:
    """The attack: grep every file and every output for the values."""
    workflow = tmp_path / "secrets.yaml"
    workflow.write_text(WORKFLOW.split("  gate:")[0])
    cassette = tmp_path / "cassette.yaml"
    secrets = ["-i", f"password={PASSWORD}", "-i", f"api_key={API_KEY}", "-i", f"token={TOKEN}"]
    secrets += ["-i", f"PGPASSWORD={PG}", "-i", f"conn={CONN}"]
    outputs = [nexus(nexus_home, "run", workflow, "--record", cassette, *secrets)]
    assert outputs[0].code == 0, outputs[0].text
    run_id = nexus(nexus_home, "runs", "--json").json()[0]["run_id"]
    for command in ("events", "export", "inspect"):
        outputs.append(nexus(nexus_home, command, run_id, "--json"))
        assert outputs[-1].code == 0, outputs[-1].text
    replayed = nexus(nexus_home, "replay", run_id, "--json")
    assert replayed.json()["identical"], replayed.text
    outputs.append(replayed)
    assert "PGPASSWORD=[redacted] psql" in outputs[1].stdout
    for path in [*nexus_home.rglob("*"), cassette]:
        if path.is_file():
            assert _leaks(path.read_bytes()) == [], path
    for out in outputs:
        assert _leaks(out.text) == [], out.text
