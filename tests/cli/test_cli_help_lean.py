"""``nexus COMMAND --help`` is read without loading what the command needs to run.

Each command's help is drawn by :func:`nexus.cli._help.render_help` (Rich's panels
and tables, without Typer's Markdown and traceback modules), and each command
module imports the engine, the store, the planner and the tools where it uses
them, not at its top. The tests look at what a fresh interpreter imported, which
a loaded machine cannot blur; the time is in ``bench/cli_startup.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nexus.cli.app import COMMANDS

#: What the help of no command may load: the libraries and layers a run needs
LOADED_TO_RUN = (
    "sqlalchemy", "alembic", "openai", "anthropic", "mcp", "wasmtime", "httpx", "jinja2",
    "yaml", "pydantic", "nexus.app", "nexus.engine", "nexus.store.sqlite",
    "nexus.planning.workflow", "nexus.tools.builtins", "nexus.gateway",
)  # fmt: skip
#: What Typer's own help formatter loads, and ours does not
TYPER_HELP = ("typer.rich_utils", "rich.markdown", "markdown_it", "rich.traceback", "pygments")

PATHS = [
    *((e.name,) for e in COMMANDS),
    *((e.name, sub) for e in COMMANDS for sub in e.subcommands),
]


def _help(home: Path, *path: str) -> tuple[str, set[str]]:
    """The help text of ``nexus PATH --help`` and the modules its interpreter loaded."""
    probe = (
        "import json, sys\n"
        "from nexus.cli.app import app\n"
        "try:\n"
        f"    app([*{list(path)!r}, '--help'], prog_name='nexus')\n"
        "except SystemExit as done:\n"
        "    assert done.code in (0, None), done.code\n"
        "print('\\0' + json.dumps(sorted(sys.modules)))\n"
    )
    env = {**os.environ, "NEXUS_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "120"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    text, _, modules = done.stdout.rpartition("\0")
    return text, set(json.loads(modules))


def _offenders(loaded: set[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == r or m.startswith(r + ".") for r in roots))


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) for p in PATHS])
def test_a_commands_help_loads_nothing_it_needs_to_run(tmp_path: Path, path: tuple[str]) -> None:
    text, loaded = _help(tmp_path / ".nexus", *path)
    assert f"Usage: nexus {' '.join(path)}" in text
    assert _offenders(loaded, (*LOADED_TO_RUN, *TYPER_HELP)) == []
    assert not (tmp_path / ".nexus").exists(), "--help creates no home"


def test_the_top_level_help_loads_no_command(tmp_path: Path) -> None:
    text, loaded = _help(tmp_path / ".nexus")
    assert _offenders(loaded, (*LOADED_TO_RUN, *TYPER_HELP)) == []
    assert not [m for m in loaded if m.startswith("nexus.cli.commands_")]
    for entry in COMMANDS:
        assert re.search(rf"^│ {entry.name} +{re.escape(entry.summary[:30])}", text, re.M)


def test_nexus_alone_prints_the_help_and_exits_2(tmp_path: Path) -> None:
    """As Click's ``no_args_is_help`` does, without loading Typer's error formatter."""
    probe = (
        "import json, sys\n"
        "from nexus.cli.app import app\n"
        "try:\n"
        "    app([], prog_name='nexus')\n"
        "except SystemExit as done:\n"
        "    print('\\0' + json.dumps([done.code, sorted(sys.modules)]))\n"
    )
    env = {**os.environ, "NEXUS_HOME": str(tmp_path), "NO_COLOR": "1", "COLUMNS": "120"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    text, _, tail = done.stdout.rpartition("\0")
    code, loaded = json.loads(tail)
    assert code == 2, done.stderr
    assert "Usage: nexus [OPTIONS] COMMAND [ARGS]..." in text
    assert re.search(r"^│ run +Run a workflow file", text, re.M), text
    assert _offenders(set(loaded), (*LOADED_TO_RUN, *TYPER_HELP)) == []


def test_the_help_shows_defaults_ranges_and_required_marks(tmp_path: Path) -> None:
    """What Click adds to an option's help is shown, apart from the help's own markup."""
    text, _ = _help(tmp_path / ".nexus", "run")
    assert re.search(r"--max-tasks +INTEGER +With --goal: the most tasks planned\. ", text)
    assert "[default: 50; 1<=x<=10000]" in text
    assert re.search(r"^│ FILE +Workflow file \(YAML\); or use --goal\.", text, re.M)
    approve, _ = _help(tmp_path / ".nexus", "approve")
    # a required argument is marked in a column of its own and said in its help
    assert re.search(r"^│ \* +TASK +.*\[required\]", approve, re.M), approve
    assert re.search(r"^ +Examples?: *$", approve, re.M)
