"""CLI start-up: ``nexus --help``, ``nexus run --help``, ``--version``, ``nexus runs``: end to end.

Each sample starts the installed console script (``nexus``, as a user types
it) in a new process and waits for it to exit:

* **nexus --help**: the command table and its help, no command module;
* **nexus run --help**: one command module loaded for its help (the one that
  drives runs: it imports the engine only when it runs one);
* **nexus --version**: the command table and the installed version;
* **nexus runs (empty home)**: the listing command with a home that has no
  database yet (answered without opening a store);
* **python -c pass**: the interpreter alone, the floor under both.

Each figure is given as wall time (the floor is judged on it: < 300 ms) and as
the CPU time the child used (user + system), which a loaded machine stretches
less. The table is followed by the slowest imports of ``nexus runs``
(``python -X importtime``, cumulative, the top of the import tree), which is
where to look when the figures grow.

Usage: ``python bench/cli_startup.py [--quick] [--runs N] [--json PATH]``
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import Metric, parser, report, runs_for

FLOOR_MS = 300.0
NEXUS = Path(sys.executable).parent / "nexus"
#: import-tree lines of ``python -X importtime``: self us | cumulative us | indented name
_IMPORT = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)$")


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU milliseconds of one run of ``command`` (which must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, check=False)
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def measure(name: str, command: list[str], env: dict[str, str], runs: int) -> list[Metric]:
    timed(command, env)  # warm the file cache: every sample then starts alike
    samples = [timed(command, env) for _ in range(runs)]
    floor = None if command[0] == sys.executable else FLOOR_MS
    return [
        Metric(name, "ms", [w for w, _ in samples], higher_is_better=False, floor=floor),
        Metric(f"  {name}, CPU", "ms", [c for _, c in samples], higher_is_better=False),
    ]


def slowest_imports(env: dict[str, str], top: int = 8) -> list[str]:
    """The costliest imports of ``nexus runs``, near the top of the import tree."""
    code = "import sys\nfrom nexus.cli import main\nsys.argv = ['nexus', 'runs']\nmain()"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    found: list[tuple[int, str]] = []
    for line in done.stderr.splitlines():
        match = _IMPORT.match(line)
        if match is not None and len(match[3]) <= 4:  # the top levels of the tree
            found.append((int(match[2]), match[4]))
    found.sort(reverse=True)
    return [f"{name} {us / 1000:.0f} ms" for us, name in found[:top]]


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    runs = runs_for(args, full=21, quick=5)
    with tempfile.TemporaryDirectory(prefix="nexus-bench-cli-") as tmp:
        env = {**os.environ, "NEXUS_HOME": str(Path(tmp) / ".nexus"), "NO_COLOR": "1"}
        env.pop("NEXUS_CONFIG", None)
        metrics = [
            *measure("nexus --help", [str(NEXUS), "--help"], env, runs),
            *measure("nexus run --help", [str(NEXUS), "run", "--help"], env, runs),
            *measure("nexus --version", [str(NEXUS), "--version"], env, runs),
            *measure("nexus runs (empty home)", [str(NEXUS), "runs"], env, runs),
            *measure("python -c pass", [sys.executable, "-c", "pass"], env, runs),
        ]
        assert not (Path(tmp) / ".nexus").exists(), "nexus runs created the home"
        info = {"slowest imports of nexus runs (cumulative)": ", ".join(slowest_imports(env))}
    report("cli_startup", metrics, args, started, info)


if __name__ == "__main__":
    main()
