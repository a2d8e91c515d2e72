"""Failure mining: signatures, the constraint book, and hostile constraint files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.domain.errors import UserError
from nexus.missions.verify import (
    BOOK_PATH,
    CheckResult,
    CheckSpec,
    ConstraintBook,
    Diagnostic,
    failure_signature,
)

# -- signatures ---------------------------------------------------------------------------

_WORD = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
_QUOTABLE = st.text(alphabet=st.characters(blacklist_characters="\"'`\n\r“”"), max_size=20)


@settings(max_examples=300, deadline=None)
@given(
    a=_QUOTABLE, b=_QUOTABLE, n=st.integers(0, 10**9), m=st.integers(0, 10**9),
    d1=st.lists(_WORD, min_size=1, max_size=4), d2=st.lists(_WORD, min_size=1, max_size=4),
)  # fmt: skip
def test_the_particulars_do_not_change_a_signature(
    a: str, b: str, n: int, m: int, d1: list[str], d2: list[str]
) -> None:
    """Quoted text, numbers and paths vary between occurrences of one failure class."""

    def message(q: str, num: int, parts: list[str]) -> str:
        return f'Argument "{q}" to function at line {num} in {"/".join(parts)}/x.py is wrong'

    first = Diagnostic("types", "a.py", 1, "arg-type", message(a, n, d1))
    second = Diagnostic("types", "b.py", 99, "arg-type", message(b, m, d2))
    assert failure_signature(first) == failure_signature(second)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.sampled_from(["lint", "types"]), st.none() | _WORD)
def test_signatures_are_one_bounded_line_and_keep_the_checker_and_code(
    message: str, check: str, code: str | None
) -> None:
    signature = failure_signature(Diagnostic(check, None, None, code, message))
    assert "\n" not in signature
    assert "\r" not in signature
    assert signature.startswith(f"{check}|{code or '-'}|")
    assert len(signature) <= len(check) + len(code or "-") + 2 + 160
    other = "types" if check == "lint" else "lint"
    assert failure_signature(Diagnostic(other, None, None, code, message)) != signature


def test_different_failures_differ() -> None:
    unused = Diagnostic("lint", "a.py", 1, "F401", "`os` imported but unused")
    again = Diagnostic("lint", "b/c.py", 7, "F401", "`sys.path` imported but unused")
    star = Diagnostic("lint", "a.py", 1, "F403", "`from x import *` used")
    assert failure_signature(unused) == failure_signature(again)
    assert failure_signature(unused) != failure_signature(star)
    assert failure_signature(unused) == "lint|F401|<q> imported but unused"
    test_fail = Diagnostic("tests", None, None, "failure", "tests.test_a.test_add: assert 3 == 4")
    assert failure_signature(test_fail) == "tests|failure|<name>: assert <n> == <n>"


# -- the book -----------------------------------------------------------------------------


def _failing(check: str, *messages: str, code: str = "E1") -> CheckResult:
    spec = CheckSpec(name=check, kind="command", command=("x",))
    found = [Diagnostic(check, "a.py", i + 1, code, m) for i, m in enumerate(messages)]
    return CheckResult.make(spec, passed=not found, diagnostics=found)


def test_a_recurring_failure_becomes_a_proposed_constraint(tmp_path: Path) -> None:
    book = ConstraintBook.load(tmp_path)
    assert book.constraints == []
    first = [_failing("lint", "`os` imported but unused", "`re` imported but unused")]
    assert book.observe(first, mission="m1") == []  # two in one attempt count once
    [entry] = book.constraints
    assert (entry.count, entry.status) == (1, "observed")
    proposed = book.observe([_failing("lint", "`json` imported but unused")], mission="m2")
    assert [c.signature for c in proposed] == ["lint|E1|<q> imported but unused"]
    assert proposed[0].status == "proposed"
    assert proposed[0].missions == ("m1", "m2")
    assert book.observe([_failing("lint", "`x` imported but unused")], mission="m2") == []
    assert book.constraints[0].count == 3
    assert book.accepted() == []
    assert book.as_instructions() == ""


def test_passing_checks_are_not_mined(tmp_path: Path) -> None:
    book = ConstraintBook(tmp_path)
    ok = CheckResult.make(
        CheckSpec(name="lint", kind="command", command=("x",)),
        passed=True,
        diagnostics=[Diagnostic("lint", None, None, "W", "warning only")],
    )
    book.observe([ok], mission="m")
    assert book.constraints == []


def test_the_book_round_trips_and_accepted_constraints_apply(tmp_path: Path) -> None:
    book = ConstraintBook(tmp_path)
    for mission in ("m1", "m2"):
        book.observe([_failing("types", 'Name "x" is not defined')], mission=mission)
    book.save()
    text = (tmp_path / BOOK_PATH).read_text()
    assert text.startswith("# Failure classes Nexus has seen")
    data = yaml.safe_load(text)
    data["constraints"][0]["status"] = "accepted"
    data["constraints"][0]["instruction"] = "Define every name before use."
    data["constraints"][0]["command"] = ["python", "-m", "pyflakes", "."]
    (tmp_path / BOOK_PATH).write_text(yaml.safe_dump(data))
    again = ConstraintBook.load(tmp_path)
    [accepted] = again.accepted()
    assert accepted.count == 2
    assert again.checkers() == ["types"]
    [check] = again.as_checks()
    assert check.name == f"constraint-{accepted.id}"
    assert check.command == ("python", "-m", "pyflakes", ".")
    assert "Define every name before use." in again.as_instructions()
    assert "(seen 2 times)" in again.as_instructions()
    # an accepted constraint stays accepted as it keeps recurring
    again.observe([_failing("types", 'Name "y" is not defined')], mission="m3")
    assert again.accepted()[0].count == 3


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("constraints: [1, 2]", "constraints.0"),
        ("version: 2\n", "'version'"),
        ("unknown: 1\n", "'unknown'"),
        (
            "constraints:\n- {id: NC-00000000, checker: a, signature: s, status: maybe}\n",
            "constraints.0.status",
        ),
        ("constraints:\n- {id: ../../x, checker: a, signature: s}\n", "constraints.0.id"),
        ("constraints: {a: [}\n", "not valid YAML"),
        (
            "constraints:\n- {id: NC-00000000, checker: a, signature: s}\n"
            "- {id: NC-00000001, checker: a, signature: s}\n",
            "appears twice",
        ),
        ("a: &x [1]\nb: *x\n", "anchors and aliases"),
        ("a: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ],
)
def test_bad_books_name_the_file_and_field(tmp_path: Path, text: str, words: str) -> None:
    (tmp_path / ".nexus").mkdir()
    (tmp_path / BOOK_PATH).write_text(text)
    with pytest.raises(UserError) as err:
        ConstraintBook.load(tmp_path)
    assert str(err.value).startswith(str(tmp_path / BOOK_PATH))
    assert words in str(err.value)


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    (tmp_path / ".nexus").mkdir()
    (tmp_path / BOOK_PATH).write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="anchors and aliases"):
        ConstraintBook.load(tmp_path)


def test_a_huge_book_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".nexus").mkdir()
    (tmp_path / BOOK_PATH).write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(UserError, match="larger than"):
        ConstraintBook.load(tmp_path)


def test_links_are_never_followed_reading_or_writing(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "constraints.yaml").write_text("constraints: []\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".nexus").symlink_to(secret)
    with pytest.raises(UserError, match="symbolic link is never followed"):
        ConstraintBook.load(repo)
    book = ConstraintBook(repo)
    book.observe([_failing("lint", "x")], mission="m")
    with pytest.raises(UserError, match="cannot be written"):
        book.save()
    assert (secret / "constraints.yaml").read_text() == "constraints: []\n"
    assert os.listdir(secret) == ["constraints.yaml"]
    # the file itself a link
    os.unlink(repo / ".nexus")
    (repo / ".nexus").mkdir()
    (repo / BOOK_PATH).symlink_to(secret / "constraints.yaml")
    with pytest.raises(UserError, match="symbolic link"):
        ConstraintBook.load(repo)
    book.save()  # replaces the link itself, never writes through it
    assert not (repo / BOOK_PATH).is_symlink()
    assert (secret / "constraints.yaml").read_text() == "constraints: []\n"


def test_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    book = ConstraintBook(tmp_path)
    book.observe([_failing("lint", "x")], mission="m")
    book.save()
    book.save()
    assert os.listdir(tmp_path / ".nexus") == ["constraints.yaml"]
