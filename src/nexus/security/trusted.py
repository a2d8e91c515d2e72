"""What Nexus trusts on disk, and therefore what no task may write.

Nexus reads its configuration (``nexus.toml``), its state (``$NEXUS_HOME``:
the event log, MCP pins, audit keys) and its own code (the interpreter's
prefix -- usually a virtual environment -- and the ``nexus`` package) as the
operator's word. A task that could write any of them could make the *next*
``nexus`` process run its code on the host, or rewrite the record. So the
sandbox binds these paths read-only over any writable path that contains them,
and the file tools refuse them.

Besides the paths this process actually uses, every writable root gets its own
``nexus.toml`` and ``.nexus`` protected: a workspace is often a project
directory in which an operator will later type ``nexus run``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: Names Nexus trusts in any directory it may later be started from.
TRUSTED_NAMES = ("nexus.toml", ".nexus")
#: The state directory's default name; one is hidden from tasks wherever it is.
STATE_NAME = ".nexus"


@dataclass(frozen=True, slots=True)
class TrustedPaths:
    """Absolute, normalised paths that tasks must never write.

    A path may not exist yet (``nexus.toml`` before anyone wrote one): it is
    still trusted, so creating it is refused too.
    """

    paths: tuple[Path, ...]
    #: the state directories among them (the event log, the audit key, pins):
    #: not only unwritable but hidden from tasks; any directory named ``.nexus`` too
    state: tuple[Path, ...] = ()

    def hides(self, path: Path) -> bool:
        """Whether tasks must not even read ``path``: a state directory."""
        return path.name == STATE_NAME or path in self.state

    def covers(self, path: Path) -> bool:
        """Whether ``path`` (absolute, already resolved) is or lies under a trusted path."""
        return any(path == p or p in path.parents for p in self.paths)

    def within(self, roots: Iterable[Path]) -> list[Path]:
        """The trusted paths inside ``roots``, plus each root's own trusted names.

        These are what a sandbox must bind read-only over its writable roots.
        """
        roots = [Path(os.path.normpath(r)) for r in roots]
        found: list[Path] = []
        for root in roots:
            for name in TRUSTED_NAMES:
                candidate = root / name
                if candidate not in found:
                    found.append(candidate)
        for p in self.paths:
            if any(p != r and r in p.parents for r in roots) and p not in found:
                found.append(p)
        return found


def trusted_paths(
    *,
    home: Path | str | None = None,
    config: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> TrustedPaths:
    """The paths this process trusts.

    Args:
        home: the state directory (default: ``$NEXUS_HOME``, else ``./.nexus``).
        config: the configuration file in use (default: ``$NEXUS_CONFIG``, else
            ``./nexus.toml`` whether or not it exists).
        environ: the environment (default: ``os.environ``).
        cwd: the directory relative paths are taken from (default: the process's).

    Example:
        >>> t = trusted_paths(home="/p/.nexus", config="/p/nexus.toml", environ={})
        >>> t.covers(Path("/p/.nexus/nexus.db"))
        True
    """
    env = os.environ if environ is None else environ
    base = Path.cwd() if cwd is None else Path(cwd)
    state = Path(home) if home is not None else Path(env.get("NEXUS_HOME") or ".nexus")
    conf = Path(config) if config is not None else Path(env.get("NEXUS_CONFIG") or "nexus.toml")
    code = Path(__file__).parent.parent  # the nexus package (not imported: security is below it)
    candidates = [
        base / state.expanduser(),
        base / conf.expanduser(),
        base / "nexus.toml",
        base / ".nexus",
        Path(sys.prefix),
        Path(sys.exec_prefix),
        Path(sys.base_prefix),
        code,
    ]
    out: list[Path] = []
    for c in candidates:
        for form in _forms(c):
            if form not in out:
                out.append(form)
    return TrustedPaths(tuple(out), state=tuple(_forms(base / state.expanduser())))


def _forms(path: Path) -> list[Path]:
    """The path as written (normalised) and as resolved: a task may meet either."""
    plain, real = Path(os.path.normpath(path)), Path(os.path.realpath(path))
    return [plain] if plain == real else [plain, real]
