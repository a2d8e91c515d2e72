"""``nexus index PATH``: build and update a repository's index, print ranked context.

Run as a user runs it (the installed ``nexus`` script, a fresh process each
time), but for the missing-FTS5 case, which needs the probe patched in process.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nexus.cli.app import app
from nexus.cli.commands_index import DEFAULT_BUDGET, default_state
from nexus.missions.index import RepoIndex, _db, index_path
from nexus.missions.index._rank import SCOPE_BOOST

NEXUS = Path(sys.executable).parent / "nexus"

CONFIG = '''"""Reading the settings file."""

import json


def parse_config(path, *, strict=True):
    """Read a JSON settings file into a dictionary."""
    with open(path) as handle:
        return dict(json.load(handle))


def dump_config(values, path):
    """Write settings back as JSON."""
    with open(path, "w") as handle:
        json.dump(values, handle)
'''

TEST_CONFIG = """from app.config import parse_config


def test_parse_config_reads_json():
    assert parse_config
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    files = {
        "src/app/__init__.py": "",
        "src/app/config.py": CONFIG,
        "src/app/server.py": "def serve(port):\n    '''Serve HTTP on a port.'''\n",
        "tests/test_config.py": TEST_CONFIG,
        "README.md": "# App\n\nReads settings and serves HTTP.\n",
        "web/app.js": "function start() {\n  return 1;\n}\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    return root


def nexus(
    home: Path, *args: str | Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEXUS_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("FORCE_COLOR", None)
    done = subprocess.run(
        [str(NEXUS), "index", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_first_run_builds_the_index_in_the_home_and_prints_what_it_holds(
    repo: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    done = nexus(home, repo)
    assert done.returncode == 0, done.stderr
    db = index_path(default_state(home, repo))
    assert db.is_file()
    assert db.parent.parent == home / "index"
    lines = done.stdout.splitlines()
    assert lines[0] == f"{repo}  (index: {db})"
    assert lines[1] == (
        "update: 6 added, 0 changed, 0 removed, 1 newly skipped, 0 unchanged; "
        "7 files read, 6 parsed"
    )
    with RepoIndex(repo, db) as held:
        stats = held.stats()
    assert stats.files == 6
    assert lines[2] == (
        f"index: 6 files (1 skipped), {stats.symbols} symbols, {stats.imports} imports, "
        f"1 test, {stats.chunks} chunks"
    )
    assert any(line.split()[:3] == ["python", "4", "symbols:"] for line in lines), lines
    assert any(line.split()[:3] == ["markdown", "1", "file"] for line in lines), lines
    assert "skipped (1)" in lines
    assert any(line.split()[0] == "logo.png" and "binary" in line for line in lines), lines
    assert "added (" not in done.stdout  # a first build adds everything: no list


def test_json_holds_the_update_the_stats_and_the_extraction_per_language(
    repo: Path, tmp_path: Path
) -> None:
    document = as_json(nexus(tmp_path / "home", repo, "--json"))
    assert document["repository"] == str(repo)
    update = document["update"]
    assert sorted(update["added"]) == [
        "README.md", "src/app/__init__.py", "src/app/config.py", "src/app/server.py",
        "tests/test_config.py", "web/app.js",
    ]  # fmt: skip
    assert [entry["path"] for entry in update["skipped"]] == ["logo.png"]
    assert "binary" in update["skipped"][0]["reason"]
    assert (update["read"], update["parsed"], update["unchanged"]) == (7, 6, 0)
    stats = document["stats"]
    assert (stats["files"], stats["tests"]) == (6, 1)
    # four modules, four functions (a test among them), and start() when tree-sitter reads JS
    assert stats["symbols"] in (8, 9)
    assert stats["languages"]["python"] == {"files": 4, "extraction": "symbols: ast"}
    assert stats["languages"]["javascript"]["files"] == 1
    assert stats["languages"]["javascript"]["extraction"] in (
        "symbols: tree-sitter",
        "file level: tree-sitter or its javascript grammar is not installed "
        "(pip install 'nexus-missions[index]')",
    )
    assert stats["skipped"] == {"logo.png": update["skipped"][0]["reason"]}
    assert "context" not in document


def test_an_update_rereads_only_what_changed_and_names_it(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    as_json(nexus(home, repo, "--json"))
    again = as_json(nexus(home, repo, "--json"))["update"]
    assert (again["read"], again["parsed"], again["unchanged"]) == (0, 0, 7)
    (repo / "src/app/server.py").write_text("def serve(port, host):\n    pass\n")
    (repo / "README.md").unlink()
    (repo / "src/app/cache.py").write_text("def cached():\n    pass\n")
    done = nexus(home, repo)
    assert done.returncode == 0, done.stderr
    assert (
        "update: 1 added, 1 changed, 1 removed, 0 newly skipped, 5 unchanged; "
        "2 files read, 2 parsed"
    ) in done.stdout
    lines = done.stdout.splitlines()
    for title, path in (("added", "src/app/cache.py"), ("changed", "src/app/server.py"),
                        ("removed", "README.md")):  # fmt: skip
        at = lines.index(f"{title} (1)")
        assert lines[at + 1].strip() == path


def test_the_same_repository_through_a_link_is_the_same_index(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    as_json(nexus(home, repo, "--json"))
    (tmp_path / "link").symlink_to(repo)
    through = as_json(nexus(home, "link", "--json", cwd=tmp_path))
    assert through["repository"] == str(repo)
    assert through["update"]["read"] == 0
    assert [p.name for p in (home / "index").iterdir()] == [default_state(home, repo).name]


def test_state_puts_the_index_where_it_is_told(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    document = as_json(nexus(home, repo, "--state", tmp_path / "state", "--json"))
    assert document["index"] == str(tmp_path / "state" / "index.sqlite")
    assert (tmp_path / "state" / "index.sqlite").is_file()
    assert not (home / "index").exists()


def test_a_query_prints_ranked_snippets_within_the_budget(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    document = as_json(nexus(home, repo, "--query", "parse_config", "--budget", "60", "--json"))
    context = document["context"]
    assert (context["query"], context["budget_tokens"]) == ("parse_config", 60)
    items = context["items"]
    assert items, context
    assert sum(item["tokens"] for item in items) == context["used_tokens"] <= 60
    best = items[0]
    assert best["path"] == "src/app/config.py"
    assert "defines function parse_config" in best["reasons"]
    assert best["text"].startswith("def parse_config")
    assert best["tokens"] == -(-len(best["text"]) // 4)
    done = nexus(home, repo, "--query", "parse_config", "--budget", "60")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    head = f"context for 'parse_config': {len(items)} snippet"
    assert any(line.startswith(head) for line in lines), lines
    at = lines.index(
        f"1. src/app/config.py:{best['start_line']}-{best['end_line']}  {best['tokens']} tokens"
    )
    assert lines[at + 1].startswith("   why: ")
    assert "defines function parse_config" in lines[at + 1]
    assert lines[at + 2] == "   | def parse_config(path, *, strict=True):"


def test_the_default_budget_and_scope(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    plain = as_json(nexus(home, repo, "--query", "serve settings", "--json"))["context"]
    assert plain["budget_tokens"] == DEFAULT_BUDGET
    scoped = as_json(
        nexus(home, repo, "--query", "serve settings", "--scope", "src/app/server.py", "--json")
    )["context"]
    before = next(item for item in plain["items"] if item["path"] == "src/app/server.py")
    after = next(item for item in scoped["items"] if item["path"] == "src/app/server.py")
    assert after["score"] == pytest.approx(before["score"] * SCOPE_BOOST)
    assert "in scope" in after["reasons"]
    assert not any("in scope" in item["reasons"] for item in plain["items"])
    assert [i["path"] for i in scoped["items"] if "in scope" in i["reasons"]] == [after["path"]]
    absolute = as_json(
        nexus(
            home, repo, "--query", "serve settings", "--scope", repo / "src/app/server.py", "--json"
        )
    )["context"]
    assert absolute["items"] == scoped["items"]


def test_a_query_that_finds_nothing_or_fits_nothing_says_so(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    none = nexus(home, repo, "--query", "zeppelin")
    assert "nothing in the index matches" in none.stdout
    tight = nexus(home, repo, "--query", "parse_config", "--budget", "0")
    assert tight.returncode == 0, tight.stderr
    assert "no snippet fits in 0 tokens" in tight.stdout
    blank = nexus(home, repo, "--query", "  !? ")
    assert "the query has no word to search for" in blank.stdout


def test_a_scope_that_names_nothing_warns(repo: Path, tmp_path: Path) -> None:
    done = nexus(tmp_path / "home", repo, "--query", "serve", "--scope", "src/nope")
    assert done.returncode == 0, done.stderr
    assert f"warning: --scope src/nope: no such path in {repo}" in done.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["{tmp}/nope"], 4, "{tmp}/nope: no such directory to index"),
        (["{repo}/README.md"], 2, "{repo}/README.md: not a directory"),
        (["{repo}", "--budget", "10"], 2, "--budget and --scope apply to --query"),
        (["{repo}", "--scope", "src"], 2, "--budget and --scope apply to --query"),
        (["{repo}", "--query", "x", "--scope", "../other"], 2, "--scope ../other: not inside"),
        (["{repo}", "--query", "x", "--scope", "{tmp}"], 2, "not inside the repository {repo}"),
        (["{repo}", "--query", "x", "--budget", "-1"], 2, "--budget"),
        (["{repo}", "--state", "{repo}/README.md"], 2, "--state {repo}/README.md: not a directory"),
        (["{repo}", "--state", "{tmp}/junk"], 2, "junk/index.sqlite: not a repository index"),
    ],
)
def test_bad_input_is_a_clear_error(
    repo: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "index.sqlite").write_bytes(b"not a database at all " * 100)

    def fill(text: str) -> str:
        return text.format(tmp=tmp_path, repo=repo)

    done = nexus(tmp_path / "home", *map(fill, args))
    assert done.returncode == code, done.stdout + done.stderr
    assert fill(message) in done.stderr
    assert done.stdout == ""


def test_errors_in_json_mode_are_json(tmp_path: Path) -> None:
    done = nexus(tmp_path / "home", tmp_path / "nope", "--json")
    assert done.returncode == 4
    assert json.loads(done.stdout)["error"] == {
        "message": f"{tmp_path}/nope: no such directory to index",
        "exit_code": 4,
    }


def test_without_fts5_the_command_says_so_and_exits_2(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_db, "has_fts5", lambda: False)
    result = CliRunner().invoke(
        app,
        ["index", str(repo), "--state", str(tmp_path / "state")],
        env={"NEXUS_HOME": str(tmp_path / "home"), "NO_COLOR": "1", "COLUMNS": "200"},
    )
    assert result.exit_code == 2, result.output
    assert "was built without FTS5" in result.output
    assert not (tmp_path / "state" / "index.sqlite").exists()


def test_the_cli_does_not_load_the_index_until_the_command_runs(tmp_path: Path) -> None:
    probe = (
        "import sys, nexus.cli.app, nexus.cli.commands_index\n"
        "print(sorted(m for m in sys.modules if m.startswith('nexus.missions')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, "NEXUS_HOME": str(tmp_path / "home")},
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]"


def test_an_index_another_process_holds_exits_1_naming_it(repo: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    as_json(nexus(tmp_path / "home", repo, "--state", state, "--json"))
    holder = sqlite3.connect(index_path(state), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # a writer that does not let go (sqlite waits 5 s)
        done = nexus(tmp_path / "home", repo, "--state", state)
    finally:
        holder.close()
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{index_path(state)}: cannot write the index: database is locked" in done.stderr
