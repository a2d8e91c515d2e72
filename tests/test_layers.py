"""The bottom layer stays light: importing the domain loads no IO library and no upper layer.

The import contracts (``lint-imports``, see ``[tool.importlinter]`` in pyproject.toml)
check the static import graph; these tests check what a fresh interpreter really
loads, which also catches a heavy import reached through a package ``__init__``.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import nexus.domain

#: Libraries and layers that ``import nexus.domain`` must not load.
HEAVY = ("sqlalchemy", "alembic", "httpx", "jinja2", "openai", "anthropic", "mcp", "wasmtime")
UPPER = (
    "nexus.engine",
    "nexus.store",
    "nexus.gateway",
    "nexus.tools",
    "nexus.agents",
    "nexus.planning",
    "nexus.config",
    "nexus.app",
    "nexus.cli",
)


def _loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def _offenders(loaded: set[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == r or m.startswith(r + ".") for r in roots))


DOMAIN_MODULES = sorted(
    m.name for m in pkgutil.iter_modules(nexus.domain.__path__, prefix="nexus.domain.")
)


@pytest.mark.parametrize("module", ["nexus.domain", *DOMAIN_MODULES])
def test_importing_the_domain_loads_no_io_library_and_no_upper_layer(module: str) -> None:
    loaded = _loaded_after(f"import {module}")

    assert _offenders(loaded, HEAVY) == [], f"import {module} loads an IO library"
    assert _offenders(loaded, UPPER) == [], f"import {module} loads an upper layer"
    ours = sorted(m for m in loaded if m.startswith("nexus.") and not m.startswith("nexus.domain"))
    assert ours == [], f"import {module} loads Nexus modules outside the domain"


def test_import_nexus_defers_the_engine_until_a_name_is_used() -> None:
    assert _offenders(_loaded_after("import nexus"), HEAVY + UPPER) == []

    loaded = _loaded_after("import nexus\nnexus.Engine")

    assert "nexus.engine.facade" in loaded


def test_every_name_nexus_exports_resolves() -> None:
    code = (
        "import nexus\n"
        "missing = [n for n in nexus.__all__ if getattr(nexus, n, None) is None]\n"
        "assert not missing, missing\n"
        "assert set(nexus.__all__) <= set(dir(nexus))\n"
        "from nexus import Workflow, Engine, tool\n"
    )
    _loaded_after(code)


def test_an_unknown_name_is_an_attribute_error_that_names_it() -> None:
    import nexus

    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        _ = nexus.NoSuchThing  # type: ignore[attr-defined]
