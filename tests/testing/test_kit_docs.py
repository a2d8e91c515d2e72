"""Every example of ``docs/testing.md`` runs as printed, and its tests pass."""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from nexus.gateway.base import ChatMessage, ModelRequest
from nexus.store.sqlite import SQLiteStore
from nexus.testing import ManualClock

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def test_the_testing_guide_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nexus_store: SQLiteStore
) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 5
    namespace: dict[str, Any] = {"__name__": "testing_guide"}
    for block in blocks:  # in order, in one namespace, as a reader would paste them
        exec(compile(block, str(DOC), "exec"), namespace)  # our own docs
    fixtures = {"nexus_store": nexus_store, "nexus_clock": ManualClock()}
    tests = {name: fn for name, fn in namespace.items() if name.startswith("test_")}
    assert sorted(tests) == [
        "test_hello",
        "test_scripts",
        "test_the_researcher_looks_the_city_up_before_it_answers",
    ]
    for fn in tests.values():
        fn(**{name: fixtures[name] for name in inspect.signature(fn).parameters})
    assert namespace["pytest_plugins"] == ["nexus.testing.pytest_plugin"]
    matching = namespace["model"]  # the "matching by request" example's model
    for prompt, text in [("Tell me about Oslo.", '{"city": "Oslo"}'), ("And Bergen?", "I only")]:
        request = ModelRequest("test:m", (ChatMessage("user", prompt),))
        assert asyncio.run(matching.complete(request, {})).text.startswith(text)
