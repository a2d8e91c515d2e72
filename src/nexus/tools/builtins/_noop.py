"""``noop``: the built-in tool that does nothing but return its arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nexus.tools.base import ToolContext


@dataclass(frozen=True, slots=True)
class NoopTool:
    """``noop``: returns its arguments. For tests and benchmarks."""

    name: str = "noop"
    pure: bool = True

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        return args
