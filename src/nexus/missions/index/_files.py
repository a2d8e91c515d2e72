"""Which files of a repository are indexed, and reading one safely.

The listing comes from ``git ls-files`` when the directory is in a git work
tree (tracked files and untracked ones ``.gitignore`` does not exclude), else
from a walk that skips version-control, virtual-environment, dependency and
build directories. Either way nothing is followed through a symbolic link:
the walk does not descend into a linked directory, and a file is opened with
``O_NOFOLLOW`` and checked to be a regular file inside the repository, so a
link pointing out of the repository is recorded as skipped, never read.

A file is *skipped with a reason* (kept in the index, so ``stats`` can say
why) rather than raising: too large, binary, a link, unreadable, or a name
that is not valid UTF-8.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: files larger than this are listed as skipped, never read (1 MiB)
DEFAULT_MAX_BYTES = 1024 * 1024
#: directories a walk never enters (a git listing relies on .gitignore instead)
SKIP_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", ".venv", "venv", "env", "node_modules", "__pycache__",
        "build", "dist", "target", ".tox", ".nox", ".mypy_cache", ".ruff_cache",
        ".pytest_cache", ".eggs", "site-packages", ".idea", ".vscode", ".nexus",
    }
)  # fmt: skip
#: bytes read to decide that a file is binary (a NUL byte among them)
_SNIFF = 8192

LANGUAGES = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript",
    ".cjs": "javascript", ".jsx": "javascript", ".ts": "typescript", ".tsx": "tsx",
    ".go": "go", ".rs": "rust", ".java": "java", ".c": "c", ".h": "c", ".cc": "cpp",
    ".cpp": "cpp", ".hpp": "cpp", ".rb": "ruby", ".sh": "shell", ".md": "markdown",
    ".rst": "text", ".txt": "text", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml",
    ".json": "json", ".cfg": "ini", ".ini": "ini", ".html": "html", ".css": "css",
    ".sql": "sql",
}  # fmt: skip


def language_of(path: str) -> str:
    """The language a path's suffix names (``"other"`` when unknown)."""
    return LANGUAGES.get(os.path.splitext(path)[1].lower(), "other")


@dataclass(frozen=True, slots=True)
class Listed:
    """A path the listing found, with what ``lstat`` says of it (never followed)."""

    path: str
    size: int
    mtime_ns: int
    skip: str | None  # why it is not read, or None


@dataclass(frozen=True, slots=True)
class Content:
    """A file's bytes as read, or why they were not."""

    data: bytes | None
    skip: str | None


def list_files(root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Listed]:
    """Every candidate file under ``root``, sorted by path, each with ``lstat`` facts."""
    names = _git_listing(root)
    if names is None:
        names = list(_walk(root))
    out: dict[str, Listed] = {}
    for name in names:
        listed = _examine(root, name, max_bytes)
        if listed is not None:
            out[listed.path] = listed
    return [out[p] for p in sorted(out)]


def _git_listing(root: Path) -> list[str] | None:
    """Paths from ``git ls-files`` (``None`` when ``root`` is not in a git work tree)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"],
            capture_output=True,
            check=False,
            timeout=120,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return [os.fsdecode(raw) for raw in done.stdout.split(b"\0") if raw]


def _walk(root: Path) -> Iterator[str]:
    """Relative paths of the files under ``root``, skipping :data:`SKIP_DIRS` and links."""
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            entries = list(os.scandir(root / rel if rel else root))
        except OSError:
            continue
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in SKIP_DIRS and not entry.name.endswith(".egg-info"):
                    stack.append(child)
            else:
                yield child  # files and links alike: _examine says what a link is


def _examine(root: Path, name: str, max_bytes: int) -> Listed | None:
    """``lstat`` one listed path; ``None`` for what is not a file at all (gone, a dir)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(name).decode("utf-8", "backslashreplace")
        return Listed(shown, 0, 0, "file name is not valid UTF-8")
    try:
        info = os.lstat(root / name)
    except OSError:
        return None  # listed by git but deleted from the work tree
    if stat.S_ISLNK(info.st_mode):
        return Listed(name, 0, 0, "symbolic link (never followed)")
    if stat.S_ISDIR(info.st_mode):
        return None  # a submodule, or a directory git lists as a gitlink
    if not stat.S_ISREG(info.st_mode):
        return Listed(name, 0, 0, "not a regular file")
    if info.st_size > max_bytes:
        return Listed(name, info.st_size, info.st_mtime_ns, f"larger than {max_bytes} bytes")
    return Listed(name, info.st_size, info.st_mtime_ns, None)


def read_file(root: Path, name: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Content:
    """Read one listed file without following a link and without reading past the cap."""
    real_root = os.path.realpath(root)
    full = os.path.join(real_root, name)
    parent = os.path.realpath(os.path.dirname(full))
    if parent != real_root and not parent.startswith(real_root + os.sep):
        return Content(None, "outside the repository (through a linked directory)")
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        return Content(None, f"unreadable: {exc.strerror or exc}")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return Content(None, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        return Content(None, f"unreadable: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        return Content(None, f"larger than {max_bytes} bytes")
    if b"\0" in data[:_SNIFF]:
        return Content(None, "binary (a NUL byte in its first 8 KiB)")
    return Content(data, None)


def decode(data: bytes) -> tuple[str, str | None]:
    """The text of a file and a note when it was not valid UTF-8 (decoded with U+FFFD)."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        note = f"not valid UTF-8 at byte {exc.start}: decoded with replacement characters"
        return data.decode("utf-8", "replace"), note
