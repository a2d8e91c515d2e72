"""Code-mission overhead: the demo's wall time outside model and checker time.

``nexus demo`` is run N times, each in a new directory and state home (a real
CLI process: the spec read, the worktrees opened, the tasks' events committed,
the merge queue, the evidence bundle written). From each run's log:

* ``wall``: ``run.started`` to the run's end (the engine's own clock);
* ``checker time``: the time the checks took, as ``mission.check`` and
  ``mission.merge`` record it (``checks_s``: around ``run_checks``, sandbox
  start-up included); ``model time`` is the model calls' recorded durations
  (none in the offline demo: its roles are function agents);
* ``overhead``: the rest -- planning, the engine, git (worktrees, commits,
  the merge queue), the file tools, the role prompts -- as a share of ``wall``.

The issue's target is under 5 % of wall time. The command's own wall time
(process start to exit, evidence and summary included) is reported too.

Usage: ``python bench/mission_overhead.py [--quick] [--runs N] [--json PATH]``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import Metric, parser, report, runs_for

NEXUS = Path(sys.executable).parent / "nexus"


def _at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()


def one_run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="nexus-bench-mission-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "NEXUS_HOME": str(root / "home"), "NO_COLOR": "1"}
        started = time.perf_counter()
        done = subprocess.run(
            [str(NEXUS), "demo", "--dir", str(root / "d"), "--json", "--quiet"],
            env=env, cwd=root, capture_output=True, text=True, check=False,
        )  # fmt: skip
        command_s = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"nexus demo failed ({done.returncode}): {done.stderr[-2000:]}")
        events = json.loads(
            subprocess.run(
                [str(NEXUS), "events", "latest", "--json"],
                env=env, cwd=root, capture_output=True, text=True, check=True,
            ).stdout
        )  # fmt: skip
    wall = _at(events[-1]) - _at(events[0])
    checks = model = 0.0
    for event in events:
        if event["type"] != "effect.recorded":
            continue
        data = event["data"]
        if data["kind"] == "model":
            model += _at({"at": data["ended"]}) - _at({"at": data["started"]})
        elif data["request"].get("tool") in ("mission.check", "mission.merge"):
            checks += float((data.get("response") or {}).get("checks_s") or 0)
    overhead = wall - checks - model
    return {
        "wall": wall,
        "checks": checks,
        "model": model,
        "overhead": overhead,
        "share": 100 * overhead / wall,
        "command": command_s,
    }


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    samples = [one_run() for _ in range(runs_for(args, 3))]

    def metric(key: str, name: str, unit: str, **more: Any) -> Metric:
        return Metric(name, unit, [s[key] for s in samples], False, **more)

    metrics = [
        metric("share", "overhead share of the run's wall time", "%", floor=5.0,
               note="wall - checker time - model time, over wall"),
        metric("wall", "  run wall time (run.started to its end)", "s"),
        metric("checks", "  checker time (run_checks, recorded)", "s"),
        metric("model", "  model time (recorded calls)", "s"),
        metric("overhead", "  overhead (planning, engine, git, merge queue, tools)", "s"),
        metric("command", "nexus demo, process start to exit", "s"),
    ]  # fmt: skip
    report("mission_overhead", metrics, args, started, {"demo": "textkit, 3 work items"})


if __name__ == "__main__":
    main()
