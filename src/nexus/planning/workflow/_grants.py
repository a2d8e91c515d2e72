"""What a workflow grants and limits: tools, exec profiles, budgets, MCP servers.

Each table is validated by the module that owns its meaning (an exec profile
by :mod:`nexus.tools.profile`, a budget by :mod:`nexus.domain.budget`, the MCP
servers by :mod:`nexus.tools.mcp`), here, so a typo fails before the run
starts; their errors are re-raised naming the workflow file and the field.

MCP tools are denied unless a profile grants them (``mcp_tools:``, see
docs/mcp.md): a tool task's own profile, or for an agent's calls the task's
profile when it has one, else the agent's. :func:`mcp_granted` reads a grant
as the engine will (:func:`nexus.tools.profile.allows_mcp_tool`).

A grant may ask for network destinations, read paths and the weaker sandbox
only within what ``nexus.toml``'s ``[tools.<name>]`` allows the tools it
applies to (:func:`check_within`); the engine would quietly narrow a wider
request to nothing, so it is a problem here, naming what is allowed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from nexus.planning.workflow._errors import Reporter, known, suggest

if TYPE_CHECKING:
    from nexus.tools.profile import ExecProfile

__all__ = [
    "ToolNames",
    "budget_limits",
    "check_provider",
    "check_within",
    "exec_profile",
    "mcp_granted",
    "mcp_servers",
]


class ToolNames:
    """The tools a workflow may name: the known tools, and those of its MCP servers.

    Without ``known`` (the caller has no registry at hand) any name is accepted.
    A name ``server.tool`` whose ``server`` is one of the workflow's MCP servers
    (or of the project's) is accepted too: those tools are discovered at run time.
    """

    __slots__ = ("known", "mcp_servers")

    def __init__(self, known: Collection[str] | None, mcp_servers: Collection[str]) -> None:
        self.known = None if known is None else frozenset(known)
        self.mcp_servers = frozenset(mcp_servers)

    def is_mcp(self, name: str) -> bool:
        """True when ``name`` is ``server.tool`` of a known MCP server."""
        server, dot, _ = name.partition(".")
        return bool(dot) and server in self.mcp_servers

    def check(self, name: str, report: Reporter, *, task: str | None, field: str) -> None:
        """Report an unknown tool ``name`` at ``field`` of ``task``."""
        if self.known is not None and name not in self.known and not self.is_mcp(name):
            report.error(
                f"unknown tool {name!r} ({known('known tools', self.known)})",
                task=task,
                field=field,
            )


def mcp_granted(profile: Mapping[str, Any] | None, name: str) -> bool:
    """True when the ``profile:`` grant lets a call use the MCP tool ``name``."""
    patterns = (profile or {}).get("mcp_tools") or ()
    return any(isinstance(p, str) and fnmatchcase(name, p) for p in patterns)


def check_within(
    grant: Mapping[str, Any],
    tools: Sequence[tuple[str, ExecProfile]],
    report: Reporter,
    *,
    owner: str,
    task: str | None,
    field: str,
) -> None:
    """Report what ``grant`` asks beyond what any of ``tools`` is allowed.

    Args:
        grant: a valid ``profile:`` mapping.
        tools: the tools it applies to, each with the most a grant may get it
            (its ``allowed`` profile); a request one of them allows is fine.
        owner: who the tools are, for messages (``tool 'http'``).
        task: the task holding the grant (None: an agent's).
        field: the grant's field (``profile``, ``agents.w.profile``).
    """
    if not tools:
        return
    table = f"[tools.{tools[0][0]}]" if len(tools) == 1 else "the [tools.<name>] of one of them"
    network = grant.get("network")
    for entry in network if isinstance(network, list) else ():
        if any(entry.lower() in {e.lower() for e in _entries(p, "network")} for _, p in tools):
            continue
        if len(tools) == 1 and not _entries(tools[0][1], "network"):
            message = (
                f"network {entry!r}: nexus.toml allows {owner} no network; add "
                f'{table} network = ["{entry}"] to it'
            )
        else:
            message = (
                f"network {entry!r} is more than nexus.toml allows {owner} "
                f"(allowed: {_allowed(tools, 'network')}); add it to {table} network"
            )
        report.add(message, task=task, field=f"{field}.network")
    for path in grant.get("read_paths") or ():
        if path == "$WORKSPACE" or path.startswith("$WORKSPACE/"):
            continue  # the workspace is readable anyway
        if any(_within(path, root) for _, p in tools for root in p.read_paths):
            continue
        report.add(
            f"read path {path!r} is more than nexus.toml allows {owner} "
            f"(allowed: {_allowed(tools, 'read_paths')}); add it to {table} read_paths",
            task=task,
            field=f"{field}.read_paths",
        )
    if grant.get("sandbox") == "rlimits" and all(p.sandbox != "rlimits" for _, p in tools):
        report.add(
            f"sandbox 'rlimits' (the weaker fallback, without namespaces) is more than "
            f"nexus.toml allows {owner}; the project opts a tool in with "
            f'[tools.{tools[0][0]}] sandbox = "rlimits"',
            task=task,
            field=f"{field}.sandbox",
        )


def _entries(profile: ExecProfile, key: str) -> tuple[str, ...]:
    """A profile's ``network`` (none: empty) or ``read_paths``."""
    if key == "network":
        return () if profile.network == "none" else profile.network
    return profile.read_paths


def _allowed(tools: Sequence[tuple[str, ExecProfile]], key: str) -> str:
    """What ``tools`` may get of ``key``: ``a:443`` (one tool), ``http: a:443; shell: none``."""
    if len(tools) == 1:
        return ", ".join(_entries(tools[0][1], key)) or "none"
    return "; ".join(f"{name}: {', '.join(_entries(p, key)) or 'none'}" for name, p in tools)


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def check_provider(
    model: str, providers: Collection[str] | None, report: Reporter, *, field: str
) -> None:
    """Report a model whose ``provider:`` prefix no provider serves (with a suggestion)."""
    prefix, sep, _ = model.partition(":")
    if providers is None or not sep or prefix in providers:
        return
    report.add(
        f"unknown model provider {prefix!r} in {model!r} "
        f"({suggest(prefix, providers, 'known providers')})",
        field=field,
    )


def exec_profile(
    raw: dict[str, Any] | None, report: Reporter, *, task: str | None, field: str
) -> dict[str, Any] | None:
    """A ``profile:`` grant as written, once :class:`~nexus.tools.profile.ExecProfile` takes it."""
    if raw is None:
        return None
    from nexus.domain.errors import UserError
    from nexus.tools.profile import ExecProfile

    try:
        ExecProfile.from_dict(raw, "profile")  # validate; keep only what the task says
    except UserError as exc:
        raise report.problem(exc.message, task=task, field=field) from None
    return dict(raw)


def budget_limits(
    raw: dict[str, Any] | None, where: str, report: Reporter, *, task: str | None = None
) -> dict[str, Any] | None:
    """Validate a ``budget:`` table; keep its canonical form (money as a string).

    ``where`` is the table's path in the file (``agents.writer.budget``); a
    task's budget is reported as the field ``budget`` of that task.
    """
    if raw is None:
        return None
    from nexus.domain.budget import Limits
    from nexus.domain.errors import UserError

    try:
        return Limits.from_dict(raw, where).to_dict()
    except UserError as exc:
        field = "budget" if task is not None else where
        raise report.problem(exc.message, task=task, field=field) from None


def mcp_servers(raw: dict[str, Any] | None, report: Reporter) -> dict[str, Any]:
    """Validate the ``mcp_servers`` table (its tools are discovered at run time)."""
    if not raw:
        return {}
    from nexus.domain.errors import UserError
    from nexus.tools.mcp import parse_mcp_servers

    try:
        parse_mcp_servers(raw)
    except UserError as exc:
        raise report.problem(exc.message, field="mcp_servers") from None
    return dict(raw)
