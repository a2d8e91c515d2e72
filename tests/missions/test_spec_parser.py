"""The deterministic spec reader: fixtures, each construct it recognises, every refusal."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pydantic
import pytest

from nexus.domain.errors import NotFoundError
from nexus.missions.spec import (
    LOOKS_FOR,
    MAX_BYTES,
    SpecError,
    parse_spec,
    read_spec,
    requirement_id,
    spec_schema,
)

SPECS = Path(__file__).parent / "specs"


def test_the_structured_fixture_reads_whole() -> None:
    spec = read_spec(SPECS / "durations.md")
    assert spec.title == "durations: a small Python library for time spans"
    assert [(r.id, r.level, len(r.criteria)) for r in spec.requirements] == [
        ("R1", "MUST", 3),
        ("R2", "MUST", 2),
        ("R3", "MUST", 2),
        ("R4", "SHOULD", 1),
        ("R5", "MAY", 1),
    ]
    r1 = spec.requirement("R1")
    assert r1.section == (spec.title, "Requirements")
    assert r1.lines == (13, 14)
    assert r1.text.startswith("`parse(text)` MUST turn a span")
    assert r1.criteria[0].text == '`parse("1h30m") == timedelta(hours=1, minutes=30)`'
    assert r1.criteria[0].line == 16
    owned = [(i.requirement, i.symbols) for i in spec.interfaces]
    assert owned == [
        ("R1", ("parse",)),
        ("R3", ("format",)),
        (None, ("parse", "format", "SpanError")),
    ]
    assert all(i.language == "python" for i in spec.interfaces)
    assert [(c.kind, c.level) for c in spec.constraints] == [
        ("performance", "MUST"),
        ("compatibility", "MUST"),
    ]
    assert spec.ambiguities == ()  # the RFC 2119 paragraph and the overview are not requirements


def test_the_ambiguous_fixture_lists_each_kind_of_ambiguity() -> None:
    spec = read_spec(SPECS / "ambiguous.md")
    kinds = {a.kind: a for a in spec.ambiguities}
    assert set(kinds) == {
        "no_criteria", "vague", "no_level", "placeholder", "duplicate", "contradiction",
        "orphan_criteria",
    }  # fmt: skip
    assert kinds["contradiction"].refs == ("REQ-4", "REQ-5")
    vague = [a.message for a in spec.ambiguities if a.kind == "vague"]
    assert any("'should probably', 'etc.', 'fast'" in m for m in vague), vague
    assert any("'if possible'" in m for m in vague), vague
    dup = kinds["duplicate"]
    assert dup.refs[1] == dup.refs[0] + "-2"  # the same text twice: the second gets a suffix
    assert kinds["orphan_criteria"].line == 21  # a top-level heading after other sections
    assert spec.constraints[0].kind == "security"


def test_ids_come_from_the_text_normalised() -> None:
    assert requirement_id("The cache MUST  expire\nentries.") == requirement_id(
        "the cache must expire entries."
    )
    assert requirement_id("a").startswith("R-")
    assert len(requirement_id("a")) == 10
    assert requirement_id("a", "C").startswith("C-")
    spec = parse_spec("# T\n\n- Entries MUST expire.\n", source="t.md")
    assert spec.requirements[0].id == requirement_id("Entries MUST expire.")


@pytest.mark.parametrize(
    ("line", "rid", "text"),
    [
        ("- R1: It MUST work.", "R1", "It MUST work."),
        ("- REQ-3 It MUST work.", "REQ-3", "It MUST work."),
        ("- **FR-2.1:** It MUST work.", "FR-2.1", "It MUST work."),
        ("- [NFR-7] - It MUST work.", "NFR-7", "It MUST work."),
        ("R4. It MUST work.", "R4", "It MUST work."),
    ],
)
def test_explicit_ids_are_kept(line: str, rid: str, text: str) -> None:
    spec = parse_spec(f"# T\n\n{line}\n", source="t.md")
    assert [(r.id, r.text) for r in spec.requirements] == [(rid, text)]


def test_an_explicit_id_used_twice_names_both_lines() -> None:
    text = "# T\n\n- R1: A MUST hold.\n- R2: B MUST hold.\n- R1: C MUST hold.\n"
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="twice.md")
    assert caught.value.message == (
        "twice.md:5: requirement id R1 is used twice, on line 3 and line 5; "
        "an explicit id must be unique"
    )


def test_keywords_levels_and_what_is_not_a_requirement() -> None:
    text = (
        "# T\n\nThe key words MUST and MAY are to be read as in RFC 2119.\n\n"
        "Some prose that must be ignored (lower case).\n\n"
        "- It SHALL hold.\n- It SHALL NOT break.\n- It is RECOMMENDED to log.\n"
        "- It is OPTIONAL to cache.\n- It MAY log but MUST NOT crash.\n"
        "- `MUST` in code is not a keyword, so this is no requirement.\n"
    )
    spec = parse_spec(text, source="t.md")
    assert [r.level for r in spec.requirements] == ["MUST", "MUST NOT", "SHOULD", "MAY", "MUST NOT"]


def test_heading_requirements_criteria_headings_details_and_quotes() -> None:
    text = (
        "# Cache\n\n## R7: Expiry\nEntries MUST expire after `ttl` seconds.\n\n"
        "- the clock is injected\n\n### Acceptance criteria\n- an entry is gone at ttl + 1\n\n"
        "```python\ndef get(key: str) -> bytes | None: ...\n```\n\n"
        "## Notes\n\n> - Quoted items MUST count too.\n>   - with a nested detail\n"
    )
    spec = parse_spec(text, source="t.md")
    r7, quoted = spec.requirements
    assert r7.id == "R7"
    assert r7.text == "Expiry: Entries MUST expire after `ttl` seconds."
    assert r7.details == ("the clock is injected",)
    assert [c.text for c in r7.criteria] == ["an entry is gone at ttl + 1"]
    assert quoted.text == "Quoted items MUST count too."
    assert quoted.details == ("with a nested detail",)
    assert [(i.requirement, i.symbols) for i in spec.interfaces] == [("R7", ("get",))]


def test_criteria_under_a_heading_after_several_requirements_are_not_guessed() -> None:
    text = "# T\n\n## Reqs\n\n- A MUST hold.\n- B MUST hold.\n\n### Acceptance criteria\n\n- ok\n"
    spec = parse_spec(text, source="t.md")
    assert all(not r.criteria for r in spec.requirements)
    (orphan,) = [a for a in spec.ambiguities if a.kind == "orphan_criteria"]
    assert "follow 2 requirements" in orphan.message


def test_requirements_heading_makes_every_item_one() -> None:
    spec = parse_spec("# T\n\n## Requirements\n\n- Log every call\n", source="t.md")
    assert spec.requirements[0].level is None
    assert [a.kind for a in spec.ambiguities] == ["no_level"]


def test_no_requirement_says_what_the_reader_looks_for() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec("# Notes\n\nJust prose here.\n", source="notes.md")
    assert (
        caught.value.message == f"notes.md: no requirements found; the reader looks for {LOOKS_FOR}"
    )


def test_the_specmap_is_frozen_and_matches_its_schema() -> None:
    spec = read_spec(SPECS / "durations.md")
    jsonschema.validate(spec.model_dump(mode="json"), spec_schema())
    with pytest.raises(pydantic.ValidationError):
        spec.title = "other"  # type: ignore[misc]
    bad = spec.model_dump(mode="json")
    bad["requirements"][0]["level"] = "MUSTN'T"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, spec_schema())


# --------------------------------------------------------------------------- refusals


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"nope\.md: no such file"):
        read_spec(tmp_path / "nope.md")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("spec.yaml", b"- R1: It MUST work.\n", "not a Markdown file"),
        ("empty.md", b"  \n\n\t\n", "is empty"),
        ("bom.md", b"\xef\xbb\xbf\n", "is empty"),
        ("nul.md", b"# T\n\nok\n\x00\x01", ":4: is binary"),
        ("latin.md", b"# T\n\ncaf\xe9 MUST\n", ":3: is not UTF-8 text (byte 8 is 0xe9)"),
    ],
)
def test_bad_files_are_refused_naming_file_and_line(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SpecError) as caught:
        read_spec(path)
    assert caught.value.message.startswith(str(path))
    assert message in caught.value.message


def test_a_directory_and_an_oversized_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "d.md").mkdir()
    with pytest.raises(SpecError, match="is a directory"):
        read_spec(tmp_path / "d.md")
    big = tmp_path / "big.md"
    with big.open("wb") as handle:
        handle.truncate(MAX_BYTES + 1)  # sparse: no need to write a megabyte
    with pytest.raises(SpecError, match="a spec may be at most 1,048,576 bytes"):
        read_spec(big)
