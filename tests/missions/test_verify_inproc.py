"""The checks Nexus runs itself: scope globs, the secret scan, the docs check."""

from __future__ import annotations

import fnmatch
import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.missions.plan._paths import PathRefused, normalise_path
from nexus.missions.plan._paths import matches as plan_matches
from nexus.missions.verify import glob_match
from nexus.missions.verify._inproc import (
    MAX_API_BYTES,
    MAX_SECRETS,
    FileReader,
    check_api,
    check_docs,
    check_scope,
    public_api,
    scan_secrets,
)

# -- scope --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("src/**", "src/a/b/c.py", True),
        ("src/**", "srcx/a.py", False),
        ("src/", "src/a.py", True),
        ("src/*.py", "src/a.py", True),
        ("src/*.py", "src/a/b.py", False),
        ("src/**/*.py", "src/b.py", True),
        ("src/**/*.py", "src/a/b/c.py", True),
        ("**/test_*.py", "test_x.py", True),
        ("**/test_*.py", "a/b/test_x.py", True),
        ("docs/?.md", "docs/a.md", True),
        ("docs/?.md", "docs/ab.md", False),
        ("pages/[id].tsx", "pages/[id].tsx", True),  # brackets are ordinary characters
        ("pages/[id].tsx", "pages/i.tsx", False),
        ("{a,b}.py", "{a,b}.py", True),
        ("a.py", "a_py", False),
        ("A.py", "a.py", False),
        ("**", "a/b", True),
        ("src/**", "src", True),  # none included, as the plan reads it
    ],
)
def test_globs(pattern: str, path: str, matches: bool) -> None:
    assert glob_match(pattern, path) is matches


_COMPONENT = st.text(alphabet="ab*?.[]", min_size=1, max_size=4).filter(
    lambda c: c not in (".", "..") and "**" not in c
)
_NAME = st.text(alphabet="ab.[]", min_size=1, max_size=4).filter(lambda c: c not in (".", ".."))


@settings(max_examples=400, deadline=None)
@given(
    st.lists(_COMPONENT | st.just("**"), min_size=1, max_size=4),
    st.lists(_NAME, min_size=1, max_size=5),
)
def test_globs_mean_what_the_plans_owns_mean(pattern: list[str], path: list[str]) -> None:
    """The scope check reads a plan's ``owns`` exactly as the plan compiler does."""
    try:
        glob = normalise_path("/".join(pattern))
    except PathRefused:
        return
    name = "/".join(path)
    assert glob_match(glob, name) is plan_matches(glob, name)


@settings(max_examples=300, deadline=None)
@given(st.lists(_COMPONENT, min_size=1, max_size=3), st.lists(_NAME, min_size=1, max_size=3))
def test_globs_without_double_stars_agree_with_fnmatch_per_component(
    pattern: list[str], path: list[str]
) -> None:
    """Without ``**``, a glob matches exactly when each component does (brackets literal)."""
    expected = len(pattern) == len(path) and all(
        fnmatch.fnmatchcase(c, p.replace("[", "[[]")) for p, c in zip(pattern, path, strict=False)
    )
    assert glob_match("/".join(pattern), "/".join(path)) is expected


def test_scope_names_each_unowned_or_escaping_path() -> None:
    found = check_scope(
        "scope", ["src/a.py", "README.md", "../etc/passwd", "/etc/shadow", ""], ["src/**"]
    )
    assert [(d.file, d.code) for d in found] == [
        ("README.md", "not-owned"),
        ("../etc/passwd", "outside"),
        ("/etc/shadow", "outside"),
        ("", "outside"),
    ]
    assert "it owns: src/**" in found[0].message


def test_scope_normalises_before_matching_and_empty_owns_owns_nothing() -> None:
    assert check_scope("scope", ["src/./x/../a.py"], ["src/*.py"]) == []
    [d] = check_scope("scope", ["src/a.py"], [])
    assert "owns: nothing" in d.message


# -- secrets ------------------------------------------------------------------------------

AWS = "AKIA" + "ABCDEFGHIJKLMNOP"
GH = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
RANDOM = "Zq8vR2mXk4LpT9wYb3Nc"


def test_secrets_are_found_by_format_and_by_entropy_never_printed(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(
        f'KEY_ID = "{AWS}"\nx = 1\ntoken = "{GH}"\napi_key = "{RANDOM}"\n'
        'password = "changeme-changeme-changeme"\nname = "abcdefghijklmnopqrst"\n'
        "-----BEGIN RSA PRIVATE KEY-----\n"
    )
    found, values = scan_secrets("secrets", FileReader(str(tmp_path)), ["a.py"])
    assert [(d.line, d.code) for d in found] == [
        (1, "aws-access-key-id"),
        (3, "github-token"),
        (4, "high-entropy-assignment"),
        (7, "private-key"),
    ]
    assert AWS in values
    assert GH in values
    assert RANDOM in values
    for d in found:
        assert AWS not in d.message
        assert GH not in d.message
        assert RANDOM not in d.message
        assert "fingerprint" in d.message


def test_secret_scan_follows_no_link_and_reads_no_binary(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keys.txt").write_text(f"{AWS}\n")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "link.txt").symlink_to(outside / "keys.txt")
    (tree / "dirlink").symlink_to(outside)
    (tree / "blob.bin").write_bytes(b"\0" + AWS.encode())
    os.mkfifo(tree / "fifo")
    found, values = scan_secrets(
        "secrets",
        FileReader(str(tree)),
        ["link.txt", "dirlink/keys.txt", "blob.bin", "fifo", "../outside/keys.txt", "gone.py"],
    )
    assert found == []
    assert values == []


JWT = (
    "eyJhbGciOiJIUzI1NiJ9"
    + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    + ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)


def test_json_web_tokens_are_found_in_dotted_runs(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(f"Authorization: Bearer {JWT}\nversion 1.2.3.eyJ.eyJ.x\n")
    found, values = scan_secrets("secrets", FileReader(str(tmp_path)), ["a.txt"])
    assert [(d.line, d.code) for d in found] == [(1, "jwt")]
    assert values == [JWT]


@pytest.mark.parametrize(
    "unit",
    ["x", "eyJ-", "eyJaaaaaaaaaaaaa.", "sk-", "token", 'token="', "a_", "auth" + "a" * 39 + "=",
     "token = 'x'\n", "hf_", "AIza", "-----BEGIN "],
)  # fmt: skip
def test_crafted_files_cannot_make_the_scan_slow(tmp_path: Path, unit: str) -> None:
    """Every pattern does bounded work per place it could start: 2 MiB scans in linear time."""
    (tmp_path / "f").write_text(unit * ((2 << 20) // len(unit)))
    started = time.monotonic()
    scan_secrets("secrets", FileReader(str(tmp_path)), ["f"])
    # about 1 s here for the worst of them; the quadratic versions took minutes
    assert time.monotonic() - started < 8


def test_a_file_full_of_secrets_stops_the_scan_at_its_cap(tmp_path: Path) -> None:
    (tmp_path / "f").write_text(("sk_live_" + "a" * 20 + "-") * 50_000)
    found, values = scan_secrets("secrets", FileReader(str(tmp_path)), ["f", "f"])
    assert len(found) == MAX_SECRETS
    assert len(values) == MAX_SECRETS


def test_secret_scan_reads_at_most_its_cap(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("x" * (3 << 20) + AWS)
    found, _ = scan_secrets("secrets", FileReader(str(tmp_path)), ["big.txt"])
    assert found == []


# -- docs ---------------------------------------------------------------------------------

OLD = b'''
def stable(a: int) -> int:
    return a

def changed(a: int) -> int:
    """Documented."""
    return a
'''
NEW = b'''
__all__ = ["stable", "changed", "Added"]

def stable(a: int) -> int:
    return a

def changed(a: int, b: int = 0) -> int:
    """Documented."""
    return a

class Added:
    def method(self) -> None:
        pass

    def _private(self) -> None:
        pass

def helper() -> None:
    pass
'''


def test_public_api_respects_all_and_privacy() -> None:
    api = public_api(NEW)
    assert api is not None
    assert sorted(api) == ["Added", "Added.method", "changed", "stable"]
    assert api["changed"].documented
    assert not api["Added"].documented
    assert public_api(b"def (:") is None


def test_docs_against_the_base_asks_for_docstrings_and_a_docs_change(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_bytes(NEW)
    found = check_docs("docs", FileReader(str(tmp_path)), ["pkg/mod.py"], {"pkg/mod.py": OLD})
    codes = [(d.code, d.line) for d in found]
    assert ("missing-docstring", 11) in codes  # class Added
    assert ("missing-docstring", 12) in codes  # Added.method
    assert all(d.line != 4 for d in found)  # 'stable' did not change: not this change's fault
    last = found[-1]
    assert last.code == "docs-not-updated"
    assert "pkg/mod.py:changed" in last.message
    assert "pkg/mod.py:stable" not in last.message
    again = check_docs(
        "docs", FileReader(str(tmp_path)), ["pkg/mod.py", "docs/api.md"], {"pkg/mod.py": OLD}
    )
    assert "docs-not-updated" not in [d.code for d in again]


def test_docs_without_a_base_checks_docstrings_only(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_bytes(NEW)
    found = check_docs("docs", FileReader(str(tmp_path)), ["mod.py"], None)
    assert {d.code for d in found} == {"missing-docstring"}
    assert any(d.line == 4 for d in found)  # every undocumented public symbol


@pytest.mark.parametrize(
    "path", ["tests/test_mod.py", "pkg/_private.py", "_pkg/mod.py", "conftest.py", "docs/x.py"]
)
def test_docs_ignores_tests_and_private_modules(tmp_path: Path, path: str) -> None:
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_bytes(NEW)
    assert check_docs("docs", FileReader(str(tmp_path)), [path], None) == []


def test_docs_survives_hostile_sources(tmp_path: Path) -> None:
    (tmp_path / "deep.py").write_text("x = " + "(" * 5000 + ")" * 5000 + "\n")
    (tmp_path / "nul.py").write_bytes(b"def f():\0 pass\n")
    assert check_docs("docs", FileReader(str(tmp_path)), ["deep.py", "nul.py"], None) == []


# -- api (hardening) ----------------------------------------------------------------------


def _api(root: Path, changed: list[str], base: dict[str, bytes | None]) -> list[tuple[str, str]]:
    found = check_api("api", FileReader(str(root)), changed, base)
    assert all(d.check == "api" for d in found)
    return [(d.code, d.message.split(" ")[1]) for d in found]


def test_api_names_what_was_added_changed_and_removed(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_bytes(NEW)
    found = _api(tmp_path, ["mod.py"], {"mod.py": OLD})
    # 'helper' is public but not in __all__; 'stable' kept its signature
    assert sorted(found) == [("api-added", "Added"), ("api-added", "Added.method"),
                             ("api-changed", "changed")]  # fmt: skip
    assert _api(tmp_path, ["mod.py"], {"mod.py": NEW}) == []
    (tmp_path / "mod.py").write_bytes(OLD)
    assert sorted(_api(tmp_path, ["mod.py"], {"mod.py": NEW})) == [
        ("api-changed", "changed"), ("api-removed", "Added"), ("api-removed", "Added.method"),
    ]  # fmt: skip


def test_api_allows_private_helpers_and_new_bodies(tmp_path: Path) -> None:
    fixed = OLD.replace(b"    return a\n", b"    return _clamp(a)\n") + (
        b"\n\ndef _clamp(a: int) -> int:\n    return max(a, 0)\n"
    )
    (tmp_path / "mod.py").write_bytes(fixed)
    assert _api(tmp_path, ["mod.py"], {"mod.py": OLD}) == []


def test_api_counts_new_and_deleted_modules(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "new.py").write_bytes(OLD)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_new.py").write_bytes(OLD)  # tests are no API
    found = _api(tmp_path, ["pkg/new.py", "tests/test_new.py", "pkg/gone.py"],
                 {"pkg/new.py": None, "tests/test_new.py": None, "pkg/gone.py": OLD})  # fmt: skip
    assert sorted(found) == [
        ("api-added", "changed"), ("api-added", "stable"),
        ("api-removed", "changed"), ("api-removed", "stable"),
    ]  # fmt: skip


def test_api_refuses_what_it_cannot_read_whole(tmp_path: Path) -> None:
    # padding past the cap cannot hide a new function from the check
    big = OLD + b"\n\ndef extra() -> None:\n    pass\n" + b"#" * MAX_API_BYTES
    (tmp_path / "mod.py").write_bytes(big)
    assert _api(tmp_path, ["mod.py"], {"mod.py": OLD}) == [("too-large", "larger")]
    # a link is not followed: what the module defined is gone as far as the check knows
    (tmp_path / "mod.py").unlink()
    (tmp_path / "elsewhere.py").write_bytes(OLD)
    (tmp_path / "mod.py").symlink_to(tmp_path / "elsewhere.py")
    assert {c for c, _ in _api(tmp_path, ["mod.py"], {"mod.py": OLD})} == {"api-removed"}
