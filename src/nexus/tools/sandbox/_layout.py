"""The file system of one sandboxed call, planned on the host before it starts.

:class:`Layout` decides what bubblewrap binds where; :mod:`._command` turns
the plan into arguments. Planning has effects of its own on the host, undone
by :meth:`Layout.release`:

* **a temp dir** for the call (named after its owner, see
  :func:`~nexus.tools.sandbox._confine.temp_dir`) holding the synthetic
  ``passwd``, ``group`` and ``hosts``, the egress proxy's socket and, as
  root, the staging points of the launcher's mounts;
* **trusted paths** (:mod:`nexus.security.trusted`) inside a writable path are
  bound read-only over it; a missing one is held by a placeholder, so the
  call cannot create it either; the directories between the writable root and
  the trusted path become mount points, so they cannot be renamed away; a
  state directory that must not even be read is covered by an empty
  read-only tmpfs;
* **as root**, the sources the sandbox uid could not reach are staged for the
  launcher (:mod:`nexus.tools.sandbox._launch`): idmapped clones of
  root-owned writable and read paths, read-only clones of the interpreter or
  the shim under an unreachable prefix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
from pathlib import Path

from nexus.security.trusted import TrustedPaths, trusted_paths
from nexus.tools.profile import ExecProfile
from nexus.tools.sandbox import _confine

#: This interpreter, by a path that also exists inside the sandbox (``..`` in
#: ``sys.executable`` would not; symlinks are kept, so a venv stays a venv).
PYTHON = os.path.normpath(os.path.abspath(sys.executable))
#: The sandbox's PID 1, run by path (see its docstring for why).
SHIM = Path(__file__).with_name("_shim.py")
#: The uid (and gid) the command has inside the sandbox.
SANDBOX_UID = 1000

#: why a placeholder could not be made where a trusted path is missing
_CANNOT_CREATE = (errno.EACCES, errno.EPERM, errno.EROFS)


def within(path: Path, parent: Path) -> bool:
    """Whether ``path`` is ``parent`` or below it (by their text)."""
    return path == parent or parent in path.parents


class Layout:
    """What one call's file system is made of, and what the host did to make it.

    Args:
        profile: the call's profile (its read paths).
        workspace: the workspace, resolved.
        writable: the profile's write paths, resolved (each exists).
        uid: the host uid the call runs as.
        gid: its host gid.
        trusted: what Nexus trusts (default: :func:`trusted_paths` of this process).
    """

    def __init__(
        self,
        profile: ExecProfile,
        workspace: Path,
        writable: list[Path],
        uid: int,
        gid: int,
        trusted: TrustedPaths | None = None,
    ) -> None:
        self.profile = profile
        self.ws = workspace
        self.writable = writable
        self.uid, self.gid = uid, gid
        self.trusted = trusted
        self.tmp: Path | None = None
        self.userns = -1  # the idmap user namespace (root only)
        self.mounts: list[str] = []  # the launcher's -m KIND SOURCE TARGET
        self.staged: dict[Path, Path] = {}  # host path -> where the launcher mounts it
        self.ancestors: list[Path] = []  # dirs made mount points so they cannot be renamed
        self.protected: list[Path] = []  # trusted paths bound read-only over writable ones
        self.hidden: list[Path] = []  # state directories covered by an empty read-only tmpfs
        self.placeholders: list[tuple[Path, int]] = []

    def build(self) -> None:
        """Make the temp dir, hold what is trusted, stage mounts as root (blocking)."""
        self.tmp = _confine.temp_dir()
        self._protect([self.ws, *self.writable])
        if os.geteuid() == 0:
            self._stage([self.ws, *self.writable])
        (self.tmp / "passwd").write_text(
            f"sandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:{self.ws}:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        )
        (self.tmp / "group").write_text(f"sandbox:x:{SANDBOX_UID}:\nnogroup:x:65534:\n")
        (self.tmp / "hosts").write_text("127.0.0.1 localhost sandbox\n::1 localhost\n")
        for name in ("passwd", "group", "hosts"):  # whatever Nexus's umask is
            (self.tmp / name).chmod(0o644)

    def _protect(self, writable: list[Path]) -> None:
        """Plan the read-only binds of trusted paths inside the writable ones.

        Each existing trusted path is bound read-only over itself after the
        writable binds; one that does not exist gets a placeholder at its first
        missing component (bound read-only too, so nothing can be created
        there). The directories between a writable root and a protected path
        are bound onto themselves, so they cannot be renamed away with the
        protection (a mount point cannot be renamed or removed).
        """
        trusted = self.trusted if self.trusted is not None else trusted_paths()
        for path in trusted.within(writable):
            root = next((r for r in writable if within(path, r)), None)
            if root is None or path == root:
                continue
            # the first component that does not exist, or the path itself
            target = root
            for part in path.relative_to(root).parts:
                target = target / part
                if not os.path.lexists(target):
                    break
                if os.path.islink(target):
                    break  # bwrap binds over what it points to
            if os.path.lexists(target) and not os.path.isdir(target.parent):
                continue
            # a placeholder another call made is joined, so its end does not expose us
            if not os.path.lexists(target) or _confine.is_placeholder(os.lstat(target)):
                try:
                    fd = _confine.hold_placeholder(target)
                except OSError as exc:
                    if exc.errno not in _CANNOT_CREATE:
                        raise
                    # we may not create it here, so neither may the call (same
                    # uid, or a read-only file system): nothing to hold
                    continue
                if fd is not None:
                    self.placeholders.append((target, fd))
            for anc in reversed(target.parents):
                if within(anc, root) and anc != root and anc not in self.ancestors:
                    self.ancestors.append(anc)
            hide = target == path and trusted.hides(path) and not os.path.islink(target)
            if hide and os.path.isdir(target):
                if target not in self.hidden:  # the audit key, the log: not even readable
                    self.hidden.append(target)
                continue
            if target not in self.protected:
                self.protected.append(target)

    def _stage(self, writable: list[Path]) -> None:
        """As root: plan the launcher's mounts, so the unprivileged uid can reach each source.

        Writable roots and read paths owned by root are idmapped (root's files
        appear as the sandbox uid's; what it creates is root's on disk); the
        interpreter, the shim and other read-only sources the uid cannot reach
        (a prefix under ``/root``) are cloned read-only.
        """
        assert self.tmp is not None
        self.tmp.chmod(0o711)  # the uid reads its passwd/group/hosts here
        stage = self.tmp / "m"
        stage.mkdir(mode=0o755)
        stage.chmod(0o755)  # mkdir's mode is cut by the umask (077: the uid could not pass)

        def add(path: Path, kind: str) -> None:
            if path in self.staged:
                return
            if kind.startswith("idmap") and os.stat(path).st_uid != 0:
                kind = kind.replace("idmap", "rw") if kind == "idmap" else "ro"
            if kind.startswith("idmap") and self.userns < 0:
                self.userns = _confine.idmap_userns(self.uid, self.gid)
            dst = stage / str(len(self.staged))
            if path.is_dir():
                dst.mkdir()
            else:
                dst.touch()
            self.staged[path] = dst
            self.mounts += ["-m", kind, str(path), str(dst)]

        for path in writable:
            add(path, "idmap")
        p = self.profile
        for path in p.resolve(p.read_paths, self.ws):
            if path.exists():
                add(path, "idmap-ro")
        for path in [*self.system_sources(), SHIM]:
            if not _confine.reachable(path, self.uid, self.gid):
                add(path, "ro")

    def system_sources(self) -> list[Path]:
        """The interpreter's directories bound read-only into the sandbox."""
        prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
        bound = [Path("/usr")]
        out = []
        for prefix in sorted(prefixes):
            if not within(Path(prefix), Path("/usr")):
                out.append(Path(prefix))
                bound.append(Path(prefix))
        python_dir = Path(PYTHON).parent
        if not any(within(python_dir, b) for b in bound):
            out.append(python_dir)
        return out

    def src(self, path: Path) -> str:
        """Where bwrap finds ``path``: through the launcher's staged mount when there is one."""
        for root, staged in self.staged.items():
            if within(path, root):
                return str(staged / path.relative_to(root))
        return str(path)

    def release(self) -> None:
        """Let go of the placeholders and remove the temp dir (blocking)."""
        for path, fd in self.placeholders:
            with contextlib.suppress(OSError):
                _confine.release_placeholder(path, fd)
        self.placeholders = []
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
