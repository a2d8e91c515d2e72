"""``nexus events --schema``: the published schema from the command line."""

from __future__ import annotations

from pathlib import Path

from cli_support import nexus

from nexus.domain.event_schema import json_schema, markdown


def test_events_schema_prints_the_json_schema(tmp_path: Path) -> None:
    out = nexus(tmp_path / "home", "events", "--schema")
    assert out.code == 0, out.text
    assert out.json() == json_schema()


def test_events_schema_markdown_is_docs_events_md(tmp_path: Path) -> None:
    out = nexus(tmp_path / "home", "events", "--schema", "--markdown")
    assert out.code == 0, out.text
    assert out.stdout == markdown()


def test_events_needs_a_run_id_or_schema(tmp_path: Path) -> None:
    out = nexus(tmp_path / "home", "events")
    assert out.code == 2
    assert "give a run id" in out.stderr
    mixed = nexus(tmp_path / "home", "events", "RUN", "--schema")
    assert mixed.code == 2
    assert "--schema takes no run id" in mixed.stderr
