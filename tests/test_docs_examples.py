"""The first example of ``docs/python-api.md`` runs as printed and its run succeeds."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def test_the_python_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)[0]
    monkeypatch.chdir(tmp_path)  # the example writes .nexus/ and reads ./nexus.toml
    monkeypatch.delenv("NEXUS_CONFIG", raising=False)
    monkeypatch.delenv("NEXUS_HOME", raising=False)
    namespace: dict[str, Any] = {"__name__": "python_api_example"}
    exec(compile(example, str(DOC), "exec"), namespace)  # our own docs
    result = namespace["result"]
    assert result.status == "succeeded", result.tasks
    assert {t["status"] for t in result.tasks.values()} == {"succeeded"}
    assert (tmp_path / ".nexus").is_dir()
