"""Structured run logs: ``$NEXUS_HOME/logs/<run>.jsonl``, ``nexus logs``, ``-v``/``--log-level``.

A run the ``nexus`` command drives keeps a log of its steps (the events, as
``nexus events`` summarises them) and of what the libraries it used logged;
``nexus logs RUN`` reads it back. The log is redacted like the events (tested
with a library line holding a key and a run's secret input), bounded (one
rotation), and private to its owner.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import WORKFLOWS, nexus

from nexus.cli import runlog
from nexus.domain.state import RunState
from nexus.redaction import Redactor, secrets_scope
from nexus.store.sqlite import SQLiteStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from fakeserver import FakeServer, openai_completion

KEY = "sk-logs-test-Qe71-never-written-4418"
SECRET = "hunter2-correct-horse"
MODEL = """\
version: 1
name: modelled
agents:
  w: {model: "openai:gpt-4.1-mini"}
tasks:
  t: {agent: w, prompt: "hi"}
"""


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """The in-process tests configure the process's logging: put it back afterwards."""
    root = logging.getLogger()
    handlers, level, console = list(root.handlers), root.level, runlog._console
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    runlog._console = console


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    root = tmp_path_factory.mktemp("logs")
    shutil.copy(WORKFLOWS / "failing.yaml", root / "failing.yaml")
    home = root / "home"
    ran = nexus(home, "--verbose", "run", "failing.yaml", "-q")
    assert ran.code == 1, ran.text
    (record,) = nexus(home, "runs", "--json").json()
    return home, str(record["run_id"]), ran.stderr


def test_a_run_keeps_a_private_log_that_nexus_logs_reads(failed: tuple[Path, str, str]) -> None:
    home, run_id, _ = failed
    path = home / "logs" / f"{run_id}.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    shown = nexus(home, "logs", run_id[:10])  # a prefix names the run, as everywhere
    assert shown.code == 0, shown.text
    lines = shown.stdout.splitlines()
    assert "run.started failing, 3 tasks" in lines[0]
    failure = next(line for line in lines if "task.failed" in line)
    assert " error " in failure
    assert "boom after 1 attempt: transient: command exited with 7" in failure

    records = nexus(home, "logs", run_id, "--json").json()
    assert {"timestamp", "level", "logger", "event", "run", "seq", "type"} <= set(records[0])
    assert [r["seq"] for r in records if r["logger"] == "nexus.run"] == list(
        range(1, len(records) + 1)
    )
    errors = nexus(home, "logs", run_id, "--level", "error", "--json").json()
    assert [r["type"] for r in errors] == ["task.failed", "run.failed"]


def test_verbose_shows_the_records_on_stderr_as_they_happen(
    failed: tuple[Path, str, str],
) -> None:
    _, _, stderr = failed
    assert "[info     ] run.started failing" in stderr
    assert "[error    ] task.failed boom" in stderr
    assert "Traceback" not in stderr


def test_bad_levels_and_missing_logs_are_clear_errors(
    failed: tuple[Path, str, str],
) -> None:
    home, run_id, _ = failed
    bad = nexus(home, "--log-level", "loud", "runs")
    assert bad.code == 2
    assert "'loud' is not a level: use one of debug, info, warning, error" in bad.stderr
    assert nexus(home, "logs", run_id, "--level", "loud").code == 2

    moved = home / "logs" / f"{run_id}.jsonl"
    kept = moved.with_suffix(".kept")
    moved.rename(kept)
    try:
        missing = nexus(home, "logs", run_id)
        assert missing.code == 4, missing.text
        assert f"run {run_id} kept no log in {home / 'logs'}" in missing.stderr
        assert f"nexus events {run_id}" in missing.stderr
    finally:
        kept.rename(moved)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "failing.yaml", "-q", "-v"],
        ["run", "failing.yaml", "--log-level", "INFO", "-q"],
        ["--log-level", "error", "run", "failing.yaml", "-q", "--verbose"],  # the most verbose
    ],
    ids=["-v after", "--log-level after", "before and after"],
)
def test_log_options_after_the_command(tmp_path: Path, args: list[str]) -> None:
    shutil.copy(WORKFLOWS / "failing.yaml", tmp_path / "failing.yaml")
    ran = nexus(tmp_path / "home", *args)
    assert ran.code == 1, ran.text
    assert "[info     ] run.started failing" in ran.stderr
    assert "[error    ] task.failed boom" in ran.stderr


def test_a_bad_level_after_the_command_is_named(tmp_path: Path) -> None:
    bad = nexus(tmp_path / "home", "runs", "--log-level", "loud")
    assert bad.code == 2, bad.text
    assert "--log-level: 'loud' is not a level: use one of debug, info, warning, error" in (
        bad.stderr
    )
    quiet = nexus(tmp_path / "home", "runs", "--log-level", "error")
    assert quiet.code == 0, quiet.text


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as running:
        yield running


@pytest.mark.slow
def test_library_logs_are_kept_at_debug_and_redacted(tmp_path: Path, server: FakeServer) -> None:
    (tmp_path / "modelled.yaml").write_text(MODEL, encoding="utf-8")
    (tmp_path / "nexus.toml").write_text(
        f'[providers.openai]\nbase_url = "{server.url}/v1"\napi_key = "{KEY}"\n',
        encoding="utf-8",
    )
    server.enqueue(openai_completion("hello"))
    home = tmp_path / "home"
    ran = nexus(home, "--log-level", "debug", "run", "modelled.yaml", "-q")
    assert ran.code == 0, ran.text
    (record,) = nexus(home, "runs", "--json").json()
    text = (home / "logs" / f"{record['run_id']}.jsonl").read_text(encoding="utf-8")
    loggers = {json.loads(line)["logger"] for line in text.splitlines()}
    assert "nexus.run" in loggers
    assert {"httpx", "httpcore.http11", "openai._base_client"} & loggers, loggers
    assert KEY not in text
    assert KEY not in ran.text


# -- in process: redaction of what libraries say, and the size bound ----------------------


def _events(home: Path, run_id: str) -> list[object]:
    async def load() -> list[object]:
        store = SQLiteStore.open(home / "nexus.db")
        try:
            return list(await store.load(run_id))
        finally:
            await store.close()

    return asyncio.run(load())


def test_what_a_library_logs_is_redacted_with_the_runs_secrets(
    failed: tuple[Path, str, str], tmp_path: Path
) -> None:
    home, run_id, _ = failed
    events = _events(home, run_id)
    state = RunState.fold(events)  # type: ignore[arg-type]
    library = logging.getLogger("some.sdk")
    with runlog.RunLog(tmp_path) as log, secrets_scope(Redactor([SECRET], builtin=False)):
        log(events[:1], state)  # type: ignore[arg-type]
        library.warning("retrying with Authorization: Bearer %s", KEY)
        library.warning("the input was %s", SECRET)
    library.warning("after the run: not in its log")
    text = (tmp_path / "logs" / f"{run_id}.jsonl").read_text(encoding="utf-8")
    said = [json.loads(line) for line in text.splitlines() if "some.sdk" in line]
    assert [r["event"] for r in said] == [
        "retrying with Authorization: Bearer [redacted]",
        "the input was [redacted]",
    ]
    assert KEY not in text
    assert SECRET not in text


def test_a_log_is_bounded_and_keeps_its_newest_lines(
    failed: tuple[Path, str, str], tmp_path: Path
) -> None:
    home, run_id, _ = failed
    events = _events(home, run_id)
    state = RunState.fold(events)  # type: ignore[arg-type]
    with runlog.RunLog(tmp_path, max_bytes=4000) as log:
        for _ in range(40):
            log(events, state)  # type: ignore[arg-type]
    files = runlog.log_files(tmp_path, run_id)
    assert [p.name for p in files] == [f"{run_id}.jsonl.1", f"{run_id}.jsonl"]
    assert all(p.stat().st_size <= 4000 for p in files)
    records = list(runlog.read_log(tmp_path, run_id))
    assert records[-1]["type"] == "run.failed"
    assert 0 < len(records) < 40 * len(events)
