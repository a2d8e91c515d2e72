"""``MANIFEST.json``: every file of a bundle with its sha256, signed with Ed25519.

The signature covers ``nexus-evidence-manifest/1 NUL`` followed by the RFC 8785
canonical JSON of the manifest without its ``signature`` field: the file list,
the creation time (the only timestamp in a bundle), the key id and the public
key. The manifest is written in one exact form (:func:`json_text`), so a
change to any of its bytes -- even one that leaves the JSON meaning alone --
is seen.

The key is the home's audit key (``$NEXUS_HOME/keys/audit.ed25519``, see
:mod:`nexus.security.signing`), whose public half ``nexus audit head`` prints,
or a key file given explicitly.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from nexus.domain.canonical import canonical_bytes
from nexus.security.signing import AUDIT_KEY_FILE, AuditKey
from nexus.store.heads import keys_dir

__all__ = [
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "build_manifest",
    "json_text",
    "manifest_message",
    "signing_key",
]

MANIFEST_FILE = "MANIFEST.json"
MANIFEST_FORMAT = "nexus-evidence-manifest/1"
_DOMAIN = MANIFEST_FORMAT.encode("ascii") + b"\x00"


def json_text(value: Any) -> str:
    """The one form Nexus writes a bundle's JSON files in: sorted keys, 2-space indent."""
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def manifest_message(manifest: dict[str, Any]) -> bytes:
    """The bytes the signature covers: the manifest without its ``signature`` field."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return _DOMAIN + canonical_bytes(body)


def build_manifest(files: dict[str, bytes], key: AuditKey, created: datetime) -> dict[str, Any]:
    """The signed manifest of ``files`` (bundle path -> bytes)."""
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": [
            {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for path, data in sorted(files.items())
        ],
        "key_id": key.public.key_id,
        "public_key": key.public.text(),
    }
    manifest["signature"] = key.sign(manifest_message(manifest))
    return manifest


def signing_key(home: Path, key_file: Path | None = None) -> AuditKey:
    """The key a bundle is signed with: ``key_file``, else the home's audit key.

    The home's key is created on first use, as the audit log creates it; a
    given file must exist and be an Ed25519 private key (PEM, PKCS#8) that
    only its owner can read.

    Raises:
        NotFoundError: ``key_file`` does not exist.
        UserError: the key is unusable, or cannot be created.
    """
    if key_file is not None:
        return AuditKey.load(key_file)
    return AuditKey.load_or_create(keys_dir(home) / AUDIT_KEY_FILE)
