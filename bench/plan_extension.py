"""Plan extension: compiling a planner's 1,000-task answer, and the cost of each added task.

Two figures (issue 12, docs/planning.md):

* ``compile_extension``: a planner's answer of 1,000 tasks -- agent tasks routed
  by capability whose prompts read the tasks they need (a template each), tool
  tasks with arguments checked against the tool's schema, needs in layers of
  ten -- checked and compiled against a plan of 10 tasks and 3 agents. This is
  the decomposition time of a goal mission without the model's time; the
  floor is 50 ms.
* per added task: one run whose planning tool adds N ``noop`` tasks, against
  one run whose file declares the same N tasks; the difference per task is
  what growing the plan costs (compile, ``plan.extended``, the fold).

Usage: ``python bench/plan_extension.py [--quick] [--runs N] [--json PATH]``
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Metric, parser, repeat, report, runs_for
from nexus.domain.plan import Plan, TaskSpec
from nexus.engine.facade import Engine
from nexus.planning.workflow import Extension, compile_extension, compile_workflow
from nexus.store.sqlite import SQLiteStore
from nexus.tools.base import FunctionTool, ToolRegistry
from nexus.tools.builtins import builtin_tools

FLOOR_COMPILE_S = 0.05


def base_plan() -> Plan:
    doc: dict[str, Any] = {
        "version": 1,
        "name": "bench-extension",
        "fail_fast": False,
        "agents": {
            "lead": {"role": "planner", "model": "scripted:lead", "capabilities": ["plan"]},
            "writer": {"model": "scripted:w", "capabilities": ["write"]},
            "tester": {"model": "scripted:t", "capabilities": ["test"]},
        },
        "tasks": {f"seed{i}": {"tool": "noop", "with": {"i": i}} for i in range(10)},
    }
    return compile_workflow(doc, known_tools=builtin_tools().names())


def answer(n: int) -> dict[str, Any]:
    """A planner's answer: ``n`` tasks in layers of ten, each needing the layer before."""
    tasks: list[dict[str, Any]] = []
    for i in range(n):
        layer = i // 10
        needs = [f"t{j}" for j in range((layer - 1) * 10, layer * 10)] if layer else ["seed0"]
        if i % 3 == 2:
            task: dict[str, Any] = {
                "tool": "shell",
                "with": {"cmd": f"echo step {i}"},
            }
        else:
            task = {
                "capability": "write" if i % 2 else "test",
                "prompt": f"Step {i}: go on from {{{{ tasks.{needs[0]}.output }}}}.",
            }
        tasks.append({"id": f"t{i}", "needs": needs, **task})
    return {"summary": f"{n} steps", "tasks": tasks}


def compile_once(plan: Plan, output: dict[str, Any], existing: dict[str, TaskSpec]) -> float:
    extension = Extension(by="seed9", existing=existing, depth=1, room=10_000, why_room="bench")
    start = time.perf_counter()
    specs = compile_extension(plan, output, extension)
    elapsed = time.perf_counter() - start
    assert len(specs) == len(output["tasks"])
    return elapsed


def file_document(output: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": 1,
        "name": "bench-file",
        "agents": {
            "writer": {"model": "scripted:w", "capabilities": ["write"]},
            "tester": {"model": "scripted:t", "capabilities": ["test"]},
        },
        "tasks": {"seed0": {"tool": "noop"}},
    }
    for task in output["tasks"]:
        doc["tasks"][task["id"]] = {k: v for k, v in task.items() if k != "id"}
    return doc


def compile_file_once(doc: dict[str, Any]) -> float:
    start = time.perf_counter()
    compile_workflow(doc, known_tools=builtin_tools().names())
    return time.perf_counter() - start


def growing_plan(n: int, declared: bool) -> Plan:
    tasks: dict[str, Any] = {"plan": {"tool": "propose"}}
    if declared:
        tasks.update({f"t{i}": {"tool": "noop", "needs": ["plan"]} for i in range(n)})
    else:
        tasks["plan"]["extend"] = True
    doc = {
        "version": 1,
        "name": "bench-grow",
        "extensions": {"max_tasks": n},
        "tasks": tasks,
    }
    return compile_workflow(doc, known_tools=[*builtin_tools().names(), "propose"])


def registry(n: int) -> ToolRegistry:
    tools = builtin_tools()

    async def propose() -> dict[str, Any]:
        return {"tasks": {f"t{i}": {"tool": "noop"} for i in range(n)}}

    tools.add(FunctionTool("propose", propose))
    return tools


def run_once(folder: Path, n: int, declared: bool, index: int) -> float:
    async def go() -> float:
        store = SQLiteStore.open(folder / f"{'declared' if declared else 'grown'}-{index}.db")
        try:
            plan = growing_plan(n, declared)
            start = time.perf_counter()
            result = await Engine(store, tools=registry(n)).start(plan)
            elapsed = time.perf_counter() - start
            assert result.status == "succeeded", result.status
            return elapsed
        finally:
            await store.close()

    return asyncio.run(go())


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    runs = runs_for(args, 7, quick=3)
    n_compile = 1000
    n_run = 200 if args.quick else 1000
    plan = base_plan()
    output = answer(n_compile)
    existing = dict(plan.tasks)
    compile_once(plan, output, existing)  # warm: imports, schema validators
    compile_s = repeat(runs, lambda: compile_once(plan, output, existing))
    # the same tasks in a workflow file's document: what checking them costs anyway
    as_file = file_document(output)
    file_s = repeat(runs, lambda: compile_file_once(as_file))
    metrics = [
        Metric(
            f"compile_extension of {n_compile} tasks",
            "s",
            compile_s,
            higher_is_better=False,
            floor=FLOOR_COMPILE_S,
        ),
        Metric(f"compile_workflow of the same {n_compile} tasks", "s", file_s, False),
        Metric(
            "extension / workflow (same run)",
            "x",
            [c / f for c, f in zip(compile_s, file_s, strict=True)],
            higher_is_better=False,
        ),
    ]
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        folder = Path(tmp)
        counter = iter(range(10_000))
        grown: list[float] = []
        declared: list[float] = []
        for _ in range(max(2, runs // 2)):  # alternate: the machine is shared and noisy
            declared.append(run_once(folder, n_run, True, next(counter)))
            grown.append(run_once(folder, n_run, False, next(counter)))
    metrics += [
        Metric(f"run: {n_run} tasks declared in the file", "s", declared, higher_is_better=False),
        Metric(f"run: {n_run} tasks added by one extension", "s", grown, higher_is_better=False),
        Metric(
            "added task overhead (grown - declared, per task)",
            "ms",
            [(g - d) / n_run * 1000 for g, d in zip(grown, declared, strict=True)],
            higher_is_better=False,
        ),
    ]
    report(
        "plan_extension", metrics, args, started, {"compile tasks": n_compile, "run tasks": n_run}
    )


if __name__ == "__main__":
    main()
