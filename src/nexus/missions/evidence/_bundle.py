"""Writing an evidence bundle: records, check outputs, reports and the signed manifest.

A bundle is a directory::

    evidence.json                          the EvidenceDocument
    checks/<item>/attempt-<n>/<k>-<check>.log   each check's output, as it was recorded
    report.md, report.html                 the traceability matrix and the work items
    MANIFEST.json                          every file above with its sha256, signed

The same spec, items, key and ``created`` give the same bytes: JSON is
written with sorted keys, the reports read no clock, and Ed25519 signatures
are deterministic. The bundle is written beside its destination and renamed
into place, so a crash leaves no half bundle under the destination's name.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from nexus.domain.errors import UserError
from nexus.missions.evidence._manifest import MANIFEST_FILE, build_manifest, json_text
from nexus.missions.evidence._model import (
    CheckRun,
    EvidenceDocument,
    WorkItemEvidence,
    trace,
)
from nexus.missions.evidence._report import render_html, render_markdown
from nexus.missions.spec import SpecMap
from nexus.security.signing import AuditKey

__all__ = ["EVIDENCE_FILE", "REPORT_HTML", "REPORT_MD", "BundleInfo", "check_path", "write_bundle"]

EVIDENCE_FILE = "evidence.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class BundleInfo:
    """What :func:`write_bundle` wrote."""

    path: Path
    key_id: str
    files: tuple[str, ...]
    met: tuple[str, ...]
    unmet: tuple[str, ...]


def check_path(item: str, attempt: int, index: int, name: str) -> str:
    """Where the output of the ``index``-th (1-based) check of an attempt lives in a bundle."""
    slug = _UNSAFE.sub("-", name).strip("-.")[:40] or "check"
    return f"checks/{item}/attempt-{attempt}/{index:02d}-{slug}.log"


def _output(check: CheckRun, where: str, outputs: Mapping[str, bytes]) -> bytes:
    data = outputs.get(check.output_sha256)
    if data is None:
        path = Path(check.output_file)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(
                f"{where}: cannot read the check output {path}: {exc.strerror or exc}"
            ) from None
    if hashlib.sha256(data).hexdigest() != check.output_sha256:
        raise UserError(
            f"{where}: the output {check.output_file} does not hash to the recorded "
            f"sha256 {check.output_sha256[:16]}... (changed since the check ran)"
        )
    return data


def _collect(
    spec: SpecMap, items: Sequence[WorkItemEvidence], outputs: Mapping[str, bytes]
) -> tuple[tuple[WorkItemEvidence, ...], dict[str, bytes]]:
    """The items with their outputs' bundle paths, and the output files by bundle path."""
    known = {r.id for r in spec.requirements}
    seen: set[str] = set()
    files: dict[str, bytes] = {}
    placed = []
    for item in items:
        if item.id in seen:
            raise UserError(f"work item {item.id} is listed twice")
        seen.add(item.id)
        unknown = [r for r in item.requirements if r not in known]
        if unknown:
            raise UserError(
                f"work item {item.id} claims {', '.join(unknown)}, which the spec "
                f"{spec.source} does not have"
            )
        attempts = []
        for attempt in item.attempts:
            checks = []
            for k, check in enumerate(attempt.checks, 1):
                where = f"work item {item.id}, attempt {attempt.number}, check {check.name}"
                path = check_path(item.id, attempt.number, k, check.name)
                files[path] = _output(check, where, outputs)
                checks.append(check.model_copy(update={"output_file": path}))
            attempts.append(attempt.model_copy(update={"checks": tuple(checks)}))
        placed.append(item.model_copy(update={"attempts": tuple(attempts)}))
    return tuple(placed), files


def bundle_files(doc: EvidenceDocument, outputs: dict[str, bytes]) -> dict[str, bytes]:
    """Every file of a bundle but the manifest, by bundle path."""
    return {
        **outputs,
        EVIDENCE_FILE: json_text(doc.model_dump(mode="json")).encode("utf-8"),
        REPORT_MD: render_markdown(doc).encode("utf-8"),
        REPORT_HTML: render_html(doc).encode("utf-8"),
    }


def _place(directory: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` beside ``directory`` and rename the result into place."""
    if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
        raise UserError(f"{directory}: exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()):
        raise UserError(f"{directory}: exists and is not empty; give a new directory")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        for rel, data in files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        os.chmod(staging, 0o755)  # mkdtemp makes it 0700; a bundle is meant to be shared
        if directory.is_dir():
            directory.rmdir()  # empty, checked above
        os.rename(staging, directory)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"{directory}: cannot write the bundle: {exc.strerror or exc}") from None


def write_bundle(
    directory: Path,
    spec: SpecMap,
    items: Sequence[WorkItemEvidence],
    signer: AuditKey,
    *,
    outputs: Mapping[str, bytes] | None = None,
    created: datetime | None = None,
) -> BundleInfo:
    """Write the signed evidence bundle of a mission to ``directory`` (new or empty).

    Args:
        directory: where the bundle goes; it must not exist or be empty.
        spec: the mission's SpecMap: every one of its requirements is listed
            in the bundle, met or unmet with the reason.
        items: one record per work item; each check's ``output_file`` is read
            (unless ``outputs`` holds its bytes) and must still hash to its
            ``output_sha256``.
        signer: the key that signs the manifest (see :func:`signing_key`).
        outputs: check outputs held in memory, by their sha256.
        created: the manifest's timestamp (default: now, UTC), the one
            timestamp in a bundle.

    Returns:
        Where it was written, by which key, its files and the requirements met and unmet.

    Raises:
        UserError: a work item is listed twice or claims a requirement the
            spec does not have; a check output is unreadable or changed; the
            directory is not empty or cannot be written.

    Example:
        >>> info = write_bundle(Path("evidence"), spec, items, signing_key(home))  # doctest: +SKIP
    """
    placed, check_files = _collect(spec, items, outputs or {})
    doc = EvidenceDocument(spec=spec, items=placed, requirements=trace(spec, placed))
    files = bundle_files(doc, check_files)
    manifest = build_manifest(files, signer, created or datetime.now(UTC))
    files[MANIFEST_FILE] = json_text(manifest).encode("utf-8")
    _place(directory, files)
    return BundleInfo(
        path=directory,
        key_id=signer.public.key_id,
        files=tuple(sorted(files)),
        met=tuple(r.id for r in doc.requirements if r.status == "met"),
        unmet=tuple(r.id for r in doc.requirements if r.status == "unmet"),
    )
