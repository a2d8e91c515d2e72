"""The examples the docs mark runnable run as printed.

A fenced block in ``README.md`` or ``docs/*.md`` is runnable when the line
before its fence is the HTML comment ``<!-- runnable -->`` (GitHub renders
nothing for it). Only ``python`` and ``bash``/``sh`` blocks can be marked, and
only blocks that need no network and no API key:

* a Python block is saved as a script and run with this interpreter, as its
  own program (``__main__``), in a fresh temporary directory that is also
  ``$NEXUS_HOME``'s parent (``NEXUS_HOME=<dir>/.nexus``);
* a shell block runs in ``bash -e -o pipefail`` (it stops at the first
  failing command) in such a directory, which also holds a copy of
  ``examples/`` and a link to the checkout's ``.venv``, with ``.venv/bin``
  first on ``PATH`` -- the layout of a checkout after ``make demo``.

Either passes when it exits 0. ``NEXUS_CONFIG`` and the model providers' API
keys are removed from its environment.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = "<!-- runnable -->"
LANGUAGES = {"python": "python", "bash": "shell", "sh": "shell"}
#: what a runnable block may not see: another project's settings, keys to real models
HIDDEN_ENV = re.compile(r"NEXUS_.*|.*_API_KEY|OLLAMA_HOST")
FENCE = re.compile(r"(`{3,}|~{3,})\s*([\w+-]*)[^\n]*")


@dataclass(frozen=True)
class Block:
    """A runnable block: where it is, its language and its text."""

    file: Path
    line: int  # of the fence
    kind: str  # "python" or "shell"
    code: str

    @property
    def id(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


def runnable_blocks(path: Path) -> list[Block]:
    """The blocks of ``path`` marked runnable.

    Raises:
        ValueError: a marker is not right before a fence, marks a language
            that cannot be run, or its block is never closed (names the line).
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    for number, text in enumerate(lines, start=1):
        if text.strip() != MARKER:
            continue
        where = f"{path.relative_to(ROOT)}:{number}"
        fence = FENCE.fullmatch(lines[number].strip()) if number < len(lines) else None
        if fence is None:
            raise ValueError(f"{where}: {MARKER} must be the line right before a ``` fence")
        kind = LANGUAGES.get(fence.group(2))
        if kind is None:
            raise ValueError(
                f"{where}: a {fence.group(2) or 'plain'} block cannot be run "
                f"(mark python, bash or sh blocks)"
            )
        closing = fence.group(1)
        body = []
        for text_line in lines[number + 1 :]:
            if text_line.strip() == closing:
                break
            body.append(text_line)
        else:
            raise ValueError(f"{where}: the marked block is never closed")
        blocks.append(Block(path, number + 1, kind, "\n".join(body) + "\n"))
    return blocks


BLOCKS = [block for path in DOCS for block in runnable_blocks(path)]


def test_the_runnable_examples_are_marked() -> None:
    """The examples a reader runs first stay marked (removing a marker fails here)."""
    marked: dict[str, list[str]] = {}
    for block in BLOCKS:
        marked.setdefault(str(block.file.relative_to(ROOT)), []).append(block.kind)
    assert marked.get("README.md", []).count("python") >= 1
    assert marked.get("docs/python-api.md", []).count("python") >= 4
    assert "shell" in [kind for kinds in marked.values() for kind in kinds]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f"{MARKER}\n\n```python\nprint(1)\n```\n", "must be the line right before"),
        (f"{MARKER}\n```yaml\na: 1\n```\n", "a yaml block cannot be run"),
        (f"{MARKER}\n```\nplain\n```\n", "a plain block cannot be run"),
        (f"{MARKER}\n```python\nprint(1)\n", "never closed"),
        (f"text\n{MARKER}\n", "must be the line right before"),
    ],
)
def test_a_misplaced_marker_is_an_error_naming_its_line(
    text: str, problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    doc = tmp_path / "doc.md"
    doc.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=rf"doc\.md:\d+: .*{re.escape(problem)}"):
        runnable_blocks(doc)


def test_a_marked_block_is_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    doc = tmp_path / "doc.md"
    doc.write_text(
        "```python\nnot = marked\n```\n"
        f"{MARKER}\n````bash runnable\necho '```'\necho two\n````\nafter\n",
        encoding="utf-8",
    )
    [block] = runnable_blocks(doc)
    assert (block.kind, block.line, block.code) == ("shell", 5, "echo '```'\necho two\n")


def _environment(folder: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not HIDDEN_ENV.fullmatch(key)}
    env["NEXUS_HOME"] = str(folder / ".nexus")
    env["PATH"] = os.pathsep.join([str(ROOT / ".venv" / "bin"), env.get("PATH", "")])
    return env


def _run(block: Block, folder: Path) -> subprocess.CompletedProcess[str]:
    env = _environment(folder)
    if block.kind == "python":
        script = folder / "example.py"
        script.write_text(block.code, encoding="utf-8")
        command = [sys.executable, str(script)]
    else:
        shutil.copytree(ROOT / "examples", folder / "examples")
        (folder / ".venv").symlink_to(ROOT / ".venv", target_is_directory=True)
        script = folder / "example.sh"
        script.write_text(block.code, encoding="utf-8")
        command = ["bash", "-e", "-o", "pipefail", str(script)]
    return subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, timeout=240, check=False
    )


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_a_runnable_block_runs_as_printed(block: Block, tmp_path: Path) -> None:
    done = _run(block, tmp_path)
    assert done.returncode == 0, (
        f"{block.id} exited {done.returncode}\n--- stdout\n{done.stdout[-3000:]}"
        f"\n--- stderr\n{done.stderr[-3000:]}"
    )


def test_a_failing_block_fails_the_test(tmp_path: Path) -> None:
    """The runner sees a failure: a Python error, and a shell command failing mid-block."""
    python = Block(ROOT / "README.md", 1, "python", "import nexus\nnexus.nope\n")
    (tmp_path / "py").mkdir()
    assert "has no attribute 'nope'" in _run(python, tmp_path / "py").stderr
    shell = Block(ROOT / "README.md", 1, "shell", "false\necho never\n")
    (tmp_path / "sh").mkdir()
    done = _run(shell, tmp_path / "sh")
    assert done.returncode != 0
    assert "never" not in done.stdout


def test_a_block_runs_in_its_own_home_without_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("NEXUS_CONFIG", "/nowhere.toml")
    code = (
        "import os\n"
        "assert os.environ['NEXUS_HOME'] == os.path.join(os.getcwd(), '.nexus')\n"
        "assert 'OPENAI_API_KEY' not in os.environ and 'NEXUS_CONFIG' not in os.environ\n"
    )
    done = _run(Block(ROOT / "README.md", 1, "python", code), tmp_path)
    assert done.returncode == 0, done.stderr


def test_the_first_python_api_example_runs_and_its_run_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process, so the run it leaves behind can be looked at."""
    example = next(b for b in BLOCKS if b.file.name == "python-api.md" and b.kind == "python")
    monkeypatch.chdir(tmp_path)  # the example writes .nexus/ and reads ./nexus.toml
    monkeypatch.delenv("NEXUS_CONFIG", raising=False)
    monkeypatch.delenv("NEXUS_HOME", raising=False)
    namespace: dict[str, Any] = {"__name__": "python_api_example"}
    exec(compile(example.code, str(example.file), "exec"), namespace)  # our own docs
    result = namespace["result"]
    assert result.status == "succeeded", result.tasks
    assert {t["status"] for t in result.tasks.values()} == {"succeeded"}
    assert result.outputs["square"] == 9
    assert result.outputs["review"] == {"verdict": "looks right"}
    assert (tmp_path / ".nexus").is_dir()
