"""What the code-mission end-to-end tests share: the CLI, small repositories, git queries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cli_out import Out

NEXUS = Path(sys.executable).parent / "nexus"
HERE = Path(__file__).parent
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


def env(home: Path, **extra: str) -> dict[str, str]:
    """The CLI's environment: this home, no colours, the test agents importable."""
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH", ""), str(HERE)) if p)
    found = {**os.environ, "NEXUS_HOME": str(home), "NO_COLOR": "1", "PYTHONPATH": path}
    found.pop("FORCE_COLOR", None)
    found.update(extra)
    return found


def nexus(home: Path, *args: str | Path, timeout: float = 300, **extra: str) -> Out:
    """Run the CLI from ``home``'s parent; no invocation may show a traceback."""
    proc = subprocess.run(
        [str(NEXUS), *map(str, args)],
        capture_output=True,
        text=True,
        env=env(home, **extra),
        cwd=home.parent,
        timeout=timeout,
        check=False,
    )
    out = Out(proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in out.text, out.text
    return out


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env=GIT_ENV, capture_output=True, text=True, check=True
    )
    return done.stdout


def make_repo(path: Path, files: dict[str, str]) -> Path:
    """A git repository at ``path`` holding ``files``, committed on ``main``."""
    path.mkdir(parents=True)
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", "seed")
    return path


def branch_commits(repo: Path, branch: str, since: str = "main") -> list[str]:
    """The subjects of the commits ``branch`` has beyond ``since``, oldest first."""
    return git(repo, "log", "--reverse", "--format=%s", f"{since}..{branch}").splitlines()


def work_items_on(repo: Path, branch: str) -> list[str]:
    """The ``Nexus-Work-Item`` trailer of every commit on ``branch`` beyond ``main``."""
    text = git(repo, "log", "--format=%(trailers:key=Nexus-Work-Item,valueonly)", f"main..{branch}")
    return sorted(line.strip() for line in text.splitlines() if line.strip())
