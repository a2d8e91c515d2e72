"""Hostile specs: deep nesting, binary garbage, a document near the size limit.

Each is read in bounded time and either read or refused with a clear error.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nexus.missions.spec import MAX_BYTES, SpecError, parse_spec, read_spec

SPECS = Path(__file__).parent / "specs"


def test_deep_nesting_is_refused_where_it_starts_not_silently_cut() -> None:
    started = time.process_time()
    with pytest.raises(SpecError) as caught:
        read_spec(SPECS / "hostile_nested.md")
    assert time.process_time() - started < 5
    assert caught.value.line == 23
    assert "flatten the document" in caught.value.message


def test_nesting_a_real_spec_uses_is_read() -> None:
    text = "# T\n\n" + "".join("  " * i + f"- R{i}: level {i} MUST hold.\n" for i in range(8))
    spec = parse_spec(text, source="t.md")
    assert [r.id for r in spec.requirements] == [f"R{i}" for i in range(8)]


def test_binary_garbage_is_refused_with_its_line() -> None:
    with pytest.raises(SpecError) as caught:
        read_spec(SPECS / "hostile_binary.md")
    assert caught.value.message.endswith(
        "hostile_binary.md:4: is binary, not Markdown text (a NUL byte)"
    )


def test_pathological_inline_text_is_cheap() -> None:
    text = "# T\n\n- R1: It MUST hold.\n\n" + "[" * 50_000 + "x" + "]" * 50_000 + "\n\n"
    text += "*" * 100_000 + "\n\n" + "`" * 100_000 + "\n"
    started = time.process_time()
    spec = parse_spec(text, source="t.md")
    assert time.process_time() - started < 5
    assert [r.id for r in spec.requirements] == ["R1"]


def test_a_document_near_the_limit_reads_in_bounded_time(tmp_path: Path) -> None:
    lines = ["# Big\n\n"]
    size = len(lines[0])
    while size < MAX_BYTES - 200:
        lines.append(f"- The service MUST answer request kind {len(lines)} with status 200.\n")
        size += len(lines[-1])
    path = tmp_path / "big.md"
    path.write_text("".join(lines), encoding="utf-8")
    started = time.process_time()
    spec = read_spec(path)
    assert time.process_time() - started < 20
    assert len(spec.requirements) == len(lines) - 1
    assert len({r.id for r in spec.requirements}) == len(spec.requirements)
