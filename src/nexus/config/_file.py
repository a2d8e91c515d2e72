"""The project file, ``nexus.toml``: found, read and validated into a :class:`NexusConfig`.

See :mod:`nexus.config` for which file is read and how its paths resolve.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib
import json
import os
import re
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
)

from nexus.budget.settings import BudgetsSection
from nexus.config._settings import (
    CONFIG_ENV,
    CONFIG_FILE,
    find_project,
    home_of,
    is_file,
    working_directory,
)
from nexus.domain.durations import parse_seconds
from nexus.domain.errors import NotFoundError, UserError
from nexus.gateway.pricing import PricingTable, default_pricing
from nexus.gateway.settings import SDK_PREFIXES, GatewaySettings
from nexus.tools.profile import ToolAllowance
from nexus.tools.wasm import WasmToolConfig

if TYPE_CHECKING:
    from nexus.tools.mcp import McpServerSpec

__all__ = ["CacheConfig", "NexusConfig", "load_config"]


# -- values --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """The ``[cache]`` table: the model-response cache."""

    enabled: bool = False
    ttl: float = 86400.0
    path: Path = Path(".nexus") / "cache.db"


@dataclass(frozen=True, slots=True, repr=False)
class NexusConfig:
    """A project's configuration, validated; ``NexusConfig()`` is the all-defaults one.

    Attributes:
        path: the file it was read from (None: no file, defaults).
        tenant: who runs spend and budgets are booked to.
        providers: the ``[providers]`` settings (the environment fills the gaps
            when an endpoint is resolved).
        pricing_overrides: ``[pricing]`` entries; :meth:`pricing` merges them
            over the shipped table.
        mcp_servers: the ``[mcp_servers]`` table as validated, ``cwd`` resolved:
            the shape a workflow's ``mcp_servers:`` has.
        wasm_tools: ``[wasm_tools.<name>]`` by name.
        tools: ``[tools.<name>]`` by built-in tool name: the destinations and
            read paths a workflow's ``profile:`` may grant it, and its sandbox.
        tenant_budget: ``[budgets.tenant]`` limits, in the canonical plain form
            ``{"usd": "5.00", "tokens": int, "tool_calls": int, "wall": seconds}``
            (only the limits given), or None.
        run_budget: ``[budgets.run]``, the default limits of a run, same form.
        residency: ``{"strict": bool, "providers": [...], "hosts": [...]}`` or None.
        cache: the ``[cache]`` settings.
        redaction_pii: ``[redaction] pii``: redact e-mail addresses, phone and
            card numbers from the events of the runs started here.
    """

    path: Path | None = None
    tenant: str = "default"
    providers: GatewaySettings = field(default_factory=GatewaySettings)
    pricing_overrides: PricingTable = field(default_factory=lambda: PricingTable(prices={}))
    mcp_servers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    wasm_tools: Mapping[str, WasmToolConfig] = field(default_factory=dict)
    tools: Mapping[str, ToolAllowance] = field(default_factory=dict)
    tenant_budget: Mapping[str, Any] | None = None
    run_budget: Mapping[str, Any] | None = None
    residency: Mapping[str, Any] | None = None
    cache: CacheConfig = field(default_factory=CacheConfig)
    redaction_pii: bool = False
    #: the ``[mission]`` table as written (code missions check it: ``nexus.missions``)
    mission: Mapping[str, Any] = field(default_factory=dict)

    def pricing(self) -> PricingTable:
        """The shipped pricing table with this file's ``[pricing]`` entries over it."""
        if not self.pricing_overrides.prices:
            return default_pricing()
        return default_pricing().merged(self.pricing_overrides)

    def mcp_specs(self) -> list[McpServerSpec]:
        """The ``[mcp_servers]`` entries as specs (the MCP SDK is not loaded)."""
        from nexus.tools.mcp import parse_mcp_servers

        return parse_mcp_servers(dict(self.mcp_servers))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view with secrets masked (``***``): for ``config show`` and logs.

        Masked: API keys, provider HTTP header values, MCP ``env`` values.
        """
        providers = self.providers.model_dump(mode="json")
        for entry in [providers.get(n) for n in ("openai", "anthropic", "ollama", "vllm")] + list(
            providers.get("openai_compatible", {}).values()
        ):
            if isinstance(entry, dict):
                entry["headers"] = {k: "***" for k in entry.get("headers", {})}
        servers = {}
        for name, entry in self.mcp_servers.items():
            shown = dict(entry)
            if isinstance(shown.get("env"), Mapping):
                shown["env"] = {k: "***" for k in shown["env"]}
            servers[name] = shown
        return {
            "path": None if self.path is None else str(self.path),
            "tenant": self.tenant,
            "providers": providers,
            "pricing": {
                model: {k: _text(v) for k, v in dataclasses.asdict(price).items()}
                for model, price in self.pricing_overrides.prices.items()
            },
            "mcp_servers": servers,
            "wasm_tools": {
                name: {
                    **dataclasses.asdict(tool),
                    "module": str(tool.module),
                    "input_schema": None if tool.input_schema is None else dict(tool.input_schema),
                }
                for name, tool in self.wasm_tools.items()
            },
            "tools": {name: allowance.to_dict() for name, allowance in self.tools.items()},
            "budgets": {"tenant": _copy(self.tenant_budget), "run": _copy(self.run_budget)},
            "residency": _copy(self.residency),
            "cache": {
                "enabled": self.cache.enabled,
                "ttl": self.cache.ttl,
                "path": str(self.cache.path),
            },
            "redaction": {"pii": self.redaction_pii},
        }

    def __repr__(self) -> str:
        configured = sorted(self.providers.model_fields_set - {"openai_compatible"}) + [
            f"openai_compatible:{n}" for n in sorted(self.providers.openai_compatible)
        ]
        parts = [
            f"path={None if self.path is None else str(self.path)!r}",
            f"tenant={self.tenant!r}",
            f"providers={configured}",
            f"pricing_overrides={sorted(self.pricing_overrides.prices)}",
            f"mcp_servers={sorted(self.mcp_servers)}",
            f"wasm_tools={sorted(self.wasm_tools)}",
            f"tools={sorted(self.tools)}",
            f"tenant_budget={self.tenant_budget!r}",
            f"run_budget={self.run_budget!r}",
            f"residency={self.residency!r}",
            f"cache={self.cache!r}",
            f"redaction_pii={self.redaction_pii!r}",
        ]
        return f"NexusConfig({', '.join(parts)})"


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _copy(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else copy.deepcopy(dict(value))


# -- field types -----------------------------------------------------------------------------


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a number of seconds")
    return parse_seconds(value)


def _strict_str(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


_Seconds = Annotated[float, BeforeValidator(_seconds)]
_Str = Annotated[str, BeforeValidator(_strict_str)]
_Positive = Annotated[StrictInt, Field(gt=0)]
_TENANT = re.compile(r"[A-Za-z0-9_.-]+")
_TOOL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_PROVIDER = re.compile(r"([a-z_]+)(?::\S+)?")  # a prefix, or provider:model (globs allowed)
_RESIDENCY_PREFIXES = (*SDK_PREFIXES, "scripted", "cassette", "replay")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Residency(_Strict):
    strict: StrictBool = False
    providers: list[_Str] = Field(default_factory=list)
    hosts: list[_Str] = Field(default_factory=list)

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, value: list[str]) -> list[str]:
        for name in value:
            match = _PROVIDER.fullmatch(name)
            if match is None or match[1] not in _RESIDENCY_PREFIXES:
                prefix = name.partition(":")[0]
                close = difflib.get_close_matches(prefix, _RESIDENCY_PREFIXES, n=1)
                hint = (
                    f"did you mean '{close[0]}'?"
                    if close
                    else "known: " + ", ".join(_RESIDENCY_PREFIXES)
                )
                raise ValueError(f"'{name}' is not a provider, or provider:model ({hint})")
        return list(dict.fromkeys(value))

    @field_validator("hosts")
    @classmethod
    def _bare_hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not host or "://" in host or "/" in host or any(c.isspace() for c in host):
                raise ValueError(
                    f"'{host}' must be a host name or address, optionally with :port "
                    "(no scheme, no path)"
                )
        return list(dict.fromkeys(h.lower() for h in value))


class _Cache(_Strict):
    enabled: StrictBool = False
    ttl: _Seconds = 86400.0
    path: _Str | None = None


class _Redaction(_Strict):
    pii: StrictBool = False


class _WasmTool(_Strict):
    module: _Str
    description: _Str | None = None
    fuel: Annotated[StrictInt, Field(gt=0, lt=1 << 63)] = 10_000_000
    memory_mb: Annotated[StrictInt, Field(gt=0, le=4096)] = 16
    wall_seconds: _Seconds = 5.0
    max_output_bytes: _Positive = 65536
    pure: StrictBool = False
    input_schema: dict[str, Any] | None = None


class _File(_Strict):
    """The whole file; each table's contents are checked by its own section parser."""

    tenant: _Str = "default"
    providers: dict[str, Any] = Field(default_factory=dict)
    pricing: dict[str, Any] = Field(default_factory=dict)
    mcp_servers: dict[str, Any] = Field(default_factory=dict)
    wasm_tools: dict[str, _WasmTool] = Field(default_factory=dict)
    tools: dict[str, Any] = Field(default_factory=dict)
    budgets: BudgetsSection = Field(default_factory=BudgetsSection)
    residency: _Residency | None = None
    cache: _Cache = Field(default_factory=_Cache)
    redaction: _Redaction = Field(default_factory=_Redaction)
    mission: dict[str, Any] = Field(default_factory=dict)

    @field_validator("tenant")
    @classmethod
    def _tenant_name(cls, value: str) -> str:
        if not _TENANT.fullmatch(value):
            raise ValueError("must hold only letters, digits, '_', '.' and '-'")
        return value


# -- loading ---------------------------------------------------------------------------------


def load_config(
    path: Path | str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> NexusConfig:
    """Find, read and validate the project's ``nexus.toml``.

    Args:
        path: the file to read (relative to ``cwd``); it must exist.
        environ: the environment (default: ``os.environ``), for ``NEXUS_CONFIG``
            and ``NEXUS_HOME`` (the default cache location).
        cwd: the working directory (default: the process's).

    Returns:
        The configuration; all defaults when no file is named and the project
        ``cwd`` is in (:func:`find_project`) has no ``nexus.toml``.

    Raises:
        NotFoundError: ``path`` or ``NEXUS_CONFIG`` names a file that does not exist.
        UserError: the file cannot be read or is invalid; the message names the
            file and the key (or the line and column of a syntax error).

    Example:
        >>> load_config(environ={}, cwd=Path("/nonexistent")).tenant
        'default'
    """
    env = os.environ if environ is None else environ
    base = working_directory(cwd)
    home = base / home_of(None, env, base)  # as Settings finds it
    file = _locate(path, env, base)
    if file is None:
        return NexusConfig(cache=CacheConfig(path=home / "cache.db"))
    return _parse(_read(file), file, home)


def _locate(path: Path | str | None, env: Mapping[str, str], base: Path) -> Path | None:
    if path is not None:
        file = base / Path(path).expanduser()
        if not file.exists():
            raise NotFoundError(f"config file {file} does not exist")
        return file
    named = env.get(CONFIG_ENV, "")
    if named:
        file = base / Path(named).expanduser()
        if not file.exists():
            raise NotFoundError(f"{CONFIG_ENV} names {file}, which does not exist")
        return file
    root = find_project(base)
    if root is None or not is_file(root / CONFIG_FILE):
        return None
    return root / CONFIG_FILE


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _read(file: Path) -> dict[str, Any]:
    try:
        data = file.read_bytes()
    except IsADirectoryError:
        raise UserError(f"config file {file} is a directory") from None
    except OSError as exc:
        raise UserError(f"cannot read config file {file}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(f"{file}: line {line}: not UTF-8 text") from None
    try:
        # Decimals, not binary floats: prices and budgets stay exact.
        return tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_POSITION.search(message)
        if found is not None:
            line, column = int(found[1]), int(found[2])
            message = message[: found.start()]
        else:  # "(at end of document)"
            message = message.replace(" (at end of document)", "")
            line = text.count("\n") + 1
            column = len(text) - text.rfind("\n")
        raise UserError(f"{file}: line {line}, column {column}: {message}") from None


def _parse(raw: dict[str, Any], file: Path, home: Path) -> NexusConfig:
    exact = ("pricing", "budgets")  # where Decimals stay Decimals
    try:
        doc = _File.model_validate({k: v if k in exact else _floats(v) for k, v in raw.items()})
    except ValidationError as exc:
        raise UserError(f"{file}: {_describe(exc, _File)}") from None
    folder = file.parent
    residency = doc.residency.model_dump() if doc.residency is not None else None
    cache_path = _resolve(doc.cache.path, folder) if doc.cache.path else home / "cache.db"
    return NexusConfig(
        path=file,
        tenant=doc.tenant,
        providers=_providers(doc.providers, file, folder),
        pricing_overrides=_pricing(doc.pricing, file),
        mcp_servers=_mcp(doc.mcp_servers, file, folder),
        wasm_tools={n: _wasm(n, t, file, folder) for n, t in doc.wasm_tools.items()},
        tools=_tools(doc.tools, file),
        tenant_budget=doc.budgets.tenant.plain() if doc.budgets.tenant else None,
        run_budget=doc.budgets.run.plain() if doc.budgets.run else None,
        residency=residency,
        cache=CacheConfig(enabled=doc.cache.enabled, ttl=doc.cache.ttl, path=cache_path),
        redaction_pii=doc.redaction.pii,
        mission=doc.mission,
    )


def _floats(value: Any) -> Any:
    """TOML floats (parsed as Decimals) back to floats, for sections that want floats."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return value


def _resolve(path: str, folder: Path) -> Path:
    return folder / Path(path).expanduser()


def _providers(data: dict[str, Any], file: Path, folder: Path) -> GatewaySettings:
    def key_file_resolved(entry: Any) -> Any:
        if isinstance(entry, dict) and isinstance(entry.get("api_key_file"), str):
            return {**entry, "api_key_file": str(_resolve(entry["api_key_file"], folder))}
        return entry

    resolved = {name: key_file_resolved(entry) for name, entry in data.items()}
    compat = data.get("openai_compatible")
    if isinstance(compat, dict):
        resolved["openai_compatible"] = {n: key_file_resolved(e) for n, e in compat.items()}
    try:
        return GatewaySettings.from_mapping(resolved)
    except UserError as exc:
        hints = ""
        try:
            GatewaySettings.model_validate(resolved)
        except ValidationError as again:
            found = [
                _hint(GatewaySettings, tuple(e["loc"]))
                for e in again.errors()
                if e["type"] == "extra_forbidden"
            ]
            hints = "".join(f" ({h})" for h in dict.fromkeys(found) if h)
        raise UserError(f"{file}: {exc.message}{hints}") from None


def _pricing(data: dict[str, Any], file: Path) -> PricingTable:
    known = ("input", "cached_input", "output", "cache_write")
    for model, entry in data.items():
        for key in entry if isinstance(entry, dict) else ():
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean '{close[0]}'?" if close else "known: " + ", ".join(known)
                where = _dotted(("pricing", model, key))
                raise UserError(f"{file}: {where}: unknown key ({hint})")
    try:
        return PricingTable.from_mapping({"models": data})
    except UserError as exc:
        raise UserError(f"{file}: {exc.message}") from None


def _mcp(data: dict[str, Any], file: Path, folder: Path) -> dict[str, dict[str, Any]]:
    if not data:
        return {}
    from nexus.tools.mcp import parse_mcp_servers  # configuration only: no MCP SDK

    resolved: dict[str, Any] = {}
    for name, entry in data.items():
        if isinstance(entry, dict) and isinstance(entry.get("cwd"), str):
            entry = {**entry, "cwd": str(_resolve(entry["cwd"], folder))}
        elif isinstance(entry, dict) and "command" in entry and "cwd" not in entry:
            entry = {**entry, "cwd": str(folder)}  # not the shell's: the file's folder
        resolved[name] = entry
    try:
        parse_mcp_servers(resolved, where="mcp_servers")
    except UserError as exc:
        raise UserError(f"{file}: {exc.message}") from None
    return resolved


def _tools(data: dict[str, Any], file: Path) -> dict[str, ToolAllowance]:
    """The ``[tools.<name>]`` tables, each naming a built-in tool with an exec profile."""
    if not data:
        return {}
    from nexus.tools.builtins import GOVERNED_TOOLS

    allowances: dict[str, ToolAllowance] = {}
    for name, table in data.items():
        where = _dotted(("tools", name))
        if name not in GOVERNED_TOOLS:
            raise UserError(
                f"{file}: {where}: no built-in tool {name!r} takes a [tools] table "
                f"(those that do: {', '.join(GOVERNED_TOOLS)})"
            )
        try:
            allowances[name] = ToolAllowance.from_dict(table, where)
        except UserError as exc:
            raise UserError(f"{file}: {exc.message}") from None
    return allowances


def _wasm(name: str, tool: _WasmTool, file: Path, folder: Path) -> WasmToolConfig:
    where = _dotted(("wasm_tools", name))
    if not _TOOL_NAME.fullmatch(name):
        raise UserError(
            f"{file}: {where}: a tool name starts with a letter and holds only letters, "
            "digits, '_' and '-' (at most 64)"
        )
    module = _resolve(tool.module, folder)
    if module.suffix not in (".wasm", ".wat"):
        raise UserError(f"{file}: {where}.module: {module} must be a .wasm or .wat file")
    if not module.is_file():
        raise UserError(f"{file}: {where}.module: {module} does not exist")
    if tool.input_schema is not None:
        _check_schema(tool.input_schema, f"{file}: {where}.input_schema")
    return WasmToolConfig(
        name=name,
        module=module,
        description=tool.description,
        fuel=tool.fuel,
        memory_mb=tool.memory_mb,
        wall_seconds=tool.wall_seconds,
        max_output_bytes=tool.max_output_bytes,
        pure=tool.pure,
        input_schema=tool.input_schema,
    )


def _check_schema(schema: dict[str, Any], where: str) -> None:
    # imported untyped (no stubs are installed); the MCP SDK depends on it
    jsonschema: Any = importlib.import_module("jsonschema")

    if schema.get("type", "object") != "object":
        raise UserError(f"{where}: a tool's arguments are an object: 'type' must be \"object\"")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        at = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise UserError(f"{where}: not a valid JSON schema at {at}: {exc.message}") from None


# -- messages --------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _dotted(loc: tuple[Any, ...]) -> str:
    """A key path as TOML writes it: ``pricing."openai:gpt-4.1".input``; list items as ``[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = str(part)
        out += ("." if out else "") + (
            text if _BARE_KEY.fullmatch(text) else json.dumps(text, ensure_ascii=False)
        )
    return out


def _describe(exc: ValidationError, root: type[BaseModel]) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if loc and loc[-1] == "[key]":
            loc = loc[:-1]
        where = _dotted(loc) or "(top level)"
        if error["type"] == "extra_forbidden":
            hint = _hint(root, loc)
            problems.append(f"{where}: unknown key" + (f" ({hint})" if hint else ""))
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        value = error.get("input")
        if isinstance(value, int | float | Decimal) and error["type"] != "missing":
            message += f", got {value}"  # numbers only: a misplaced key is never echoed
        problems.append(f"{where}: {message}")
    shown = "; ".join(problems[:5])
    if len(problems) > 5:
        shown += f" (and {len(problems) - 5} more)"
    return shown


def _hint(root: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """``did you mean 'x'?`` for an unknown key at ``loc``, or the keys allowed there."""
    model = _model_at(root, loc[:-1])
    if model is None:
        return ""
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    return f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(allowed)


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    current: Any = root
    for step in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            found = current.model_fields.get(str(step))
            if found is None:
                return None
            current = found.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation
