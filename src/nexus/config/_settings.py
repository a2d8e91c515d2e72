"""Where Nexus keeps its state: the environment's settings and the project a command is in.

Light on purpose: every command reads these before it does anything, so this
module imports nothing but the standard library and the domain's errors (the
``nexus.toml`` parser, :mod:`nexus.config._file`, loads pydantic and the
gateway, and only the commands that read the file pay for it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from nexus.domain.errors import UserError

#: The environment variable naming a config file.
CONFIG_ENV = "NEXUS_CONFIG"
#: The project file, looked for in the working directory and above (:func:`find_project`).
CONFIG_FILE = "nexus.toml"
#: A project's state directory, beside its ``nexus.toml``.
HOME_DIR = ".nexus"
#: The database in a state directory.
DB_FILE = "nexus.db"

Durability = Literal["normal", "full"]


#: What ``NEXUS_DURABILITY`` may be: ``normal`` survives a killed process,
#: ``full`` also survives power loss (an fsync per commit).
DURABILITIES: tuple[Durability, ...] = ("normal", "full")
#: The sandbox's host uid when Nexus runs as root (read by the sandbox at each
#: call; checked here as well, so that a bad value stops a command before it starts).
SANDBOX_UID_ENV = "NEXUS_SANDBOX_UID"


class Settings:
    """Where Nexus keeps its state and how durably it writes, from the environment.

    ``NEXUS_HOME`` is the state directory (default: the ``.nexus`` of the
    project the working directory is in, see :func:`find_project`, else
    ``./.nexus``); ``NEXUS_DURABILITY`` is ``normal`` or ``full`` (any case).
    An argument wins over its variable. Read by hand rather than with pydantic-settings: three
    variables do not pay for importing it on every command (it costs a CLI
    start-up more than everything else ``nexus runs`` needs), and each bad value
    gets a message naming its variable.

    Args:
        home: the state directory (default: ``NEXUS_HOME``).
        durability: ``normal`` or ``full`` (default: ``NEXUS_DURABILITY``).
        environ: the environment (default: ``os.environ``).
        cwd: where the project is looked for (default: the working directory).

    Raises:
        UserError: a variable holds a value Nexus cannot use; the message names
            it and what it accepts.

    Example:
        >>> Settings(home="/srv/nexus", environ={}).db_path
        PosixPath('/srv/nexus/nexus.db')
    """

    __slots__ = ("durability", "home")

    home: Path
    durability: Durability

    def __init__(
        self,
        *,
        home: Path | str | None = None,
        durability: str | None = None,
        environ: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.home = home_of(home, env, cwd)
        self.durability = _durability(durability, env)
        _check_sandbox_uid(env)

    @property
    def db_path(self) -> Path:
        """The SQLite database in the home."""
        return self.home / DB_FILE

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return (self.home, self.durability) == (other.home, other.durability)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Settings(home={str(self.home)!r}, durability={self.durability!r})"


def find_project(start: Path) -> Path | None:
    """The project directory ``start`` is in, as git finds a repository's ``.git``.

    The nearest directory, ``start`` itself first, that holds a ``nexus.toml``
    or a Nexus home (``.nexus/nexus.db``); None when no directory up to the
    file system's root does.

    Example:
        >>> find_project(Path("/")) is None
        True
    """
    for folder in (start, *start.parents):
        if is_file(folder / CONFIG_FILE) or is_file(folder / HOME_DIR / DB_FILE):
            return folder
    return None


def project_file(cwd: Path | None = None) -> Path:
    """Where the ``nexus.toml`` of the project ``cwd`` is in is, or would be.

    The project's directory (:func:`find_project`), else ``cwd`` itself: the
    file a command started there reads once it exists, so no task may create it.
    """
    base = working_directory(cwd)
    return (find_project(base) or base) / CONFIG_FILE


def is_file(path: Path) -> bool:
    """Whether ``path`` is a file; a folder we may not look into holds none."""
    try:
        return path.is_file()
    except OSError:
        return False


def working_directory(cwd: Path | None) -> Path:
    """``cwd``, else the process's working directory (a clear error if it was removed)."""
    if cwd is not None:
        return Path(cwd)
    try:
        return Path.cwd()
    except FileNotFoundError:
        raise UserError(
            "the working directory no longer exists: change to one, or set NEXUS_HOME"
        ) from None


def home_of(given: Path | str | None, env: Mapping[str, str], cwd: Path | None) -> Path:
    """The state directory: ``given``, else ``NEXUS_HOME``, else the project's ``.nexus``."""
    where = "NEXUS_HOME" if given is None else "home"
    raw = str(given) if given is not None else env.get("NEXUS_HOME", "")
    if not raw.strip():
        base = working_directory(cwd)
        root = find_project(base)
        # the working directory's own home stays relative, as it always was
        return Path(HOME_DIR) if root is None or root == base else root / HOME_DIR
    if "\0" in raw:
        raise UserError(f"{where} holds a NUL character: it is not a path")
    home = Path(raw).expanduser()
    if home.exists() and not home.is_dir():
        raise UserError(
            f"{where}={raw} is not a directory: name the folder Nexus keeps its state in"
        )
    return home


def _durability(given: str | None, env: Mapping[str, str]) -> Durability:
    where = "NEXUS_DURABILITY" if given is None else "durability"
    raw = given if given is not None else env.get("NEXUS_DURABILITY", "")
    value = raw.strip().lower() or "normal"
    for known in DURABILITIES:
        if value == known:
            return known
    raise UserError(
        f"{where}={raw!r} is not a durability: use 'normal' (survives a killed process) "
        "or 'full' (also survives power loss)"
    )


def _check_sandbox_uid(env: Mapping[str, str]) -> None:
    raw = env.get(SANDBOX_UID_ENV, "").strip()
    if raw and not (raw.isdigit() and 0 < int(raw) < 2**32 - 1):
        raise UserError(f"{SANDBOX_UID_ENV}={raw!r} is not a uid between 1 and 4294967294")
