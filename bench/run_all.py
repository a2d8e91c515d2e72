"""Run every benchmark, each in its own process, and print a summary with the floors.

Usage: ``python bench/run_all.py [--quick] [--only NAME ...] [--json PATH]``

Each benchmark's own table is printed as it finishes; the summary at the end
repeats its headline figures (sub-figures, indented in the per-benchmark
tables, are left out) and the floor verdicts. Floors are judged on the median
of the repetitions, and only on full runs (``--quick`` uses smaller sizes).
The exit status is 1 when a benchmark failed to run or a floor was missed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine, print_table

BENCH = Path(__file__).resolve().parent
#: every script in bench/ (but the helpers and this one), in the order of docs/benchmarks.md,
#: which lists each of them: tests/test_bench_docs.py checks all three agree
BENCHMARKS = (
    "throughput",
    "dispatch_latency",
    "audit_verify",
    "plan_compile",
    "replay_fold",
    "event_payloads",
    "agents_concurrency",
    "gateway_overhead",
    "cost_savings",
    "tenant_budget",
    "redaction_canonical",
    "mcp_overhead",
    "wasm_startup",
    "sandbox_overhead",
    "kill9_leaks",
    "backup_restore",
    "cli_startup",
    "repo_index",
    "plan_extension",
    "bt_overhead",
    "fsm_steps",
    "mission_overhead",
)
TIMEOUT_S = 600


def run_one(name: str, quick: bool, out: Path) -> dict[str, Any] | None:
    command = [sys.executable, str(BENCH / f"{name}.py"), "--json", str(out)]
    if quick:
        command.append("--quick")
    shown = [str(Path(command[1]).relative_to(BENCH.parent)), *command[2:]]
    print(f"\n$ python {' '.join(shown)}", flush=True)
    try:
        done = subprocess.run(command, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        print(f"!! {name} took more than {TIMEOUT_S} s", flush=True)
        return None
    if done.returncode != 0 or not out.exists():
        print(f"!! {name} failed (exit {done.returncode})", flush=True)
        return None
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, fewer runs (smoke test)")
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    p.add_argument("--json", type=Path, default=None, help="write all results here")
    args = p.parse_args()
    names = args.only or list(BENCHMARKS)
    started = time.perf_counter()
    facts = machine()
    print(
        f"machine: {facts['nproc']} CPU(s), {facts['cpu_model']}, Python {facts['python']}, "
        f"SQLite {facts['sqlite']}, load average {facts['loadavg_1_5_15']}"
    )
    results: dict[str, dict[str, Any] | None] = {}
    with tempfile.TemporaryDirectory(prefix="nexus-bench-results-") as tmp:
        for name in names:
            results[name] = run_one(name, args.quick, Path(tmp) / f"{name}.json")
    elapsed = time.perf_counter() - started

    print("\n" + "=" * 30 + " summary " + "=" * 30)
    failed: list[str] = []
    for name, result in results.items():
        if result is None:
            print(f"== {name}: DID NOT RUN")
            failed.append(f"{name} (did not run)")
            continue
        headline = [m for m in result["metrics"] if not m["name"].startswith(" ")]
        print_table(name, headline, quick=args.quick)
        failed += [f"{name}: {m['name']}" for m in result["metrics"] if m["passed"] is False]
    print(f"\ntotal {elapsed:.0f} s")
    if args.quick:
        print("quick mode: floors not judged")
    elif failed:
        print("FLOORS MISSED / FAILURES:\n  " + "\n  ".join(failed))
    else:
        print("all floors met")
    if args.json is not None:
        document = {"machine": facts, "quick": args.quick, "seconds": elapsed, "results": results}
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
