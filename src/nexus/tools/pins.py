"""Pins: which MCP tool descriptors a user approved, by hash.

A *pin* is the SHA-256 of the canonical JSON (RFC 8785) of the whole tool
object a server lists -- ``name``, ``title``, ``description``,
``inputSchema``, ``outputSchema``, ``annotations``, ``icons``, ``execution``
-- as the server sent it (fields it left out or set to ``null`` do not count,
so an SDK upgrade that adds a defaulted field does not move the pin). One
field is left out as volatile: ``_meta``, free-form metadata that servers and
SDK middleware may stamp per response (trace ids, cache hints) and that no
model reads.

MCP tools are denied by default. A tool whose pin was never approved is
``pending-approval``; once a user approves a pin (``nexus tools approve
<server>.<tool>``, which calls :func:`approve`) the tool is ``approved`` while
its descriptor hashes to that pin, and ``changed`` (disabled) as soon as it
does not: a server cannot swap a tool's description after approval (a "rug
pull") without the user seeing it.

:class:`PinStore` keeps approvals in ``$NEXUS_HOME/mcp-pins.json``::

    {"version": 1,
     "pins": {"git.git_status": {"pin": "<sha256>", "approved_at": "<ISO 8601>",
                                  "descriptor": {...the approved tool object...}}}}

The same file keeps *launch pins* under keys ``mcp:<server>`` and
``wasm:<tool>``: what Nexus itself would execute because configuration said
so -- an MCP server's command (the executable's path and SHA-256, the
interpreter of a script, its arguments and the SHA-256 of every argument that
names a file, its environment and working directory) or a WASM module's
bytes. A ``nexus.toml`` or workflow file is only as trustworthy as whoever
last wrote it; a launch pin makes a new or changed command wait for the
operator (``nexus tools approve mcp:<server> --pin …``) instead of running,
on the host, with the operator's privileges and keys.

Writes are atomic (a temporary file renamed over the old one) and serialised
across processes with an advisory lock, so the CLI can approve while a run is
live; readers reload when the file changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nexus.domain.canonical import digest
from nexus.domain.errors import PolicyDenied, UserError

if TYPE_CHECKING:  # the MCP SDK is loaded by whoever has a tool object to pin, not here
    from mcp import types

__all__ = [
    "PINS_FILE",
    "VOLATILE_FIELDS",
    "Approval",
    "LaunchKind",
    "PinStore",
    "ToolState",
    "approve",
    "changed_fields",
    "check_pin",
    "descriptor_of",
    "file_sha256",
    "launch_denial",
    "launch_key",
    "launch_pin",
    "status",
    "tool_pin",
]

#: The pin file's name inside ``$NEXUS_HOME``.
PINS_FILE = "mcp-pins.json"
#: Tool fields left out of the pin (by their Python field name and wire alias).
VOLATILE_FIELDS = frozenset({"_meta"})
_FORMAT = 1


class ToolState(StrEnum):
    """Where an MCP tool stands; only ``approved`` tools can be called."""

    PENDING_APPROVAL = "pending-approval"
    APPROVED = "approved"
    CHANGED = "changed"
    BLOCKED_BY_LINT = "blocked-by-lint"
    REMOVED = "removed"


def descriptor_of(tool: types.Tool) -> dict[str, Any]:
    """The pinned part of a tool object: its wire form without volatile fields."""
    data: dict[str, Any] = tool.model_dump(
        mode="json", by_alias=True, exclude_none=True, exclude_unset=True, exclude={"meta"}
    )
    for key in VOLATILE_FIELDS:
        data.pop(key, None)
    return data


def tool_pin(tool: types.Tool | Mapping[str, Any]) -> str:
    """The pin of a tool: hex SHA-256 of its canonical descriptor.

    Args:
        tool: an ``mcp.types.Tool`` or its descriptor (see :func:`descriptor_of`).
    """
    if isinstance(tool, Mapping):
        return digest({k: v for k, v in tool.items() if k not in VOLATILE_FIELDS})
    return digest(descriptor_of(tool))


def check_pin(key: str, pin: str) -> str:
    """``pin``, if it is a hex SHA-256 as every pin is.

    Raises:
        UserError: it is not 64 lowercase hex digits (the message names ``key``).
    """
    if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
        raise UserError(f"pin for '{key}' must be 64 lowercase hex digits")
    return pin


def changed_fields(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """Top-level descriptor fields that differ between two descriptors (sorted)."""
    if old is None:
        return []
    return sorted(k for k in set(old) | set(new) if digest(old.get(k)) != digest(new.get(k)))


@dataclass(frozen=True, slots=True)
class Approval:
    """One recorded approval.

    Attributes:
        tool: the qualified name, ``<server>.<tool>``.
        pin: the approved descriptor's pin.
        approved_at: when (ISO 8601, UTC).
        descriptor: the approved descriptor, when known (used to say what changed).
    """

    tool: str
    pin: str
    approved_at: str
    descriptor: Mapping[str, Any] | None = None

    def to_data(self) -> dict[str, Any]:
        """The approval as plain JSON."""
        data: dict[str, Any] = {"pin": self.pin, "approved_at": self.approved_at}
        if self.descriptor is not None:
            data["descriptor"] = dict(self.descriptor)
        return data


def _qualified(server: str, tool: str) -> str:
    return f"{server}.{tool}"


#: What a launch pin covers: an MCP server's command, or a WASM module.
LaunchKind = Literal["mcp", "wasm"]
_LAUNCH_WHAT = {"mcp": "MCP server", "wasm": "WASM tool"}


def launch_key(kind: LaunchKind, name: str) -> str:
    """The pin file's key for a launch: ``mcp:<server>`` or ``wasm:<tool>``."""
    return f"{kind}:{name}"


def launch_pin(record: Mapping[str, Any]) -> str:
    """The pin of a launch record: hex SHA-256 of its canonical JSON."""
    return digest(dict(record))


def file_sha256(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (executables can be large)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def launch_denial(
    kind: LaunchKind,
    name: str,
    pin: str,
    approval: Approval | None,
    record: Mapping[str, Any] | None = None,
) -> PolicyDenied:
    """The refusal of a launch whose pin is not the approved one."""
    what = f"{_LAUNCH_WHAT[kind]} '{name}'"
    command = f"nexus tools approve {launch_key(kind, name)} --pin {pin}"
    if approval is None:
        return PolicyDenied(
            f"{what} is not approved to run (launch pin {pin}); review what it runs "
            f"(nexus tools), then: {command}",
            retryable=False,
        )
    changed = changed_fields(approval.descriptor, record or {}) if record else []
    return PolicyDenied(
        f"{what} changed since it was approved (approved pin {approval.pin}, now {pin}"
        f"{'; changed: ' + ', '.join(changed) if changed else ''}); it is refused until "
        f"re-approved: {command}",
        retryable=False,
    )


class PinStore:
    """Approved pins, persisted as JSON.

    Args:
        path: the pin file; :meth:`at_home` picks ``<home>/mcp-pins.json``.

    Raises:
        UserError: (on first read) the file exists but is not a pin file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._approvals: dict[str, Approval] = {}
        self._stamp: tuple[int, int, int] | None = None

    @classmethod
    def at_home(cls, home: Path) -> PinStore:
        """The store in ``home``, the state directory (``NEXUS_HOME``) its caller was given.

        The tools never read the environment's settings themselves: the CLI or
        the engine that owns the state directory hands it over.
        """
        return cls(home / PINS_FILE)

    # -- reading -------------------------------------------------------------------

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload(self, *, force: bool = False) -> None:
        """Re-read the file if it changed since the last read (or always, with ``force``)."""
        stamp = self._file_stamp()
        if not force and stamp == self._stamp:
            return
        self._approvals = self._read() if stamp is not None else {}
        self._stamp = stamp

    def _read(self) -> dict[str, Approval]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise UserError(f"{self.path}: not a readable pin file: {exc}") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("pins"), dict):
            raise UserError(f"{self.path}: not a pin file (expected an object with 'pins')")
        out: dict[str, Approval] = {}
        for name, entry in raw["pins"].items():
            if not isinstance(entry, dict) or not isinstance(entry.get("pin"), str):
                raise UserError(f"{self.path}: pins.{name}: expected an object with a 'pin' string")
            descriptor = entry.get("descriptor")
            out[name] = Approval(
                tool=name,
                pin=entry["pin"],
                approved_at=str(entry.get("approved_at", "")),
                descriptor=descriptor if isinstance(descriptor, dict) else None,
            )
        return out

    def get(self, server: str, tool: str) -> Approval | None:
        """The approval of ``<server>.<tool>``, re-reading the file if it changed."""
        return self.get_key(_qualified(server, tool))

    def get_key(self, key: str) -> Approval | None:
        """The approval under ``key`` (a tool's ``server.tool`` or a launch key)."""
        self.reload()
        return self._approvals.get(key)

    def launch_state(
        self, kind: LaunchKind, name: str, pin: str
    ) -> tuple[ToolState, Approval | None]:
        """Like :meth:`state_of`, for a launch pin (see :func:`launch_key`)."""
        approval = self.get_key(launch_key(kind, name))
        if approval is None:
            return ToolState.PENDING_APPROVAL, None
        if approval.pin == pin:
            return ToolState.APPROVED, approval
        return ToolState.CHANGED, approval

    def check_launch(self, kind: LaunchKind, name: str, record: Mapping[str, Any]) -> str:
        """Refuse a launch whose record is not the approved one; its pin if it is.

        Raises:
            PolicyDenied: never approved, or approved with another pin.
        """
        pin = launch_pin(record)
        state, approval = self.launch_state(kind, name, pin)
        if state is not ToolState.APPROVED:
            raise launch_denial(kind, name, pin, approval, record)
        return pin

    def approvals(self) -> list[Approval]:
        """Every approval, sorted by tool name."""
        self.reload()
        return [self._approvals[k] for k in sorted(self._approvals)]

    def state_of(self, server: str, tool: str, pin: str) -> tuple[ToolState, Approval | None]:
        """``approved`` if ``pin`` is the approved one, ``changed`` if another pin was
        approved, ``pending-approval`` if none was; with the approval, if any."""
        approval = self.get(server, tool)
        if approval is None:
            return ToolState.PENDING_APPROVAL, None
        if approval.pin == pin:
            return ToolState.APPROVED, approval
        return ToolState.CHANGED, approval

    # -- writing -------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _write(self, approvals: Mapping[str, Approval]) -> None:
        doc = {
            "version": _FORMAT,
            "pins": {k: approvals[k].to_data() for k in sorted(approvals)},
        }
        text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=".mcp-pins.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):  # make the rename itself durable
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def approve(
        self,
        server: str,
        tool: str,
        pin: str,
        *,
        descriptor: Mapping[str, Any] | None = None,
    ) -> Approval:
        """Record ``pin`` as the approved descriptor of ``<server>.<tool>``.

        Args:
            server: the server's configured name.
            tool: the tool's name on that server.
            pin: the pin the user saw and approves (not "whatever it is now":
                approving a stale pin leaves a changed tool disabled).
            descriptor: the approved descriptor, kept to show what changes later.

        Raises:
            UserError: ``pin`` is not a hex SHA-256.
        """
        return self.approve_key(_qualified(server, tool), pin, descriptor=descriptor)

    def approve_key(
        self, key: str, pin: str, *, descriptor: Mapping[str, Any] | None = None
    ) -> Approval:
        """Record ``pin`` under ``key`` (``server.tool``, or a launch key such as ``mcp:git``).

        Raises:
            UserError: ``pin`` is not a hex SHA-256.
        """
        check_pin(key, pin)
        approval = Approval(
            tool=key,
            pin=pin,
            approved_at=datetime.now(UTC).isoformat(timespec="seconds"),
            descriptor=dict(descriptor) if descriptor is not None else None,
        )
        with self._locked():
            self.reload(force=True)
            approvals = dict(self._approvals)
            approvals[approval.tool] = approval
            self._write(approvals)
            self.reload(force=True)
        return approval

    def revoke(self, server: str, tool: str) -> bool:
        """Forget the approval of ``<server>.<tool>``; whether there was one."""
        return self.revoke_key(_qualified(server, tool))

    def revoke_key(self, key: str) -> bool:
        """Forget the approval under ``key``; whether there was one."""
        with self._locked():
            self.reload(force=True)
            approvals = dict(self._approvals)
            found = approvals.pop(key, None) is not None
            if found:
                self._write(approvals)
                self.reload(force=True)
        return found


def approve(
    server: str,
    tool: str,
    pin: str,
    *,
    descriptor: Mapping[str, Any] | None = None,
    home: Path,
) -> Approval:
    """Approve ``pin`` for ``<server>.<tool>`` in the state directory ``home``.

    A live :class:`~nexus.tools.mcp.McpConnection` in another process picks the
    approval up on its next call or listing of that tool.
    """
    return PinStore.at_home(home).approve(server, tool, pin, descriptor=descriptor)


def status(*, home: Path) -> list[dict[str, Any]]:
    """Every recorded approval as plain JSON (``tool``, ``pin``, ``approved_at``).

    This is what is on disk; the live state of a tool (approved, changed,
    pending, blocked) needs its current descriptor: see
    :meth:`nexus.tools.mcp.McpConnection.status`.
    """
    return [
        {"tool": a.tool, "pin": a.pin, "approved_at": a.approved_at}
        for a in PinStore.at_home(home).approvals()
    ]
