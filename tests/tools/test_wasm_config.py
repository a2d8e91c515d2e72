"""Declared WASM tools: from a ``wasm_tools`` table or ``nexus.toml`` to a callable tool."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from nexus.config import WasmToolConfig, load_config
from nexus.domain.errors import UserError
from nexus.tools.base import ToolContext, ToolFailed
from nexus.tools.builtins import builtin_tools
from nexus.tools.catalog import describe
from nexus.tools.wasm import WasmTool, build_wasm_tool, parse_wasm_tools, register_wasm_tools

T = TypeVar("T")
WORDCOUNT = Path(__file__).resolve().parents[2] / "examples" / "tools" / "wordcount.wat"
SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
    "additionalProperties": False,
}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder holding the example module under tools/."""
    (tmp_path / "tools").mkdir()
    shutil.copy(WORDCOUNT, tmp_path / "tools" / "wordcount.wat")
    (tmp_path / "ws").mkdir()
    return tmp_path


def ctx(project: Path) -> ToolContext:
    return ToolContext("run", "count", 1, project / "ws")


def test_a_declared_wat_tool_is_callable_through_the_registry(project: Path) -> None:
    configs = parse_wasm_tools(
        {
            "wordcount": {
                "module": "tools/wordcount.wat",
                "fuel": 20_000_000,
                "memory_mb": 4,
                "wall_seconds": "5s",
                "pure": True,
                "input_schema": SCHEMA,
            }
        },
        base_dir=project,
    )
    assert configs["wordcount"].module == project / "tools" / "wordcount.wat"
    assert configs["wordcount"].wall_seconds == 5.0
    registry = builtin_tools()
    assert register_wasm_tools(registry, configs) == ["wordcount"]
    out = run(registry.call("wordcount", {"text": "two words\nthree"}, ctx(project)))
    assert out["result"] == {"bytes": 15, "chars": 15, "words": 3, "lines": 1}
    declared = registry.get("wordcount")
    assert isinstance(declared, WasmTool)
    assert declared.pure is True
    assert declared.limits.fuel == 20_000_000
    assert declared.description.startswith("wordcount: a WASI")  # from the .wat comment


def test_defaults_are_those_of_nexus_toml(project: Path) -> None:
    parsed = parse_wasm_tools({"wc": {"module": "tools/wordcount.wat"}}, base_dir=project)["wc"]
    defaults = WasmToolConfig(name="wc", module=project / "tools" / "wordcount.wat")
    assert parsed == defaults


def test_nexus_toml_declarations_register_the_same_way(project: Path) -> None:
    (project / "nexus.toml").write_text(
        "[wasm_tools.wc]\n"
        'module = "tools/wordcount.wat"\n'
        'description = "Count words"\n'
        "fuel = 30000000\n"
        "[wasm_tools.wc.input_schema]\n"
        'type = "object"\n'
        'required = ["text"]\n'
    )
    config = load_config(environ={}, cwd=project)
    registry = builtin_tools()
    register_wasm_tools(registry, config.wasm_tools)
    out = run(registry.call("wc", {"text": "a b c"}, ctx(project)))
    assert out["result"]["words"] == 3
    with pytest.raises(UserError, match=r"tool 'wc': argument 'arguments': 'text' is a required"):
        run(registry.call("wc", {"words": "a"}, ctx(project)))
    entry = describe(registry.get("wc"))
    assert entry["source"] == "wasm"
    assert entry["description"] == "Count words"
    assert entry["input_schema"] == {"type": "object", "required": ["text"]}
    assert entry["permissions"]["network"] == "none"
    assert entry["permissions"]["fuel"] == 30_000_000


def test_the_schema_is_checked_before_the_guest_runs(project: Path) -> None:
    configs = parse_wasm_tools(
        {"wc": {"module": "tools/wordcount.wat", "input_schema": SCHEMA}}, base_dir=project
    )
    tool = build_wasm_tool(configs["wc"])
    with pytest.raises(UserError, match=r"argument 'text': 3 is not of type 'string'"):
        run(tool({"text": 3}, ctx(project)))
    # without a schema the guest itself refuses (exit 2), a different, later failure
    bare = build_wasm_tool(
        parse_wasm_tools({"wc": {"module": "tools/wordcount.wat"}}, base_dir=project)["wc"]
    )
    with pytest.raises(ToolFailed, match="exited with status 2"):
        run(bare({"text": 3}, ctx(project)))


def test_a_declared_tool_never_replaces_another(project: Path) -> None:
    registry = builtin_tools()
    shell = registry.get("shell")
    configs = parse_wasm_tools(
        {
            "fine": {"module": "tools/wordcount.wat"},
            "shell": {"module": "tools/wordcount.wat"},
        },
        base_dir=project,
    )
    with pytest.raises(UserError, match=r"wasm_tools\.shell: the name is taken by a builtin tool"):
        register_wasm_tools(registry, configs)
    assert registry.get("shell") is shell
    assert "fine" not in registry  # all or nothing


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ([], r"wasm_tools: expected a table"),
        ({"1bad": {"module": "tools/wordcount.wat"}}, r"'1bad' is not a tool name"),
        ({"wc": {}}, r"wasm_tools\.wc\.module: Field required"),
        ({"wc": {"module": "tools/wordcount.wat", "fule": 1}}, r"wc\.fule: unknown field"),
        ({"wc": {"module": "tools/wordcount.wat", "fuel": 0}}, r"wc\.fuel: .*greater than 0"),
        ({"wc": {"module": "tools/wordcount.wat", "fuel": "9"}}, r"wc\.fuel: .*integer"),
        ({"wc": {"module": "tools/wordcount.wat", "wall_seconds": "soon"}}, r"wall_seconds"),
        ({"wc": {"module": "tools/nope.wat"}}, r"wc\.module: .*nope\.wat does not exist"),
        ({"wc": {"module": "tools"}}, r"wc\.module: .* must be a \.wasm or \.wat file"),
        ({"wc": {"module": 3}}, r"wc\.module: must be a string"),
    ],
)
def test_bad_declarations_name_the_field(project: Path, table: Any, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_wasm_tools(table, base_dir=project)


def test_an_invalid_schema_is_refused_when_built(project: Path) -> None:
    configs = parse_wasm_tools(
        {"wc": {"module": "tools/wordcount.wat", "input_schema": {"type": 5}}}, base_dir=project
    )
    with pytest.raises(UserError, match=r"tool 'wc': input_schema is not a valid JSON schema"):
        register_wasm_tools(builtin_tools(), configs)


def _loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_config_holds_declarations_without_loading_wasmtime() -> None:
    light = _loaded_after("import nexus.config\nfrom nexus.tools.wasm import WasmToolConfig")
    assert not {m for m in light if m == "wasmtime" or m.startswith("wasmtime.")}

    loaded = _loaded_after("from nexus.tools.wasm import WasmTool")
    assert "wasmtime" in loaded


def test_every_name_the_package_exports_resolves() -> None:
    import nexus.tools.wasm as package

    assert {n: getattr(package, n) is not None for n in package.__all__} == dict.fromkeys(
        package.__all__, True
    )
    assert set(package.__all__) <= set(dir(package))
    with pytest.raises(AttributeError, match="has no attribute 'WasmNothing'"):
        _ = package.WasmNothing
