"""Run references: a unique prefix of a run id, ``latest``, ``latest-failed``, for every command."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.core
import typer.main
from cli_support import WORKFLOWS, nexus
from typer.testing import CliRunner

from nexus.cli.app import app
from nexus.cli.registry import LazyGroup
from nexus.store.sqlite import SQLiteStore


@dataclass(frozen=True)
class Home:
    home: Path
    ok: list[str]  # two succeeded runs, oldest first
    failed: str  # the newest run

    @property
    def shared(self) -> str:
        """A prefix every run id of this home starts with."""
        ids = [*self.ok, self.failed]
        size = 0
        while all(i[size] == ids[0][size] for i in ids):
            size += 1
        return ids[0][:size]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Home:
    root = tmp_path_factory.mktemp("runref")
    home = root / "home"
    for name in ("ok.yaml", "failing.yaml"):
        shutil.copy(WORKFLOWS / name, root / name)
    ok = [nexus(home, "run", root / "ok.yaml", "--json").json()["run_id"] for _ in range(2)]
    failed = nexus(home, "run", root / "failing.yaml", "--json").json()["run_id"]
    runs = nexus(home, "run", root / "ok.yaml", "--json")  # the newest run succeeds again
    return Home(home, [*ok, runs.json()["run_id"]], failed)


def unique_prefix(run_id: str, others: list[str]) -> str:
    for size in range(1, len(run_id) + 1):
        if not any(o.startswith(run_id[:size]) for o in others if o != run_id):
            return run_id[:size]
    raise AssertionError(run_id)


def status_of(recorded: Home, ref: str) -> dict[str, Any]:
    out = nexus(recorded.home, "status", ref, "--json")
    assert out.code in (0, 1), out.text
    doc: dict[str, Any] = out.json()
    return doc


def test_a_unique_prefix_in_either_case(recorded: Home) -> None:
    everyone = [*recorded.ok, recorded.failed]
    target = recorded.ok[0]
    prefix = unique_prefix(target, everyone)
    assert status_of(recorded, prefix)["run_id"] == target
    assert status_of(recorded, prefix.lower())["run_id"] == target
    assert status_of(recorded, target)["run_id"] == target
    events = nexus(recorded.home, "events", prefix, "--json")
    assert events.code == 0, events.text
    assert {e["run_id"] for e in events.json()} == {target}
    export = nexus(recorded.home, "export", prefix)
    assert export.code == 0, export.text
    audit = nexus(recorded.home, "audit", "verify", prefix, "--json")
    assert audit.code == 0, audit.text


def test_latest_and_latest_failed(recorded: Home) -> None:
    assert status_of(recorded, "latest")["run_id"] == recorded.ok[-1]
    assert status_of(recorded, "latest-failed")["run_id"] == recorded.failed
    inspect = nexus(recorded.home, "inspect", "latest-failed", "--json")
    assert inspect.code == 0, inspect.text
    assert inspect.json()["status"] == "failed"


def test_an_ambiguous_prefix_lists_the_runs(recorded: Home) -> None:
    out = nexus(recorded.home, "inspect", recorded.shared)
    assert out.code == 2, out.text
    assert out.stderr.startswith(f"error: run id prefix '{recorded.shared}' names 4 runs: ")
    for run_id in [*recorded.ok, recorded.failed]:
        assert run_id in out.stderr


def test_unknown_references(recorded: Home, tmp_path: Path) -> None:
    out = nexus(recorded.home, "status", "ZZZZ")
    assert out.code == 4, out.text
    assert out.stderr == "error: no run with id ZZZZ\n"
    # an empty home says where it looked, and is left as it was (not created)
    empty = tmp_path / ".nexus"
    for ref, said in (("latest", ""), ("01JD", "no run with id 01JD: ")):
        out = nexus(empty, "status", ref)
        assert out.code == 4, out.text
        assert out.stderr == f"error: {said}no runs yet in {empty}\n"
    assert not empty.exists()
    asyncio.run(SQLiteStore.open(empty / "nexus.db").close())  # a store with no run in it
    out = nexus(empty, "inspect", "latest-failed")
    assert out.stderr == f"error: no runs yet in {empty}\n", out.text


# --------------------------------------------------------------------------- every command


def commands_taking_a_run() -> list[tuple[tuple[str, ...], list[str]]]:
    """``(path, the other arguments it requires)`` of every command with a RUN argument."""
    root = typer.main.get_command(app)
    assert isinstance(root, LazyGroup)
    ctx = typer.Context(root)
    found: list[tuple[tuple[str, ...], list[str]]] = []
    for name in root.list_commands(ctx):
        cmd = root.load(ctx, name)
        subs = getattr(cmd, "commands", None)
        for path, leaf in [((name, s), c) for s, c in subs.items()] if subs else [((name,), cmd)]:
            arguments = [p for p in leaf.params if isinstance(p, typer.core.TyperArgument)]
            if any(p.name == "run_id" for p in arguments):
                others = ["x" for p in arguments if p.name != "run_id"]
                for option in leaf.params:  # and the options it requires (reject --reason)
                    if option.required and not isinstance(option, typer.core.TyperArgument):
                        others += [option.opts[0], "x"]
                found.append((path, others))
    return found


TAKING_A_RUN = commands_taking_a_run()


def test_every_run_taking_command_is_found() -> None:
    paths = {" ".join(path) for path, _ in TAKING_A_RUN}
    expected = {"status", "inspect", "events", "cost", "resume", "cancel", "approve", "reject"}
    assert expected | {"replay", "export", "audit verify"} <= paths, paths


@pytest.mark.parametrize(
    ("path", "others"), TAKING_A_RUN, ids=[" ".join(p) for p, _ in TAKING_A_RUN]
)
def test_every_command_resolves_its_run_argument(
    recorded: Home, path: tuple[str, ...], others: list[str]
) -> None:
    """One resolver for all: an ambiguous prefix is refused before the command does anything."""
    env = {"NEXUS_HOME": str(recorded.home), "NO_COLOR": "1", "COLUMNS": "200"}
    out = CliRunner().invoke(app, [*path, recorded.shared, *others], env=env)
    assert out.exit_code == 2, out.output
    assert f"run id prefix '{recorded.shared}' names 4 runs" in out.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["inspect", "ZZZZ", "--conversation"], "--conversation shows one agent task"),
        (["cost", "ZZZZ", "--tenant", "acme"], "name a run (nexus cost RUN) or a tenant"),
        (["logs", "ZZZZ", "--level", "loud"], "--level: 'loud' is not a level"),
        (["events", "ZZZZ", "--markdown"], "--markdown goes with --schema"),
        (["resume", "ZZZZ", "--budget", "usd"], "budget 'usd' must be written"),
        (["events", "ZZZZ", "--schema"], "--schema takes no run id"),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else "",
)
def test_a_bad_option_is_named_before_an_unknown_run(
    recorded: Home, args: list[str], said: str
) -> None:
    """A command checks its own options before it looks its run up: the typo, exit 2, not 4."""
    out = nexus(recorded.home, *args)
    assert out.code == 2, out.text
    assert said in out.stderr
    assert "no run with id" not in out.text
