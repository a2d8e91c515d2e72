"""The tool port: what a task's ``tool:`` names, and the registry that finds it.

A tool is an async callable from JSON arguments to a JSON result, run inside
the effect boundary (so it is recorded, and replay never runs it again). A
tool marked ``pure`` has no side effect outside its return value; the engine
may run it without first committing the events before it.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from nexus.domain.errors import ErrorKind, NexusError, NotFoundError, UserError

if TYPE_CHECKING:  # the profile module imports nothing from here; keep start-up lean
    from nexus.security.trusted import TrustedPaths
    from nexus.tools.profile import ExecProfile


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool may know about where it runs."""

    run_id: str
    task: str
    attempt: int
    workspace: Path
    env: Mapping[str, str] = field(default_factory=dict)
    #: a grant as a profile object (Python API); a tool narrows its own profile by it
    profile: ExecProfile | None = None
    #: a grant as written in a workflow (``profile:``); fields it leaves out
    #: keep the tool's own values -- see :func:`nexus.tools.profile.effective_profile`
    grant: Mapping[str, Any] | None = None
    #: what no task may write (config, state, Nexus's own code); ``None`` means
    #: :func:`nexus.security.trusted_paths` of this process
    trusted: TrustedPaths | None = None
    #: where a tool that writes files notes each one it wrote (workspace-relative,
    #: canonical); the engine records them with the call to detect two attempts
    #: writing one file at the same time. None: nobody is listening
    wrote: list[str] | None = None


class ToolFailed(NexusError):
    """A tool ran and reported failure (non-zero exit, raised error).

    ``details`` (exit code, output tails) is recorded with the error.
    """

    kind = ErrorKind.TRANSIENT

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, retryable=True)
        self.details = details or {}

    def to_data(self) -> dict[str, object]:
        data = super().to_data()
        data["details"] = self.details
        return data


class Tool(Protocol):
    """One tool."""

    @property
    def name(self) -> str: ...

    @property
    def pure(self) -> bool: ...

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any: ...


ToolFunction = Callable[..., Awaitable[Any]] | Callable[..., Any]


def _arguments_model(name: str, fn: ToolFunction) -> type[BaseModel]:
    """A pydantic model of ``fn``'s keyword arguments, from its type hints."""
    hints = typing.get_type_hints(fn)
    fields: dict[str, Any] = {}
    extra: typing.Literal["allow", "forbid"] = "forbid"
    for param in inspect.signature(fn).parameters.values():
        if param.kind is param.VAR_KEYWORD:
            extra = "allow"  # **kwargs takes whatever else is given
            continue
        if param.kind is param.VAR_POSITIONAL:
            continue
        annotation = hints.get(param.name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    model_name = "".join(part.title() for part in re.split(r"[^A-Za-z0-9]+", name)) or "Tool"
    return create_model(f"{model_name}Args", __config__=ConfigDict(extra=extra), **fields)


@dataclass(frozen=True, slots=True)
class FunctionTool:
    """A Python function as a tool; its keyword arguments come from ``with:``.

    The arguments are validated against the function's type hints (pydantic)
    before the call, and :attr:`input_schema` is the JSON schema they imply.
    """

    name: str
    fn: ToolFunction
    pure: bool = False
    description: str = ""
    _model: type[BaseModel] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_model", _arguments_model(self.name, self.fn))

    @property
    def input_schema(self) -> dict[str, Any]:
        return self._model.model_json_schema()

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        try:
            parsed = self._model.model_validate(args)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "arguments"
            raise UserError(
                f"tool '{self.name}': argument '{where}': {first['msg']}", retryable=False
            ) from None
        kwargs = {key: getattr(parsed, key) for key in type(parsed).model_fields}
        kwargs.update(parsed.model_extra or {})
        result = self.fn(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


def tool(fn: ToolFunction | None = None, *, name: str | None = None, pure: bool = False) -> Any:
    """Decorator turning a function into a :class:`FunctionTool`.

    Example:
        >>> @tool
        ... async def greet(who: str) -> str:
        ...     return f"hello {who}"
        >>> greet.name
        'greet'
    """

    def wrap(f: ToolFunction) -> FunctionTool:
        return FunctionTool(
            name=name or f.__name__, fn=f, pure=pure, description=inspect.getdoc(f) or ""
        )

    return wrap(fn) if fn is not None else wrap


class ToolRegistry:
    """Tools by name. Built explicitly and passed to the engine; no global state."""

    def __init__(
        self,
        tools: Iterable[Tool] = (),
        *,
        refusal: Callable[[str], NexusError | None] | None = None,
    ) -> None:
        self._tools: dict[str, Tool] = {}
        #: why a name that is not here is refused, when something knows better than
        #: "unknown tool" (an MCP server whose command is not approved to run)
        self._refusal = refusal
        for t in tools:
            self.add(t)

    def add(self, t: Tool) -> None:
        self._tools[t.name] = t

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            reason = self._refusal(name) if self._refusal is not None else None
            if reason is not None:
                raise reason from None
            raise NotFoundError(
                f"unknown tool '{name}' (known: {', '.join(sorted(self._tools))})"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._tools)

    async def call(self, name: str, args: dict[str, Any], ctx: ToolContext) -> Any:
        """Call tool ``name``, counting the outcome in ``nexus_tool_calls_total``.

        Raises:
            NotFoundError: no such tool (not counted: the name is not a tool's).
            Exception: whatever the tool raises, after it is counted.
        """
        t = self.get(name)
        from nexus.metrics import count_tool_call, outcome_of  # prometheus loads on first use

        try:
            result = await t(args, ctx)
        except (Exception, asyncio.CancelledError) as exc:
            count_tool_call(name, outcome_of(exc))
            raise
        count_tool_call(name, "ok")
        return result

    def __contains__(self, name: object) -> bool:
        return name in self._tools
