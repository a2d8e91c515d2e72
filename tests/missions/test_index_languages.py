"""Other languages in the repository index: tree-sitter symbols, or file level without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus.missions.index import RepoIndex, _treesitter

JS = """// the app
export function parseConfig(path) { return 1 }

class Server extends Base {
  start(port) { return port }
}

const helper = () => 2;
"""
TS = """interface Shape { area(): number }
type Id = string;
export class Circle implements Shape { area(): number { return 1 } }
"""
GO = """package main

type Server struct { port int }

func (s *Server) Run(ctx context.Context) error { return nil }
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "app.js").write_text(JS)
    (root / "shape.ts").write_text(TS)
    (root / "main.go").write_text(GO)
    (root / "lib.rs").write_text("fn rust_only() {}\n")
    return root


def test_tree_sitter_symbols_for_javascript_typescript_and_go(repo: Path, tmp_path: Path) -> None:
    pytest.importorskip("tree_sitter")
    pytest.importorskip("tree_sitter_javascript")
    pytest.importorskip("tree_sitter_typescript")
    pytest.importorskip("tree_sitter_go")
    with RepoIndex(repo, tmp_path / "i.sqlite") as idx:
        idx.update()
        assert idx.symbols("parseConfig") == [
            ("app.js", "function", "function parseConfig(path)", 2, 2)
        ]
        assert idx.symbols("Server.start") == [("app.js", "method", "start(port)", 5, 5)]
        assert idx.symbols("helper")[0][:2] == ("app.js", "function")
        assert [s[1] for s in idx.symbols("Shape")] == ["interface"]
        assert idx.symbols("Circle.area")[0][0] == "shape.ts"
        assert idx.symbols("Server.Run") == [
            ("main.go", "method", "func (s *Server) Run(ctx context.Context) error", 5, 5)
        ]
        first = idx.context("parse config", budget_tokens=1000).items[0]
        stats = idx.stats()
    assert (first.path, first.start_line) == ("app.js", 2)
    assert stats.extraction["go"] == "symbols: tree-sitter"
    assert stats.extraction["rust"] == "file level: no symbol extractor for this language"


def test_a_broken_file_in_another_language_is_noted(tmp_path: Path) -> None:
    pytest.importorskip("tree_sitter")
    pytest.importorskip("tree_sitter_javascript")
    root = tmp_path / "repo"
    root.mkdir()
    (root / "bad.js").write_text("function ( { broken\n")
    with RepoIndex(root, tmp_path / "i.sqlite") as idx:
        idx.update()
        stats = idx.stats()
    assert stats.notes == {"bad.js": "tree-sitter found syntax errors: symbols may be partial"}


def test_without_tree_sitter_files_are_indexed_at_file_level(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_treesitter, "_parser", lambda language: None)
    with RepoIndex(repo, tmp_path / "i.sqlite") as idx:
        report = idx.update()
        stats = idx.stats()
        found = idx.context("parseConfig", budget_tokens=1000)
        assert idx.symbols("parseConfig") == []
    assert len(report.added) == 4
    assert stats.symbols == 0
    assert stats.extraction["javascript"] == (
        "file level: tree-sitter or its javascript grammar is not installed "
        "(pip install 'nexus-missions[index]')"
    )
    assert [i.path for i in found.items] == ["app.js"]
