"""What a workflow grants and limits: tools, exec profiles, budgets, MCP servers.

Each table is validated by the module that owns its meaning (an exec profile
by :mod:`nexus.tools.profile`, a budget by :mod:`nexus.domain.budget`, the MCP
servers by :mod:`nexus.tools.mcp`), here, so a typo fails before the run
starts; their errors are re-raised naming the workflow file and the field.

MCP tools are denied unless a profile grants them (``mcp_tools:``, see
docs/mcp.md): a tool task's own profile, or for an agent's calls the task's
profile when it has one, else the agent's. :func:`mcp_granted` reads a grant
as the engine will (:func:`nexus.tools.profile.allows_mcp_tool`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from fnmatch import fnmatchcase
from typing import Any

from nexus.planning.workflow._errors import Reporter, known, suggest

__all__ = [
    "ToolNames",
    "budget_limits",
    "check_provider",
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
