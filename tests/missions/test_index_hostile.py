"""Hostile repositories: every odd file is indexed or skipped with a reason, never a crash."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from nexus.missions.index import RepoIndex


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "broken.py").write_text("def ok():\n    pass\n\ndef broken(:\n    pass\n")
    (root / "huge.py").write_text("X = 1\n" * 50_000)  # 300 kB, over the 64 kB cap below
    (root / "latin1.py").write_bytes(b'"""Caf\xe9 menu."""\n\ndef menu():\n    return "caf\xe9"\n')
    (root / "blob.bin").write_bytes(b"\x00\x01\x02binary" * 10)
    (root / "nul.py").write_bytes(b"X = 1\n\x00\n")
    outside = tmp_path / "secret.txt"
    outside.write_text("TOP SECRET outside the repository\n")
    os.symlink(outside, root / "escape.txt")
    os.symlink(tmp_path, root / "linked_dir")
    (root / "new\nline.py").write_text("def newline_file():\n    pass\n")
    (root / "deep.py").write_text("x = " + "(" * 300 + "1" + ")" * 300 + "\n")
    return root


def test_each_hostile_file_is_indexed_or_skipped_with_its_reason(
    hostile: Path, tmp_path: Path
) -> None:
    with RepoIndex(hostile, tmp_path / "i.sqlite", max_bytes=64 * 1024) as idx:
        report = idx.update()
        stats = idx.stats()
        secret = idx.context("TOP SECRET outside", budget_tokens=10_000)
    assert stats.skipped == {
        "blob.bin": "binary (a NUL byte in its first 8 KiB)",
        "escape.txt": "symbolic link (never followed)",
        "huge.py": "larger than 65536 bytes",
        "linked_dir": "symbolic link (never followed)",
        "nul.py": "binary (a NUL byte in its first 8 KiB)",
    }
    assert dict(report.skipped) == stats.skipped
    assert stats.notes["broken.py"] == "python syntax error at line 4: symbols not extracted"
    assert stats.notes["latin1.py"].startswith("not valid UTF-8 at byte 6")
    assert "new\nline.py" in report.added
    assert "deep.py" in report.added
    assert secret.items == ()  # the link was never followed


def test_hostile_files_are_still_searchable(hostile: Path, tmp_path: Path) -> None:
    with RepoIndex(hostile, tmp_path / "i.sqlite", max_bytes=64 * 1024) as idx:
        idx.update()
        assert [s[0] for s in idx.symbols("menu")] == ["latin1.py"]
        assert [s[0] for s in idx.symbols("newline_file")] == ["new\nline.py"]
        assert idx.symbols("ok") == []  # a file that does not parse has no symbols...
        broken = idx.context("broken", budget_tokens=1000)
        assert [i.path for i in broken.items] == ["broken.py"]  # ...but its text is indexed


def test_a_file_that_becomes_a_link_or_too_big_is_skipped_on_update(
    hostile: Path, tmp_path: Path
) -> None:
    with RepoIndex(hostile, tmp_path / "i.sqlite", max_bytes=64 * 1024) as idx:
        idx.update()
        (hostile / "latin1.py").unlink()
        os.symlink("/etc/passwd", hostile / "latin1.py")
        (hostile / "new\nline.py").write_text("Y = 2\n" * 20_000)
        report = idx.update()
        assert dict(report.skipped) == {
            "latin1.py": "symbolic link (never followed)",
            "new\nline.py": "larger than 65536 bytes",
        }
        assert report.parsed == 0
        assert idx.symbols("menu") == []
        assert idx.update().skipped == ()  # recorded: not reported again


def test_git_listed_links_and_odd_names_are_handled(hostile: Path, tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(hostile)], check=True)
    subprocess.run(["git", "-C", str(hostile), "add", "-A"], check=True)
    with RepoIndex(hostile, tmp_path / "i.sqlite", max_bytes=64 * 1024) as idx:
        report = idx.update()
        stats = idx.stats()
    assert stats.skipped["escape.txt"] == "symbolic link (never followed)"
    assert "new\nline.py" in report.added


def test_a_file_name_that_is_not_utf8_is_skipped_with_a_reason(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    os.close(os.open(os.fsencode(root) + b"/bad\xff.py", os.O_CREAT | os.O_WRONLY, 0o644))
    (root / "good.py").write_text("G = 1\n")
    with RepoIndex(root, tmp_path / "i.sqlite") as idx:
        report = idx.update()
    assert report.added == ("good.py",)
    assert report.skipped == (("bad\\xff.py", "file name is not valid UTF-8"),)


def test_a_file_deleted_between_listing_and_reading_is_not_a_crash(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.py").write_text("A = 1\n")
    from nexus.missions.index import _files

    content = _files.read_file(root, "gone.py")
    assert content.data is None
    assert content.skip is not None
    assert content.skip.startswith("unreadable")
    assert _files.read_file(root, "a.py").data == b"A = 1\n"
