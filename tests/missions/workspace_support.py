"""Real git repositories for the workspace tests, made with a git the tests control."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

#: the environment of the tests' own git calls (the code under test builds its own)
GIT_ENV = {
    "PATH": os.environ.get("PATH", os.defpath),
    "HOME": "/nonexistent",
    "LC_ALL": "C",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "User",
    "GIT_AUTHOR_EMAIL": "user@example.com",
    "GIT_COMMITTER_NAME": "User",
    "GIT_COMMITTER_EMAIL": "user@example.com",
}


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """Run the tests' git in ``cwd`` and return its stdout."""
    done = subprocess.run(
        ["git", "-c", "safe.directory=*", *args],
        cwd=cwd,
        env=GIT_ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {args} failed: {done.stderr}")
    return done.stdout


def make_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    """A repository at ``path`` on branch ``main`` with one commit of ``files``."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for name, text in (files or {"README.md": "# demo\n"}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def write(root: Path, files: dict[str, str]) -> None:
    """Write ``files`` (relative path -> text) under ``root``."""
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def commit_count(repo: Path, rev: str) -> int:
    """How many commits ``rev`` has."""
    return int(git(repo, "rev-list", "--count", rev).strip())


def user_state(repo: Path) -> tuple[str, str, str]:
    """The user's HEAD, index and work tree status: what must never change."""
    return (
        git(repo, "rev-parse", "HEAD", "--symbolic-full-name", "HEAD"),
        git(repo, "ls-files", "--stage", "--debug"),
        git(repo, "status", "--porcelain", "--untracked-files=all", "--ignored"),
    )
