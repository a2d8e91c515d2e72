"""File tools: ``file.read``, ``file.write``, ``file.list`` -- confined by the exec profile.

Paths are relative to the run's workspace (absolute paths are allowed only
inside a granted root). Every path is resolved with symlinks followed *before*
it is checked, so a symlink or a ``..`` that leads outside the granted roots
is refused, not followed. Reading is allowed under the workspace and the
profile's ``read_paths``; writing only under its ``write_paths`` (the
workspace by default). A refusal is a :class:`~nexus.domain.errors.PolicyDenied`
naming the path and the rule, and is recorded like any failed effect.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nexus.domain.errors import NexusError, PolicyDenied, UserError
from nexus.metrics import count_denial
from nexus.tools.base import ToolContext
from nexus.tools.profile import SHELL_PROFILE, ExecProfile, effective_profile


def _within(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _real_roots(profile: ExecProfile, paths: tuple[str, ...], workspace: Path) -> list[Path]:
    return [Path(os.path.realpath(p)) for p in profile.resolve(paths, workspace)]


def _profile(default: ExecProfile, ctx: ToolContext) -> ExecProfile:
    return effective_profile(default, ctx)


def _target(args: dict[str, Any], tool: str, ctx: ToolContext) -> tuple[str, Path]:
    raw = args.get("path", ".")
    if not isinstance(raw, str) or not raw or "\x00" in raw:
        raise UserError(f"tool '{tool}': 'path' must be a non-empty string", retryable=False)
    joined = Path(raw) if os.path.isabs(raw) else ctx.workspace / raw
    return raw, Path(os.path.realpath(joined))


def _check(tool: str, raw: str, path: Path, roots: list[Path], what: str) -> None:
    if not _within(path, roots):
        count_denial(tool, "path")
        raise PolicyDenied(
            f"tool '{tool}': {what} of {raw!r} denied: it resolves to {path}, "
            f"outside the granted paths"
        )


def _readable(
    tool: str, own: ExecProfile, args: dict[str, Any], ctx: ToolContext, what: str
) -> tuple[ExecProfile, str, Path]:
    """The effective profile and the checked path of a reading call."""
    profile = _profile(own, ctx)
    raw, path = _target(args, tool, ctx)
    roots = _real_roots(profile, ("$WORKSPACE", *profile.read_paths), ctx.workspace)
    _check(tool, raw, path, roots, what)
    return profile, raw, path


@dataclass(frozen=True, slots=True)
class FileRead:
    """``file.read``: ``{path, max_bytes?}`` -> ``{path, text, size, truncated}``."""

    name: str = "file.read"
    pure: bool = False
    profile: ExecProfile = field(default=SHELL_PROFILE)

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        profile, raw, path = _readable(self.name, self.profile, args, ctx, "reading")
        limit = min(int(args.get("max_bytes", profile.max_output_bytes)), profile.max_output_bytes)

        def read() -> tuple[bytes, int]:
            with open(path, "rb") as fh:
                return fh.read(limit + 1), os.fstat(fh.fileno()).st_size

        try:
            data, size = await asyncio.to_thread(read)
        except FileNotFoundError:
            raise NexusError(f"tool '{self.name}': no file {raw!r}", retryable=False) from None
        except IsADirectoryError:
            raise NexusError(
                f"tool '{self.name}': {raw!r} is a directory", retryable=False
            ) from None
        except OSError as exc:
            raise NexusError(f"tool '{self.name}': cannot read {raw!r}: {exc.strerror}") from None
        return {
            "path": raw,
            "text": data[:limit].decode("utf-8", errors="replace"),
            "size": size,
            "truncated": len(data) > limit,
        }


@dataclass(frozen=True, slots=True)
class FileWrite:
    """``file.write``: ``{path, text, append?}`` -> ``{path, bytes}``."""

    name: str = "file.write"
    pure: bool = False
    profile: ExecProfile = field(default=SHELL_PROFILE)

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        profile = _profile(self.profile, ctx)
        raw, path = _target(args, self.name, ctx)
        text = args.get("text", "")
        if not isinstance(text, str):
            raise UserError(f"tool '{self.name}': 'text' must be a string", retryable=False)
        roots = _real_roots(profile, profile.write_paths, ctx.workspace)
        _check(self.name, raw, path, roots, "writing")
        data = text.encode("utf-8")
        if len(data) > profile.max_file_mb * 1024 * 1024:
            count_denial(self.name, "quota")
            raise PolicyDenied(
                f"tool '{self.name}': {len(data)} bytes exceed the profile's "
                f"max_file_mb of {profile.max_file_mb}"
            )
        if len(data) > profile.max_write_mb * 1024 * 1024:
            count_denial(self.name, "quota")
            raise PolicyDenied(
                f"tool '{self.name}': {len(data)} bytes exceed the profile's "
                f"max_write_mb of {profile.max_write_mb}"
            )
        mode = "ab" if args.get("append") else "wb"

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # O_NOFOLLOW: a symlink planted after the check is not followed
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW
            flags |= os.O_APPEND if mode == "ab" else os.O_TRUNC
            fd = os.open(path, flags, 0o644)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            raise NexusError(f"tool '{self.name}': cannot write {raw!r}: {exc.strerror}") from None
        return {"path": raw, "bytes": len(data)}


@dataclass(frozen=True, slots=True)
class FileList:
    """``file.list``: ``{path?, max_entries?}`` -> ``{path, entries: [{name, type, size}]}``."""

    name: str = "file.list"
    pure: bool = False
    profile: ExecProfile = field(default=SHELL_PROFILE)

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        _, raw, path = _readable(self.name, self.profile, args, ctx, "listing")
        limit = int(args.get("max_entries", 1000))

        def listing() -> list[dict[str, Any]]:
            entries = []
            for entry in sorted(os.scandir(path), key=lambda e: e.name)[:limit]:
                kind = (
                    "dir"
                    if entry.is_dir(follow_symlinks=False)
                    else ("link" if entry.is_symlink() else "file")
                )
                size = entry.stat(follow_symlinks=False).st_size if kind == "file" else None
                entries.append({"name": entry.name, "type": kind, "size": size})
            return entries

        try:
            entries = await asyncio.to_thread(listing)
        except FileNotFoundError:
            raise NexusError(f"tool '{self.name}': no directory {raw!r}", retryable=False) from None
        except NotADirectoryError:
            raise NexusError(
                f"tool '{self.name}': {raw!r} is not a directory", retryable=False
            ) from None
        return {"path": raw, "entries": entries}
