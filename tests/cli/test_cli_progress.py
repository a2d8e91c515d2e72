"""What a run shows while it runs: the live view, ``--stream``, and Ctrl-C (issue 11).

* ``--stream`` used to hide everything but the model's text: a failing streamed
  run printed no reason, and neither the run id nor the approval prompt. Now
  status lines and streamed text share stderr, each status line on its own line.
* The live table (a terminal) shows why a task failed, keeps its clock running
  while a task waits for approval, and Ctrl-C names the real run in its hint.

The view is driven directly (a real engine, a console writing to memory that
calls itself a terminal) or through the real ``nexus`` script on a pty.
"""

from __future__ import annotations

import asyncio
import io
import os
import pty
import re
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cli_support import NEXUS, cli_env, nexus
from rich.console import Console

from nexus.cli.progress import Progress
from nexus.domain.state import RunState
from nexus.engine.facade import Engine
from nexus.planning.workflow import load_workflow
from nexus.store.sqlite import SQLiteStore

pytestmark = pytest.mark.slow

RECORDED = """\
version: 1
name: streamed
agents:
  w: {model: "scripted:w", scripted: ["Moon pulls the sea home, and the tide obeys."]}
tasks:
  haiku: {agent: w, prompt: "A haiku about the tide."}
"""
FAILING = """\
  boom: {needs: [haiku], tool: shell, with: {cmd: "echo oops >&2; exit 7"}, retries: 0}
"""
GATED = """\
  publish:
    needs: [haiku]
    tool: noop
    with: {text: "{{ tasks.haiku.output.text }}"}
    approval: required
"""
VIEWED = """\
version: 1
name: viewed
fail_fast: false
tasks:
  a: {tool: noop, with: {x: 1}}
  broken: {needs: [a], tool: noop, with: {y: "{{ tasks.a.output.nope }}"}}
  gate: {needs: [a], tool: noop, with: {z: 1}, approval: required}
"""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def streamed_project(tmp_path: Path, tail: str) -> Path:
    """``flow.yaml``, whose agent answers from a cassette (so it streams); its home.

    The cassette is recorded first from the same workflow on a scripted model.
    """
    home = tmp_path / "home"
    (tmp_path / "rec.yaml").write_text(RECORDED, encoding="utf-8")
    recorded = nexus(home, "run", "rec.yaml", "--record", "cas.yaml", "-q")
    assert recorded.code == 0, recorded.text
    flow = (RECORDED + tail).replace("scripted:w", "replay:cas.yaml")
    (tmp_path / "flow.yaml").write_text(flow, encoding="utf-8")
    return home


def run_ids(home: Path) -> list[str]:
    return [r["run_id"] for r in nexus(home, "runs", "--json").json()]


def test_a_failing_streamed_run_shows_its_text_its_run_and_why_it_failed(
    tmp_path: Path,
) -> None:
    home = streamed_project(tmp_path, FAILING)
    ran = nexus(home, "run", "flow.yaml", "--stream")
    assert ran.code == 1, ran.text
    run_id = run_ids(home)[0]
    lines = ran.stderr.splitlines()
    assert lines[0].startswith(f"run {run_id}  streamed")
    assert "haiku Moon pulls the sea home, and the tide obeys." in lines
    # the failure's reason, on a line of its own
    reason = "failed boom attempt 1 transient: command exited with 7"
    assert any(" ".join(line.split()) == reason for line in lines), ran.stderr
    assert ran.stdout.startswith(f"failed  run {run_id}")


def _reader(stream: io.TextIOBase, into: list[str]) -> threading.Thread:
    def pump() -> None:
        for line in stream:
            into.append(line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def test_a_streamed_run_that_waits_for_approval_says_so(tmp_path: Path) -> None:
    home = streamed_project(tmp_path, GATED)
    said: list[str] = []
    with subprocess.Popen(
        [str(NEXUS), "run", "flow.yaml", "--stream"],
        cwd=tmp_path,
        env=cli_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None
        assert proc.stdout is not None
        reader = _reader(proc.stderr, said)  # type: ignore[arg-type]
        try:
            deadline = time.monotonic() + 30
            while not any("awaiting approval" in line for line in said):
                assert time.monotonic() < deadline, "".join(said)
                assert proc.poll() is None, "".join(said)
                time.sleep(0.1)
            run_id = said[0].split()[1]
            assert run_ids(home)[0] == run_id  # the newest: the recording run came first
            prompt = next(line for line in said if "awaiting approval" in line)
            assert f"nexus approve {run_id} publish" in prompt
            assert "haiku Moon pulls the sea home, and the tide obeys.\n" in said

            answer = nexus(home, "approve", run_id, "publish", "--by", "ana")
            assert answer.code == 0, answer.text
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        reader.join(timeout=5)
        assert proc.stdout.read().startswith(f"succeeded  run {run_id}")


# -- the live table, driven directly ------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _screen(buffer: io.StringIO) -> str:
    return ANSI.sub("", buffer.getvalue())


def test_the_live_table_shows_why_and_its_clock_runs_while_approval_is_awaited(
    tmp_path: Path,
) -> None:
    (tmp_path / "viewed.yaml").write_text(VIEWED, encoding="utf-8")
    plan = load_workflow(tmp_path / "viewed.yaml")
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=160, color_system=None)
    clock = Clock()
    progress = Progress(console, clock=clock)
    assert progress.live is not None, "a terminal gets the live table"
    waiting = asyncio.Event()

    def watch(events: object, state: RunState) -> None:
        if str(state.tasks["gate"].status) == "awaiting_approval":
            waiting.set()

    async def main() -> None:
        store = SQLiteStore.open(tmp_path / "nexus.db")
        engine = Engine(store)
        with progress:
            run = asyncio.create_task(engine.start(plan, observers=[progress, watch]))
            try:
                await asyncio.wait_for(waiting.wait(), 20)
                shown = _screen(buffer)
                assert re.search(r"broken\s+failed\s+0\s+0\.0s\s+validation: ", shown), shown
                assert f"nexus approve {progress.run_id} gate" in shown
                # no event comes while the task waits: the clock still runs
                clock.now += 42
                deadline = time.monotonic() + 10
                while not re.search(r"gate\s+awaiting_approval\s+0\s+42\.0s", _screen(buffer)):
                    assert time.monotonic() < deadline, _screen(buffer)[-2000:]
                    await asyncio.sleep(0.05)
                assert re.search(r"viewed\s+running\s+42\.0s", _screen(buffer))
            finally:
                run.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await run
                await store.close()

    asyncio.run(main())


def test_line_mode_prints_status_lines_between_streamed_text() -> None:
    from nexus.engine.worker import TokenDelta

    buffer = io.StringIO()
    progress = Progress(Console(file=buffer, width=100, color_system=None), live=False)
    assert progress.live is None
    progress.delta(TokenDelta("draft", 1, "half a "))
    progress._say("  failed     other  attempt 1")
    progress.delta(TokenDelta("draft", 1, "sentence"))
    progress.__exit__(None, None, None)
    assert buffer.getvalue() == ("draft half a \n  failed     other  attempt 1\ndraft sentence\n")


# -- Ctrl-C on a terminal -----------------------------------------------------------------


def test_ctrl_c_names_the_run_to_resume(tmp_path: Path) -> None:
    home = tmp_path / "home"
    workflow = tmp_path / "slow.yaml"
    workflow.write_text(
        'version: 1\nname: slow\ntasks:\n  nap: {tool: shell, with: {cmd: "exec sleep 30.5151"}}\n',
        encoding="utf-8",
    )
    leader, follower = pty.openpty()
    env = cli_env(home)
    env.pop("NO_COLOR")
    env["TERM"] = "xterm"
    proc = subprocess.Popen(
        [str(NEXUS), "run", str(workflow)],
        cwd=tmp_path,
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        start_new_session=True,
    )
    os.close(follower)
    seen = b""

    def read(until: float) -> None:
        nonlocal seen
        while time.monotonic() < until:
            ready, _, _ = select.select([leader], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the other side closed
                    return
                if not chunk:
                    return
                seen += chunk

    try:
        deadline = time.monotonic() + 30
        while b"nap" not in seen or not run_ids(home):
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            read(time.monotonic() + 0.2)
        (run_id,) = run_ids(home)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 1
        read(time.monotonic() + 1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(leader)
    text = ANSI.sub("", seen.decode(errors="replace"))
    assert f"interrupted; `nexus resume {run_id}` continues the run" in " ".join(text.split())
    status = nexus(home, "status", run_id, "--json").json()
    assert status["status"] == "running"
    assert status["driven_by"] is None  # the lease was given back: resume can take it
