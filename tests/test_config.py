"""nexus.toml: where it is found, each section valid and invalid, and no key ever shown."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from nexus.config import (
    CacheConfig,
    NexusConfig,
    Settings,
    WasmToolConfig,
    load_config,
    parse_seconds,
)
from nexus.domain.errors import NotFoundError, UserError
from nexus.gateway.base import Usage
from nexus.gateway.pricing import cost_of, default_pricing
from nexus.gateway.settings import GatewaySettings
from nexus.tools.base import ToolContext

KEY = "sk-CONFIG-DISTINCTIVE-4b1e8d"
FILE_KEY = "sk-FROM-A-FILE-93c0aa17"
REPO = Path(__file__).resolve().parents[1]
WORDCOUNT = REPO / "examples" / "tools" / "wordcount.wat"


def write(directory: Path, text: str, name: str = "nexus.toml") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> NexusConfig:
    return load_config(write(tmp_path, text), environ={}, cwd=tmp_path)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(UserError) as caught:
        load(tmp_path, text)
    message = caught.value.message
    assert str(tmp_path / "nexus.toml") in message  # every error names the file
    return message


# -- where the file comes from ----------------------------------------------------------


def test_no_file_means_defaults(tmp_path: Path) -> None:
    config = load_config(environ={}, cwd=tmp_path)
    assert config.path is None
    assert config.tenant == "default"
    assert config.providers == GatewaySettings()
    assert config.pricing() is default_pricing()
    assert config.mcp_servers == {}
    assert config.wasm_tools == {}
    assert config.tenant_budget is None
    assert config.run_budget is None
    assert config.residency is None
    assert config.cache == CacheConfig(
        enabled=False, ttl=86400.0, path=tmp_path / ".nexus/cache.db"
    )


def test_default_cache_lives_in_nexus_home(tmp_path: Path) -> None:
    absolute = load_config(environ={"NEXUS_HOME": "/srv/nexus"}, cwd=tmp_path)
    assert absolute.cache.path == Path("/srv/nexus/cache.db")
    relative = load_config(environ={"NEXUS_HOME": "state"}, cwd=tmp_path)
    assert relative.cache.path == tmp_path / "state" / "cache.db"


def test_nexus_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    write(tmp_path, 'tenant = "here"\n')
    config = load_config(environ={}, cwd=tmp_path)
    assert config.tenant == "here"
    assert config.path == tmp_path / "nexus.toml"


def test_nexus_config_variable_wins_over_the_working_directory(tmp_path: Path) -> None:
    write(tmp_path, 'tenant = "cwd"\n')
    write(tmp_path, 'tenant = "env"\n', name="conf/other.toml")
    config = load_config(environ={"NEXUS_CONFIG": "conf/other.toml"}, cwd=tmp_path)
    assert config.tenant == "env"
    assert config.path == tmp_path / "conf" / "other.toml"
    # an empty variable is no variable
    assert load_config(environ={"NEXUS_CONFIG": ""}, cwd=tmp_path).tenant == "cwd"


def test_nexus_config_naming_a_missing_file_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, 'tenant = "cwd"\n')
    with pytest.raises(NotFoundError, match=r"NEXUS_CONFIG names .*missing\.toml"):
        load_config(environ={"NEXUS_CONFIG": "missing.toml"}, cwd=tmp_path)


def test_explicit_path_wins_over_everything(tmp_path: Path) -> None:
    write(tmp_path, 'tenant = "cwd"\n')
    write(tmp_path, 'tenant = "env"\n', name="env.toml")
    explicit = write(tmp_path, 'tenant = "explicit"\n', name="explicit.toml")
    config = load_config(explicit, environ={"NEXUS_CONFIG": "env.toml"}, cwd=tmp_path)
    assert config.tenant == "explicit"
    assert load_config("explicit.toml", environ={}, cwd=tmp_path).tenant == "explicit"


def test_explicit_path_missing_or_a_directory(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"config file .*nope\.toml does not exist"):
        load_config(tmp_path / "nope.toml", environ={}, cwd=tmp_path)
    with pytest.raises(UserError, match="is a directory"):
        load_config(tmp_path, environ={}, cwd=tmp_path)


def test_environment_is_read_when_not_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, 'tenant = "from-env"\n', name="x.toml")
    monkeypatch.setenv("NEXUS_CONFIG", str(tmp_path / "x.toml"))
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path / "home"))
    config = load_config()
    assert config.tenant == "from-env"
    assert config.cache.path == tmp_path / "home" / "cache.db"


def test_settings_still_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEXUS_HOME", raising=False)
    monkeypatch.delenv("NEXUS_DURABILITY", raising=False)
    assert Settings().home == Path(".nexus")
    assert Settings().durability == "normal"
    monkeypatch.setenv("NEXUS_HOME", "/var/nexus")
    monkeypatch.setenv("NEXUS_DURABILITY", "full")
    assert Settings().db_path == Path("/var/nexus/nexus.db")
    assert Settings().durability == "full"


# -- syntax and unknown keys ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "what"),
    [
        ("[budgets.run]\nusd == 5\n", 2, 6, "Invalid value"),
        ('tenant = "a"\ntenant = "b"\n', 2, 13, "Cannot overwrite a value"),
        ("tenant = 'a' extra\n", 1, 14, "Expected newline"),
        (f'[providers.openai]\napi_key = "{KEY}', 2, 40, "Unterminated string"),
    ],
)
def test_syntax_errors_name_file_line_and_column(
    tmp_path: Path, text: str, line: int, column: int, what: str
) -> None:
    message = error_of(tmp_path, text)
    assert f"line {line}, column {column}: {what}" in message
    assert KEY not in message


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "nexus.toml").write_bytes(b'tenant = "a"\n# \xff\xfe\n')
    with pytest.raises(UserError, match="line 2: not UTF-8"):
        load_config(tmp_path / "nexus.toml", environ={}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[provider.openai]\ntimeout = 3\n", "provider: unknown key (did you mean 'providers'?)"),
        ("tenat = 'x'\n", "tenat: unknown key (did you mean 'tenant'?)"),
        ("[routing]\nx = 1\n", "routing: unknown key (allowed: tenant, providers, pricing,"),
        ("[budgets.rnu]\nusd = 1\n", "budgets.rnu: unknown key (did you mean 'run'?)"),
        ("[budgets.run]\nusdd = 1\n", "budgets.run.usdd: unknown key (did you mean 'usd'?)"),
        ("[cache]\nenabeld = true\n", "cache.enabeld: unknown key (did you mean 'enabled'?)"),
        ("[residency]\nhost = ['a']\n", "residency.host: unknown key (did you mean 'hosts'?)"),
        (
            f"[wasm_tools.wc]\nmodule = '{WORDCOUNT}'\nfule = 5\n",
            "wasm_tools.wc.fule: unknown key (did you mean 'fuel'?)",
        ),
        (
            "[pricing]\n'openai:x' = {input = 1, output = 2, cahced_input = 1}\n",
            "pricing.\"openai:x\".cahced_input: unknown key (did you mean 'cached_input'?)",
        ),
    ],
)
def test_unknown_keys_are_named_with_a_hint(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_of(tmp_path, text)


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    message = error_of(tmp_path, "tenat = 'x'\n[cache]\nttl = 0\n")
    assert "tenat: unknown key" in message
    assert "cache.ttl: must be a positive duration" in message


# -- tenant -------------------------------------------------------------------------------


def test_tenant(tmp_path: Path) -> None:
    assert load(tmp_path, 'tenant = "team-a.prod_1"\n').tenant == "team-a.prod_1"
    message = error_of(tmp_path, f'tenant = "{KEY} x"\n')
    assert "tenant: must hold only letters, digits" in message
    assert KEY not in message  # strings are never echoed back
    assert "tenant: must be a string" in error_of(tmp_path, "tenant = 5\n")


# -- providers ----------------------------------------------------------------------------


def test_providers_section(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[providers.openai]
timeout = 2.5
base_url = "http://127.0.0.1:9/v1"

[providers.openai_compatible.lab]
base_url = "http://127.0.0.1:1234/v1"
model = "qwen"

[providers.resilience]
max_attempts = 2
""",
    )
    assert config.providers.openai.timeout == 2.5
    assert config.providers.resilience.max_attempts == 2
    endpoint = config.providers.endpoint("openai_compatible", "lab", environ={})
    assert (endpoint.base_url, endpoint.default_model) == ("http://127.0.0.1:1234/v1", "qwen")
    # settings win over the environment; the environment fills what settings leave out
    env = {"OPENAI_BASE_URL": "http://elsewhere/v1", "OPENAI_API_KEY": KEY}
    openai = config.providers.endpoint("openai", environ=env)
    assert openai.base_url == "http://127.0.0.1:9/v1"
    assert openai.require_key() == KEY


def test_provider_errors_keep_the_gateway_text(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[providers.openai]\ntimeout = -1\n")
    assert "invalid [providers] settings: openai.timeout: Input should be greater than 0" in message
    assert "did you mean" not in message


def test_misspelt_provider_key_is_hinted_and_its_value_never_shown(tmp_path: Path) -> None:
    message = error_of(tmp_path, f'[providers.openai]\napi_kye = "{KEY}"\n')
    assert "openai.api_kye" in message
    assert "did you mean 'api_key'?" in message
    assert KEY not in message
    message = error_of(tmp_path, "[providers.openia]\ntimeout = 3\n")
    assert "did you mean 'openai'?" in message


def test_api_key_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "secrets").mkdir(parents=True)
    (project / "secrets" / "openai.key").write_text(FILE_KEY + "\n")
    (project / "secrets" / "lab.key").write_text(KEY + "\n")
    write(
        project,
        """
[providers.openai]
api_key_file = "secrets/openai.key"

[providers.openai_compatible.lab]
base_url = "http://127.0.0.1:1234/v1"
api_key_file = "secrets/lab.key"
""",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = load_config(project / "nexus.toml", environ={}, cwd=elsewhere)
    assert config.providers.openai.api_key_file == project / "secrets" / "openai.key"
    env = {"OPENAI_API_KEY": "sk-from-env"}
    assert config.providers.endpoint("openai", environ=env).require_key() == FILE_KEY
    lab = config.providers.endpoint("openai_compatible", "lab", environ={})
    assert lab.require_key() == KEY


def test_keys_never_show_in_repr_str_or_dumps(tmp_path: Path) -> None:
    (tmp_path / "key.txt").write_text(FILE_KEY)
    config = load(
        tmp_path,
        f"""
[providers.openai]
api_key = "{KEY}"
headers = {{ Authorization = "Bearer {KEY}" }}

[providers.anthropic]
api_key_file = "key.txt"

[mcp_servers.notes]
command = "notes-mcp"
env = {{ NOTES_TOKEN = "{KEY}" }}
""",
    )
    endpoint = config.providers.endpoint("anthropic", environ={})
    assert endpoint.require_key() == FILE_KEY
    assert config.providers.openai.api_key is not None
    assert config.providers.openai.api_key.reveal() == KEY
    texts = [
        repr(config),
        str(config),
        f"{config}",
        json.dumps(config.to_dict()),
        repr(endpoint),
    ]
    for text in texts:
        assert KEY not in text
        assert FILE_KEY not in text
    # without headers (whose values the gateway's own repr shows), the settings hide keys too
    plain = load(tmp_path, f'[providers.openai]\napi_key = "{KEY}"\n').providers
    assert KEY not in repr(plain)
    assert KEY not in plain.model_dump_json()
    shown = config.to_dict()
    assert shown["providers"]["openai"]["api_key"] == "***"
    assert shown["providers"]["openai"]["headers"] == {"Authorization": "***"}
    assert shown["mcp_servers"]["notes"]["env"] == {"NOTES_TOKEN": "***"}


# -- pricing ------------------------------------------------------------------------------


def test_pricing_overrides_merge_over_the_shipped_table(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[pricing]
"openai:gpt-4.1-mini" = { input = 0.36, cached_input = 0.09, output = 1.44 }
"acme:private" = { input = "2", output = "8.125" }
""",
    )
    table = config.pricing()
    price = table.price_for("openai:gpt-4.1-mini")
    assert price is not None
    assert (price.input, price.cached_input, price.output) == (
        Decimal("0.36"),
        Decimal("0.09"),
        Decimal("1.44"),
    )
    assert table.price_for("openai:gpt-5") == default_pricing().price_for("openai:gpt-5")
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    assert cost_of(usage, "acme:private", table) == Decimal("10.125")
    assert config.to_dict()["pricing"]["acme:private"]["output"] == "8.125"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ('"openai:x" = { input = 1 }', "pricing: 'openai:x': price 'output' is missing"),
        ('"nocolon" = { input = 1, output = 1 }', "model 'nocolon' must be written provider:model"),
        ('"openai:x" = { input = -1, output = 1 }', "price 'input' must be a non-negative"),
        ('"openai:x" = 5', "'openai:x' must map price names to amounts"),
    ],
)
def test_invalid_pricing(tmp_path: Path, entry: str, expected: str) -> None:
    assert expected in error_of(tmp_path, f"[pricing]\n{entry}\n")


# -- MCP servers --------------------------------------------------------------------------


def test_mcp_servers_are_validated_and_kept(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[mcp_servers.time]
command = "mcp-server-time"
call_timeout = 10

[mcp_servers.git]
command = "mcp-server-git"
cwd = "repo"
env = ["PATH"]

[mcp_servers.search]
url = "http://127.0.0.1:8931/mcp"
""",
    )
    # a command server without a cwd runs in the file's folder, not the shell's
    assert config.mcp_servers["time"] == {
        "command": "mcp-server-time",
        "call_timeout": 10.0,
        "cwd": str(tmp_path),
    }
    assert config.mcp_servers["git"]["cwd"] == str(tmp_path / "repo")
    specs = {spec.name: spec for spec in config.mcp_specs()}
    assert specs["git"].cwd == tmp_path / "repo"
    assert specs["git"].env_passthrough == ("PATH",)
    assert specs["search"].transport == "http"
    assert specs["time"].call_timeout == 10.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[mcp_servers.x]\ncommand = 'a'\nurl = 'http://127.0.0.1:1/mcp'\n",
            "mcp_servers.x: give either 'command' (stdio) or 'url'",
        ),
        ("[mcp_servers.x]\ncommand = 'a'\ntimeout = 3\n", "mcp_servers.x.timeout: unknown field"),
        ("[mcp_servers.'a.b']\ncommand = 'a'\n", "server name 'a.b' must start with a letter"),
        ("[mcp_servers]\nx = 5\n", "mcp_servers.x: expected a table"),
    ],
)
def test_invalid_mcp_servers(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_of(tmp_path, text)


# -- WASM tools ---------------------------------------------------------------------------


def test_wasm_tool_module_is_relative_to_the_config_file(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "tools").mkdir(parents=True)
    shutil.copy(WORDCOUNT, project / "tools" / "wc.wat")
    write(
        project,
        """
[wasm_tools.wc]
module = "tools/wc.wat"
fuel = 1_000_000
memory_mb = 8
wall_seconds = 2
max_output_bytes = 4096
pure = true
input_schema = { type = "object", properties = { text = { type = "string" } } }
""",
    )
    config = load_config(project / "nexus.toml", environ={}, cwd=tmp_path)
    spec = config.wasm_tools["wc"]
    assert spec == WasmToolConfig(
        name="wc",
        module=project / "tools" / "wc.wat",
        fuel=1_000_000,
        memory_mb=8,
        wall_seconds=2.0,
        max_output_bytes=4096,
        pure=True,
        input_schema={"type": "object", "properties": {"text": {"type": "string"}}},
    )
    tool = spec.build()
    assert (tool.name, tool.pure) == ("wc", True)
    assert (tool.limits.fuel, tool.limits.memory_mb, tool.limits.wall_seconds) == (1_000_000, 8, 2)
    assert tool.description.startswith("wordcount")  # from the .wat's leading comment
    ctx = ToolContext(run_id="r", task="t", attempt=1, workspace=tmp_path)
    out = asyncio.run(tool({"text": "three small words"}, ctx))
    assert out["result"]["words"] == 3


def test_wasm_tool_defaults_and_description(tmp_path: Path) -> None:
    text = f"[wasm_tools.wc]\nmodule = '{WORDCOUNT}'\ndescription = 'counts'\n"
    spec = load(tmp_path, text).wasm_tools["wc"]
    assert (spec.fuel, spec.memory_mb, spec.wall_seconds, spec.max_output_bytes, spec.pure) == (
        10_000_000,
        16,
        5.0,
        65536,
        False,
    )
    assert spec.build().description == "counts"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("module = 'missing.wat'", "wasm_tools.wc.module: {dir}/missing.wat does not exist"),
        ("module = 'notes.txt'", "wasm_tools.wc.module: {dir}/notes.txt must be a .wasm or .wat"),
        ("fuel = 1", "wasm_tools.wc.module: Field required"),
        ("module = '{wat}'\nfuel = 0", "wasm_tools.wc.fuel: Input should be greater than 0, got 0"),
        ("module = '{wat}'\nfuel = '10'", "wasm_tools.wc.fuel: Input should be a valid integer"),
        ("module = '{wat}'\nmemory_mb = 5000", "wasm_tools.wc.memory_mb: Input should be less"),
        ("module = '{wat}'\nwall_seconds = '5s'", "wasm_tools.wc.wall_seconds: must be a number"),
        ("module = '{wat}'\npure = 'yes'", "wasm_tools.wc.pure: Input should be a valid boolean"),
        (
            "module = '{wat}'\ninput_schema = { type = 'string' }",
            "wasm_tools.wc.input_schema: a tool's arguments are an object",
        ),
        (
            "module = '{wat}'\ninput_schema = { type = 'object', properties = 5 }",
            "wasm_tools.wc.input_schema: not a valid JSON schema at properties",
        ),
    ],
)
def test_invalid_wasm_tools(tmp_path: Path, body: str, expected: str) -> None:
    (tmp_path / "notes.txt").write_text("not wasm")
    text = "[wasm_tools.wc]\n" + body.replace("{wat}", str(WORDCOUNT)) + "\n"
    assert expected.replace("{dir}", str(tmp_path)) in error_of(tmp_path, text)


def test_wasm_tool_names(tmp_path: Path) -> None:
    text = f"[wasm_tools.'word.count']\nmodule = '{WORDCOUNT}'\n"
    assert 'wasm_tools."word.count": a tool name starts with a letter' in error_of(tmp_path, text)


# -- budgets ------------------------------------------------------------------------------


def test_budgets_in_their_plain_form(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[budgets.tenant]
usd = "50.00"
tokens = 5_000_000

[budgets.run]
usd = 2.5
tool_calls = 200
wall = "1h30m"
""",
    )
    assert config.tenant_budget == {"usd": "50.00", "tokens": 5_000_000}
    assert config.run_budget == {"usd": "2.5", "tool_calls": 200, "wall": 5400.0}
    assert load(tmp_path, "[budgets.run]\nusd = 5\nwall = 90\n").run_budget == {
        "usd": "5",
        "wall": 90.0,
    }
    assert load(tmp_path, "[budgets.run]\n").run_budget == {}
    assert load(tmp_path, "[budgets.run]\nusd = 1e2\n").run_budget == {"usd": "100"}
    assert load(tmp_path, "[budgets.run]\nusd = 0.1\n").run_budget == {"usd": "0.1"}  # exact


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("usd = -1", "budgets.run.usd: must be a non-negative amount in USD"),
        ("usd = 'five'", 'budgets.run.usd: must be an amount in USD, like "5.00"'),
        ("usd = true", "budgets.run.usd: must be an amount in USD"),
        ("usd = nan", "budgets.run.usd: must be a non-negative amount in USD"),
        ("usd = inf", "budgets.run.usd: must be a non-negative amount in USD"),
        ("tokens = 1.5", "budgets.run.tokens: Input should be a valid integer"),
        ("tokens = -1", "budgets.run.tokens: Input should be greater than or equal to 0, got -1"),
        ("tool_calls = '3'", "budgets.run.tool_calls: Input should be a valid integer"),
        ("wall = '10 minutes'", "budgets.run.wall: must be a number of seconds or a duration"),
        ("wall = 0", "budgets.run.wall: must be a positive duration"),
    ],
)
def test_invalid_budgets(tmp_path: Path, line: str, expected: str) -> None:
    assert expected in error_of(tmp_path, f"[budgets.run]\n{line}\n")


def test_budgets_must_be_tables(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[budgets]\nrun = 5\n")
    assert "budgets.run: Input should be a valid dictionary" in message


# -- residency ----------------------------------------------------------------------------


def test_residency(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[residency]
strict = true
providers = ["ollama", "openai_compatible:lab", "ollama", "openai:gpt-4.1*"]
hosts = ["GPU-Box.internal:11434", "127.0.0.1"]
""",
    )
    assert config.residency == {
        "strict": True,
        "providers": ["ollama", "openai_compatible:lab", "openai:gpt-4.1*"],
        "hosts": ["gpu-box.internal:11434", "127.0.0.1"],
    }
    empty = load(tmp_path, "[residency]\n").residency
    assert empty == {"strict": False, "providers": [], "hosts": []}
    offline = load(tmp_path, "[residency]\nproviders = ['cassette', 'replay:a.yaml']\n")
    assert offline.residency is not None
    assert offline.residency["providers"] == ["cassette", "replay:a.yaml"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("strict = 'yes'", "residency.strict: Input should be a valid boolean"),
        ("providers = ['opnai']", "residency.providers: 'opnai' is not a provider"),
        ("providers = ['opnai']", "did you mean 'openai'?"),
        ("providers = ['openai: gpt']", "'openai: gpt' is not a provider"),
        ("providers = [5]", "residency.providers[0]: must be a string"),
        ("hosts = ['https://api.openai.com']", "'https://api.openai.com' must be a host name"),
        ("hosts = 'a'", "residency.hosts: Input should be a valid list"),
    ],
)
def test_invalid_residency(tmp_path: Path, line: str, expected: str) -> None:
    assert expected in error_of(tmp_path, f"[residency]\n{line}\n")


# -- cache --------------------------------------------------------------------------------


def test_cache(tmp_path: Path) -> None:
    config = load(tmp_path, "[cache]\nenabled = true\nttl = 3600\npath = 'state/cache.db'\n")
    assert config.cache == CacheConfig(enabled=True, ttl=3600.0, path=tmp_path / "state/cache.db")
    defaults = load(tmp_path, "[cache]\n").cache
    assert defaults == CacheConfig(enabled=False, ttl=86400.0, path=tmp_path / ".nexus/cache.db")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("enabled = 'yes'", "cache.enabled: Input should be a valid boolean"),
        ("ttl = 0", "cache.ttl: must be a positive duration"),
        ("ttl = '1d'", "cache.ttl: must be a number of seconds"),
        ("path = 5", "cache.path: must be a string"),
    ],
)
def test_invalid_cache(tmp_path: Path, line: str, expected: str) -> None:
    assert expected in error_of(tmp_path, f"[cache]\n{line}\n")


# -- the value and the example ------------------------------------------------------------


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load(tmp_path, "tenant = 'a'\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.tenant = "b"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (45, 45.0),
        (1.5, 1.5),
        ("90s", 90.0),
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("250ms", 0.25),
        (" 1h 5s ", 3605.0),
        (Decimal("0.5"), 0.5),
        ("10", 10.0),
    ],
)
def test_parse_seconds(value: object, seconds: float) -> None:
    assert parse_seconds(value) == seconds


@pytest.mark.parametrize(
    "value", ["", "m", "10x", "-5s", "-5", 0, -1, True, None, float("inf"), 10**400]
)
def test_parse_seconds_refuses(value: object) -> None:
    with pytest.raises(ValueError, match="must be"):
        parse_seconds(value)


def test_the_example_file_loads(tmp_path: Path) -> None:
    example = REPO / "examples" / "nexus.toml"
    config = load_config(example, environ={}, cwd=tmp_path)
    assert config.tenant == "docs-team"
    assert set(config.mcp_servers) == {"time", "git"}
    assert config.mcp_servers["git"]["cwd"] == str(example.parent / ".")
    assert config.wasm_tools["wordcount"].module == example.parent / "tools" / "wordcount.wat"
    assert config.run_budget == {"usd": "2.5", "tool_calls": 200, "wall": 1800.0}
    assert config.residency is not None
    assert config.residency["strict"] is True
    assert config.cache.enabled
    price = config.pricing().price_for("openai:gpt-4.1-mini")
    assert price is not None
    assert price.output == Decimal("1.44")
    assert {spec.name for spec in config.mcp_specs()} == {"time", "git"}
    tool = config.wasm_tools["wordcount"].build()
    ctx = ToolContext(run_id="r", task="t", attempt=1, workspace=tmp_path)
    assert asyncio.run(tool({"text": "a b"}, ctx))["result"]["words"] == 2
