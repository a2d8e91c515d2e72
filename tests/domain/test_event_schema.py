"""The published event schema: generated from the payload models, and true of real logs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from nexus.domain.event_schema import json_schema, markdown
from nexus.domain.events import EventType

ROOT = Path(__file__).parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "events"
RECORDED = [
    row
    for path in sorted(FIXTURES.glob("*.json"))
    for row in json.loads(path.read_text())["events"]
]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_committed_docs_events_md_is_the_generated_text() -> None:
    committed = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    assert committed == markdown(), (
        "docs/events.md is stale: regenerate it with "
        "`nexus events --schema --markdown > docs/events.md`"
    )


def test_the_docs_name_every_event_type() -> None:
    text = markdown()
    for type_ in EventType:
        assert f"`{type_}`" in text


def test_every_recorded_event_fits_the_schema(validator: jsonschema.Draft202012Validator) -> None:
    for row in RECORDED:
        errors = [e.message for e in validator.iter_errors(row)]
        assert not errors, (row["type"], row["seq"], errors)


def _first(type_: str) -> dict[str, Any]:
    return copy.deepcopy(next(r for r in RECORDED if r["type"] == type_))


@pytest.mark.parametrize(
    ("type_", "change"),
    [
        ("task.succeeded", lambda d: d.update(surprise=1)),
        ("attempt.started", lambda d: d.pop("attempt")),
        ("task.retry_scheduled", lambda d: d.update(delay_ms="soon")),
        ("effect.recorded", lambda d: d["error"].update(kind=None) if d["error"] else d.pop("key")),
        ("attempt.started", lambda d: d.update(tool=None)),  # left out when empty, never null
    ],
)
def test_a_payload_off_the_schema_is_caught(
    validator: jsonschema.Draft202012Validator, type_: str, change: Any
) -> None:
    row = _first(type_)
    change(row["data"])
    assert not validator.is_valid(row)


def test_an_event_with_the_wrong_payload_for_its_type_is_caught(
    validator: jsonschema.Draft202012Validator,
) -> None:
    row = _first("timer.fired")
    row["type"] = "run.paused"
    assert not validator.is_valid(row)
