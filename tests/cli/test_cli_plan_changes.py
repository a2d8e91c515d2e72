"""A plan that grew or was cut short reads as such (issue 12): the live table, the
line view and ``nexus status`` mark a task a plan extension added (``+``, "added
by <task>") and show a skipped task with the reason it was skipped.

The views are driven by a real engine run (the live table on a console that calls
itself a terminal, writing to memory) and through the real ``nexus`` script.
"""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

from cli_support import nexus
from rich.console import Console

from nexus.cli.progress import Progress
from nexus.engine.facade import Engine
from nexus.planning.workflow import load_workflow
from nexus.store.sqlite import SQLiteStore

GROWN = """\
version: 1
name: grown
tasks:
  check: {tool: noop, with: {ok: false}}
  deploy: {needs: [check], tool: noop, when: "{{ tasks.check.output.ok }}"}
  grow:
    tool: noop
    extend: true
    with:
      tasks:
        fetch: {tool: noop, with: {go: false}}
        notify:
          tool: noop
          needs: [fetch]
          when: "{% raw %}{{ tasks.fetch.output.go }}{% endraw %}"
  after: {needs: [grow], tool: noop}
"""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
DEPLOY_WHY = "condition is false: {{ tasks.check.output.ok }} gave false"
NOTIFY_WHY = "condition is false: {{ tasks.fetch.output.go }} gave false"


def _shown(tmp_path: Path, *, live: bool) -> str:
    """What a run of GROWN shows, the live table's last frame or the lines."""
    (tmp_path / "grown.yaml").write_text(GROWN, encoding="utf-8")
    plan = load_workflow(tmp_path / "grown.yaml")
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=live, width=200, color_system=None)
    progress = Progress(console, live=live)

    async def main() -> None:
        store = SQLiteStore.open(tmp_path / "nexus.db")
        try:
            with progress:
                result = await asyncio.wait_for(Engine(store).start(plan, observers=[progress]), 30)
            assert result.status == "succeeded"
        finally:
            await store.close()

    asyncio.run(main())
    return ANSI.sub("", buffer.getvalue())


def _last_frame(screen: str) -> str:
    return screen[screen.rindex("grown  succeeded") :]


def test_the_live_table_marks_added_tasks_and_shows_why_one_was_skipped(tmp_path: Path) -> None:
    screen = _shown(tmp_path, live=True)
    assert "extended   grow  added 2 tasks (depth 1): fetch, notify" in screen
    frame = _last_frame(screen)
    assert re.search(r"\+ fetch\s+succeeded\s+1\s+\d+\.\ds\s+added by grow *\n", frame), frame
    # added and skipped: both said, the skip has no clock (it never ran)
    assert re.search(rf"\+ notify\s+skipped\s+0\s+added by grow; {re.escape(NOTIFY_WHY)}", frame)
    assert re.search(rf"\n\s*deploy\s+skipped\s+0\s+{re.escape(DEPLOY_WHY)}", frame), frame
    # the workflow's own tasks carry no mark
    assert re.search(r"\n\s*check\s+succeeded", frame), frame
    assert "+ check" not in frame
    assert "added by" not in frame.split("deploy")[1].split("\n")[0]


def test_lines_mark_added_tasks_and_say_why_a_task_was_skipped(tmp_path: Path) -> None:
    lines = _shown(tmp_path, live=False).splitlines()
    assert "  extended   grow  added 2 tasks (depth 1): fetch, notify" in lines
    assert "  succeeded  + fetch  attempt 1  added by grow" in lines
    assert f"  skipped    + notify  not run  added by grow  {NOTIFY_WHY}" in lines
    assert f"  skipped    deploy  not run  {DEPLOY_WHY}" in lines
    assert "  succeeded  check  attempt 1" in lines
    extended = lines.index("  extended   grow  added 2 tasks (depth 1): fetch, notify")
    assert extended < lines.index("  succeeded  + fetch  attempt 1  added by grow")


def test_nexus_status_marks_added_tasks_and_skipped_ones_with_why(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "grown.yaml").write_text(GROWN, encoding="utf-8")
    ran = nexus(home, "run", "grown.yaml", "-q")
    assert ran.code == 0, ran.text
    shown = nexus(home, "status", "latest")
    assert shown.code == 0, shown.text
    lines = shown.stdout.splitlines()
    assert "  + fetch  succeeded  added by grow" in lines
    assert f"  + notify  skipped  added by grow; {NOTIFY_WHY}" in lines
    assert f"    deploy  skipped  {DEPLOY_WHY}" in lines
    assert not any(re.search(r"\b(check|after|grow)  succeeded", line) for line in lines)
    doc = nexus(home, "status", "latest", "--json").json()
    tasks = doc["tasks"]
    assert tasks["fetch"] == {"status": "succeeded", "attempts": 1, "added_by": "grow"}
    assert tasks["notify"]["added_by"] == "grow"
    assert tasks["notify"]["why"] == NOTIFY_WHY
    assert tasks["deploy"] == {"status": "skipped", "attempts": 0, "why": DEPLOY_WHY}
    assert tasks["check"] == {"status": "succeeded", "attempts": 1}
    # before the extension (time travel), nothing was added yet
    early = nexus(home, "status", "latest", "--json", "--at", "3").json()
    assert "fetch" not in early["tasks"]
    assert not any("added_by" in t for t in early["tasks"].values())


def test_nexus_status_lists_at_most_twenty_then_points_to_inspect(tmp_path: Path) -> None:
    home = tmp_path / "home"
    added = "\n".join(f"        t{i:02}: {{tool: noop}}" for i in range(25))
    flow = "version: 1\nname: many\ntasks:\n  grow:\n    tool: noop\n    extend: true\n"
    flow += f"    with:\n      tasks:\n{added}\n"
    (tmp_path / "many.yaml").write_text(flow, encoding="utf-8")
    ran = nexus(home, "run", "many.yaml", "-q")
    assert ran.code == 0, ran.text
    shown = nexus(home, "status", "latest").stdout
    assert shown.count("added by grow") == 20
    run_id = nexus(home, "status", "latest", "--json").json()["run_id"]
    assert f"  ... and 5 more: nexus inspect {run_id}" in shown.splitlines()
