"""A declared WASM tool as a value: a ``[wasm_tools.<name>]`` table or a workflow entry.

Pure data, so :mod:`nexus.config` can hold it without loading wasmtime or the
tool that runs it (``_tool``, loaded on the first :meth:`build`). ``_config``
parses and registers these; ``nexus.config`` re-exports the class under its old name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nexus.tools.wasm._runtime import WasmRuntime
    from nexus.tools.wasm._tool import WasmTool

__all__ = ["WasmToolConfig"]


@dataclass(frozen=True, slots=True)
class WasmToolConfig:
    """One ``[wasm_tools.<name>]`` table: a WASM module and the limits of each call.

    The limit names and defaults are those of :class:`~nexus.tools.wasm.WasmLimits`.
    ``description=None`` lets a ``.wat`` module's leading ``;;`` comment describe it.
    """

    name: str
    module: Path
    description: str | None = None
    fuel: int = 10_000_000
    memory_mb: int = 16
    wall_seconds: float = 5.0
    max_output_bytes: int = 65536
    pure: bool = False
    input_schema: Mapping[str, Any] | None = None

    def build(self, runtime: WasmRuntime | None = None) -> WasmTool:
        """The tool, ready to register (the module is read now, compiled on first use).

        Raises:
            NotFoundError: the module file is gone since the config was loaded.
            UserError: ``input_schema`` is not a valid JSON schema.
        """
        from nexus.tools.wasm._tool import load_wasm_tool  # wasmtime loads on first build

        return load_wasm_tool(
            self.module,
            fuel=self.fuel,
            memory_mb=self.memory_mb,
            wall_seconds=self.wall_seconds,
            max_output_bytes=self.max_output_bytes,
            name=self.name,
            description=self.description,
            pure=self.pure,
            runtime=runtime,
            input_schema=self.input_schema,
        )
