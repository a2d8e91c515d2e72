"""The tool port: what a task's ``tool:`` names, and the registry that finds it.

A tool is an async callable from JSON arguments to a JSON result, run inside
the effect boundary (so it is recorded, and replay never runs it again). A
tool marked ``pure`` has no side effect outside its return value; the engine
may run it without first committing the events before it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nexus.domain.errors import ErrorKind, NexusError, NotFoundError


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool may know about where it runs."""

    run_id: str
    task: str
    attempt: int
    workspace: Path
    env: Mapping[str, str] = field(default_factory=dict)


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


@dataclass(frozen=True, slots=True)
class FunctionTool:
    """A Python function as a tool; its keyword arguments come from ``with:``."""

    name: str
    fn: ToolFunction
    pure: bool = False
    description: str = ""

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        try:
            result = self.fn(**args)
        except TypeError as exc:
            raise NexusError(f"tool '{self.name}': bad arguments: {exc}", retryable=False) from exc
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

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)

    def add(self, t: Tool) -> None:
        self._tools[t.name] = t

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise NotFoundError(
                f"unknown tool '{name}' (known: {', '.join(sorted(self._tools))})"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools
