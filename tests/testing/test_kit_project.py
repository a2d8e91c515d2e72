"""The kit's engines are built as ``nexus run`` builds one: through :class:`nexus.app.Project`.

A test handed ``config=`` gets that ``nexus.toml``'s tools, providers held to
its residency, prices, tenant, budgets and redaction; without it, the
all-defaults project, never a file found near the working directory.
"""

from __future__ import annotations

import asyncio
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from nexus.app import Project
from nexus.config import NexusConfig, Settings
from nexus.domain.errors import NotFoundError, UserError
from nexus.domain.events import EventType
from nexus.engine import Engine
from nexus.planning.workflow import compile_workflow
from nexus.store.sqlite import SQLiteStore
from nexus.testing import ManualClock, sqlite_engine, temp_engine

REPO = Path(__file__).resolve().parents[2]
WORDCOUNT = REPO / "examples" / "tools" / "wordcount.wat"

#: Strict residency that lets only ``scripted`` out; an endpoint nothing listens on.
PROJECT_TOML = """\
tenant = "acme"

[providers.openai]
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-kit-test-never-sent"

[residency]
strict = true
providers = ["scripted"]

[pricing]
"acme:private" = { input = "0.5", output = "2" }

[budgets.run]
usd = 5

[redaction]
pii = true

[wasm_tools.wc]
module = "wc.wat"

[cache]
enabled = true
path = "state/cache.db"
"""


def poem(model: str = "openai:gpt-4.1-mini") -> Any:
    return compile_workflow(
        {
            "version": 1,
            "name": "poem",
            "agents": {"poet": {"model": model}},
            "tasks": {"haiku": {"agent": "poet", "prompt": "A haiku about tides."}},
        }
    )


@pytest.fixture
def project_toml(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(WORDCOUNT, folder / "wc.wat")
    path = folder / "nexus.toml"
    path.write_text(PROJECT_TOML, encoding="utf-8")
    return path


def test_temp_engine_gets_the_project_of_the_config_it_is_given(project_toml: Path) -> None:
    async def main() -> tuple[Engine, Path, Any, list[Any]]:
        async with temp_engine(config=project_toml) as engine:
            assert isinstance(engine.store, SQLiteStore)
            home = Path(engine.store._engine.url.database or "").parent
            result = await engine.start(poem())
            state, events = await engine.load_state(result.run_id)
            return engine, home, state, events

    engine, home, state, events = asyncio.run(main())
    assert (engine.tenant, engine.pii) == ("acme", True)
    assert engine.run_budget is not None
    assert engine.run_budget.get("usd") == Decimal(5)
    assert engine.pricing is not None
    assert engine.pricing.price_for("acme:private") is not None
    assert "wc" in engine.tools.names()  # the [wasm_tools] of the file
    assert engine.trusted is not None
    assert engine.trusted.covers(project_toml.resolve())
    assert engine.trusted.covers(home.resolve() / "nexus.db")
    # the provider stack is the project's: strict residency refuses before a byte leaves
    error = state.tasks["haiku"].error
    assert error is not None
    assert error["kind"] == "policy_denied", error
    assert "openai:gpt-4.1-mini" in error["message"]
    assert not [e for e in events if e.type is EventType.EFFECT_RECORDED]
    started = events[0].data
    assert started["tenant"] == "acme"
    assert started["residency"]["strict"] is True
    # the project's response cache was opened in the file's folder, and closed
    assert (project_toml.parent / "state" / "cache.db").is_file()
    assert not home.exists()


def test_without_config_the_kit_engine_is_the_default_projects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a nexus.toml beside the test is not read: a test does not change with its folder
    (tmp_path / "nexus.toml").write_text('tenant = "nearby"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    clock = ManualClock()

    async def started_by(engine: Engine) -> dict[str, Any]:
        result = await engine.start(poem("scripted:poet"))
        return dict((await engine.store.load(result.run_id))[0].data)

    async def main() -> tuple[Engine, dict[str, Any], dict[str, Any]]:
        async with temp_engine(clock=clock) as engine:
            kit = await started_by(engine)
        bare_store = SQLiteStore.open(tmp_path / "bare.db")
        try:
            bare = await started_by(Engine(bare_store, clock=clock))
        finally:
            await bare_store.close()
        return engine, kit, bare

    engine, kit, bare = asyncio.run(main())
    assert engine.tenant == "default"
    assert (engine.pii, engine.residency, engine.run_budget) == (False, None, None)
    assert engine.trusted is not None
    # the default project records its run as a bare engine does: same bytes but the ids
    assert {k: v for k, v in kit.items() if k != "run_id"} == {
        k: v for k, v in bare.items() if k != "run_id"
    }


def test_an_option_given_wins_over_the_projects(project_toml: Path) -> None:
    config = Project.load(project_toml, home=project_toml.parent / ".nexus").config

    async def main() -> tuple[str, bool, bool]:
        async with temp_engine(config=config, tenant="beta", pii=False) as engine:
            return engine.tenant, engine.pii, engine.residency is not None

    assert asyncio.run(main()) == ("beta", False, True)


def test_sqlite_engine_builds_the_projects_engine_in_the_home(
    tmp_path: Path, project_toml: Path
) -> None:
    home = tmp_path / "home"

    async def main() -> tuple[Engine, str]:
        engine = sqlite_engine(home, config=project_toml)
        try:
            result = await engine.start(poem())
            state, _ = await engine.load_state(result.run_id)
        finally:
            await engine.store.close()
        error = state.tasks["haiku"].error
        assert error is not None
        return engine, str(error["kind"])

    engine, kind = asyncio.run(main())
    assert (engine.tenant, engine.pii, kind) == ("acme", True, "policy_denied")
    assert "wc" in engine.tools.names()
    assert engine.trusted is not None
    assert engine.trusted.covers(home.resolve() / "nexus.db")
    assert (home / "nexus.db").is_file()
    assert any((home / "keys").iterdir()), "signed with the home's key"
    # nothing to close but the store: the response cache is not opened
    assert not (project_toml.parent / "state").exists()


def test_sqlite_engine_takes_a_config_already_read(tmp_path: Path) -> None:
    config = NexusConfig(tenant="gamma")
    engine = sqlite_engine(tmp_path, config=config)
    asyncio.run(engine.store.close())
    assert engine.tenant == "gamma"
    assert engine.trusted == Project(config, Settings(home=tmp_path)).trusted()


def test_a_config_that_is_missing_or_invalid_is_named_and_nothing_is_opened(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    with pytest.raises(NotFoundError, match=r"absent\.toml"):
        sqlite_engine(home, config=tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('tenant = "no spaces allowed"\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"bad\.toml: tenant"):
        sqlite_engine(home, config=bad)

    async def temp() -> None:
        async with temp_engine(config=bad):
            raise AssertionError("a bad config must not give an engine")

    with pytest.raises(UserError, match=r"bad\.toml: tenant"):
        asyncio.run(temp())
    with pytest.raises(TypeError, match="'tenants'"):
        sqlite_engine(home, tenants="acme")  # type: ignore[call-arg]
    assert not home.exists(), "no store was opened"
