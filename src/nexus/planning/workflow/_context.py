"""What a workflow is checked against besides itself: tools, model providers, MCP servers.

Planning reads no configuration (see docs/architecture.md): whoever compiles a
workflow says what its project has. ``nexus validate`` and ``nexus run`` pass
a :class:`WorkflowContext` built by :meth:`nexus.app.Project.workflow_context`;
code that passes none gets the checks that need nothing but the file.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nexus.tools.base import ToolRegistry
    from nexus.tools.profile import ExecProfile

__all__ = ["ToolInfo", "WorkflowContext", "tool_infos", "with_names"]


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """What is known, ahead of a run, about one tool a workflow may name.

    Attributes:
        schema: the JSON schema of its arguments (``with:``); None: not
            known, the arguments are not checked.
        allowed: the most a ``profile:`` grant may get it (its own profile
            with ``nexus.toml``'s ``[tools.<name>]`` over it); None: not
            known, grants are not checked against it.
    """

    schema: Mapping[str, Any] | None = None
    allowed: ExecProfile | None = None


@dataclass(frozen=True, slots=True)
class WorkflowContext:
    """What a workflow's names are checked against.

    Attributes:
        tools: the tools tasks and agents may name, with what is known of
            each; None: any name is accepted.
        providers: the model provider prefixes (``openai``, ``scripted``...);
            None: any prefix is accepted.
        mcp_servers: MCP servers declared outside the file (``nexus.toml``);
            ``<server>.<tool>`` names them as the file's own servers do.
        mcp_schema: the argument schema of an MCP tool ``server.tool`` when it
            is known without starting the server (an approved descriptor),
            else None. Asked once per tool a workflow names.
        grants: whether grants are checked: an MCP tool no profile grants, a
            grant wider than a tool is allowed. A file compiled without a
            context (to list what it declares, say) is not held to them.
    """

    tools: Mapping[str, ToolInfo] | None = None
    providers: Collection[str] | None = None
    mcp_servers: Collection[str] = ()
    mcp_schema: Callable[[str], Mapping[str, Any] | None] | None = field(
        default=None, compare=False
    )
    grants: bool = True


#: The context of a file compiled with none: only what the file says is checked.
_BARE = WorkflowContext(grants=False)


def with_names(context: WorkflowContext | None, names: Collection[str] | None) -> WorkflowContext:
    """``context`` (or the bare one) with the tool ``names`` added (known by name only)."""
    context = context if context is not None else _BARE
    if names is None:
        return context
    tools = dict.fromkeys(names, ToolInfo())
    tools.update(context.tools or {})
    return replace(context, tools=tools)


def tool_infos(registry: ToolRegistry) -> dict[str, ToolInfo]:
    """What ``registry``'s tools say about themselves: argument schema, what a grant may get."""
    from nexus.tools.catalog import describe
    from nexus.tools.profile import ExecProfile

    infos: dict[str, ToolInfo] = {}
    for name in registry.names():
        tool = registry.get(name)
        schema = describe(tool)["input_schema"]
        allowed = getattr(tool, "allowed", None) or getattr(tool, "profile", None)
        infos[name] = ToolInfo(
            schema=schema if isinstance(schema, Mapping) else None,
            allowed=allowed if isinstance(allowed, ExecProfile) else None,
        )
    return infos
