"""Property: any single-byte change to any file of a bundle is detected, naming that file."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from evidence_support import CREATED, KEY, items, spec
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.missions.evidence import verify_bundle, write_bundle


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bundle, written once for every example (examples change copies of it)."""
    root = tmp_path_factory.mktemp("evidence")
    write_bundle(root / "bundle", spec(), items(root / "in"), KEY, created=CREATED)
    return root / "bundle"


def test_the_untouched_bundle_holds(original: Path) -> None:
    assert verify_bundle(original, KEY.public).ok
    assert len([p for p in original.rglob("*") if p.is_file()]) == 10


@settings(max_examples=150, deadline=None)
@given(
    which=st.integers(min_value=0),
    where=st.integers(min_value=0),
    delta=st.integers(min_value=1, max_value=255),
    with_key=st.booleans(),
)
def test_any_single_byte_change_is_detected(
    original: Path, which: int, where: int, delta: int, with_key: bool
) -> None:
    names = sorted(p.relative_to(original).as_posix() for p in original.rglob("*") if p.is_file())
    name = names[which % len(names)]
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "bundle"
        shutil.copytree(original, copy)
        data = bytearray((copy / name).read_bytes())
        at = where % len(data)
        data[at] = (data[at] + delta) % 256  # always a different byte
        (copy / name).write_bytes(bytes(data))
        report = verify_bundle(copy, KEY.public if with_key else None)
    assert not report.ok, (name, at)
    assert name in {p.file for p in report.problems}, (name, at, report.problems)
