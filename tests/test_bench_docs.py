"""`bench/run_all.py`, `docs/benchmarks.md` and the scripts in `bench/` name the same benchmarks.

Read without running anything: ``run_all.BENCHMARKS`` is taken from its source.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
DOC = ROOT / "docs" / "benchmarks.md"


def scripts() -> set[str]:
    """The benchmark scripts: every ``bench/*.py`` but the helpers (``_*.py``) and run_all."""
    return {p.stem for p in BENCH.glob("*.py") if not p.stem.startswith("_")} - {"run_all"}


def run_all_benchmarks() -> list[str]:
    tree = ast.parse((BENCH / "run_all.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [ast.dump(t) for t in node.targets] == [
            ast.dump(ast.Name("BENCHMARKS", ast.Store()))
        ]:
            value = ast.literal_eval(node.value)
            assert isinstance(value, tuple | list)
            return [str(name) for name in value]
    raise AssertionError("bench/run_all.py has no BENCHMARKS")


def doc_table() -> list[str]:
    """The scripts of the table under ``## Every benchmark``, in order."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## Every benchmark\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `bench/(\w+)\.py` \|", section, flags=re.MULTILINE)


def test_run_all_runs_every_script_once() -> None:
    names = run_all_benchmarks()
    assert len(names) == len(set(names)), names
    assert set(names) == scripts(), "run_all.BENCHMARKS and the scripts in bench/ differ"


def test_the_doc_lists_what_run_all_runs_in_its_order() -> None:
    assert doc_table() == run_all_benchmarks()


def test_every_script_the_doc_names_exists() -> None:
    named = set(re.findall(r"bench/(\w+)\.py", DOC.read_text(encoding="utf-8")))
    assert named - {"run_all"} <= scripts(), f"no such script: {named - scripts() - {'run_all'}}"
    assert scripts() <= named
