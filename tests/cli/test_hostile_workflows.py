"""Hostile workflow files through the real CLI: exit 2 with a message, never a hang.

``nexus cancel`` from another process stops a run that renders hostile
templates item after item.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest
from cli_support import NEXUS, cli_env, nexus

HEADER = "version: 1\nname: hostile\n"
SLOW_BOMB = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


@pytest.mark.timeout(60)
def test_validate_refuses_non_regular_files_with_exit_2(nexus_home: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    for target, words in ((fifo, "FIFO"), (Path("/dev/zero"), "character device")):
        out = nexus(nexus_home, "validate", target)  # a blocking open runs into the timeout
        assert out.code == 2, out.text
        assert str(target) in out.stderr
        assert words in out.stderr


@pytest.mark.timeout(60)
def test_validate_refuses_an_alias_bomb_with_exit_2(nexus_home: Path, tmp_path: Path) -> None:
    levels = ['  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"  {name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    text = HEADER + "inputs:\n" + "\n".join(levels) + "\ntasks:\n  a: {tool: shell}\n"
    path = tmp_path / "lol.yaml"
    path.write_text(text, encoding="utf-8")
    out = nexus(nexus_home, "validate", path)
    assert out.code == 2, out.text
    assert "alias" in out.stderr
    assert "100,000" in out.stderr


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_cancel_stops_a_run_stuck_on_hostile_templates(nexus_home: Path, tmp_path: Path) -> None:
    items = json.dumps(list(range(400)))
    text = (
        HEADER + "fail_fast: false\nmax_parallel: 400\ntasks:\n"
        f"  each:\n    foreach: {items}\n    tool: shell\n"
        f"    with: {{cmd: {json.dumps(SLOW_BOMB)}}}\n"
    )
    file = tmp_path / "wf.yaml"
    file.write_text(text, encoding="utf-8")
    assert nexus(nexus_home, "validate", file).code == 0

    with (
        open(tmp_path / "run.stdout", "wb") as stdout,
        open(tmp_path / "run.stderr", "wb") as stderr,
    ):
        proc = subprocess.Popen(
            [str(NEXUS), "run", str(file), "--json"],
            env=cli_env(nexus_home),
            cwd=tmp_path,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        run_id = ""
        deadline = time.monotonic() + 30
        while not run_id:
            assert time.monotonic() < deadline, "no item failed on the limit"
            time.sleep(0.1)
            db = nexus_home / "nexus.db"
            if not db.exists():
                continue
            with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
                try:
                    rows = conn.execute(
                        "SELECT run_id FROM events WHERE type = 'task.failed' LIMIT 1"
                    ).fetchall()
                except sqlite3.OperationalError:
                    continue
            run_id = rows[0][0] if rows else ""
        cancel = nexus(nexus_home, "cancel", run_id, "--json")
        assert cancel.code == 0, cancel.text
        assert cancel.json()["outcome"] == "requested"
        # the bound on a cancel that is not honoured: the items left render for minutes
        assert proc.wait(timeout=30) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result = json.loads((tmp_path / "run.stdout").read_text(encoding="utf-8"))
    assert result["status"] == "cancelled"
    statuses = [t["status"] for tid, t in result["tasks"].items() if tid.startswith("each[")]
    assert "failed" in statuses
    assert statuses.count("skipped") > 100, "most items were never rendered"
    replay = nexus(nexus_home, "replay", run_id, "--json")
    assert replay.code == 0, replay.text
    assert replay.json()["identical"] is True
