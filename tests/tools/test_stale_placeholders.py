"""Placeholders a killed sandbox call left behind are removed; anything else is kept."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from nexus.tools.sandbox import remove_stale_placeholders

NAMES = ("nexus.toml", ".nexus")


def placeholder(path: Path) -> None:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDONLY, 0o400)
    os.close(fd)
    os.chmod(path, 0o400)


def test_a_stale_placeholder_is_removed(tmp_path: Path) -> None:
    placeholder(tmp_path / "nexus.toml")
    placeholder(tmp_path / ".nexus")
    assert sorted(p.name for p in remove_stale_placeholders(tmp_path, NAMES)) == [
        ".nexus",
        "nexus.toml",
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_placeholder_a_running_call_holds_stays(tmp_path: Path) -> None:
    path = tmp_path / "nexus.toml"
    placeholder(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        assert remove_stale_placeholders(tmp_path, NAMES) == []
        assert path.exists()
    finally:
        os.close(fd)
    assert remove_stale_placeholders(tmp_path, NAMES) == [path]


def test_real_files_links_and_other_names_are_kept(tmp_path: Path) -> None:
    (tmp_path / "nexus.toml").write_text("[mission]\n")  # a real config: not empty
    (tmp_path / ".nexus").mkdir()  # a real state directory
    target = tmp_path / "elsewhere"
    placeholder(target)
    (tmp_path / "sub").mkdir()
    placeholder(tmp_path / "sub" / "nexus.toml")  # not at the top: not looked at
    os.symlink(target, tmp_path / "sub" / ".nexus")
    writable = tmp_path / "w.toml"
    writable.write_text("")
    assert remove_stale_placeholders(tmp_path, NAMES) == []
    assert remove_stale_placeholders(tmp_path / "sub", (".nexus",)) == []  # a link
    assert target.exists()
    assert remove_stale_placeholders(tmp_path, ("w.toml",)) == []  # empty, but mode 0644
