"""File tools: ``file.read``, ``file.write``, ``file.list`` -- confined by the exec profile.

Paths are relative to the run's workspace (absolute paths are allowed only
inside a granted root). Reading is allowed under the workspace and the
profile's ``read_paths``; writing only under its ``write_paths`` (the
workspace by default).

How a path is resolved, race-free (see :mod:`nexus.security.paths`):

1. ``.`` and ``..`` are applied to the path's *text*, and the result must lie
   in a granted root (``../x`` from the workspace is allowed only when a
   granted root holds it).
2. That root is opened once, as a directory descriptor, from its real path
   with no symlink followed -- the workspace must *be* its real path.
3. The rest is opened relative to that descriptor by ``openat2`` with
   ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`` (or a no-follow walk where
   openat2 is missing): reading, writing, creating parent directories and
   listing all go through descriptors, never through a second lookup of the
   path, so a directory swapped for a symlink mid-call is refused, not
   followed.

**Symbolic links are refused** wherever they are met, inside the workspace
too (before 0.x they were followed when they led inside a granted root).
Only regular files are read or written (a FIFO or device is refused without
blocking), and a file with more than one hard link is not written, since the
write would land in every other name of it as well.

**What Nexus trusts** (:mod:`nexus.security.trusted`: ``nexus.toml``, the
state directory, the virtual environment, the ``nexus`` package) is never
written, even where a profile grants the directory holding it and even before
the file exists; a ``nexus.toml`` or ``.nexus`` anywhere under a writable root
counts as trusted. Nexus's state (``.nexus``: the event log, pins and signing
keys) is not read or listed either.

A refusal is a :class:`~nexus.domain.errors.PolicyDenied` naming the path and
the rule, and is recorded like any failed effect.
"""

from __future__ import annotations

import asyncio
import errno
import os
import posixpath
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nexus.domain.errors import NexusError, PolicyDenied, UserError
from nexus.metrics import count_denial
from nexus.security import paths as _paths
from nexus.security.trusted import TRUSTED_NAMES, TrustedPaths, trusted_paths
from nexus.tools.base import ToolContext
from nexus.tools.profile import SHELL_PROFILE, ExecProfile, effective_profile

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Target:
    """A path a call named, located in one granted root."""

    raw: str  # as the call wrote it, for messages
    root: Path  # the root's real path
    parts: tuple[str, ...]  # components beneath it: no '.', '..' or ''

    @property
    def path(self) -> Path:
        """The real path (no symlink can be on it: none is ever followed)."""
        return self.root.joinpath(*self.parts)


def _deny(tool: str, message: str) -> PolicyDenied:
    count_denial(tool, "path")
    return PolicyDenied(f"tool '{tool}': {message}")


def _normal(path: str) -> str:
    return "/" + posixpath.normpath(path).lstrip("/")


def _roots(
    tool: str, profile: ExecProfile, paths: tuple[str, ...], ctx: ToolContext
) -> list[tuple[str, Path]]:
    """``(as granted, real path)`` of each granted root; the workspace must be real."""
    workspace = str(ctx.workspace)
    real_ws = os.path.realpath(workspace)
    if real_ws != _normal(workspace):
        raise _deny(
            tool,
            f"the workspace {workspace} is not a real path (it resolves to {real_ws}); "
            "a workspace is bound by its real path and no symlink on it is followed",
        )
    out = []
    for p in profile.resolve(paths, ctx.workspace):
        given = _normal(str(p))
        if given == real_ws or given.startswith(real_ws.rstrip("/") + "/"):
            # inside the workspace a task may have planted a symlink: taken
            # as written, and opened without following one
            out.append((given, Path(given)))
        else:  # the operator's own path: a symlink in it is the operator's word
            out.append((given, Path(os.path.realpath(p))))
    return out


def _locate(
    tool: str, raw: object, roots: Sequence[tuple[str, Path]], ctx: ToolContext, what: str
) -> _Target:
    if not isinstance(raw, str) or not raw or "\x00" in raw:
        raise UserError(f"tool '{tool}': 'path' must be a non-empty string", retryable=False)
    parts = _paths.split_beneath(raw)
    if parts is not None:
        absolute = str(ctx.workspace.joinpath(*parts))
    else:
        absolute = _normal(raw if raw.startswith("/") else f"{ctx.workspace}/{raw}")
    best: _Target | None = None
    for given, real in roots:
        for base in {given, str(real)}:
            if absolute == base or absolute.startswith(base.rstrip("/") + "/"):
                rest = tuple(p for p in absolute[len(base) :].split("/") if p)
                if best is None or len(rest) < len(best.parts):
                    best = _Target(raw, real, rest)
    if best is None:
        raise _deny(tool, f"{what} of {raw!r} denied: {absolute} is outside the granted paths")
    return best


def _written(target: _Target, ctx: ToolContext) -> str:
    """The file a write reached, as ``writes:`` names it: relative to the workspace (no
    ``.``, ``..`` or symlink can be on it), or absolute in a granted root outside it."""
    path = str(target.path)
    workspace = _normal(str(ctx.workspace)).rstrip("/")
    if path.startswith(workspace + "/"):
        return path[len(workspace) + 1 :]
    return path


def _trusted(ctx: ToolContext) -> TrustedPaths:
    return ctx.trusted if ctx.trusted is not None else trusted_paths()


def _check_writable(tool: str, target: _Target, ctx: ToolContext) -> None:
    path = target.path
    trusted = _trusted(ctx)
    hit = next((p for p in trusted.paths if path == p or p in path.parents), None)
    if hit is None:
        name = next((n for n in target.parts if n in TRUSTED_NAMES), None)
        hit = (
            None
            if name is None
            else target.root.joinpath(*target.parts[: target.parts.index(name) + 1])
        )
    if hit is not None:
        where = "is" if hit == path else f"lies under {hit}, which"
        raise _deny(
            tool,
            f"writing {target.raw!r} denied: {path} {where} is a path Nexus trusts "
            "(its configuration, state or code); no task may write it",
        )


def _check_readable(tool: str, target: _Target, ctx: ToolContext, what: str) -> None:
    path = target.path
    states = [p for p in _trusted(ctx).paths if p.name == ".nexus"]
    home = os.environ.get("NEXUS_HOME")
    if home:
        states.append(Path(os.path.realpath(home)))
    hit = next((p for p in states if path == p or p in path.parents), None)
    if hit is None and ".nexus" in target.parts:
        hit = target.root.joinpath(*target.parts[: target.parts.index(".nexus") + 1])
    if hit is not None:
        raise _deny(
            tool,
            f"{what} of {target.raw!r} denied: {path} is in Nexus's state ({hit}: the event "
            "log, pins and signing keys), which tasks may not read",
        )


@contextmanager
def _opened(tool: str, target: _Target, what: str, opener: Callable[[int], int]) -> Iterator[int]:
    """A descriptor from ``opener(root_fd)``, with OS errors turned into clear ones."""
    try:
        root = _paths.open_root(str(target.root))
    except FileNotFoundError:
        raise NexusError(
            f"tool '{tool}': the granted directory {target.root} does not exist", retryable=False
        ) from None
    except OSError as exc:
        raise _deny(
            tool,
            f"{what} of {target.raw!r} denied: the granted directory {target.root} "
            f"cannot be opened without following a symlink ({exc.strerror})",
        ) from None
    try:
        try:
            fd = opener(root)
        except OSError as exc:
            raise _os_error(tool, target, what, root, exc) from None
    finally:
        os.close(root)
    try:
        yield fd
    finally:
        os.close(fd)


def _os_error(tool: str, target: _Target, what: str, root: int, exc: OSError) -> NexusError:
    code = exc.errno
    if code in (errno.ELOOP, errno.EXDEV, errno.ENOTDIR):
        reason = _paths.describe(root, target.parts)
        if reason is not None and "symbolic link" in reason:
            return _deny(
                tool,
                f"{what} of {target.raw!r} denied: {reason}; file tools do not follow symlinks",
            )
        if code == errno.ENOTDIR:
            detail = reason or f"{target.raw!r} is not a directory"
            return NexusError(f"tool '{tool}': {detail}", retryable=False)
        return _deny(tool, f"{what} of {target.raw!r} denied: it leaves {target.root}")
    if code == errno.ENOENT:
        kind = "directory" if what == "listing" else "file"
        return NexusError(f"tool '{tool}': no {kind} {target.raw!r}", retryable=False)
    if code == errno.ENXIO:  # a FIFO with no reader, a socket: opened without blocking
        return NexusError(f"tool '{tool}': {target.raw!r} is not a regular file", retryable=False)
    if code == errno.EISDIR:
        return NexusError(f"tool '{tool}': {target.raw!r} is a directory", retryable=False)
    return NexusError(f"tool '{tool}': cannot {_VERB[what]} {target.raw!r}: {exc.strerror}")


_VERB = {"reading": "read", "writing": "write", "listing": "list"}


def _regular(tool: str, target: _Target, fd: int) -> os.stat_result:
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        raise NexusError(f"tool '{tool}': {target.raw!r} is a directory", retryable=False)
    if not stat.S_ISREG(st.st_mode):
        raise NexusError(f"tool '{tool}': {target.raw!r} is not a regular file", retryable=False)
    return st


def _profile(tool: FileRead | FileWrite | FileList, ctx: ToolContext) -> ExecProfile:
    return effective_profile(tool.profile, ctx, tool.allowed)


def _readable(
    tool: FileRead | FileList, args: dict[str, Any], ctx: ToolContext, what: str
) -> tuple[ExecProfile, _Target]:
    """The effective profile and the checked target of a reading call."""
    profile = _profile(tool, ctx)
    roots = _roots(tool.name, profile, ("$WORKSPACE", *profile.read_paths), ctx)
    target = _locate(tool.name, args.get("path", "."), roots, ctx, what)
    _check_readable(tool.name, target, ctx, what)
    return profile, target


async def _in_thread(fn: Callable[[], _T]) -> _T:
    return await asyncio.to_thread(fn)


@dataclass(frozen=True, slots=True)
class FileRead:
    """``file.read``: ``{path, max_bytes?}`` -> ``{path, text, size, truncated}``."""

    name: str = "file.read"
    pure: bool = False
    profile: ExecProfile = field(default=SHELL_PROFILE)
    #: the most a workflow's grant may get (``nexus.toml``'s ``[tools."<name>"]``)
    allowed: ExecProfile | None = None

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        profile, target = _readable(self, args, ctx, "reading")
        limit = min(int(args.get("max_bytes", profile.max_output_bytes)), profile.max_output_bytes)
        flags = os.O_RDONLY | os.O_NONBLOCK  # a FIFO must not block the call

        def read() -> tuple[bytes, int]:
            with _opened(
                self.name,
                target,
                "reading",
                lambda root: _paths.open_beneath(root, target.parts, flags),
            ) as fd:
                size = _regular(self.name, target, fd).st_size
                return _paths.read_at_most(fd, limit + 1), size

        try:
            data, size = await _in_thread(read)
        except OSError as exc:
            raise NexusError(
                f"tool '{self.name}': cannot read {target.raw!r}: {exc.strerror}"
            ) from None
        return {
            "path": target.raw,
            "text": data[:limit].decode("utf-8", errors="replace"),
            "size": size,
            "truncated": len(data) > limit,
        }


@dataclass(frozen=True, slots=True)
class FileWrite:
    """``file.write``: ``{path, text, append?}`` -> ``{path, bytes}``.

    Missing parent directories are created (beneath the granted root only).
    """

    name: str = "file.write"
    pure: bool = False
    profile: ExecProfile = field(default=SHELL_PROFILE)
    #: the most a workflow's grant may get (``nexus.toml``'s ``[tools."<name>"]``)
    allowed: ExecProfile | None = None

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        profile = _profile(self, ctx)
        text = args.get("text", "")
        if not isinstance(text, str):
            raise UserError(f"tool '{self.name}': 'text' must be a string", retryable=False)
        roots = _roots(self.name, profile, profile.write_paths, ctx)
        target = _locate(self.name, args.get("path", "."), roots, ctx, "writing")
        if not target.parts:
            raise NexusError(f"tool '{self.name}': {target.raw!r} is a directory", retryable=False)
        _check_writable(self.name, target, ctx)
        data = text.encode("utf-8")
        for limit, field_name in (
            (profile.max_file_mb, "max_file_mb"),
            (profile.max_write_mb, "max_write_mb"),
        ):
            if len(data) > limit * 1024 * 1024:
                count_denial(self.name, "quota")
                raise PolicyDenied(
                    f"tool '{self.name}': {len(data)} bytes exceed the profile's "
                    f"{field_name} of {limit}"
                )
        append = bool(args.get("append"))
        flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | (os.O_APPEND if append else 0)
        parent, name = target.parts[:-1], target.parts[-1]

        def open_file(root: int) -> int:
            folder = _paths.mkdirs_beneath(root, parent)
            try:
                return _paths.open_beneath(folder, (name,), flags, 0o644)
            finally:
                os.close(folder)

        def write() -> None:
            with _opened(self.name, target, "writing", open_file) as fd:
                st = _regular(self.name, target, fd)
                if st.st_nlink > 1:
                    raise _deny(
                        self.name,
                        f"writing {target.raw!r} denied: it is a hard link ({st.st_nlink} names "
                        "share the file), and the write would change the other names too",
                    )
                if append and st.st_size + len(data) > profile.max_file_mb * 1024 * 1024:
                    count_denial(self.name, "quota")
                    raise PolicyDenied(
                        f"tool '{self.name}': appending {len(data)} bytes to {target.raw!r} "
                        f"({st.st_size} bytes) exceeds the profile's max_file_mb of "
                        f"{profile.max_file_mb}"
                    )
                os.set_blocking(fd, True)
                if not append:
                    os.ftruncate(fd, 0)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]

        try:
            await _in_thread(write)
        except OSError as exc:
            raise NexusError(
                f"tool '{self.name}': cannot write {target.raw!r}: {exc.strerror}"
            ) from None
        if ctx.wrote is not None:
            ctx.wrote.append(_written(target, ctx))
        return {"path": target.raw, "bytes": len(data)}


@dataclass(frozen=True, slots=True)
class FileList:
    """``file.list``: ``{path?, max_entries?}`` -> ``{path, entries: [{name, type, size}]}``."""

    name: str = "file.list"
    pure: bool = False
    profile: ExecProfile = field(default=SHELL_PROFILE)
    #: the most a workflow's grant may get (``nexus.toml``'s ``[tools."<name>"]``)
    allowed: ExecProfile | None = None

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        _, target = _readable(self, args, ctx, "listing")
        limit = int(args.get("max_entries", 1000))
        flags = os.O_RDONLY | os.O_DIRECTORY

        def listing() -> list[dict[str, Any]]:
            with _opened(
                self.name,
                target,
                "listing",
                lambda root: _paths.open_beneath(root, target.parts, flags),
            ) as fd:
                entries = []
                # scandir on a descriptor: each entry is stat'ed relative to it
                with os.scandir(fd) as found:
                    ordered = sorted(found, key=lambda e: e.name)[:limit]
                for entry in ordered:
                    st = entry.stat(follow_symlinks=False)
                    kind = (
                        "dir"
                        if stat.S_ISDIR(st.st_mode)
                        else ("link" if stat.S_ISLNK(st.st_mode) else "file")
                    )
                    entries.append(
                        {
                            "name": entry.name,
                            "type": kind,
                            "size": st.st_size if kind == "file" else None,
                        }
                    )
                return entries

        try:
            entries = await _in_thread(listing)
        except OSError as exc:
            raise NexusError(
                f"tool '{self.name}': cannot list {target.raw!r}: {exc.strerror}"
            ) from None
        return {"path": target.raw, "entries": entries}
