"""A workflow's ``inputs``: their values, and which of them are secret.

An input is declared by its default value, or by a mapping with the key
``secret`` or ``env`` and no keys but ``secret``, ``default``, ``env`` and
``description``. Inputs named like secrets (:func:`nexus.redaction.is_secret_name`)
and inputs with ``env`` are secret unless declared ``secret: false``; the
engine never records a secret input's value (:mod:`nexus.engine.secret_inputs`).
"""

from __future__ import annotations

import re
from typing import Any

from nexus.planning.workflow._errors import Reporter, kind
from nexus.planning.workflow._values import Values
from nexus.redaction import is_secret_name

__all__ = ["merge_inputs"]

_INPUT_KEYS = frozenset({"secret", "default", "env", "description"})
_ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def merge_inputs(
    declared: dict[str, Any], overrides: dict[str, Any] | None, values: Values
) -> tuple[dict[str, Any], dict[str, str | None]]:
    """The inputs' values (defaults, then ``overrides``) and the secret ones' ``env``.

    Raises:
        WorkflowError: a declaration is invalid, a value is not plain JSON, or
            ``overrides`` names an input the workflow does not declare.
    """
    report = values.report
    merged: dict[str, Any] = {}
    secret: dict[str, str | None] = {}
    for key, value in declared.items():
        if not isinstance(key, str):
            report.error(f"input names must be strings, not {kind(key)}", field="inputs")
        declaration = _declaration(value)
        if declaration is None:
            if is_secret_name(key):
                secret[key] = None
            merged[key] = values.json(value, f"inputs.{key}")
            continue
        env = _check_declaration(key, declaration, report)
        if declaration.get("secret", is_secret_name(key) or env is not None):
            secret[key] = env
        if "default" in declaration:
            merged[key] = values.json(declaration["default"], f"inputs.{key}.default")
    for key, value in (overrides or {}).items():
        if key not in declared:
            known = (
                "declared inputs: " + ", ".join(sorted(declared))
                if declared
                else "the workflow declares no inputs"
            )
            report.error(f"unknown input {key!r} ({known})", field="inputs")
        merged[key] = values.json(value, f"inputs.{key}")
    return merged, secret


def _declaration(value: Any) -> dict[str, Any] | None:
    """``value`` when it declares an input (``{secret: true, default: ...}``), else None."""
    if (
        isinstance(value, dict)
        and ("secret" in value or "env" in value)
        and _INPUT_KEYS.issuperset(value)
    ):
        return value
    return None


def _check_declaration(key: str, declaration: dict[str, Any], report: Reporter) -> str | None:
    """Check an input's declaration mapping; its ``env`` variable, if any."""
    where = f"inputs.{key}"
    flag = declaration.get("secret", False)
    if not isinstance(flag, bool):
        report.error(f"'secret' must be true or false, got {kind(flag)}", field=f"{where}.secret")
    description = declaration.get("description", "")
    if not isinstance(description, str):
        report.error("'description' must be text", field=f"{where}.description")
    env = declaration.get("env")
    if env is None:
        return None
    if not isinstance(env, str) or _ENV_RE.fullmatch(env) is None:
        report.error(
            "'env' must name an environment variable ([A-Za-z_][A-Za-z0-9_]*)",
            field=f"{where}.env",
        )
    if declaration.get("secret") is False:
        report.error(
            "'env' gives secret inputs their value; this input is declared secret: false",
            field=f"{where}.env",
        )
    return env
