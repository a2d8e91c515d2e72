"""An MCP server as configured: one ``mcp_servers`` entry parsed into a :class:`McpServerSpec`.

The same table goes under ``mcp_servers:`` in a workflow file and
``[mcp_servers]`` in ``nexus.toml``. Parsing loads no MCP SDK; every error names
its field (``mcp_servers.git.call_timeout: ...``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nexus.domain.errors import UserError

__all__ = ["McpServerSpec", "parse_mcp_servers"]

_SERVER_NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"


class _SpecModel(BaseModel):
    """The wire shape of one server entry (workflow YAML or ``nexus.toml``)."""

    model_config = ConfigDict(extra="forbid")

    command: str | None = Field(default=None, min_length=1)
    args: list[str] = Field(default_factory=list)
    env: list[str] | dict[str, str] = Field(default_factory=list)
    cwd: str | None = None
    url: str | None = None
    call_timeout: float = Field(default=30.0, gt=0, le=86400)
    connect_timeout: float = Field(default=15.0, gt=0, le=3600)
    breaker_threshold: int = Field(default=5, ge=1, le=1000)
    breaker_cooldown: float = Field(default=30.0, gt=0, le=86400)
    lint_ignore: list[str] = Field(default_factory=list)

    @field_validator("env", mode="before")
    @classmethod
    def _env_shape(cls, value: Any) -> Any:
        if isinstance(value, list):
            bad = [v for v in value if not isinstance(v, str) or not v or "=" in v]
            if bad:
                raise ValueError(
                    f"names to pass through must be non-empty strings without '=' ({bad[0]!r})"
                )
        elif isinstance(value, dict):
            bad = [k for k, v in value.items() if not k or "=" in k or not isinstance(v, str)]
            if bad:
                raise ValueError(
                    f"'{bad[0]}': a variable needs a name without '=' and a string value"
                )
        else:
            raise ValueError(
                "must be a list of variable names to pass through, or a table of NAME = value"
            )
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL (got {value!r})")
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> _SpecModel:
        if (self.command is None) == (self.url is None):
            raise ValueError(
                "give either 'command' (stdio) or 'url' (streamable HTTP), exactly one"
            )
        if self.url is not None and (self.args or self.env or self.cwd):
            raise ValueError("'args', 'env' and 'cwd' apply to 'command' servers only, not 'url'")
        return self


@dataclass(frozen=True, slots=True)
class McpServerSpec:
    """One MCP server, as configured.

    Attributes:
        name: the server's name; its tools are ``<name>.<tool>``.
        command: executable of a stdio server (looked up on the parent's ``PATH``).
        args: its arguments.
        env: variables given to the server, literally. Nothing else is passed:
            not even ``PATH`` or ``HOME`` unless listed here or in ``env_passthrough``.
        env_passthrough: names whose values are copied from Nexus's environment.
        cwd: the server's working directory (default: Nexus's).
        url: endpoint of a streamable-HTTP server (instead of ``command``).
        call_timeout: seconds a ``tools/call`` may take.
        connect_timeout: seconds for the handshake and the first listing.
        breaker_threshold: consecutive failures that open the circuit.
        breaker_cooldown: seconds the circuit stays open before a trial call.
        lint_ignore: linter finding codes not to hold against this server's tools.
    """

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    env_passthrough: tuple[str, ...] = ()
    cwd: Path | None = None
    url: str | None = None
    call_timeout: float = 30.0
    connect_timeout: float = 15.0
    breaker_threshold: int = 5
    breaker_cooldown: float = 30.0
    lint_ignore: frozenset[str] = frozenset()

    @property
    def transport(self) -> Literal["stdio", "http"]:
        """``stdio`` for a ``command`` server, ``http`` for a ``url`` one."""
        return "http" if self.url is not None else "stdio"

    @classmethod
    def from_dict(cls, name: str, data: Any, *, where: str = "mcp_servers") -> McpServerSpec:
        """Parse one entry of ``mcp_servers``.

        Raises:
            UserError: the entry is invalid; the message names the field
                (``mcp_servers.git.call_timeout: ...``).
        """
        prefix = f"{where}.{name}"
        if not isinstance(name, str) or not re.match(_SERVER_NAME, name):
            raise UserError(
                f"{where}: server name {name!r} must start with a letter and hold only "
                "letters, digits, '_' and '-' (no '.': tools are named <server>.<tool>)"
            )
        if not isinstance(data, Mapping):
            raise UserError(f"{prefix}: expected a table with 'command' or 'url'")
        try:
            model = _SpecModel.model_validate(dict(data))
        except ValidationError as exc:
            raise UserError(_describe_validation(prefix, exc)) from None
        env = model.env
        return cls(
            name=name,
            command=model.command,
            args=tuple(model.args),
            env=dict(env) if isinstance(env, dict) else {},
            env_passthrough=tuple(env) if isinstance(env, list) else (),
            cwd=Path(model.cwd) if model.cwd is not None else None,
            url=model.url,
            call_timeout=model.call_timeout,
            connect_timeout=model.connect_timeout,
            breaker_threshold=model.breaker_threshold,
            breaker_cooldown=model.breaker_cooldown,
            lint_ignore=frozenset(model.lint_ignore),
        )

    def child_env(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The complete environment of the server process."""
        source = os.environ if environ is None else environ
        out = {k: source[k] for k in self.env_passthrough if k in source}
        out.update(self.env)
        return out


def _describe_validation(prefix: str, exc: ValidationError) -> str:
    known = ", ".join(sorted(_SpecModel.model_fields))
    problems = []
    for err in exc.errors(include_url=False):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        where = f"{prefix}{path}"
        if err["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown field (known: {known})")
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
    return "; ".join(problems)


def parse_mcp_servers(data: Any, *, where: str = "mcp_servers") -> list[McpServerSpec]:
    """Parse a whole ``mcp_servers`` table (name -> entry).

    Example:
        >>> [s.name for s in parse_mcp_servers({"time": {"command": "mcp-server-time"}})]
        ['time']

    Raises:
        UserError: the table or one of its entries is invalid.
    """
    if data is None:
        return []
    if not isinstance(data, Mapping):
        raise UserError(f"{where}: expected a table of server name -> settings")
    return [McpServerSpec.from_dict(name, entry, where=where) for name, entry in data.items()]
