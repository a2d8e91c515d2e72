"""``nexus spec``: the summary, the SpecMap as JSON, refusals that exit 2 without a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from nexus.missions.spec import read_spec, spec_schema

SPECS = Path(__file__).parent / "specs"
NEXUS = Path(sys.executable).parent / "nexus"


def nexus_spec(*args: str | Path, home: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(NEXUS), "spec", *map(str, args)],
        capture_output=True,
        text=True,
        env={"NEXUS_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_the_summary_shows_requirements_interfaces_and_constraints(tmp_path: Path) -> None:
    done = nexus_spec(SPECS / "durations.md", home=tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "5 requirements, 9 criteria, 3 interfaces, 2 constraints, 0 ambiguities" in text
    assert "R1  MUST" in text
    assert "R4  SHOULD" in text
    assert "(3 criteria)" in text
    assert "python      parse -> R1" in text
    assert "performance    MUST" in text
    assert "Ambiguities" not in text


def test_the_summary_lists_ambiguities(tmp_path: Path) -> None:
    done = nexus_spec(SPECS / "ambiguous.md", home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Ambiguities (listed, not guessed)" in done.stdout
    assert "contradiction    REQ-4 says MUST and REQ-5 says MUST NOT" in done.stdout


def test_json_is_the_specmap(tmp_path: Path) -> None:
    import json

    done = nexus_spec(SPECS / "durations.md", "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    jsonschema.validate(data, spec_schema())
    assert data == read_spec(str(SPECS / "durations.md")).model_dump(mode="json")


@pytest.mark.parametrize(
    ("name", "code", "message"),
    [
        ("hostile_binary.md", 2, "hostile_binary.md:4: is binary"),
        ("hostile_nested.md", 2, "hostile_nested.md:23: nests lists or quotes"),
        ("missing.md", 4, "missing.md: no such file"),
    ],
)
def test_refusals_name_the_file_and_exit_with_their_code(
    tmp_path: Path, name: str, code: int, message: str
) -> None:
    done = nexus_spec(SPECS / name, home=tmp_path)
    assert done.returncode == code
    assert message in done.stderr
    as_json = nexus_spec(SPECS / name, "--json", home=tmp_path)
    assert as_json.returncode == code
    assert message in as_json.stdout  # {"error": {"message": ..., "exit_code": ...}}


def test_no_requirement_says_what_is_looked_for(tmp_path: Path) -> None:
    prose = tmp_path / "prose.md"
    prose.write_text("# Ideas\n\nWe could build a thing.\n", encoding="utf-8")
    done = nexus_spec(prose, home=tmp_path)
    assert done.returncode == 2
    assert "no requirements found; the reader looks for" in done.stderr


def test_a_specmap_written_by_spec_json_is_read_back(tmp_path: Path) -> None:
    from nexus.missions.spec import SpecError, parse_spec

    spec = parse_spec("# t\n\n- R1: It MUST work.\n", source="t.md")
    kept = tmp_path / "spec.json"
    kept.write_text(spec.model_dump_json())
    assert read_spec(kept) == spec
    broken = tmp_path / "broken.json"
    data = spec.model_dump(mode="json")
    data["requirements"][0]["id"] = 3
    import json

    broken.write_text(json.dumps(data))
    with pytest.raises(SpecError, match=r"broken\.json.*is not a SpecMap.*requirements\.0"):
        read_spec(broken)
