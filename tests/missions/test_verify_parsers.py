"""Reading checker output: ruff, mypy, bandit, the build script and JUnit XML (hostile too)."""

from __future__ import annotations

import contextlib
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.missions.verify._parsers import (
    MAX_JUNIT_BYTES,
    JUnitRefused,
    parse_bandit,
    parse_build,
    parse_junit,
    parse_lines,
    parse_mypy,
    parse_ruff,
)

ROOT = "/work/tree"


def test_ruff_json_gives_relative_files_lines_and_codes() -> None:
    out = json.dumps(
        [
            {
                "code": "F401",
                "message": "`os` imported but unused",
                "filename": f"{ROOT}/pkg/a.py",
                "location": {"row": 3, "column": 8},
            }
        ]
    )
    [d] = parse_ruff("lint", out, ROOT) or []
    assert (d.check, d.file, d.line, d.code) == ("lint", "pkg/a.py", 3, "F401")


@pytest.mark.parametrize("out", ["", "not json", '{"a": 1}', "[1, 2]"])
def test_unreadable_ruff_output_is_none(out: str) -> None:
    assert parse_ruff("lint", out, ROOT) is None


def test_mypy_lines_fold_notes_into_their_error() -> None:
    out = (
        "pkg/a.py:3:5: error: Incompatible return value type "
        '(got "int", expected "str")  [return-value]\n'
        'pkg/a.py:3:5: note: Use "-> None"\n'
        "pkg/b.py:9: error: Name 'x' is not defined  [name-defined]\n"
        "Success: nothing\n"
    )
    first, second = parse_mypy("types", out, ROOT) or []
    assert (first.file, first.line, first.code) == ("pkg/a.py", 3, "return-value")
    assert "note: Use" in first.message
    assert (second.file, second.line, second.code) == ("pkg/b.py", 9, "name-defined")


def test_bandit_json() -> None:
    out = json.dumps(
        {
            "results": [
                {
                    "filename": "./pkg/a.py",
                    "line_number": 4,
                    "test_id": "B602",
                    "issue_text": "shell=True",
                    "issue_severity": "HIGH",
                }
            ]
        }
    )
    [d] = parse_bandit("security", out, ROOT) or []
    assert (d.file, d.line, d.code) == ("pkg/a.py", 4, "B602")
    assert "HIGH" in d.message
    assert parse_bandit("security", "[]", ROOT) is None


def test_build_lines_and_generic_lines() -> None:
    line = json.dumps({"file": "./x.py", "line": 2, "code": "SyntaxError", "message": "bad"})
    [d] = parse_build("build", f"noise\n{line}\n", ROOT) or []
    assert (d.file, d.line, d.code) == ("x.py", 2, "SyntaxError")
    assert [d.message for d in parse_lines("todo", "a\n\n b \n", ROOT)] == ["a", "b"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_parsers_never_raise_on_any_text(text: str) -> None:
    parse_ruff("c", text, ROOT)
    parse_mypy("c", text, ROOT)
    parse_bandit("c", text, ROOT)
    parse_build("c", text, ROOT)
    parse_lines("c", text, ROOT)
    with contextlib.suppress(JUnitRefused):
        parse_junit("c", text.encode(), ROOT)


# -- JUnit --------------------------------------------------------------------------------

JUNIT = b"""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="99" failures="0" errors="0">
<testcase classname="tests.test_a" name="test_ok" time="0.1"/>
<testcase classname="tests.test_a.TestB" name="test_bad" time="0.1">
  <failure message="assert 3 == 4">def test_bad():
&gt;  assert add(1, 2) == 4
E  assert 3 == 4</failure></testcase>
<testcase classname="tests.test_c" name="test_err"><error message="fixture boom"/></testcase>
<testcase classname="tests.test_c" name="test_skip"><skipped message="later"/></testcase>
</testsuite></testsuites>
"""


def test_junit_counts_cases_not_the_attributes_it_claims() -> None:
    report = parse_junit("tests", JUNIT, ROOT)
    assert (report.tests, report.failures, report.errors, report.skipped) == (4, 1, 1, 1)
    bad, err = report.failed
    assert bad.file == "tests/test_a.py"
    assert bad.code == "failure"
    assert bad.message.startswith("tests.test_a.TestB.test_bad: assert 3 == 4")
    assert "> " in bad.message or ">  assert" in bad.message
    assert (err.code, err.file) == ("error", "tests/test_c.py")


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><testsuite>&b;</testsuite>',
            "document type declaration",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE t SYSTEM "file:///etc/shadow"><testsuite/>',
            "document type declaration",
        ),
        (b"<testsuite>" + b"<a>" * 100 + b"</a>" * 100 + b"</testsuite>", "too deep"),
        (b"<testsuite><testcase>", "not well-formed"),
        (b"", "not well-formed"),
    ],
)
def test_hostile_junit_is_refused(doc: bytes, why: str) -> None:
    with pytest.raises(JUnitRefused, match=why):
        parse_junit("tests", doc, ROOT)


def test_a_huge_junit_is_refused_before_it_is_parsed() -> None:
    doc = b"<testsuite>" + b" " * MAX_JUNIT_BYTES + b"</testsuite>"
    started = time.monotonic()
    with pytest.raises(JUnitRefused, match="over"):
        parse_junit("tests", doc, ROOT)
    assert time.monotonic() - started < 1


def test_too_many_elements_are_refused() -> None:
    doc = b"<testsuite>" + b"<testcase/>" * 200_001 + b"</testsuite>"
    with pytest.raises(JUnitRefused, match="too many elements"):
        parse_junit("tests", doc, ROOT)
