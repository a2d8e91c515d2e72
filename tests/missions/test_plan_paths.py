"""Owned paths: what a work item may name, and when two names could mean one file."""

from __future__ import annotations

import fnmatch
import itertools
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nexus.missions.plan import PathRefused, glob_overlap, is_glob, matches, normalise_path
from nexus.missions.plan._paths import PathIndex, literal_prefix, literal_suffix


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("src/a.py", "src/a.py"),
        ("./src//a.py", "src/a.py"),
        ("src/./pkg/a.py", "src/pkg/a.py"),
        ("src/**/**/a.py", "src/**/a.py"),
        ("pages/[id].tsx", "pages/[id].tsx"),
        ("docs/.gitignore", "docs/.gitignore"),  # not '.git' itself
        ("sub/.nexus/x", "sub/.nexus/x"),  # only the top-level .nexus is Nexus's
    ],
)
def test_paths_are_normalised(raw: str, expected: str) -> None:
    assert normalise_path(raw) == expected


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "is empty"),
        ("/etc/passwd", "absolute"),
        ("C:/x.py", "absolute"),
        ("../outside.py", "'..'"),
        ("src/../../etc/passwd", "'..'"),
        ("src/..", "'..'"),
        (".git/hooks/pre-commit", "'.git'"),
        (".GIT/config", "'.git'"),  # a case-insensitive file system maps it onto .git
        ("vendor/lib/.git/config", "'.git'"),  # a nested repository's git dir
        ("**/.git/hooks/x", "'.git'"),
        (".nexus/state.db", "'.nexus'"),
        (".Nexus/keys", "'.nexus'"),
        ("src\\a.py", "backslash"),
        ("src/a\x00.py", "U+0000"),
        ("src/a\n.py", "U+000A"),
        ("src/\u202egnp.py", "U+202E"),  # right-to-left override: reads as another name
        ("src/a\u200b.py", "U+200B"),  # zero-width space
        ("src/", "names a directory"),
        (".", "root"),
        ("./", "directory"),
        ("src/a**.py", "'**' inside"),
        ("x" * 301, "300"),
    ],
)
def test_hostile_or_malformed_paths_are_refused(raw: str, why: str) -> None:
    with pytest.raises(PathRefused, match=re.escape(why)):
        normalise_path(raw)


def test_a_refusal_suggests_the_form_meant() -> None:
    with pytest.raises(PathRefused, match=r"did you mean 'src/\*\*'"):
        normalise_path("src/")
    with pytest.raises(PathRefused, match=re.escape("did you mean 'src/a.py'")):
        normalise_path("src\\a.py")


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("src/*.py", "src/a.py", True),
        ("src/*.py", "src/pkg/a.py", False),
        ("src/**", "src/pkg/a.py", True),
        ("src/**", "src", True),
        ("src/**", "srcx/a.py", False),
        ("**/test_*.py", "test_a.py", True),
        ("**/test_*.py", "a/b/test_a.py", True),
        ("a/**/b.py", "a/b.py", True),
        ("a/**/b.py", "a/x/y/b.py", True),
        ("a/?.py", "a/bb.py", False),
        ("a/?.py", "a/b.py", True),
        ("pages/[id].tsx", "pages/[id].tsx", True),
        ("pages/[id].tsx", "pages/i.tsx", False),  # brackets are ordinary characters
        ("src/a.py", "src/a.py", True),
        ("src/A.py", "src/a.py", False),  # case-sensitive, as git on Linux
        ("*.py", "a\n.py", True),  # any character git allows, newlines included
    ],
)
def test_matching(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("src/*.py", "src/x*.py", True),
        ("src/*.py", "src/*.txt", False),
        ("src/**", "**/test_*.py", True),
        ("lib/*/y.py", "lib/**", True),
        ("a/*", "b/*", False),
        ("a/**/c", "a/b/**", True),
        ("*a", "b*", True),  # "ba"
        ("a*", "*b", True),  # "ab"
        ("a?", "?b", True),
        ("a?", "b?", False),
        ("*", "*y", True),
        ("src/a/*.py", "src/*.py", False),  # one level against the other
        ("**", "x/y/z", True),
        ("a/**/b", "a/c", False),
    ],
)
def test_glob_overlap_examples_and_the_witness_matches_both(a: str, b: str, overlap: bool) -> None:
    witness = glob_overlap(a, b)
    assert (witness is not None) is overlap
    if witness is not None:
        assert matches(a, witness), witness
        assert matches(b, witness), witness
        assert glob_overlap(b, a) is not None


# -- properties: the regex matcher against a reference, overlap exact -----------------------

_SEGMENT = st.text(alphabet="ab*?", min_size=1, max_size=3).filter(lambda s: "**" not in s)
_PATTERN = st.lists(st.one_of(_SEGMENT, st.just("**")), min_size=1, max_size=3).map(
    lambda parts: normalise_path("/".join(parts))
)
_NAMES = ["".join(p) for n in (1, 2, 3) for p in itertools.product("ab", repeat=n)]
_PATHS = ["/".join(p) for n in (1, 2, 3) for p in itertools.product(_NAMES, repeat=n)]


def reference_match(pattern: str, path: str) -> bool:
    """Segment by segment: fnmatch within one, '**' any number of whole segments."""

    def walk(ps: list[str], xs: list[str]) -> bool:
        if not ps:
            return not xs
        if ps[0] == "**":
            return any(walk(ps[1:], xs[k:]) for k in range(len(xs) + 1))
        return bool(xs) and fnmatch.fnmatchcase(xs[0], ps[0]) and walk(ps[1:], xs[1:])

    return walk(pattern.split("/"), path.split("/"))


@settings(max_examples=300, deadline=None)
@given(_PATTERN, st.sampled_from(_PATHS))
def test_the_matcher_agrees_with_a_segment_by_segment_reference(pattern: str, path: str) -> None:
    assert matches(pattern, path) is reference_match(pattern, path)


@settings(max_examples=150, deadline=None)
@given(_PATTERN, _PATTERN)
@example("?/??/**", "**/?/?")  # the only common paths have four components: 'x/xx/x/x'
def test_glob_overlap_is_exact_on_small_paths(a: str, b: str) -> None:
    witness = glob_overlap(a, b)
    common = [p for p in _PATHS if matches(a, p) and matches(b, p)]
    if witness is not None:
        assert matches(a, witness)
        assert matches(b, witness)
    # exact both ways: a witness is a path both match (checked above), and a common path
    # among the short ones enumerated means there must be a witness
    if common:
        assert witness is not None, (a, b, common[0])


def test_is_glob() -> None:
    assert is_glob("src/*.py")
    assert is_glob("a?")
    assert not is_glob("pages/[id].tsx")


@settings(max_examples=300, deadline=None)
@given(_PATTERN, st.lists(st.sampled_from(_PATHS), max_size=40))
def test_the_path_index_finds_exactly_what_the_matcher_does(pattern: str, paths: list[str]) -> None:
    index = PathIndex(paths)
    assert index.matching(pattern) == sorted({p for p in paths if matches(pattern, p)})


@settings(max_examples=300, deadline=None)
@given(_PATTERN, st.sampled_from(_PATHS))
def test_every_match_starts_and_ends_with_the_literal_ends(pattern: str, path: str) -> None:
    if matches(pattern, path):
        assert path.startswith(literal_prefix(pattern))
        assert path.endswith(literal_suffix(pattern))


@pytest.mark.parametrize(
    ("pattern", "prefix", "suffix"),
    [
        ("a/**", "a", ""),
        ("**/b", "", "b"),
        ("a/**/b", "a/", "/b"),
        ("src/x.py", "src/x.py", "src/x.py"),
    ],
)
def test_literal_ends(pattern: str, prefix: str, suffix: str) -> None:
    assert (literal_prefix(pattern), literal_suffix(pattern)) == (prefix, suffix)
