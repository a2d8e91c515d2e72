"""The progress view nests a sub-workflow's tasks under the task that runs it."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from nexus.cli.progress import Progress, nested
from nexus.domain.plan import enclosing
from nexus.engine.facade import Engine
from nexus.planning.workflow import load_workflow
from nexus.store.sqlite import SQLiteStore

_SEGMENT = st.sampled_from(["a", "b", "c", "d"])
_ID = st.lists(_SEGMENT, min_size=1, max_size=4).map("/".join)


@given(st.lists(_ID, unique=True, max_size=12))
def test_nested_puts_every_task_after_the_sub_workflows_it_is_in(ids: list[str]) -> None:
    order = nested(ids)
    assert len(order) == len(set(order)), "no task twice"
    wanted = set(ids) | {outer for tid in ids for outer in enclosing(tid)}
    assert set(order) == wanted, "every task, and each sub-workflow a task is in"
    where = {tid: index for index, tid in enumerate(order)}
    for tid in order:
        for outer in enclosing(tid):
            assert where[outer] < where[tid], (outer, tid, order)
    # tasks of the run's own workflow keep their order
    tops = [tid for tid in order if "/" not in tid]
    firsts = {}
    for index, tid in enumerate(ids):
        firsts.setdefault(tid.split("/")[0], index)
    assert tops == sorted(tops, key=firsts.__getitem__)


def test_nested_keeps_a_plain_run_as_it_is() -> None:
    assert nested(["b", "a", "c"]) == ["b", "a", "c"]
    assert nested(["x", "build/lint/step", "y"]) == [
        "x",
        "build",
        "build/lint",
        "build/lint/step",
        "y",
    ]


def test_the_table_indents_a_sub_workflows_tasks_under_it(tmp_path: Path) -> None:
    sub = {
        "version": 1,
        "name": "build",
        "tasks": {"compile": {"tool": "noop"}, "package": {"needs": "compile", "tool": "noop"}},
    }
    (tmp_path / "build.yaml").write_text(yaml.safe_dump(sub))
    doc = {"version": 1, "name": "p", "tasks": {"build": {"workflow": "build.yaml"}}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc))
    plan = load_workflow(tmp_path / "p.yaml")
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=160, color_system=None)
    progress = Progress(console, live=False)
    seen: list[str] = []

    def watch(events: object, state: object) -> None:
        seen.append(_text(progress))

    async def main() -> None:
        store = SQLiteStore.open(tmp_path / "nexus.db")
        try:
            await Engine(store).start(plan, observers=[progress, watch])
        finally:
            await store.close()

    asyncio.run(main())
    final = seen[-1]
    assert re.search(r"^build\s+succeeded", final, re.M), final
    assert re.search(r"^  compile\s+succeeded", final, re.M), final
    assert re.search(r"^  package\s+succeeded", final, re.M), final
    assert final.index("build ") < final.index("  compile") < final.index("  package")
    # while its tasks ran, the sub-workflow showed as running, with how many ended
    assert any(
        re.search(r"^build\s+running.*sub-workflow build: [01]/2 ended", s, re.M) for s in seen
    )


def _text(progress: Progress) -> str:
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(progress.render())
    return out.getvalue()
