"""The audit signing key (Ed25519) and the Merkle root that covers every signed head.

A hash chain shows tampering only to someone who did not recompute it: anyone
who can write the database can edit an event and rehash every link after it.
So Nexus *signs* the head of each run's chain (store id, run id, last seq,
last hash) with a key kept outside the database, in ``$NEXUS_HOME/keys``
(directory ``0700``, key file ``0600``, created on first use). The sandbox
binds ``$NEXUS_HOME`` read-only and the file tools refuse it (see
:mod:`nexus.security.trusted`), so a task can neither read the key nor
replace it.

One root over all heads lets an operator publish a single value: the Merkle
tree hash of RFC 9162 (section 2.1.1) over the heads in run-id order, with
``leaf = SHA-256(0x00 || head)`` and ``node = SHA-256(0x01 || left || right)``,
where ``head`` is the UTF-8 text ``run_id:seq:hash``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from nexus.domain.errors import NotFoundError, UserError

__all__ = [
    "AUDIT_KEY_FILE",
    "AuditKey",
    "PublicKey",
    "head_leaf",
    "head_message",
    "merkle_root",
]

#: The key's file name inside ``$NEXUS_HOME/keys``.
AUDIT_KEY_FILE = "audit.ed25519"

_HEAD_DOMAIN = b"nexus-audit-head/1\x00"


def head_message(store_id: str, run_id: str, seq: int, hash_: str) -> bytes:
    """The bytes a run's head signature covers (domain-separated, NUL-delimited)."""
    return _HEAD_DOMAIN + "\x00".join((store_id, run_id, str(seq), hash_)).encode("utf-8")


def head_leaf(run_id: str, seq: int, hash_: str) -> bytes:
    """One head as a Merkle leaf's data: ``run_id:seq:hash``."""
    return f"{run_id}:{seq}:{hash_}".encode()


def merkle_root(leaves: Sequence[bytes]) -> str:
    """RFC 9162 Merkle tree hash of ``leaves`` in the given order (hex).

    The empty tree's hash is ``SHA-256("")``; the split point is the largest
    power of two below the number of leaves.

    Example:
        >>> merkle_root([]) == hashlib.sha256(b"").hexdigest()
        True
    """
    if not leaves:
        return hashlib.sha256(b"").hexdigest()
    level = [hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves]
    return _subtree(level).hex()


def _subtree(hashes: Sequence[bytes]) -> bytes:
    n = len(hashes)
    if n == 1:
        return hashes[0]
    k = 1 << ((n - 1).bit_length() - 1)  # the largest power of two < n
    return hashlib.sha256(b"\x01" + _subtree(hashes[:k]) + _subtree(hashes[k:])).digest()


@dataclass(frozen=True, slots=True)
class PublicKey:
    """An Ed25519 public key: what verifies heads, safe to publish."""

    raw: bytes

    @property
    def key_id(self) -> str:
        """The first 16 hex digits of SHA-256 of the raw key."""
        return hashlib.sha256(self.raw).hexdigest()[:16]

    def text(self) -> str:
        """The raw key in base64 (as published by ``nexus audit head``)."""
        return base64.b64encode(self.raw).decode("ascii")

    @classmethod
    def from_text(cls, text: str) -> PublicKey:
        """Parse :meth:`text` output.

        Raises:
            UserError: not a base64 Ed25519 public key.
        """
        try:
            raw = base64.b64decode(text.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            raw = b""
        if len(raw) != 32:
            raise UserError("the public key is not a base64 Ed25519 key (32 bytes)")
        return cls(raw)

    def verify(self, signature: str, message: bytes) -> bool:
        """Whether ``signature`` (hex) is this key's signature of ``message``."""
        try:
            sig = bytes.fromhex(signature)
            Ed25519PublicKey.from_public_bytes(self.raw).verify(sig, message)
        except (ValueError, InvalidSignature):
            return False
        return True


class AuditKey:
    """The private signing key of one Nexus home."""

    __slots__ = ("_key", "path", "public")

    def __init__(self, key: Ed25519PrivateKey, path: Path | None = None) -> None:
        self._key = key
        self.path = path
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public = PublicKey(raw)

    def __repr__(self) -> str:  # never the key itself
        return f"AuditKey(key_id={self.public.key_id!r}, path={self.path!r})"

    @classmethod
    def generate(cls) -> AuditKey:
        """A fresh key held in memory only (tests, tools)."""
        return cls(Ed25519PrivateKey.generate())

    def sign(self, message: bytes) -> str:
        """The signature of ``message``, hex."""
        return self._key.sign(message).hex()

    @classmethod
    def load(cls, path: Path) -> AuditKey:
        """Read the key at ``path``.

        Raises:
            NotFoundError: there is no key file.
            UserError: the file is readable by others, or not an Ed25519 key.
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise NotFoundError(f"no audit key at {path}") from None
        except OSError as exc:
            raise UserError(f"cannot read the audit key {path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if info.st_mode & 0o077:
                raise UserError(
                    f"the audit key {path} is readable by other users "
                    f"(mode {stat.S_IMODE(info.st_mode):04o}): run `chmod 600 {path}` "
                    "and consider it leaked if others could read it"
                )
            data = fh.read()
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, Ed25519PrivateKey):
            raise UserError(f"the audit key {path} is not an Ed25519 private key (PEM, PKCS#8)")
        return cls(key, path)

    @classmethod
    def load_or_create(cls, path: Path) -> AuditKey:
        """Read the key at ``path``, creating it (``0600``, its folder ``0700``) if absent.

        Two processes (or threads) creating it at once end up with the same key:
        the file is written aside and linked into place, and the loser reads the
        winner's.

        Raises:
            UserError: the key cannot be created, or is unusable (see :meth:`load`).
        """
        try:
            return cls.load(path)
        except NotFoundError:
            pass
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(path.parent, 0o700)
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            # unique per call: threads of one process may create it at once too
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(pem)
                    fh.flush()
                    os.fsync(fh.fileno())
                with contextlib.suppress(FileExistsError):  # another process won: use its key
                    os.link(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the audit key {path}: {exc.strerror}") from None
        return cls.load(path)
