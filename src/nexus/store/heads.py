"""Signed run heads, published heads documents, and the store manifest outside the database.

A *head* is a run's last ``(seq, hash)``. The store signs it with the home's
audit key in the same transaction as every batch of events it commits, and
keeps it in ``audit_heads``. Editing an event and recomputing the chain
changes the head hash; appending a forged event moves the head past the
signed seq; cutting the tail leaves the signed seq beyond the log. None of
these can be re-signed without the key.

A database can also be swapped for another valid one, or emptied. So at every
run state change (created, paused, ended...) the signer also records the
heads in the *store manifest*, ``$NEXUS_HOME/keys/store-manifest.json``: the
store's id, every run's head, the Merkle root over them, signed. It is a
heads document like the one ``nexus audit head --json`` prints, and
``nexus audit verify`` checks the database against it as it checks against a
published one: every run it names must be in the store, at least that long,
with the same hash at the published seq.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nexus.domain.canonical import canonical_bytes
from nexus.domain.errors import UserError
from nexus.security.signing import (
    AUDIT_KEY_FILE,
    AuditKey,
    PublicKey,
    head_leaf,
    head_message,
    merkle_root,
)

HEADS_FORMAT = "nexus-audit-heads/1"
MANIFEST_FORMAT = "nexus-store-manifest/1"
MANIFEST_FILE = "store-manifest.json"


def keys_dir(home: Path) -> Path:
    """Where a home keeps its audit key and store manifest."""
    return home / "keys"


@dataclass(frozen=True, slots=True)
class SignedHead:
    """A run's last link, signed."""

    run_id: str
    seq: int
    hash: str
    key_id: str
    signature: str

    def valid(self, key: PublicKey, store_id: str) -> bool:
        """Whether the signature holds for this store under ``key``."""
        return key.key_id == self.key_id and key.verify(
            self.signature, head_message(store_id, self.run_id, self.seq, self.hash)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "hash": self.hash,
            "key_id": self.key_id,
            "signature": self.signature,
        }


def heads_root(heads: Iterable[SignedHead]) -> str:
    """The RFC 9162 Merkle root over ``heads`` in run-id order."""
    ordered = sorted(heads, key=lambda h: h.run_id)
    return merkle_root([head_leaf(h.run_id, h.seq, h.hash) for h in ordered])


@dataclass(frozen=True, slots=True)
class HeadsDocument:
    """Heads as published (``nexus audit head --json``) or kept in the store manifest."""

    store_id: str
    heads: Mapping[str, SignedHead]
    public_key: PublicKey | None = None
    source: str = "heads"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> str:
        return heads_root(self.heads.values())

    def to_dict(self, fmt: str = HEADS_FORMAT) -> dict[str, Any]:
        key = self.public_key
        return {
            "format": fmt,
            "store_id": self.store_id,
            "key_id": None if key is None else key.key_id,
            "public_key": None if key is None else key.text(),
            "runs": len(self.heads),
            "root": self.root,
            "heads": [self.heads[r].to_dict() for r in sorted(self.heads)],
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str) -> HeadsDocument:
        """Parse a heads document or a store manifest.

        Raises:
            UserError: naming ``source`` and the field that is wrong.
        """
        if not isinstance(data, dict) or data.get("format") not in (HEADS_FORMAT, MANIFEST_FORMAT):
            raise UserError(
                f'{source}: not a Nexus heads document (expected "format": "{HEADS_FORMAT}"; '
                "make one with `nexus audit head --json`)"
            )
        store_id = data.get("store_id")
        if not isinstance(store_id, str) or not store_id:
            raise UserError(f"{source}: field 'store_id' must be a non-empty string")
        key = None
        if data.get("public_key") is not None:
            try:
                key = PublicKey.from_text(str(data["public_key"]))
            except UserError as exc:
                raise UserError(f"{source}: field 'public_key': {exc.message}") from None
        rows = data.get("heads")
        if not isinstance(rows, list):
            raise UserError(f"{source}: field 'heads' must be a list")
        heads: dict[str, SignedHead] = {}
        for i, row in enumerate(rows):
            where = f"{source}: heads[{i}]"
            if not isinstance(row, dict):
                raise UserError(f"{where} must be an object")
            run_id, seq, hash_ = row.get("run_id"), row.get("seq"), row.get("hash")
            if not isinstance(run_id, str) or not run_id:
                raise UserError(f"{where}.run_id must be a non-empty string")
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
                raise UserError(f"{where}.seq must be a positive integer")
            if not isinstance(hash_, str) or len(hash_) != 64:
                raise UserError(f"{where}.hash must be a 64-digit hex SHA-256")
            heads[run_id] = SignedHead(
                run_id, seq, hash_, str(row.get("key_id") or ""), str(row.get("signature") or "")
            )
        return cls(store_id, heads, key, source)

    @classmethod
    def read(cls, path: Path) -> HeadsDocument:
        """Read a heads document from ``path``.

        Raises:
            UserError: the file is missing, not JSON, or not a heads document.
        """
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: cannot read: {exc}") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from None
        return cls.from_dict(data, str(path))


class HeadSigner:
    """Signs heads with a home's key and keeps its store manifest.

    Args:
        key: the home's audit key.
        manifest: the manifest file (default: beside the key).
    """

    def __init__(self, key: AuditKey, manifest: Path | None = None) -> None:
        if manifest is None:
            if key.path is None:
                raise ValueError("a key held in memory needs an explicit manifest path")
            manifest = key.path.with_name(MANIFEST_FILE)
        self.key = key
        self.manifest = manifest

    @classmethod
    def for_home(cls, home: Path) -> HeadSigner:
        """The signer of a home, creating its key on first use.

        Raises:
            UserError: the key cannot be created or read.
        """
        return cls(AuditKey.load_or_create(keys_dir(home) / AUDIT_KEY_FILE))

    def sign(self, store_id: str, run_id: str, seq: int, hash_: str) -> SignedHead:
        message = head_message(store_id, run_id, seq, hash_)
        return SignedHead(run_id, seq, hash_, self.key.public.key_id, self.key.sign(message))

    # -- the manifest -----------------------------------------------------
    def record(self, store_id: str, heads: Iterable[SignedHead], *, reset: bool = False) -> bool:
        """Put ``heads`` in the manifest (under a lock: several processes write one store).

        A manifest of another store is left alone (the database was swapped or
        emptied: ``nexus audit verify`` reports it) unless ``reset``, which also
        drops every head not given.

        Returns:
            Whether the manifest was written.
        """
        self.manifest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = self.manifest.with_name(self.manifest.name + ".lock")
        with open(lock, "a", encoding="ascii") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                try:
                    current = None if reset else read_manifest(self.manifest, self.key.public)
                except UserError:
                    return False  # edited or unreadable: keep it as evidence for verify
                if current is not None and current.store_id != store_id:
                    return False
                merged = {} if current is None else dict(current.heads)
                for head in heads:
                    old = merged.get(head.run_id)
                    if old is None or old.seq <= head.seq:
                        merged[head.run_id] = head
                doc = HeadsDocument(store_id, merged, self.key.public).to_dict(MANIFEST_FORMAT)
                doc["signature"] = self.key.sign(canonical_bytes(doc))
                tmp = self.manifest.with_name(f".{self.manifest.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
                os.replace(tmp, self.manifest)
                return True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def manifest_path(home: Path) -> Path:
    return keys_dir(home) / MANIFEST_FILE


def read_manifest(path: Path, key: PublicKey | None) -> HeadsDocument | None:
    """The store manifest at ``path`` (None if there is none), its signature checked.

    Raises:
        UserError: the manifest is unreadable, malformed, or its signature does
            not hold under ``key`` (it was edited).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"the store manifest {path} cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"the store manifest {path} is not JSON (line {exc.lineno})") from None
    doc = HeadsDocument.from_dict(data, f"the store manifest {path}")
    signature = data.pop("signature", None) if isinstance(data, dict) else None
    if key is not None and (
        not isinstance(signature, str) or not key.verify(signature, canonical_bytes(data))
    ):
        raise UserError(
            f"the store manifest {path} is not signed by this home's audit key "
            f"({key.key_id}): it was edited or comes from another home"
        )
    return HeadsDocument(doc.store_id, doc.heads, doc.public_key, "the store manifest")
