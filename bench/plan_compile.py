"""Plan compile time of a 10,000-task workflow: in memory and from a YAML file.

Two workflows, both a chain of 10,000 ``noop`` tool tasks (``t00001`` needs
``t00000``, ...):

* ``plain``: no templates.
* ``templated``: every task's ``with`` holds a template reading its direct
  dependency *and* a distant ancestor (``t{i//2}``), so the compiler checks
  template syntax for every task and proves 5,000 indirect reads transitive.

For each: ``compile_workflow(doc)`` of the parsed document (the floor), YAML
parsing alone (the strict loader ``load_workflow`` uses), ``load_workflow(path)``
end to end, and ``plan_hash(plan)`` (which ``Engine.start`` computes).

Usage: ``python bench/plan_compile.py [--quick] [--runs N] [--json PATH]``
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from _common import Metric, parser, repeat, report, runs_for
from _plans import task_id
from nexus.domain.plan import Plan, plan_hash
from nexus.planning.workflow import _yaml as workflow_yaml
from nexus.planning.workflow import compile_workflow, load_workflow

FLOOR_COMPILE_S = 0.5


def document(n: int, templated: bool) -> dict[str, Any]:
    tasks: dict[str, Any] = {}
    for i in range(n):
        task: dict[str, Any] = {"tool": "noop"}
        if i:
            task["needs"] = [task_id(i - 1)]
        if templated and i:
            task["with"] = {
                "msg": f"after {{{{ tasks.{task_id(i - 1)}.output.msg }}}}",
                "far": f"{{{{ tasks.{task_id(i // 2)}.output.msg }}}}",
            }
        else:
            task["with"] = {"msg": f"task {i}"}
        tasks[task_id(i)] = task
    return {"version": 1, "name": f"bench-{n}", "max_parallel": 16, "tasks": tasks}


def parse_yaml(text: str, file: str) -> Any:
    """The strict YAML loader ``load_workflow`` uses (plain CSafeLoader if it moved)."""
    parse: Callable[[str, str], Any] | None = getattr(workflow_yaml, "parse_yaml", None)
    if parse is not None:
        return parse(text, file)
    return yaml.load(text, Loader=yaml.CSafeLoader)


def timed(fn: Callable[[], Any]) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return run


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    n = 1000 if args.quick else 10_000
    runs = runs_for(args, 5, quick=2)
    slow_runs = runs_for(args, 3, quick=1)  # YAML is ~1 s a parse: fewer repetitions
    metrics: list[Metric] = []
    info: dict[str, object] = {"tasks": n}
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        for label, templated in (("plain", False), ("templated", True)):
            doc = document(n, templated)
            path = Path(tmp) / f"{label}.yaml"
            text = yaml.safe_dump(doc, sort_keys=False)
            path.write_text(text, encoding="utf-8")
            plan: Plan = compile_workflow(doc, base_dir=Path(tmp))
            assert len(plan.tasks) == n
            compile_s = repeat(runs, timed(partial(compile_workflow, doc, base_dir=path.parent)))
            parse_s = repeat(slow_runs, timed(partial(parse_yaml, text, str(path))))
            hash_s = repeat(runs, timed(partial(plan_hash, plan)))
            metrics += [
                Metric(
                    f"{label}: compile_workflow(doc)",
                    "s",
                    compile_s,
                    higher_is_better=False,
                    floor=FLOOR_COMPILE_S,
                ),
                Metric(f"{label}: YAML parse alone", "s", parse_s, higher_is_better=False),
                Metric(f"{label}: plan_hash(plan)", "s", hash_s, higher_is_better=False),
            ]
            # workflow files are untrusted: load_workflow refuses one over MAX_WORKFLOW_BYTES
            # (1 MiB), which the 10k-task templated file is; its load is then not measured
            if len(text.encode()) <= workflow_yaml.MAX_WORKFLOW_BYTES:
                load_s = repeat(slow_runs, timed(partial(load_workflow, path)))
                metrics.append(
                    Metric(f"{label}: load_workflow(path)", "s", load_s, higher_is_better=False)
                )
            else:
                info[f"{label}: load_workflow"] = "not measured: over the 1 MiB file limit"
            info[f"{label}: YAML size KB"] = round(len(text.encode()) / 1024, 1)
    report("plan_compile", metrics, args, started, info)


if __name__ == "__main__":
    main()
