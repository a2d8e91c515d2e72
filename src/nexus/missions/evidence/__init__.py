"""Evidence bundles: what a mission did for each requirement, signed and checkable offline.

>>> from nexus.missions.evidence import Verdict, WorkItemEvidence
>>> item = WorkItemEvidence(id="W1", requirements=("R1",), verdict=Verdict(
...     outcome="unmet", reason="the gate rejected all 3 attempts"))
>>> item.passing
False

The mission records one :class:`WorkItemEvidence` per work item;
:func:`write_bundle` writes them with the check outputs, a Markdown and an
HTML report (the traceability matrix requirement -> work item -> commit ->
checks) and a manifest signed with Ed25519 (:func:`signing_key`);
:func:`verify_bundle` checks a bundle and names each file that does not hold.
See ``docs/missions.md`` ("Evidence bundles").
"""

from nexus.missions.evidence._bundle import (
    EVIDENCE_FILE,
    REPORT_HTML,
    REPORT_MD,
    BundleInfo,
    check_path,
    write_bundle,
)
from nexus.missions.evidence._manifest import (
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    signing_key,
)
from nexus.missions.evidence._model import (
    EVIDENCE_FORMAT,
    Attempt,
    CheckRun,
    CheckVerdict,
    EvidenceDocument,
    Outcome,
    RequirementStatus,
    Verdict,
    WorkItemEvidence,
    patch_hash,
    trace,
)
from nexus.missions.evidence._report import render_html, render_markdown
from nexus.missions.evidence._verify import Problem, VerifyReport, verify_bundle

__all__ = [
    "EVIDENCE_FILE",
    "EVIDENCE_FORMAT",
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "REPORT_HTML",
    "REPORT_MD",
    "Attempt",
    "BundleInfo",
    "CheckRun",
    "CheckVerdict",
    "EvidenceDocument",
    "Outcome",
    "Problem",
    "RequirementStatus",
    "Verdict",
    "VerifyReport",
    "WorkItemEvidence",
    "check_path",
    "patch_hash",
    "render_html",
    "render_markdown",
    "signing_key",
    "trace",
    "verify_bundle",
    "write_bundle",
]
