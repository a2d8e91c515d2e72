"""The guest's files: the run's workspace, preopened so that no trusted path in it is writable."""

from __future__ import annotations

import os
from pathlib import Path

import wasmtime

from nexus.security.trusted import TrustedPaths
from nexus.tools.wasm._limits import failed

__all__ = ["MAX_WRITABLE_DIRS", "WORKSPACE_GUEST_PATH", "preopen_workspace"]

#: Where the run's workspace appears inside the guest (preopened as fd 3).
WORKSPACE_GUEST_PATH = "/workspace"

#: The most subdirectories of a workspace preopened read-write; the rest stay read-only.
MAX_WRITABLE_DIRS = 256
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def preopen_workspace(wasi: wasmtime.WasiConfig, workspace: Path, trusted: TrustedPaths) -> None:
    """Preopen ``workspace`` for a guest in layers, so no trusted path in it is writable.

    wasmtime's preopen is read-write or read-only as a whole, with no way to
    except a path, so the workspace itself is preopened **read-only** as
    ``/workspace`` (fd 3), and each top-level subdirectory that neither is nor
    holds a trusted path (``nexus.toml``, ``.nexus``, a state directory or
    virtual environment configured there) is preopened **read-write** over it,
    as ``/workspace/<name>``. A guest's libc maps a path to the preopen with
    the longest matching prefix, so ``/workspace/out/x`` is writable and
    ``/workspace/nexus.toml`` is not. What WASI refuses in each preopen then
    holds for trusted paths too: ``..`` and absolute paths, symlinks leading
    out (resolved within the preopen the lookup started from), and renames or
    hard links into another preopen, which need write rights on both. New
    top-level entries cannot be made at all. While the workspace holds Nexus's
    state directory (``.nexus``, ``$NEXUS_HOME``), the read-only top level is
    not preopened either: the guest sees only the other subdirectories.

    Each directory is opened here without following symlinks and handed to
    wasmtime by its ``/proc/self/fd`` link, so a top-level symlink is never
    preopened, and one swapped in after the listing is not followed.

    Raises:
        ToolFailed: the workspace cannot be opened as a directory.
    """
    root = Path(os.path.abspath(workspace))
    protected = trusted.within([root])
    try:
        root_fd = os.open(root, _DIR_FLAGS)
    except OSError as exc:
        raise failed(f"workspace {workspace} cannot be opened: {exc.strerror}", {}) from None
    # Nexus's state (the log, the audit key) must not even be readable: while the
    # workspace holds it, its top level is not preopened at all, only the other
    # subdirectories
    hidden = [p for p in protected if trusted.hides(p) and os.path.lexists(p)]
    try:
        if not hidden:
            _preopen_fd(wasi, root_fd, WORKSPACE_GUEST_PATH, mutable=False, what=str(workspace))
        with os.scandir(root_fd) as entries:
            names = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
        writable = 0
        for name in names:
            path = root / name
            if any(p == path or path in p.parents for p in protected):
                continue
            guest_path = f"{WORKSPACE_GUEST_PATH}/{name}"
            try:
                guest_path.encode("utf-8")
                fd = os.open(name, _DIR_FLAGS, dir_fd=root_fd)
            except (UnicodeEncodeError, OSError):
                continue  # not UTF-8 (no WASI path can name it), or gone or swapped since listed
            try:
                _preopen_fd(wasi, fd, guest_path, mutable=True, what=str(path))
            finally:
                os.close(fd)
            writable += 1
            if writable == MAX_WRITABLE_DIRS:
                break
    finally:
        os.close(root_fd)


def _preopen_fd(
    wasi: wasmtime.WasiConfig, fd: int, guest_path: str, *, mutable: bool, what: str
) -> None:
    # wasmtime opens the directory now, through the fd's magic link: the very
    # directory opened above, whatever has been renamed or swapped since
    try:
        wasi.preopen_dir(f"/proc/self/fd/{fd}", guest_path, mutable)
    except wasmtime.WasmtimeError:
        raise failed(f"workspace directory {what} cannot be opened", {}) from None
