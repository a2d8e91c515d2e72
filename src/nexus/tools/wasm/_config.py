"""Declared WASM tools: ``wasm_tools`` tables turned into registered :class:`WasmTool` s.

A project declares WASM tools in ``nexus.toml`` (``[wasm_tools.<name>]``, read
by :func:`nexus.config.load_config` into :class:`~nexus.tools.wasm.WasmToolConfig`
values) or in any other mapping of the same shape -- a workflow's
``wasm_tools:``, an API body -- read by :func:`parse_wasm_tools` into the same
values::

    wasm_tools:
      wordcount:
        module: tools/wordcount.wat    # .wasm or .wat; relative to the declaring file
        description: Count words       # default: a .wat file's leading ";;" line
        fuel: 10000000                 # instructions per call
        memory_mb: 16                  # largest linear memory
        wall_seconds: 5                # or a duration: "5s", "2m"
        max_output_bytes: 65536        # per stream
        pure: true                     # writes nothing to the workspace
        input_schema: {type: object, properties: {text: {type: string}}, required: [text]}

:func:`register_wasm_tools` builds the tools (reading each module once) and
adds them to a :class:`~nexus.tools.base.ToolRegistry`, refusing a name that is
already taken: a declared tool never silently replaces a built-in (a module
named ``shell`` must not stand in for the sandboxed shell) or another tool.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
)

from nexus.domain.durations import parse_seconds
from nexus.domain.errors import UserError
from nexus.tools.base import ToolRegistry
from nexus.tools.catalog import source_of
from nexus.tools.pins import PinStore
from nexus.tools.wasm._runtime import WasmRuntime
from nexus.tools.wasm._spec import WasmToolConfig
from nexus.tools.wasm._tool import WasmTool

__all__ = [
    "build_wasm_tool",
    "guard_launch",
    "parse_wasm_tools",
    "register_wasm_tools",
    "wasm_record",
]

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_DEFAULTS = WasmToolConfig(name="_", module=Path("_"))  # one source of truth for defaults


def _text(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


class _Declaration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    module: Annotated[str, BeforeValidator(_text)]
    description: Annotated[str, BeforeValidator(_text)] | None = None
    fuel: Annotated[StrictInt, Field(gt=0, lt=1 << 63)] = _DEFAULTS.fuel
    memory_mb: Annotated[StrictInt, Field(gt=0, le=4096)] = _DEFAULTS.memory_mb
    wall_seconds: Annotated[float, BeforeValidator(parse_seconds)] = _DEFAULTS.wall_seconds
    max_output_bytes: Annotated[StrictInt, Field(gt=0)] = _DEFAULTS.max_output_bytes
    pure: StrictBool = _DEFAULTS.pure
    input_schema: dict[str, Any] | None = None


def parse_wasm_tools(
    data: object, *, base_dir: Path, where: str = "wasm_tools"
) -> dict[str, WasmToolConfig]:
    """Validate a ``wasm_tools`` table into :class:`~nexus.tools.wasm.WasmToolConfig` values.

    Args:
        data: ``{name: {module, description?, fuel?, memory_mb?, wall_seconds?,
            max_output_bytes?, pure?, input_schema?}}``.
        base_dir: what a relative ``module`` path is relative to (the
            declaring file's folder).
        where: how errors name the table (``"flow.yaml: wasm_tools"``).

    Returns:
        The declarations by name, modules resolved to paths that exist.

    Raises:
        UserError: naming the tool and the field, for any invalid entry.
    """
    if not isinstance(data, Mapping):
        raise UserError(f"{where}: expected a table of tool name -> settings")
    out: dict[str, WasmToolConfig] = {}
    for name, raw in data.items():
        at = f"{where}.{name}"
        if not isinstance(name, str) or not _valid_name(name):
            raise UserError(
                f"{where}: {name!r} is not a tool name (a letter, then letters, digits, "
                "'_' or '-'; at most 64)"
            )
        try:
            decl = _Declaration.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"])
            message = str(first["msg"]).removeprefix("Value error, ")
            if first["type"] == "extra_forbidden":
                known = ", ".join(_Declaration.model_fields)
                message = f"unknown field (known: {known})"
            raise UserError(f"{at}{'.' + field if field else ''}: {message}") from None
        module = base_dir / Path(decl.module).expanduser()
        if module.suffix not in (".wasm", ".wat"):
            raise UserError(f"{at}.module: {module} must be a .wasm or .wat file")
        if not module.is_file():
            raise UserError(f"{at}.module: {module} does not exist")
        out[name] = WasmToolConfig(
            name=name,
            module=module,
            description=decl.description,
            fuel=decl.fuel,
            memory_mb=decl.memory_mb,
            wall_seconds=decl.wall_seconds,
            max_output_bytes=decl.max_output_bytes,
            pure=decl.pure,
            input_schema=decl.input_schema,
        )
    return out


def _valid_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def build_wasm_tool(config: WasmToolConfig, *, runtime: WasmRuntime | None = None) -> WasmTool:
    """The tool one declaration describes, its ``input_schema`` enforced.

    Raises:
        NotFoundError: the module file is gone.
        UserError: ``input_schema`` is not a valid JSON schema.
    """
    return config.build(runtime=runtime)


def wasm_record(tool: WasmTool) -> dict[str, Any]:
    """What a WASM tool's launch pin covers: the module's bytes (by SHA-256)."""
    return {"module_sha256": tool.digest}


def guard_launch(tool: WasmTool, pins: PinStore) -> WasmTool:
    """Make every call of ``tool`` check that its module is the one approved.

    A module named by configuration is code that configuration chose; like an
    MCP server's command it waits for ``nexus tools approve wasm:NAME --pin …``,
    and is refused again as soon as its bytes change.
    """
    record = wasm_record(tool)

    def check() -> None:
        pins.check_launch("wasm", tool.name, record)

    tool.approval = check
    return tool


def register_wasm_tools(
    registry: ToolRegistry,
    configs: Mapping[str, WasmToolConfig] | Iterable[WasmToolConfig],
    *,
    runtime: WasmRuntime | None = None,
) -> list[str]:
    """Build the declared tools and add them to ``registry``; the names added.

    Nothing is added unless every tool builds and no name is taken.

    Raises:
        UserError: a name is already in ``registry`` (a built-in, an MCP tool,
            another declaration), or a declaration does not build.
        NotFoundError: a module file is gone.
    """
    values = list(configs.values()) if isinstance(configs, Mapping) else list(configs)
    tools: list[WasmTool] = []
    for config in values:
        taken = (
            source_of(registry.get(config.name))
            if config.name in registry
            else next(("wasm" for t in tools if t.name == config.name), None)
        )
        if taken is not None:
            raise UserError(
                f"wasm_tools.{config.name}: the name is taken by a {taken} tool; "
                "a declared tool never replaces another: choose another name"
            )
        tools.append(build_wasm_tool(config, runtime=runtime))
    for t in tools:
        registry.add(t)
    return [t.name for t in tools]
