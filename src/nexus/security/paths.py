"""Race-free paths beneath a directory: ``openat2(2)``, or a walk that never follows a link.

Checking a path with ``realpath`` and then opening it is a race: between the
two, a concurrent task can replace a directory on the path with a symlink to
anywhere, and the ``open`` follows it. Here nothing is ever looked up twice.
A granted root is opened once, as a directory file descriptor; every path
under it is opened *relative to that descriptor* by a lookup the kernel itself
confines:

* **openat2** (Linux 5.6+, syscall 437) with ``RESOLVE_BENEATH |
  RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS``: the kernel refuses (``EXDEV``
  or ``ELOOP``) any step that would leave the directory or cross a symbolic
  link, at the moment it walks the path.
* **the walk** where openat2 is missing (an older kernel, or a seccomp filter
  answering ``ENOSYS``/``EPERM``): one component at a time, each directory
  opened with ``O_PATH | O_DIRECTORY | O_NOFOLLOW`` relative to the previous
  descriptor and checked with ``fstat`` to *be* a directory, the last
  component opened with ``O_NOFOLLOW``. A symlink swapped in at any moment is
  met by a no-follow open, so it fails instead of being followed.

Paths reach these functions as components already normalised by
:func:`split_beneath` (no ``..``, ``.``, or empty parts): ``..`` is applied to
the *text* of a path, never to what a symlink points at, and no symlink is
ever followed, so a component list can only name something beneath the root.
Symbolic links are refused wherever they are met -- the last component
included -- and :func:`describe` says which component was one.

It lives in ``security`` because the file tools and the workspace checks both
need it, and the tools sit above ``security`` (the workspace checks must not
import the tools).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import posixpath
import stat
from collections.abc import Sequence

__all__ = [
    "RESOLVE_BENEATH",
    "RESOLVE_NO_MAGICLINKS",
    "RESOLVE_NO_SYMLINKS",
    "describe",
    "have_openat2",
    "mkdirs_beneath",
    "open_beneath",
    "open_root",
    "read_at_most",
    "split_beneath",
]

SYS_OPENAT2 = 437  # the same number on every architecture Python runs Nexus on
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
_AT_FDCWD = -100
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


_libc: ctypes.CDLL | None = None
#: None until probed; tests set it to False to force the walk
_openat2: bool | None = None


def _syscall_openat2(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    how = _OpenHow(flags, mode, resolve)
    encoded = os.fsencode(path)
    while True:
        fd = int(
            _libc.syscall(
                ctypes.c_long(SYS_OPENAT2),
                ctypes.c_int(dirfd),
                ctypes.c_char_p(encoded),
                ctypes.byref(how),
                ctypes.c_size_t(ctypes.sizeof(how)),
            )
        )
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        # EAGAIN: a rename raced with the lookup and the kernel could not
        # prove it stayed beneath; EINTR: a signal. Both are safe to retry.
        if err not in (errno.EAGAIN, errno.EINTR):
            raise OSError(err, os.strerror(err), path)


def have_openat2() -> bool:
    """Whether this kernel (and any seccomp filter) lets us use openat2, probed once."""
    global _openat2
    if _openat2 is None:
        try:
            os.close(_syscall_openat2(_AT_FDCWD, "/", _DIR_FLAGS, 0, RESOLVE_NO_SYMLINKS))
            _openat2 = True
        except (OSError, AttributeError):  # ENOSYS, EPERM (seccomp), no libc syscall()
            _openat2 = False
    return _openat2


def split_beneath(path: str) -> tuple[str, ...] | None:
    """The components of a relative path after ``.``/``..`` are applied to its text.

    Returns:
        The components (empty for the directory itself), or None when the
        path is absolute or its ``..`` climbs above its start.

    Example:
        >>> split_beneath("a/./b/../c")
        ('a', 'c')
        >>> split_beneath("a/../../etc") is None
        True
    """
    if not path or path.startswith("/"):
        return None
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return tuple(parts)


def open_root(path: str) -> int:
    """Open an absolute directory as an ``O_PATH`` descriptor, following no symlink.

    ``path`` should be a real path (``os.path.realpath``): if a component has
    been replaced by a symlink since, this fails with ``ELOOP`` (or
    ``ENOTDIR``) instead of following it.

    Raises:
        OSError: the directory is missing, or a component is not a directory.
    """
    if not posixpath.isabs(path):
        raise ValueError(f"not an absolute path: {path!r}")
    parts = split_beneath(posixpath.normpath(path).lstrip("/")) or ()
    top = os.open("/", _DIR_FLAGS)
    try:
        return _open_dir(top, parts)
    finally:
        os.close(top)


def _open_dir(dirfd: int, parts: Sequence[str]) -> int:
    """A new ``O_PATH`` descriptor of the directory ``parts`` beneath ``dirfd``."""
    if have_openat2():
        return _syscall_openat2(dirfd, "/".join(parts) or ".", _DIR_FLAGS, 0, _RESOLVE)
    fd = os.dup(dirfd)
    try:
        for part in parts:
            nxt = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
            # O_PATH|O_NOFOLLOW on a symlink would give the link itself; make sure
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), part)
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_beneath(dirfd: int, parts: Sequence[str], flags: int, mode: int = 0o644) -> int:
    """Open ``parts`` beneath ``dirfd`` with ``flags``, following no symlink anywhere.

    Args:
        dirfd: a directory descriptor (from :func:`open_root`).
        parts: components from :func:`split_beneath`; empty means the directory itself.
        flags: ``os.open`` flags; ``O_NOFOLLOW`` and ``O_CLOEXEC`` are added.
        mode: the mode of a file ``O_CREAT`` creates.

    Returns:
        A new descriptor the caller must close.

    Raises:
        OSError: ``ELOOP``/``ENOTDIR`` for a symlink on the way, ``ENOENT``...
    """
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC
    create = bool(flags & os.O_CREAT)
    if not parts:
        return os.open(".", flags & ~os.O_NOFOLLOW, dir_fd=dirfd)
    if have_openat2():
        return _syscall_openat2(dirfd, "/".join(parts), flags, mode if create else 0, _RESOLVE)
    parent = _open_dir(dirfd, parts[:-1])
    try:
        return os.open(parts[-1], flags, mode, dir_fd=parent)
    finally:
        os.close(parent)


def mkdirs_beneath(dirfd: int, parts: Sequence[str], mode: int = 0o755) -> int:
    """The directory ``parts`` beneath ``dirfd``, creating missing ones; an ``O_PATH`` fd.

    Each directory is created with ``mkdirat`` relative to its parent's
    descriptor and then opened with no symlink followed, so a link swapped in
    between the two is refused, not followed.
    """
    try:
        return _open_dir(dirfd, parts)
    except FileNotFoundError:
        pass
    fd = os.dup(dirfd)
    try:
        for part in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, mode, dir_fd=fd)
            nxt = _open_dir(fd, (part,))
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def describe(dirfd: int, parts: Sequence[str]) -> str | None:
    """Which component of a refused path is a symlink or not a directory, for messages.

    Only used to word an error after the safe open failed; it decides nothing.
    """
    for i in range(len(parts)):
        here = "/".join(parts[: i + 1])
        try:
            st = os.stat(here, dir_fd=dirfd, follow_symlinks=False)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            return f"{here!r} is a symbolic link"
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            return f"{here!r} is not a directory"
    return None


def read_at_most(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes from ``fd``, read in chunks (a file may be larger than it says)."""
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
