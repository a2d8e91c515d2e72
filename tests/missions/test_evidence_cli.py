"""``nexus evidence verify``: exit 0 if a bundle holds, 1 naming the tampered file, 2 bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from evidence_support import CREATED, KEY, items, spec

from nexus.missions.evidence import write_bundle
from nexus.security.signing import AuditKey

NEXUS = Path(sys.executable).parent / "nexus"


def verify(home: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEXUS_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("FORCE_COLOR", None)
    done = subprocess.run(
        [str(NEXUS), "evidence", "verify", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    write_bundle(tmp_path / "bundle", spec(), items(tmp_path), KEY, created=CREATED)
    return tmp_path / "bundle"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "audit.pub"
    path.write_text(KEY.public.text() + "\n")
    return path


def test_a_sound_bundle_exits_0_and_lists_what_is_unmet(bundle: Path, tmp_path: Path) -> None:
    done = verify(tmp_path / "home", bundle)
    assert done.returncode == 0, done.stderr
    assert f"ok  {bundle}: signed by key {KEY.public.key_id} (bundle key), 9 files hold" in (
        done.stdout
    )
    assert "3 requirement(s) met, 1 unmet" in done.stdout
    assert "unmet  R4: no work item claims it" in done.stdout
    assert "warning: checked against the key the bundle carries" in done.stderr


def test_the_signers_key_as_base64_or_pem(bundle: Path, key_file: Path, tmp_path: Path) -> None:
    done = verify(tmp_path / "home", bundle, "--key", key_file)
    assert done.returncode == 0, done.stderr
    assert "(given key)" in done.stdout
    assert done.stderr == ""
    pem = Ed25519PublicKey.from_public_bytes(KEY.public.raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "audit.pem").write_bytes(pem)
    assert verify(tmp_path / "home", bundle, "--key", tmp_path / "audit.pem").returncode == 0
    other = tmp_path / "other.pub"
    other.write_text(AuditKey.generate().public.text())
    done = verify(tmp_path / "home", bundle, "--key", other)
    assert done.returncode == 1
    assert f"MANIFEST.json: signed by key {KEY.public.key_id}, not by the given key" in done.stderr


def test_a_tampered_check_output_exits_1_naming_it(bundle: Path, key_file: Path) -> None:
    log = bundle / "checks/W1/attempt-1/02-tests.log"
    log.write_text("all passed\n")
    done = verify(bundle.parent / "home", bundle, "--key", key_file)
    assert done.returncode == 1
    assert (
        "FAILED  checks/W1/attempt-1/02-tests.log: sha256 differs from the manifest" in done.stderr
    )
    assert "1 problem(s) in" in done.stderr
    assert done.stdout == ""


def test_json_lists_each_problem_with_its_file(bundle: Path, key_file: Path) -> None:
    with (bundle / "report.html").open("a") as fh:
        fh.write("<p>all met</p>\n")
    (bundle / "extra.txt").write_text("x")
    done = verify(bundle.parent / "home", bundle, "--key", key_file, "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["ok"] is False
    assert [p["file"] for p in report["problems"]] == ["report.html", "extra.txt"]
    assert report["requirements"]["unmet"] == [{"id": "R4", "reason": "no work item claims it"}]
    assert report["key_source"] == "given"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such key file"),
        ("not a key", "the public key is not a base64 Ed25519 key"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not an Ed25519"),
    ],
)
def test_a_bad_key_file_exits_2(
    bundle: Path, tmp_path: Path, content: str | None, message: str
) -> None:
    key = tmp_path / "k.pub"
    if content is not None:
        key.write_text(content)
    done = verify(tmp_path / "home", bundle, "--key", key, "--json")
    assert done.returncode == 2
    assert message in done.stderr
    assert message in json.loads(done.stdout)["error"]["message"]


def test_no_directory_exits_2(tmp_path: Path) -> None:
    done = verify(tmp_path / "home", tmp_path / "absent")
    assert done.returncode == 2
    assert "no such directory" in done.stderr
