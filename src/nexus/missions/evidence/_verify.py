"""Verifying an evidence bundle: signature, every file's hash, nothing added or missing, and
every requirement met by merged, passing evidence or listed as unmet with a reason.

:func:`verify_bundle` never stops at the first problem: it lists each one,
naming the file it concerns, so "report.html: sha256 differs from the
manifest" says exactly what was touched. The reports are rendered again from
``evidence.json`` and compared byte for byte, and the requirements' statuses
are traced again from the work items, so a bundle whose files all hash right
still fails if what it claims does not follow from its evidence.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nexus.domain.errors import UserError
from nexus.missions.evidence._bundle import (
    EVIDENCE_FILE,
    REPORT_HTML,
    REPORT_MD,
    check_path,
)
from nexus.missions.evidence._manifest import (
    MANIFEST_FILE,
    json_text,
    manifest_message,
)
from nexus.missions.evidence._model import EvidenceDocument, RequirementStatus, trace
from nexus.missions.evidence._report import render_html, render_markdown
from nexus.security.signing import PublicKey

__all__ = ["Problem", "VerifyReport", "verify_bundle"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that does not hold; ``file`` is the bundle path it concerns."""

    file: str | None
    message: str

    def __str__(self) -> str:
        return self.message if self.file is None else f"{self.file}: {self.message}"


@dataclass(slots=True)
class VerifyReport:
    """Everything :func:`verify_bundle` found; :attr:`ok` when there is no problem."""

    path: Path
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    key_id: str | None = None
    key_source: Literal["given", "bundle"] = "bundle"
    created: str | None = None
    files: int = 0
    met: list[str] = field(default_factory=list)
    unmet: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def bad(self, file: str | None, message: str) -> None:
        self.problems.append(Problem(file, message))

    def flagged(self, file: str) -> bool:
        return any(p.file == file for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON (``nexus evidence verify --json``)."""
        return {
            "ok": self.ok,
            "path": str(self.path),
            "key_id": self.key_id,
            "key_source": self.key_source,
            "created": self.created,
            "files": self.files,
            "problems": [{"file": p.file, "message": p.message} for p in self.problems],
            "warnings": list(self.warnings),
            "requirements": {
                "met": list(self.met),
                "unmet": [{"id": rid, "reason": why} for rid, why in self.unmet],
            },
        }


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    path: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class _Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    format: Literal["nexus-evidence-manifest/1"]
    created: str
    files: tuple[_Entry, ...]
    key_id: str
    public_key: str
    signature: str


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _listing(root: Path, report: VerifyReport) -> dict[str, bytes]:
    """The bundle's regular files by posix path; anything else is a problem."""
    found: dict[str, bytes] = {}
    for folder, dirs, names in os.walk(root, followlinks=False):
        base = Path(folder)
        for name in sorted(dirs + names):
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                report.bad(rel, "is a symbolic link: a bundle holds regular files only")
            elif path.is_file():
                found[rel] = path.read_bytes()
            elif not path.is_dir():
                report.bad(rel, "is not a regular file")
    return found


def _unsafe(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return path.startswith("/") or "\\" in path or ".." in parts or path in ("", ".")


def _manifest(raw: bytes, report: VerifyReport, given: PublicKey | None) -> _Manifest | None:
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        report.bad(MANIFEST_FILE, "is not UTF-8 text")
        return None
    except json.JSONDecodeError as exc:
        report.bad(MANIFEST_FILE, f"is not JSON (line {exc.lineno}: {exc.msg})")
        return None
    try:
        manifest = _Manifest.model_validate(data)
    except ValidationError as exc:
        report.bad(MANIFEST_FILE, f"is not a bundle manifest: {_first_error(exc)}")
        return None
    if json_text(data).encode("utf-8") != raw:
        report.bad(MANIFEST_FILE, "is not in the exact form Nexus writes: changed after signing")
    report.created = manifest.created
    key = _signer(manifest, report, given)
    if key is not None and not key.verify(manifest.signature, manifest_message(data)):
        report.bad(
            MANIFEST_FILE, "the signature does not hold: the manifest was changed after signing"
        )
    return manifest


def _signer(manifest: _Manifest, report: VerifyReport, given: PublicKey | None) -> PublicKey | None:
    """The key to check the signature with, or None (and a problem) when none can be."""
    try:
        carried: PublicKey | None = PublicKey.from_text(manifest.public_key)
    except UserError as exc:
        report.bad(MANIFEST_FILE, f"public_key: {exc.message}")
        carried = None
    if carried is not None and carried.key_id != manifest.key_id:
        report.bad(MANIFEST_FILE, f"key_id {manifest.key_id} is not the id of its public_key")
    if given is not None:
        report.key_id = given.key_id
        if given.key_id != manifest.key_id:
            report.bad(
                MANIFEST_FILE,
                f"signed by key {manifest.key_id}, not by the given key {given.key_id}",
            )
            return None
        return given
    report.key_id = manifest.key_id
    report.warnings.append(
        f"checked against the key the bundle carries (key id {manifest.key_id}): pass the "
        "signer's public key (--key) to check who signed it"
    )
    return carried


def _files(manifest: _Manifest, disk: dict[str, bytes], report: VerifyReport) -> None:
    listed: set[str] = set()
    for entry in manifest.files:
        if _unsafe(entry.path) or entry.path == MANIFEST_FILE:
            report.bad(MANIFEST_FILE, f"lists a path a bundle cannot hold: {entry.path!r}")
            continue
        if entry.path in listed:
            report.bad(MANIFEST_FILE, f"lists {entry.path} twice")
            continue
        listed.add(entry.path)
        data = disk.get(entry.path)
        if data is None:
            report.bad(entry.path, "is listed in the manifest but missing")
        elif len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
            report.bad(entry.path, "sha256 differs from the manifest: changed after signing")
    for path in sorted(set(disk) - listed - {MANIFEST_FILE}):
        report.bad(path, "is not listed in the manifest: added after signing")
    report.files = len(listed)


def _document(disk: dict[str, bytes], report: VerifyReport) -> EvidenceDocument | None:
    raw = disk.get(EVIDENCE_FILE)
    if raw is None:
        if not report.flagged(EVIDENCE_FILE):
            report.bad(EVIDENCE_FILE, "is missing")
        return None
    try:
        return EvidenceDocument.model_validate_json(raw)
    except ValidationError as exc:
        report.bad(EVIDENCE_FILE, f"is not an evidence document: {_first_error(exc)}")
        return None


def _evidence(doc: EvidenceDocument, disk: dict[str, bytes], report: VerifyReport) -> None:
    """What the document claims, checked against its own files and the spec."""
    referenced: set[str] = set()
    known = {r.id for r in doc.spec.requirements}
    ids = [item.id for item in doc.items]
    for rid in sorted({i for i in ids if ids.count(i) > 1}):
        report.bad(EVIDENCE_FILE, f"work item {rid} is listed twice")
    for item in doc.items:
        for rid in item.requirements:
            if rid not in known:
                report.bad(EVIDENCE_FILE, f"work item {item.id} claims {rid}, not in the spec")
        for attempt in item.attempts:
            for k, check in enumerate(attempt.checks, 1):
                what = f"work item {item.id}, attempt {attempt.number}, check {check.name}"
                path = check.output_file
                if path != check_path(item.id, attempt.number, k, check.name):
                    report.bad(EVIDENCE_FILE, f"{what}: output {path!r} is not its bundle path")
                    continue
                referenced.add(path)
                data = disk.get(path)
                if report.flagged(path):
                    continue
                if data is None:
                    report.bad(path, f"is missing ({what})")
                elif hashlib.sha256(data).hexdigest() != check.output_sha256:
                    report.bad(path, f"does not hash to what evidence.json records ({what})")
    for path in sorted(p for p in disk if p.startswith("checks/") and p not in referenced):
        if not report.flagged(path):
            report.bad(path, "is not a check output evidence.json refers to")
    _requirements(doc, report)
    if report.flagged(EVIDENCE_FILE):
        return  # the reports may be right and evidence.json wrong: do not blame them
    for name, text in ((REPORT_MD, render_markdown(doc)), (REPORT_HTML, render_html(doc))):
        if report.flagged(name):
            continue
        if name not in disk:
            report.bad(name, "is missing")
        elif disk[name] != text.encode("utf-8"):
            report.bad(name, "does not match evidence.json: edited after it was written")


def _status(req: RequirementStatus) -> str:
    return f"met by {', '.join(req.met_by)}" if req.status == "met" else f"unmet ({req.reason})"


def _requirements(doc: EvidenceDocument, report: VerifyReport) -> None:
    recorded = {r.id: r for r in doc.requirements}
    for expected in trace(doc.spec, doc.items):
        got = recorded.pop(expected.id, None)
        if got is None:
            report.bad(EVIDENCE_FILE, f"requirement {expected.id} of the spec is not listed")
            continue
        if got != expected:
            report.bad(
                EVIDENCE_FILE,
                f"requirement {expected.id} is recorded as {_status(got)}, but its work items "
                f"give {_status(expected)}",
            )
        if expected.status == "met":
            report.met.append(expected.id)
        else:
            report.unmet.append((expected.id, expected.reason))
    for rid in sorted(recorded):
        report.bad(EVIDENCE_FILE, f"lists requirement {rid}, which the spec does not have")


def verify_bundle(directory: Path, public_key: PublicKey | None = None) -> VerifyReport:
    """Check an evidence bundle and list every problem, each naming the file it concerns.

    Args:
        directory: the bundle.
        public_key: the key that must have signed it; without it the key the
            bundle carries is used, which shows the bundle is intact but not
            who signed it (the report warns).

    Returns:
        The report; ``report.ok`` when the signature, every hash, the file list,
        the reports and the requirements all hold.

    Raises:
        UserError: ``directory`` does not exist or is not a directory.

    Example:
        >>> report = verify_bundle(Path("evidence"))  # doctest: +SKIP
        >>> [str(p) for p in report.problems]  # doctest: +SKIP
        ['report.html: sha256 differs from the manifest: changed after signing']
    """
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory (an evidence bundle is a directory)")
    report = VerifyReport(directory, key_source="bundle" if public_key is None else "given")
    try:
        disk = _listing(directory, report)
    except OSError as exc:
        raise UserError(f"{directory}: cannot read the bundle: {exc.strerror or exc}") from None
    raw = disk.get(MANIFEST_FILE)
    if raw is None:
        report.bad(MANIFEST_FILE, "is missing: the bundle is not signed")
        return report
    manifest = _manifest(raw, report, public_key)
    if manifest is None:
        return report
    _files(manifest, disk, report)
    doc = _document(disk, report)
    if doc is not None:
        _evidence(doc, disk, report)
    return report
