"""Where a run's workspace may be: resolved once, under an allowed root, never a system directory.

A run's tasks write to its workspace (``file.write``, the sandbox's writable
bind). If the ``workspace:`` of a workflow could be any path, a task of an
earlier run could replace a directory with a symlink to ``/root`` and make the
*next* run's workspace the operator's home. So a workspace is:

1. **resolved once**, to its real path, when the workflow is compiled
   (``nexus validate`` and ``nexus run`` both do); the plan and the
   ``run.started`` event hold that real path, and nothing resolves it again;
2. **under an allowed root** -- the workflow file's directory or the
   directory Nexus runs in (and their subdirectories) -- by its *real* path,
   so a symlink at any component that leads elsewhere is refused;
3. **never a system directory**, even under an allowed root: ``/``, ``/etc``,
   ``/usr``, ``/bin``, ``/sbin``, ``/lib*``, ``/boot``, ``/dev``, ``/proc``,
   ``/sys``, ``/run``, ``/home`` itself, a home directory itself, anything in
   a home directory other than the one Nexus runs in, and anything Nexus
   trusts (:mod:`nexus.security.trusted`: its state, virtual environment,
   interpreter and code);
4. **bound by its real path** when a run starts or resumes:
   :func:`bind_workspace` refuses a recorded path that no longer resolves to
   itself (a component became a symlink since validation, or on resume) or
   that vanished during a run, instead of following it.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import Sequence

from nexus.domain.errors import UserError
from nexus.security import paths as _paths
from nexus.security.trusted import trusted_paths

__all__ = ["SYSTEM_TREES", "bind_workspace", "home_directories", "workspace_problem"]

#: Directories no workspace may be in, at any depth.
SYSTEM_TREES = (
    "/etc",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/boot",
    "/dev",
    "/proc",
    "/sys",
    "/run",
)


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def home_directories() -> list[str]:
    """People's home directories on this machine: ``/root`` and each ``/home/<name>``.

    (``$HOME`` is not taken: CI runners and containers often point it at ``/tmp``
    or the project itself.)
    """
    homes = {"/root"}
    with contextlib.suppress(OSError):
        homes.update(f"/home/{name}" for name in os.listdir("/home"))
    return sorted(homes)


def workspace_problem(
    real: str, *, roots: Sequence[str] | None, cwd: str | None = None
) -> str | None:
    """Why ``real`` may not be a workspace, or None when it may.

    Args:
        real: the workspace's real path (``os.path.realpath``).
        roots: real paths it must lie under; None checks only the system rules.
        cwd: the directory Nexus runs in (default: this process's), whose own
            home directory is allowed.

    Example:
        >>> workspace_problem("/etc/nexus", roots=None)
        '/etc/nexus is in the system directory /etc'
    """
    here = os.path.realpath(os.getcwd() if cwd is None else cwd)
    if real in ("/", "/home"):
        return f"{real} is a system directory"
    for tree in SYSTEM_TREES:
        if _under(real, tree):
            return f"{real} is in the system directory {tree}"
    for home in home_directories():
        if real == home:
            return f"{real} is a home directory"
        if _under(real, home) and not _under(here, home):
            return f"{real} is in the home directory {home}, not the one Nexus runs in ({here})"
    trusted = trusted_paths()
    hit = next((p for p in trusted.paths if _under(real, str(p))), None)
    if hit is not None:
        return f"{real} is in {hit}, which Nexus trusts (its state, environment or code)"
    if roots is not None and not any(_under(real, r) for r in roots):
        return f"{real} is outside the allowed roots ({', '.join(roots)})"
    return None


def bind_workspace(path: str, *, create: bool) -> str:
    """Check that a recorded workspace still is its own real path, and return it.

    Args:
        path: the absolute real path recorded (the plan's, or ``run.started``'s).
        create: create it (no symlink followed) when it does not exist: a new run
            does, a resumed one must find the directory it ran in.

    Raises:
        UserError: the path is relative, a component of it is now a symlink,
            it vanished, or it is a system directory.
    """
    if not posixpath.isabs(path):
        raise UserError(f"the workspace {path!r} must be an absolute path")
    normal = "/" + posixpath.normpath(path).lstrip("/")
    if create and not os.path.lexists(normal):
        parts = _paths.split_beneath(normal.lstrip("/")) or ()
        top = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.close(_paths.mkdirs_beneath(top, parts))
        except OSError as exc:
            raise UserError(
                f"cannot create the workspace {normal}: {exc.strerror} (no symlink on its "
                "path is followed)"
            ) from None
        finally:
            os.close(top)
    real = os.path.realpath(normal)
    if real != normal:
        raise UserError(
            f"the workspace {normal} now resolves to {real}: a directory on its path was "
            "replaced by a symlink since it was resolved; Nexus does not follow it"
        )
    if not os.path.isdir(real):
        missing = "no longer exists" if not os.path.lexists(real) else "is not a directory"
        raise UserError(f"the workspace {real} {missing}")
    problem = workspace_problem(real, roots=None)
    if problem is not None:
        raise UserError(f"the workspace {real} may not be used: {problem}")
    return real
