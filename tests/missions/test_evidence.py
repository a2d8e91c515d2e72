"""Evidence bundles: the round trip, tampering with each kind of file, unmet requirements,
added files, hostile strings in the HTML report, and bad input to the writer."""

from __future__ import annotations

import hashlib
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from evidence_support import CREATED, KEY, SPEC_TEXT, check, items, spec
from markdown_it import MarkdownIt
from pydantic import ValidationError

from nexus.domain.errors import UserError
from nexus.missions.evidence import (
    MANIFEST_FILE,
    Attempt,
    EvidenceDocument,
    Verdict,
    WorkItemEvidence,
    signing_key,
    verify_bundle,
    write_bundle,
)
from nexus.missions.spec import parse_spec
from nexus.security.signing import AuditKey


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    write_bundle(tmp_path / "bundle", spec(), items(tmp_path), KEY, created=CREATED)
    return tmp_path / "bundle"


def problems(path: Path, key: AuditKey | None = KEY) -> list[str]:
    report = verify_bundle(path, None if key is None else key.public)
    return [str(p) for p in report.problems]


def files_of(path: Path) -> dict[str, bytes]:
    return {
        p.relative_to(path).as_posix(): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


# -- round trip ------------------------------------------------------------------------------


def test_a_written_bundle_verifies_and_says_what_was_met(bundle: Path) -> None:
    report = verify_bundle(bundle, KEY.public)
    assert report.ok, report.problems
    assert report.key_source == "given"
    assert report.key_id == KEY.public.key_id
    assert report.created == "2025-01-02T03:04:05Z"
    assert report.met == ["R1", "R2", "R3"]
    assert report.unmet == [("R4", "no work item claims it")]
    assert report.files == 9
    assert not report.warnings
    doc = EvidenceDocument.model_validate_json((bundle / "evidence.json").read_bytes())
    w1 = doc.items[0]
    assert [a.number for a in w1.attempts] == [1, 2]
    assert w1.attempts[0].checks[1].output_file == "checks/W1/attempt-1/02-tests.log"
    log = (bundle / "checks/W1/attempt-1/02-tests.log").read_bytes()
    assert log == b"FAILED test_parse - assert 5300 == 5400\n"
    assert w1.attempts[0].checks[1].output_sha256 == hashlib.sha256(log).hexdigest()


def test_without_a_key_the_carried_key_is_used_with_a_warning(bundle: Path) -> None:
    report = verify_bundle(bundle)
    assert report.ok
    assert report.key_source == "bundle"
    assert "pass the signer's public key" in report.warnings[0]


def test_another_key_is_refused(bundle: Path) -> None:
    other = AuditKey.generate()
    assert problems(bundle, other) == [
        f"MANIFEST.json: signed by key {KEY.public.key_id}, not by the given key "
        f"{other.public.key_id}"
    ]


def test_the_same_input_gives_the_same_bytes(tmp_path: Path) -> None:
    recorded = items(tmp_path / "in")
    write_bundle(tmp_path / "a", spec(), recorded, KEY, created=CREATED)
    write_bundle(tmp_path / "b", spec(), recorded, KEY, created=CREATED)
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")


def test_only_the_manifest_carries_a_time(tmp_path: Path) -> None:
    recorded = items(tmp_path / "in")
    write_bundle(tmp_path / "a", spec(), recorded, KEY, created=CREATED)
    write_bundle(tmp_path / "b", spec(), recorded, KEY)
    a, b = files_of(tmp_path / "a"), files_of(tmp_path / "b")
    assert [name for name in a if a[name] != b[name]] == [MANIFEST_FILE]
    assert verify_bundle(tmp_path / "b", KEY.public).ok


def test_outputs_held_in_memory_need_no_file(tmp_path: Path) -> None:
    recorded = items(tmp_path / "in")
    outputs = {}
    for item in recorded:
        for attempt in item.attempts:
            for c in attempt.checks:
                path = Path(c.output_file)
                outputs.setdefault(c.output_sha256, path.read_bytes() if path.exists() else b"")
                path.unlink(missing_ok=True)  # two checks wrote the same bytes: one file
    write_bundle(tmp_path / "b", spec(), recorded, KEY, outputs=outputs, created=CREATED)
    assert verify_bundle(tmp_path / "b", KEY.public).ok


def test_the_home_key_is_the_audit_key_and_a_key_file_may_be_given(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = signing_key(home)
    assert (home / "keys" / "audit.ed25519").is_file()
    assert signing_key(home).public == key.public  # created once, then read
    assert signing_key(tmp_path, home / "keys" / "audit.ed25519").public == key.public
    with pytest.raises(UserError, match="no audit key"):
        signing_key(home, tmp_path / "absent.pem")


# -- tampering: each kind of file, named -----------------------------------------------------


def flip(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, 1))


@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        ("checks/W1/attempt-1/02-tests.log", b"5300", b"5400"),
        ("report.md", b"| unmet |", b"| met |"),
        ("report.html", b"unmet</span>", b"met</span>"),
        ("evidence.json", b'"status": "unmet"', b'"status": "met"'),
        ("evidence.json", b'"cost_usd": "0.004"', b'"cost_usd": "0.000"'),
    ],
)
def test_a_changed_file_is_named(bundle: Path, name: str, old: bytes, new: bytes) -> None:
    flip(bundle / name, old, new)
    found = problems(bundle)
    assert f"{name}: sha256 differs from the manifest: changed after signing" in found
    assert all(p.startswith(name) for p in found), found


def test_a_changed_manifest_breaks_the_signature(bundle: Path) -> None:
    manifest = bundle / MANIFEST_FILE
    data = json.loads(manifest.read_text())
    report_md = next(f for f in data["files"] if f["path"] == "report.md")
    (bundle / "report.md").write_text("# All requirements met\n")
    report_md["sha256"] = hashlib.sha256(b"# All requirements met\n").hexdigest()
    report_md["size"] = 23
    manifest.write_text(json.dumps(data, sort_keys=True, indent=2) + "\n")
    found = problems(bundle)
    assert found[0] == (
        "MANIFEST.json: the signature does not hold: the manifest was changed after signing"
    )
    # the edited report is caught again by rendering it from evidence.json
    assert "report.md: does not match evidence.json: edited after it was written" in found


def test_a_changed_signature_is_named(bundle: Path) -> None:
    manifest = bundle / MANIFEST_FILE
    data = json.loads(manifest.read_text())
    sig = data["signature"]
    data["signature"] = ("0" if sig[0] != "0" else "1") + sig[1:]
    manifest.write_text(json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n")
    assert problems(bundle) == [
        "MANIFEST.json: the signature does not hold: the manifest was changed after signing"
    ]


def test_a_manifest_resigned_by_another_key_fails_against_the_right_key(bundle: Path) -> None:
    other = AuditKey.generate()
    evil = bundle.parent / "evil"
    recorded = items(bundle.parent / "again")
    write_bundle(evil, spec(), recorded, other, created=CREATED)
    assert verify_bundle(evil).ok  # intact, but not ours:
    assert problems(evil)[0].startswith(f"MANIFEST.json: signed by key {other.public.key_id}")


def test_a_reformatted_manifest_is_refused(bundle: Path) -> None:
    manifest = bundle / MANIFEST_FILE
    manifest.write_text(json.dumps(json.loads(manifest.read_text()), sort_keys=True) + "\n")
    assert problems(bundle) == [
        "MANIFEST.json: is not in the exact form Nexus writes: changed after signing"
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "MANIFEST.json: is not JSON (line 1: Expecting value)"),
        (b"\xff\xfe", "MANIFEST.json: is not UTF-8 text"),
        (b"[]\n", "MANIFEST.json: is not a bundle manifest: (top level): Input should be"),
        (b'{"format": "x"}\n', "MANIFEST.json: is not a bundle manifest: format: Input should be"),
    ],
)
def test_an_unreadable_manifest_is_named(bundle: Path, content: bytes, expected: str) -> None:
    (bundle / MANIFEST_FILE).write_bytes(content)
    found = problems(bundle)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_a_missing_manifest_means_unsigned(bundle: Path) -> None:
    (bundle / MANIFEST_FILE).unlink()
    assert problems(bundle) == ["MANIFEST.json: is missing: the bundle is not signed"]


def test_a_deleted_file_is_named(bundle: Path) -> None:
    (bundle / "checks/W2/attempt-1/01-tests.log").unlink()
    assert problems(bundle) == [
        "checks/W2/attempt-1/01-tests.log: is listed in the manifest but missing"
    ]


# -- added files -----------------------------------------------------------------------------


def test_an_added_file_is_refused(bundle: Path) -> None:
    (bundle / "checks/W1/attempt-2/03-extra.log").write_text("all good, trust me\n")
    (bundle / "notes.txt").write_text("hi\n")
    assert problems(bundle) == [
        "checks/W1/attempt-2/03-extra.log: is not listed in the manifest: added after signing",
        "notes.txt: is not listed in the manifest: added after signing",
    ]


def test_a_symbolic_link_is_refused(bundle: Path) -> None:
    os.symlink(bundle / "report.md", bundle / "link.md")
    assert problems(bundle) == ["link.md: is a symbolic link: a bundle holds regular files only"]


# -- requirements: met, unmet, and claims that do not follow ---------------------------------


def test_a_requirement_with_no_evidence_is_listed_unmet(bundle: Path) -> None:
    doc = EvidenceDocument.model_validate_json((bundle / "evidence.json").read_bytes())
    r4 = doc.requirements[3]
    assert (r4.id, r4.status, r4.items, r4.reason) == ("R4", "unmet", (), "no work item claims it")
    md = (bundle / "report.md").read_text()
    assert "## Unmet requirements\n\n- R4: no work item claims it\n" in md


def test_a_rejected_or_failing_item_leaves_its_requirement_unmet(tmp_path: Path) -> None:
    out = tmp_path / "out"
    failing = WorkItemEvidence(
        id="W9",
        requirements=("R1",),
        patch_sha256="a" * 64,
        commit="abc",
        attempts=(Attempt(number=1, checks=(check(out, "tests", "fail", "1 failed\n"),)),),
        verdict=Verdict(outcome="merged"),
    )
    given_up = WorkItemEvidence(
        id="W8",
        requirements=("R2",),
        verdict=Verdict(outcome="unmet", reason="3 attempts, the budget ran out"),
    )
    info = write_bundle(tmp_path / "b", spec(), [failing, given_up], KEY, created=CREATED)
    assert info.met == ()
    report = verify_bundle(tmp_path / "b", KEY.public)
    assert report.ok
    assert dict(report.unmet) == {
        "R1": "W9 merged without passing checks (tests fail)",
        "R2": "W8 unmet: 3 attempts, the budget ran out",
        "R3": "no work item claims it",
        "R4": "no work item claims it",
    }


def test_a_signed_claim_that_does_not_follow_from_the_evidence_is_named(tmp_path: Path) -> None:
    """A writer that signs a lie (R4 met) is caught by tracing the work items again."""
    write_bundle(tmp_path / "b", spec(), items(tmp_path), KEY, created=CREATED)
    doc = json.loads((tmp_path / "b/evidence.json").read_text())
    doc["requirements"][3].update(status="met", met_by=["W1"], reason="")
    files = files_of(tmp_path / "b")
    files["evidence.json"] = (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode()
    del files[MANIFEST_FILE]
    resign(tmp_path / "b", files)
    found = problems(tmp_path / "b")
    assert found[0] == (
        "evidence.json: requirement R4 is recorded as met by W1, but its work items give "
        "unmet (no work item claims it)"
    )


def resign(path: Path, files: dict[str, bytes]) -> None:
    """Rewrite and re-sign a bundle with KEY, as a dishonest writer holding the key would."""
    from nexus.missions.evidence._manifest import build_manifest, json_text

    for name, data in files.items():
        (path / name).write_bytes(data)
    manifest = build_manifest(files, KEY, CREATED)
    (path / MANIFEST_FILE).write_text(json_text(manifest))


# -- hostile strings in the reports ----------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs += attrs


def test_hostile_strings_are_escaped_in_the_html(tmp_path: Path) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    text = SPEC_TEXT + f"- R5: Titles MUST keep {hostile} as text.\n"
    out = tmp_path / "out"
    item = WorkItemEvidence(
        id="W1",
        title=hostile,
        requirements=("R5",),
        attempts=(
            Attempt(
                number=1,
                checks=(check(out, '"><script>x</script>', "fail", hostile),),
            ),
        ),
        verdict=Verdict(outcome="rejected", reason=hostile),
    )
    write_bundle(tmp_path / "b", parse_spec(text, source="<b>.md"), [item], KEY, created=CREATED)
    page = (tmp_path / "b/report.html").read_text()
    parser = _Tags()
    parser.feed(page)
    assert not parser.tags & {"script", "img", "iframe", "object", "link", "embed"}
    assert not [a for a in parser.attrs if a[0].startswith("on")]
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "default-src 'none'" in page
    # nothing loaded from anywhere: links only to the bundle's own files and anchors
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs
    assert all(h.startswith(("checks/", "#item-")) for h in hrefs), hrefs
    assert not [a for a in parser.attrs if a[0] in ("src", "style")]
    # the Markdown, rendered with raw HTML allowed, shows the strings as text too
    md = (tmp_path / "b/report.md").read_text()
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    parser = _Tags()
    parser.feed(rendered)
    assert not parser.tags & {"script", "img"}
    assert "&lt;script&gt;" in rendered
    # a pipe in a requirement does not add a table cell
    row = next(line for line in md.splitlines() if line.startswith("| R4"))
    assert row.count(" | ") == 6
    assert verify_bundle(tmp_path / "b", KEY.public).ok


# -- bad input to the writer -----------------------------------------------------------------


def test_the_writer_refuses_a_claim_outside_the_spec(tmp_path: Path) -> None:
    item = WorkItemEvidence(
        id="W1", requirements=("R9",), verdict=Verdict(outcome="unmet", reason="n/a")
    )
    with pytest.raises(UserError, match="work item W1 claims R9, which the spec"):
        write_bundle(tmp_path / "b", spec(), [item], KEY)
    assert not (tmp_path / "b").exists()


def test_the_writer_refuses_a_duplicate_item(tmp_path: Path) -> None:
    item = WorkItemEvidence(id="W1", verdict=Verdict(outcome="unmet", reason="n/a"))
    with pytest.raises(UserError, match="work item W1 is listed twice"):
        write_bundle(tmp_path / "b", spec(), [item, item], KEY)


def test_the_writer_refuses_an_output_changed_since_the_check(tmp_path: Path) -> None:
    recorded = items(tmp_path)
    Path(recorded[1].attempts[0].checks[0].output_file).write_text("edited\n")
    with pytest.raises(UserError, match="work item W2, attempt 1, check tests: the output"):
        write_bundle(tmp_path / "b", spec(), recorded, KEY)
    Path(recorded[1].attempts[0].checks[0].output_file).unlink()
    with pytest.raises(UserError, match="cannot read the check output"):
        write_bundle(tmp_path / "b", spec(), recorded, KEY)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".b.")] == []


def test_the_writer_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b/old.txt").write_text("x")
    with pytest.raises(UserError, match="exists and is not empty"):
        write_bundle(tmp_path / "b", spec(), items(tmp_path), KEY)
    (tmp_path / "b/old.txt").unlink()  # an empty one is fine
    write_bundle(tmp_path / "b", spec(), items(tmp_path), KEY)
    assert verify_bundle(tmp_path / "b").ok


def test_verify_refuses_what_is_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such directory"):
        verify_bundle(tmp_path / "absent")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"id": "../x", "verdict": {"outcome": "unmet", "reason": "r"}}, "id"),
        ({"id": "W1", "verdict": {"outcome": "rejected"}}, "a rejected work item needs a reason"),
        (
            {"id": "W1", "verdict": {"outcome": "merged"}},
            "a merged work item needs commit, patch_sha256, attempts",
        ),
        (
            {
                "id": "W1",
                "attempts": [{"number": 2}],
                "verdict": {"outcome": "unmet", "reason": "r"},
            },
            r"attempts must be numbered 1, 2, ... in order \(got \[2\]\)",
        ),
        (
            {
                "id": "W1",
                "attempts": [{"number": 1, "cost_usd": "NaN"}],
                "verdict": {"outcome": "unmet", "reason": "r"},
            },
            "is not a finite amount",
        ),
        (
            {
                "id": "W1",
                "attempts": [{"number": 1, "cost_usd": "1.2.3"}],
                "verdict": {"outcome": "unmet", "reason": "r"},
            },
            "is not a decimal number",
        ),
    ],
)
def test_records_refuse_what_cannot_be_true(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WorkItemEvidence.model_validate(fields)
