"""Repository index: build, incremental update and context queries on a synthetic repository.

A synthetic Python repository of 2,000 files (200 with ``--quick``) is
written to a temporary directory, the same bytes every time: 20 packages of
modules, each module with two classes, four functions and docstrings, importing
the standard library and the module of the same number in the package before
it, and one test file in five importing a module. Then, each repetition with a
fresh index file:

* **full build**: ``RepoIndex.update()`` on an empty index (list, read, hash,
  parse, store every file);
* **update, 20 files changed** (``--changed N``): after rewriting 20 modules,
  ``update()`` again (lists every file, re-reads and re-parses only the 20);
* **update, nothing changed**: ``update()`` once more (the listing and the
  ``lstat`` of every file only);
* **context query p50 / p95**: 50 ranked-context queries (``--queries N``:
  symbol names, words of docstrings, a scope now and then) of
  ``context(query, budget_tokens=4000)``.

The repository is not a git work tree, so files are listed by the walk.

Usage: ``python bench/repo_index.py [--quick] [--runs N] [--json PATH] [--changed N]
[--queries N]``
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from _common import Metric, parser, percentile, report, runs_for
from nexus.missions.index import RepoIndex

WORDS = (
    "account", "invoice", "ledger", "payment", "refund", "customer", "order",
    "shipment", "parcel", "route", "schedule", "report", "budget", "quota",
    "token", "session", "cache", "policy", "audit", "record",
)  # fmt: skip


def module_text(pkg: int, n: int, salt: int = 0) -> str:
    rng = random.Random(pkg * 10_007 + n * 31 + salt)
    a, b, c = rng.sample(WORDS, 3)
    parts = [f'"""The {a} {b} module {pkg}.{n}."""\n\nimport json\nimport os\n']
    if pkg:  # an import graph: each module imports its namesake in the package before
        parts.append(f"\nfrom pkg{pkg - 1} import mod{n}\n")
    for k in range(2):
        parts.append(
            f"\n\nclass {a.title()}{b.title()}{k}:\n"
            f'    """Keeps the {a} of a {c} ({salt}) together."""\n\n'
            f"    def __init__(self, value: int) -> None:\n        self.value = value\n\n"
            f"    def {c}_total(self, extra: int = 0) -> int:\n"
            f'        """The total {c} of this {a}."""\n'
            f"        return self.value + extra + {k}\n"
        )
    for k in range(4):
        body = "\n".join(f"    x{j} = {a!r} * {j}" for j in range(8))
        parts.append(
            f"\n\ndef {rng.choice(WORDS)}_{b}_{k}(path: str, limit: int = {k}) -> list[str]:\n"
            f'    """Read the {b} {rng.choice(WORDS)} from a file."""\n{body}\n'
            f"    return [os.path.join(path, json.dumps(limit))]\n"
        )
    return "".join(parts)


def test_text(pkg: int, n: int) -> str:
    return f"from pkg{pkg}.mod{n} import *\n\n\n" + "\n\n".join(
        f"def test_case_{k}():\n    assert {k} == {k}\n" for k in range(5)
    )


def make_repo(root: Path, files: int) -> list[Path]:
    """Write the repository; return the modules (not tests) in a fixed order."""
    modules: list[Path] = []
    per_pkg = max(1, files // 20)
    written = 0
    for pkg in range(20):
        (root / f"pkg{pkg}").mkdir(parents=True)
        (root / f"pkg{pkg}" / "__init__.py").write_text("")
        written += 1
        (root / "tests").mkdir(exist_ok=True)
        for n in range(per_pkg - 1):
            if written >= files:
                break
            if n % 5 == 4:
                (root / "tests" / f"test_pkg{pkg}_mod{n - 1}.py").write_text(test_text(pkg, n - 1))
            else:
                path = root / f"pkg{pkg}" / f"mod{n}.py"
                path.write_text(module_text(pkg, n))
                modules.append(path)
            written += 1
    return modules


def queries(rng: random.Random, count: int) -> list[tuple[str, list[str] | None]]:
    out: list[tuple[str, list[str] | None]] = []
    for i in range(count):
        a, b = rng.sample(WORDS, 2)
        kind = i % 3
        if kind == 0:
            out.append((f"{a}_{b}_{i % 4}", None))
        elif kind == 1:
            out.append((f"read the {a} {b} from a file", None))
        else:
            out.append((f"total {a} of this {b}", [f"pkg{i % 20}"]))
    return out


def main() -> None:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--changed", type=int, default=20, help="modules rewritten before an update")
    cli.add_argument("--queries", type=int, default=50, help="context queries per repetition")
    args = cli.parse_args()
    started = time.perf_counter()
    runs = runs_for(args, full=3, quick=1)
    files = 200 if args.quick else 2000
    build: list[float] = []
    changed: list[float] = []
    idle: list[float] = []
    query_ms: list[float] = []
    parsed: list[float] = []
    with tempfile.TemporaryDirectory(prefix="nexus-bench-index-") as tmp:
        root = Path(tmp) / "repo"
        modules = make_repo(root, files)
        total = sum(1 for p in root.rglob("*") if p.is_file())
        for run in range(runs):
            with RepoIndex(root, Path(tmp) / f"index{run}.sqlite") as index:
                t0 = time.perf_counter()
                index.update()
                build.append(time.perf_counter() - t0)
                batch = modules[run * args.changed : (run + 1) * args.changed]
                for k, path in enumerate(batch):
                    path.write_text(module_text(k, k, salt=run + 1))
                t0 = time.perf_counter()
                done = index.update()
                changed.append((time.perf_counter() - t0) * 1000)
                parsed.append(done.parsed)
                t0 = time.perf_counter()
                index.update()
                idle.append((time.perf_counter() - t0) * 1000)
                for query, scope in queries(random.Random(run), args.queries):
                    t0 = time.perf_counter()
                    index.context(query, budget_tokens=4000, scope=scope)
                    query_ms.append((time.perf_counter() - t0) * 1000)
                stats = index.stats()
    ordered = sorted(query_ms)
    metrics = [
        Metric(f"full build, {total} files", "s", build, higher_is_better=False),
        Metric(f"update, {args.changed} files changed", "ms", changed, higher_is_better=False),
        Metric("  files re-parsed by it", "files", parsed, higher_is_better=False),
        Metric("update, nothing changed", "ms", idle, higher_is_better=False),
        Metric("context query p50", "ms", [percentile(ordered, 50)], higher_is_better=False),
        Metric("context query p95", "ms", [percentile(ordered, 95)], higher_is_better=False),
    ]
    info = {
        "index": f"{stats.files} files, {stats.symbols} symbols, {stats.imports} imports, "
        f"{stats.tests} tests, {stats.chunks} chunks",
        "queries": f"{len(query_ms)} ({len(query_ms) // runs} per run), budget 4000 tokens",
    }
    report("repo_index", metrics, args, started, info)


if __name__ == "__main__":
    main()
