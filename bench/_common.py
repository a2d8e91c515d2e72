"""Shared helpers for the benchmark scripts: metrics, repetition, machine facts, output.

Every benchmark script builds a list of :class:`Metric` (one per figure, holding
every repetition's sample), prints them as a table and, with ``--json PATH``,
writes them for ``bench/run_all.py``. A metric with a floor is judged on its
*median* sample (the best sample is reported too): on a shared, noisy machine
the median is the honest figure, the best one shows what the code can do.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Metric:
    """One measured figure and all its samples (one per repetition)."""

    name: str
    unit: str
    samples: list[float]
    higher_is_better: bool
    floor: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> float:
        return max(self.samples) if self.higher_is_better else min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def passed(self, judged: bool = True) -> bool | None:
        """Whether the median meets the floor; None without a floor (or when not judged)."""
        if self.floor is None or not judged:
            return None
        if self.higher_is_better:
            return self.median >= self.floor
        return self.median < self.floor

    def floor_text(self) -> str:
        if self.floor is None:
            return ""
        return f"{'>=' if self.higher_is_better else '<'} {fmt(self.floor)}"

    def to_dict(self, judged: bool = True) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "best": self.best,
            "median": self.median,
            "samples": self.samples,
            "higher_is_better": self.higher_is_better,
            "floor": self.floor,
            "floor_text": self.floor_text(),
            "passed": self.passed(judged),
            "note": self.note,
            "extra": self.extra,
        }


def fmt(value: float) -> str:
    """A compact human rendering of a figure."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def repeat(runs: int, fn: Callable[[], T]) -> list[T]:
    """Call ``fn`` ``runs`` times after a full collection each time; return the results."""
    out: list[T] = []
    for _ in range(runs):
        gc.collect()
        out.append(fn())
    return out


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, linear interpolation."""
    if not sorted_values:
        raise ValueError("no values")
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """Facts about where the figures were taken (load average shows how noisy it was)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 0
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        load = []
    return {
        "nproc": usable,
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "loadavg_1_5_15": load,
    }


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes, fewer runs (smoke test)")
    p.add_argument("--runs", type=int, default=None, help="repetitions per measurement")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p


def runs_for(args: argparse.Namespace, full: int, quick: int = 1) -> int:
    if args.runs is not None:
        return max(1, int(args.runs))
    return quick if args.quick else full


def report(
    benchmark: str,
    metrics: Sequence[Metric],
    args: argparse.Namespace,
    started: float,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Print the metrics as a table (and JSON to ``--json``); return the result document.

    Floors are judged only on full runs: ``--quick`` uses sizes the floors are not
    stated for.
    """
    judged = not args.quick
    result: dict[str, Any] = {
        "benchmark": benchmark,
        "quick": bool(args.quick),
        "seconds": round(time.perf_counter() - started, 2),
        "machine": machine(),
        "info": info or {},
        "metrics": [m.to_dict(judged) for m in metrics],
    }
    print_table(benchmark, result["metrics"], quick=bool(args.quick))
    for key, value in (info or {}).items():
        print(f"  {key}: {value}")
    print(f"({result['seconds']} s)")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def verdict(passed: bool | None, floor_text: str, quick: bool) -> str:
    if not floor_text:
        return ""
    if passed is None:
        return "n/a (quick)" if quick else ""
    return "PASS" if passed else "FAIL"


def print_table(title: str, metrics: Sequence[dict[str, Any]], *, quick: bool) -> None:
    rows = [
        (
            m["name"],
            fmt(m["best"]),
            fmt(m["median"]),
            str(len(m["samples"])),
            m["unit"],
            m["floor_text"],
            verdict(m["passed"], m["floor_text"], quick),
        )
        for m in metrics
    ]
    header = ("metric", "best", "median", "runs", "unit", "floor", "verdict")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"== {title}{' (quick)' if quick else ''}")
    for i, row in enumerate([header, *rows]):
        cells = [
            str(c).ljust(w) if j in (0, 4, 5, 6) else str(c).rjust(w)
            for j, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for m in metrics:
        if m["note"]:
            print(f"  * {m['name']}: {m['note']}")
    sys.stdout.flush()
