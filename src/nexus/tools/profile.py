"""Exec profiles: what one tool call may read, write, reach and spend -- deny by default.

An :class:`ExecProfile` is a plain frozen value. A tool carries one (``shell`` and
``python`` default to :data:`SHELL_PROFILE`); a workflow file may set ``profile:``
per agent or task (parsed by :meth:`ExecProfile.from_dict`), and the
engine combines them with :meth:`ExecProfile.narrow`, which never widens.

What a grant may ask for beyond the tool's own profile is the project's to say:
``nexus.toml``'s ``[tools.<name>]`` table (a :class:`ToolAllowance`) lists the
``network`` destinations and ``read_paths`` a workflow may grant the tool, and
may opt it in to the weaker ``sandbox = "rlimits"``. :meth:`ToolAllowance.apply`
gives the tool that ceiling as its ``allowed`` profile; a grant then gets what
it asks for within it (:func:`effective_profile`), and a call without a grant
keeps the tool's own profile. Two keys open the network: the project allows
a destination, the workflow grants it.

Deny by default means every field starts at the least that still lets a command
run:

* ``read_paths`` -- *extra* read-only paths. The sandbox always provides the
  minimal system it needs (``/usr``, ``/bin``, ``/lib*``, the dynamic-linker
  files in ``/etc``, the Python interpreter); never ``/etc/shadow``, ``/root``
  or ``/home``.
* ``write_paths`` -- writable paths; by default only the run's workspace,
  written symbolically as ``$WORKSPACE`` because the profile is set before the
  workspace exists.
* ``network`` -- ``"none"``, or an allow-list of ``"host:port"`` entries
  (enforced by the sandbox's egress proxy, see :mod:`nexus.tools.sandbox`).
* limits -- CPU seconds, memory, wall time, processes, output, file size,
  bytes written in total and open files, each a positive number.
* ``env`` -- the *names* of host environment variables passed in; nothing
  else leaks (``PATH``, ``HOME``, ``LANG`` and ``TMPDIR`` are set by the sandbox).
* ``sandbox`` -- ``"bwrap"`` (namespaces; the default), or the opt-in
  ``"rlimits"`` fallback that only applies rlimits and seccomp and says so in
  every result.

Why a dataclass and not pydantic: the profile is an in-process value that the
engine narrows on every call (STYLE.md rule 4); the one boundary where it is
read from user input is :meth:`ExecProfile.from_dict`, which validates every
field by hand so each error names the field it is about.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from difflib import get_close_matches
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, TypeVar

from nexus.domain.errors import UserError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: Stands for the run's workspace in ``read_paths`` and ``write_paths``.
WORKSPACE = "$WORKSPACE"

Network: TypeAlias = Literal["none"] | tuple[str, ...]
SandboxKind: TypeAlias = Literal["bwrap", "rlimits"]

#: Variables the sandbox sets itself; a profile may not pass them in.
RESERVED_ENV = frozenset({"PATH", "HOME", "TMPDIR", "NEXUS_SANDBOX"})

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+\Z|\[[0-9A-Fa-f:.]+\]\Z")
_INT_LIMITS = (
    "cpu_seconds",
    "memory_mb",
    "max_processes",
    "max_output_bytes",
    "max_file_mb",
    "max_write_mb",
    "max_open_files",
)


@dataclass(frozen=True, slots=True)
class ExecProfile:
    """What one sandboxed call may do. Every field denies by default.

    Attributes:
        read_paths: extra read-only paths (absolute, or under ``$WORKSPACE``).
        write_paths: writable paths; the workspace only by default.
        network: ``"none"``, or allowed ``"host:port"`` destinations.
        cpu_seconds: CPU time per process (``RLIMIT_CPU``).
        memory_mb: address space per process (``RLIMIT_AS``), and the whole
            sandbox's memory where a cgroup is available.
        wall_seconds: wall-clock time for the whole call.
        max_processes: processes and threads the call may have at once.
        max_output_bytes: bytes kept per output stream; more kills the call.
        max_file_mb: largest file the call may write (``RLIMIT_FSIZE``); also
            the size of the private ``/tmp``.
        max_write_mb: the most disk space the call may add to its writable
            paths in total (the workspace's quota per call; see
            :mod:`nexus.tools.sandbox._quota`).
        max_open_files: open file descriptors per process (``RLIMIT_NOFILE``).
        env: names of host environment variables passed in.
        sandbox: ``"bwrap"``, or the opt-in, weaker ``"rlimits"``.

    Example:
        >>> p = ExecProfile(network=("pypi.org:443",), cpu_seconds=10)
        >>> p.narrow(ExecProfile(cpu_seconds=5)).to_dict()["cpu_seconds"]
        5
    """

    read_paths: tuple[str, ...] = ()
    write_paths: tuple[str, ...] = (WORKSPACE,)
    network: Network = "none"
    cpu_seconds: int = 60
    memory_mb: int = 1024
    wall_seconds: float = 600.0
    max_processes: int = 64
    max_output_bytes: int = 1 << 20
    max_file_mb: int = 256
    max_write_mb: int = 1024
    max_open_files: int = 256
    env: tuple[str, ...] = field(default=())
    sandbox: SandboxKind = "bwrap"
    #: MCP tools (``server.tool`` or glob patterns such as ``git.*``) a call may
    #: use; none by default, so MCP tools are denied until a profile allows them
    mcp_tools: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # programmatic construction gets the same checks as a workflow file
        _validate(self, "exec profile")

    # -- combining -------------------------------------------------------------------

    def narrow(self, other: ExecProfile) -> ExecProfile:
        """The profile allowing only what both allow.

        Paths are intersected by prefix (``/data`` and ``/data/x`` give
        ``/data/x``), hosts and environment names by equality, limits by
        minimum; the result needs ``bwrap`` unless both accept ``rlimits``.

        Args:
            other: the narrower grant (an agent's or a task's profile).

        Returns:
            A profile never wider than ``self`` or ``other``.
        """
        network: Network = "none"
        if self.network != "none" and other.network != "none":
            theirs = {h.lower() for h in other.network}
            kept = tuple(h for h in self.network if h.lower() in theirs)
            network = kept or "none"
        return replace(
            self,
            read_paths=_intersect_paths(self.read_paths, other.read_paths),
            write_paths=_intersect_paths(self.write_paths, other.write_paths),
            network=network,
            cpu_seconds=min(self.cpu_seconds, other.cpu_seconds),
            memory_mb=min(self.memory_mb, other.memory_mb),
            wall_seconds=min(self.wall_seconds, other.wall_seconds),
            max_processes=min(self.max_processes, other.max_processes),
            max_output_bytes=min(self.max_output_bytes, other.max_output_bytes),
            max_file_mb=min(self.max_file_mb, other.max_file_mb),
            max_write_mb=min(self.max_write_mb, other.max_write_mb),
            max_open_files=min(self.max_open_files, other.max_open_files),
            env=tuple(n for n in self.env if n in other.env),
            mcp_tools=tuple(t for t in self.mcp_tools if t in other.mcp_tools),
            sandbox="rlimits" if self.sandbox == other.sandbox == "rlimits" else "bwrap",
        )

    # -- (de)serialising --------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: object, where: str, *, base: ExecProfile | None = None) -> ExecProfile:
        """Parse a ``profile:`` mapping from a workflow file or an API body.

        Fields left out keep their value in ``base`` (the defaults if none).

        Args:
            data: the parsed mapping.
            where: where the mapping came from, for error messages
                (``"flow.yaml: task 'build': profile"``).
            base: the profile supplying fields that ``data`` leaves out.

        Returns:
            The profile.

        Raises:
            UserError: naming the field, when a field is unknown or invalid.
        """
        if not isinstance(data, Mapping):
            raise UserError(f"{where}: a profile must be a mapping, not {_kind(data)}")
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise UserError(
                    f"{where}: unknown field {key!r} (known: {', '.join(sorted(known))})"
                )
        values: dict[str, Any] = {}
        for name, raw in data.items():
            at = f"{where}: field '{name}'"
            if name in ("read_paths", "write_paths"):
                values[name] = tuple(_path(p, at) for p in _str_list(raw, at))
            elif name == "mcp_tools":
                values[name] = tuple(_mcp_pattern(t, at) for t in _str_list(raw, at))
            elif name == "env":
                values[name] = tuple(_env_name(n, at) for n in _str_list(raw, at))
            elif name == "network":
                values[name] = _network(raw, at)
            elif name == "sandbox":
                if raw not in ("bwrap", "rlimits"):
                    raise UserError(f"{at}: must be 'bwrap' or 'rlimits', not {raw!r}")
                values[name] = raw
            elif name == "wall_seconds":
                values[name] = float(_positive(raw, at, integer=False))
            else:
                values[name] = int(_positive(raw, at, integer=True))
        return replace(base if base is not None else cls(), **values)

    def to_dict(self) -> dict[str, Any]:
        """The profile as JSON-ready data; :meth:`from_dict` reads it back."""
        return {
            "read_paths": list(self.read_paths),
            "write_paths": list(self.write_paths),
            "network": "none" if self.network == "none" else list(self.network),
            "cpu_seconds": self.cpu_seconds,
            "memory_mb": self.memory_mb,
            "wall_seconds": self.wall_seconds,
            "max_processes": self.max_processes,
            "max_output_bytes": self.max_output_bytes,
            "max_file_mb": self.max_file_mb,
            "max_write_mb": self.max_write_mb,
            "max_open_files": self.max_open_files,
            "env": list(self.env),
            "mcp_tools": list(self.mcp_tools),
            "sandbox": self.sandbox,
        }

    # -- using -------------------------------------------------------------------------

    def resolve(self, paths: Iterable[str], workspace: Path) -> list[Path]:
        """Host paths for profile paths.

        Args:
            paths: entries of ``read_paths`` or ``write_paths``.
            workspace: the run's workspace, standing for ``$WORKSPACE``.

        Returns:
            The paths, in order, with ``$WORKSPACE`` replaced.
        """
        out = []
        for p in paths:
            if p == WORKSPACE or p.startswith(WORKSPACE + "/"):
                out.append(workspace / p[len(WORKSPACE) :].lstrip("/"))
            else:
                out.append(Path(p))
        return out


# -- validation helpers -----------------------------------------------------------------


def _validate(p: ExecProfile, where: str) -> None:
    for name in ("read_paths", "write_paths"):
        value = getattr(p, name)
        if not isinstance(value, tuple):
            raise UserError(f"{where}: field '{name}': must be a tuple of paths")
        for path in value:
            if _path(path, f"{where}: field '{name}'") != path:
                raise UserError(f"{where}: field '{name}': {path!r} is not normalised")
    if p.network != "none":
        if not isinstance(p.network, tuple):
            raise UserError(f"{where}: field 'network': must be 'none' or a tuple of host:port")
        for entry in p.network:
            _host_port(entry, f"{where}: field 'network'")
    for name in _INT_LIMITS:
        _positive(getattr(p, name), f"{where}: field '{name}'", integer=True)
    _positive(p.wall_seconds, f"{where}: field 'wall_seconds'", integer=False)
    if not isinstance(p.env, tuple):
        raise UserError(f"{where}: field 'env': must be a tuple of names")
    for name in p.env:
        _env_name(name, f"{where}: field 'env'")
    if p.sandbox not in ("bwrap", "rlimits"):
        raise UserError(f"{where}: field 'sandbox': must be 'bwrap' or 'rlimits'")


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _str_list(raw: object, at: str) -> list[str]:
    if not isinstance(raw, list | tuple) or not all(isinstance(x, str) for x in raw):
        raise UserError(f"{at}: must be a list of strings, not {_kind(raw)}")
    return list(raw)


def _path(raw: str, at: str) -> str:
    if not isinstance(raw, str) or not raw or "\0" in raw:
        raise UserError(f"{at}: {raw!r} is not a path")
    if not (raw.startswith("/") or raw == WORKSPACE or raw.startswith(WORKSPACE + "/")):
        raise UserError(f"{at}: {raw!r} must be absolute or start with {WORKSPACE}")
    if ".." in raw.split("/"):
        raise UserError(f"{at}: {raw!r} may not contain '..'")
    return posixpath.normpath(raw)


def _mcp_pattern(raw: str, at: str) -> str:
    if not raw or "." not in raw or any(c.isspace() for c in raw):
        raise UserError(f"{at}: {raw!r} is not an MCP tool name or pattern (server.tool, git.*)")
    return raw


def allows_mcp_tool(ctx: Any, name: str) -> bool:
    """True when every grant in ``ctx`` (profile object and workflow grant) allows ``name``.

    With no grant at all the answer is no: MCP tools are denied by default.
    """
    grants: list[tuple[str, ...]] = []
    if getattr(ctx, "profile", None) is not None:
        grants.append(ctx.profile.mcp_tools)
    grant = getattr(ctx, "grant", None)
    if grant is not None:
        grants.append(tuple(grant.get("mcp_tools", ())))
    return bool(grants) and all(any(fnmatchcase(name, p) for p in g) for g in grants)


def _env_name(raw: str, at: str) -> str:
    if not isinstance(raw, str) or not _ENV_NAME.match(raw):
        raise UserError(f"{at}: {raw!r} is not an environment variable name")
    if raw in RESERVED_ENV:
        raise UserError(f"{at}: {raw} is set by the sandbox and cannot be passed in")
    return raw


def _host_port(raw: str, at: str) -> str:
    host, sep, port = raw.rpartition(":") if isinstance(raw, str) else ("", "", "")
    if not sep or not _HOST.match(host) or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{at}: {raw!r} is not 'host:port' (port 1-65535)")
    return raw


def _network(raw: object, at: str) -> Network:
    if raw == "none" or raw is None:
        return "none"
    if isinstance(raw, str):
        raise UserError(f"{at}: must be 'none' or a list of 'host:port', not {raw!r}")
    entries = tuple(_host_port(e, at) for e in _str_list(raw, at))
    return entries or "none"


def _positive(raw: object, at: str, *, integer: bool) -> float:
    ok_type = int if integer else (int, float)
    if isinstance(raw, bool) or not isinstance(raw, ok_type) or not raw > 0:
        what = "a positive integer" if integer else "a positive number"
        raise UserError(f"{at}: must be {what}, not {raw!r}")
    return raw


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _intersect_paths(ours: tuple[str, ...], theirs: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for a in ours:
        for b in theirs:
            if _within(b, a):
                out.append(b)
            elif _within(a, b):
                out.append(a)
    unique = list(dict.fromkeys(out))
    # a path inside another granted one adds nothing; dropping it keeps narrow idempotent
    return tuple(p for p in unique if not any(q != p and _within(p, q) for q in unique))


#: The default profile of ``shell`` and ``python``.
SHELL_PROFILE = ExecProfile()


def effective_profile(
    own: ExecProfile, ctx: Any, allowed: ExecProfile | None = None
) -> ExecProfile:
    """A tool's profile for one call: its own, or what the call's grants get within ``allowed``.

    Without a grant the call has the tool's ``own`` profile. ``ctx.profile``
    (an :class:`ExecProfile`) gets what both it and ``allowed`` allow, field by
    field; ``ctx.grant`` (a workflow's ``profile:`` mapping) does so for the
    fields it names -- the ones it leaves out keep the tool's own values, so a
    task that only lowers ``cpu_seconds`` neither loses nor gains network.

    Args:
        own: the tool's profile.
        ctx: the call's context (its ``profile`` and ``grant``).
        allowed: the most a grant may get (``nexus.toml``'s ``[tools.<name>]``
            over ``own``: see :meth:`ToolAllowance.apply`); default ``own``.

    Raises:
        UserError: the grant is invalid (it names the task and field).
    """
    profile = getattr(ctx, "profile", None)
    grant = getattr(ctx, "grant", None)
    if profile is None and grant is None:
        return own
    result = allowed if allowed is not None else own
    if profile is not None:
        result = result.narrow(profile)
    if grant is not None:
        where = f"task '{getattr(ctx, 'task', '?')}': profile"
        result = result.narrow(ExecProfile.from_dict(grant, where, base=own))
    return result


if TYPE_CHECKING:

    class _Governed(DataclassInstance, Protocol):
        """A tool a ``[tools.<name>]`` table governs: a dataclass with these two fields."""

        @property
        def profile(self) -> ExecProfile: ...

        @property
        def allowed(self) -> ExecProfile | None: ...


G = TypeVar("G", bound="_Governed")

#: The keys of a ``[tools.<name>]`` table of ``nexus.toml``.
ALLOWANCE_KEYS = ("network", "read_paths", "sandbox")


@dataclass(frozen=True, slots=True)
class ToolAllowance:
    """``nexus.toml``'s ``[tools.<name>]``: what workflows may grant one tool.

    Attributes:
        network: ``host:port`` destinations a ``profile:`` grant may give it.
        read_paths: extra read-only paths a grant may give it (a path under
            one of these counts too).
        sandbox: ``"rlimits"`` opts every call of the tool in to the weaker
            fallback (no namespaces: no file-system or network isolation) where
            bubblewrap cannot run; None keeps the tool's own.

    Example:
        >>> allowance = ToolAllowance.from_dict({"network": ["api.github.com:443"]}, "tools.http")
        >>> allowance.to_dict()
        {'network': ['api.github.com:443']}
    """

    network: tuple[str, ...] = ()
    read_paths: tuple[str, ...] = ()
    sandbox: SandboxKind | None = None

    @classmethod
    def from_dict(cls, data: object, where: str) -> ToolAllowance:
        """Parse a ``[tools.<name>]`` table; ``where`` (``tools.http``) prefixes each error.

        Raises:
            UserError: naming the key, when one is unknown or invalid.
        """
        if not isinstance(data, Mapping):
            raise UserError(f"{where}: expected a table, not {_kind(data)}")
        for key in data:
            if key not in ALLOWANCE_KEYS:
                close = get_close_matches(str(key), ALLOWANCE_KEYS, n=1)
                hint = (
                    f"did you mean '{close[0]}'?"
                    if close
                    else "known: " + ", ".join(ALLOWANCE_KEYS)
                )
                raise UserError(f"{where}.{key}: unknown key ({hint})")
        network: tuple[str, ...] = ()
        if "network" in data:
            raw = data["network"]
            if isinstance(raw, str):
                raise UserError(f"{where}.network: must be a list of 'host:port', not {raw!r}")
            network = tuple(
                dict.fromkeys(
                    _host_port(e, f"{where}.network") for e in _str_list(raw, f"{where}.network")
                )
            )
        read_paths: tuple[str, ...] = ()
        if "read_paths" in data:
            at = f"{where}.read_paths"
            read_paths = tuple(
                dict.fromkeys(_path(p, at) for p in _str_list(data["read_paths"], at))
            )
        sandbox = data.get("sandbox")
        if sandbox is not None and sandbox not in ("bwrap", "rlimits"):
            raise UserError(f"{where}.sandbox: must be 'bwrap' or 'rlimits', not {sandbox!r}")
        return cls(network=network, read_paths=read_paths, sandbox=sandbox)

    def to_dict(self) -> dict[str, Any]:
        """The table as written (only the keys it sets)."""
        data: dict[str, Any] = {}
        if self.network:
            data["network"] = list(self.network)
        if self.read_paths:
            data["read_paths"] = list(self.read_paths)
        if self.sandbox is not None:
            data["sandbox"] = self.sandbox
        return data

    def ceiling(self, own: ExecProfile) -> ExecProfile:
        """The most a grant may get: ``own`` plus these destinations and paths."""
        network: Network = own.network
        if self.network:
            ours = () if own.network == "none" else own.network
            network = tuple(dict.fromkeys((*ours, *self.network)))
        return replace(
            own,
            network=network,
            read_paths=tuple(dict.fromkeys((*own.read_paths, *self.read_paths))),
        )

    def apply(self, tool: G) -> G:
        """``tool`` (a built-in: a dataclass with ``profile`` and ``allowed``) under this table."""
        own = tool.profile
        if self.sandbox is not None:
            own = replace(own, sandbox=self.sandbox)
        return replace(tool, profile=own, allowed=self.ceiling(own))
