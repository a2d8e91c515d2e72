"""The repository index: what it extracts, ranked context, incremental updates."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import nexus.missions.index._index as index_module
from nexus.domain.errors import NotFoundError, UserError
from nexus.missions.index import RepoIndex, _db, estimate_tokens, index_path

CONFIG = '''"""Reading the settings file."""

import json
from pathlib import Path


class ConfigError(ValueError):
    """A settings file that cannot be read."""


def parse_config(path: Path, *, strict: bool = True) -> dict[str, object]:
    """Read a JSON settings file into a dictionary."""
    return dict(json.loads(path.read_text()))


class Loader:
    """Loads settings lazily."""

    async def load(self, name: str) -> None:
        """Load one named setting."""
        def helper() -> None:
            pass
'''

SERVER = '''"""The HTTP server."""

from . import config
from .config import parse_config


def serve(port: int) -> None:
    """Serve requests on a port."""
    parse_config(None)
'''

TEST_CONFIG = """from app.config import parse_config


def test_parse_config_reads_json():
    assert parse_config


class TestLoader:
    def test_load(self):
        pass

    def helper(self):
        pass
"""


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write(
        root,
        {
            "src/app/__init__.py": "",
            "src/app/config.py": CONFIG,
            "src/app/server.py": SERVER,
            "tests/test_config.py": TEST_CONFIG,
            "README.md": "# App\n\nA small app that reads settings and serves HTTP.\n",
        },
    )
    return root


@pytest.fixture
def index(repo: Path, tmp_path: Path) -> RepoIndex:
    built = RepoIndex(repo, index_path(tmp_path / "state"))
    built.update()
    return built


def test_python_symbols_with_qualified_names_signatures_docs_and_lines(index: RepoIndex) -> None:
    assert index.symbols("parse_config") == [
        (
            "src/app/config.py",
            "function",
            "def parse_config(path: Path, *, strict: bool=True) -> dict[str, object]",
            11,
            13,
        )
    ]
    assert index.symbols("Loader.load") == [
        ("src/app/config.py", "method", "async def load(self, name: str) -> None", 19, 22)
    ]
    assert index.symbols("ConfigError")[0][2] == "class ConfigError(ValueError)"
    assert index.symbols("Loader.load.helper")[0][1] == "local"
    rows = index._conn.execute(
        "SELECT s.doc FROM symbols s WHERE s.kind = 'module' AND s.qualname = 'app.config'"
    ).fetchall()
    assert rows == [("Reading the settings file.",)]


def test_imports_resolve_relative_ones_against_the_package(index: RepoIndex) -> None:
    rows = index._conn.execute(
        "SELECT i.module FROM imports i JOIN files f ON f.id = i.file_id"
        " WHERE f.path = 'src/app/server.py' ORDER BY i.module"
    ).fetchall()
    assert [r[0] for r in rows] == ["app", "app.config", "app.config.parse_config"]


def test_tests_are_test_functions_and_methods_of_test_classes(index: RepoIndex) -> None:
    rows = index._conn.execute(
        "SELECT f.path, t.qualname FROM tests t JOIN files f ON f.id = t.file_id ORDER BY 2"
    ).fetchall()
    assert rows == [
        ("tests/test_config.py", "TestLoader.test_load"),
        ("tests/test_config.py", "test_parse_config_reads_json"),
    ]
    stats = index.stats()
    assert stats.tests == 2
    assert stats.files == 5
    assert stats.languages == {"markdown": 1, "python": 4}
    assert stats.extraction["python"] == "symbols: ast"
    assert stats.extraction["markdown"].startswith("file level")


def test_context_ranks_the_defining_chunk_first_and_says_why(index: RepoIndex) -> None:
    pack = index.context("where is parse_config defined", budget_tokens=4000)
    first = pack.items[0]
    assert (first.path, first.start_line) == ("src/app/config.py", 11)
    assert any(r.startswith("defines function parse_config") for r in first.reasons)
    assert any(r.startswith("bm25") for r in first.reasons)
    assert "parse" in pack.terms
    assert "config" in pack.terms
    test_items = [i for i in pack.items if i.path == "tests/test_config.py"]
    assert test_items
    assert any("test importing src/app/config.py" in r for r in test_items[0].reasons)


def test_scope_boosts_its_files(index: RepoIndex) -> None:
    plain = index.context("settings", budget_tokens=4000)
    scoped = index.context("settings", budget_tokens=4000, scope=["README.md"])
    assert plain.items[0].path != "README.md"
    assert scoped.items[0].path == "README.md"
    assert "in scope" in scoped.items[0].reasons


def test_tests_importing_a_scoped_file_are_brought_in(index: RepoIndex) -> None:
    pack = index.context("serves", budget_tokens=4000, scope=["src/app/config.py"])
    brought = [i for i in pack.items if i.path == "tests/test_config.py"]
    assert brought, [i.path for i in pack.items]
    assert brought[0].reasons == ("test importing src/app/config.py",)


def test_context_fits_the_budget_and_cuts_to_whole_lines(index: RepoIndex) -> None:
    full = index.context("parse_config settings", budget_tokens=100_000)
    total = sum(i.tokens for i in full.items)
    assert all(i.tokens == estimate_tokens(i.text) for i in full.items)
    for budget in (0, 20, 50, 120, total - 1):
        pack = index.context("parse_config settings", budget_tokens=budget)
        assert pack.used_tokens <= budget
        for item in pack.items:
            if item.truncated:
                assert item.reasons[-1].startswith("cut to")
                assert item.text.count("\n") == item.end_line - item.start_line
    assert index.context("parse_config settings", budget_tokens=0).items == ()
    with pytest.raises(ValueError, match="budget_tokens"):
        index.context("x", budget_tokens=-1)


def test_context_is_deterministic_and_ties_order_by_path(tmp_path: Path) -> None:
    root = tmp_path / "same"
    write(root, {f"pkg/m{n}.py": "def same():\n    return 1\n" for n in (3, 1, 2)})
    with RepoIndex(root, tmp_path / "i.sqlite") as idx:
        idx.update()
        packs = [idx.context("same", budget_tokens=1000) for _ in range(3)]
    assert packs[0] == packs[1] == packs[2]
    assert [i.path for i in packs[0].items] == ["pkg/m1.py", "pkg/m2.py", "pkg/m3.py"]


def test_a_query_with_no_words_returns_nothing(index: RepoIndex) -> None:
    assert index.context("?! -- ..", budget_tokens=100).items == ()
    assert index.context('"OR" AND NOT (', budget_tokens=100).terms == ("or", "and", "not")


def count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    parsed: list[str] = []
    real = index_module.outline

    def counting(path: str, text: str) -> index_module.Outline:
        parsed.append(path)
        return real(path, text)

    monkeypatch.setattr(index_module, "outline", counting)
    return parsed


def test_update_reparses_only_changed_files_and_drops_deleted_ones(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed = count_parses(monkeypatch)
    with RepoIndex(repo, tmp_path / "i.sqlite") as idx:
        first = idx.update()
        assert len(first.added) == 5
        assert first.parsed == 5
        assert sorted(parsed) == sorted(p for p in first.added if p.endswith(".py"))
        parsed.clear()

        again = idx.update()
        assert (again.read, again.parsed, again.unchanged) == (0, 0, 5)
        assert parsed == []

        (repo / "src/app/server.py").write_text(SERVER + "\n\ndef stop():\n    pass\n")
        (repo / "tests/test_config.py").unlink()
        (repo / "src/app/new.py").write_text("def fresh():\n    pass\n")
        touched = repo / "README.md"  # same bytes, new mtime: read, hashed, not parsed
        os.utime(touched, ns=(1, 1))
        report = idx.update()
        assert report.changed == ("src/app/server.py",)
        assert report.added == ("src/app/new.py",)
        assert report.removed == ("tests/test_config.py",)
        assert (report.read, report.parsed) == (3, 2)
        assert sorted(parsed) == ["src/app/new.py", "src/app/server.py"]
        assert idx.symbols("stop")[0][0] == "src/app/server.py"
        assert idx.symbols("test_parse_config_reads_json") == []
        assert idx.stats().tests == 0
        assert not any(i.path == "tests/test_config.py" for i in idx.context("config", 9999).items)
        assert idx.update().read == 0  # the new mtime was recorded


def test_a_git_repository_is_listed_by_git_and_respects_gitignore(
    repo: Path, tmp_path: Path
) -> None:
    write(repo, {".gitignore": "ignored/\n*.log\n", "ignored/x.py": "X = 1\n", "a.log": "x\n"})
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    write(repo, {"untracked.py": "def u():\n    pass\n"})
    with RepoIndex(repo, tmp_path / "i.sqlite") as idx:
        report = idx.update()
    assert "untracked.py" in report.added
    assert ".gitignore" in report.added
    assert not any(p.startswith("ignored/") or p.endswith(".log") for p in report.added)


def test_a_walk_skips_virtualenvs_dependencies_and_build_dirs(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    write(
        root,
        {
            "keep.py": "A = 1\n",
            ".venv/lib/x.py": "B = 1\n",
            "node_modules/m/index.js": "x\n",
            "build/out.py": "C = 1\n",
            "pkg.egg-info/PKG-INFO": "x\n",
            ".git/config": "x\n",
        },
    )
    with RepoIndex(root, tmp_path / "i.sqlite") as idx:
        assert idx.update().added == ("keep.py",)


def test_a_missing_repository_or_a_bad_index_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such directory"):
        RepoIndex(tmp_path / "nope", tmp_path / "i.sqlite")
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database, not at all" * 100)
    with pytest.raises(UserError, match=r"bad\.sqlite: not a repository index"):
        RepoIndex(tmp_path, bad)


def test_without_fts5_the_error_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_db, "has_fts5", lambda: False)
    with pytest.raises(UserError, match="without FTS5"):
        RepoIndex(tmp_path, tmp_path / "i.sqlite")


def test_an_index_of_another_schema_version_is_rebuilt(repo: Path, tmp_path: Path) -> None:
    path = tmp_path / "i.sqlite"
    with RepoIndex(repo, path) as idx:
        idx.update()
        idx._conn.execute("PRAGMA user_version = 99")
    with RepoIndex(repo, path) as idx:
        assert idx.stats().files == 0
        assert len(idx.update().added) == 5
