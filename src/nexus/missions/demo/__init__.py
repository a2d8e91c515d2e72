"""``nexus demo``: the flagship code mission, offline, on a bundled spec.

:func:`make_demo_repo` creates a small git repository (a README and an empty
``textkit`` package); the bundled ``spec.md`` asks for four requirements;
the roles are function agents playing back recorded answers
(:mod:`._agents`), one of which fails the tests on its first attempt and
passes on its second from the gate's feedback. See ``docs/missions.md``.
"""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

__all__ = ["DEMO_AGENTS", "demo_spec", "make_demo_repo"]

#: role -> the function agent playing it back
DEMO_AGENTS = {
    role: f"nexus.missions.demo._agents:{role}"
    for role in ("architect", "tester", "coder", "reviewer")
}


def demo_spec() -> Path:
    """The bundled spec's path."""
    return Path(str(resources.files(__package__).joinpath("spec.md")))


def make_demo_repo(path: Path) -> Path:
    """A new git repository at ``path`` holding the demo's seed files, committed.

    Raises:
        FileExistsError: ``path`` exists and is not empty.
    """
    if path.exists() and any(path.iterdir()):
        raise FileExistsError(f"{path} is not empty")
    seed = Path(str(resources.files(__package__).joinpath("seed")))
    shutil.copytree(seed, path, dirs_exist_ok=True)
    shutil.copy(demo_spec(), path / "spec.md")
    env = {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": "Nexus demo",
        "GIT_AUTHOR_EMAIL": "demo@nexus.invalid",
        "GIT_COMMITTER_NAME": "Nexus demo",
        "GIT_COMMITTER_EMAIL": "demo@nexus.invalid",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LC_ALL": "C",
    }
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", "textkit: the seed"],
    ):
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)
    return path
