"""``nexus init`` and ``nexus new``: what a new user starts from must run as made (issue 11).

Each project template is made in an empty folder, then validated and run
there, offline, by the real ``nexus`` script; the approval template stops at
its approval and finishes once ``nexus approve`` answers. Nothing a user wrote
is overwritten without ``--force``, and ``.gitignore`` is appended to.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from cli_support import NEXUS, Out, cli_env, nexus

from nexus.cli.commands_init import KINDS, TEMPLATE_FILES, TEMPLATES
from nexus.config import load_config

pytestmark = pytest.mark.slow


def project(tmp_path: Path, name: str = "demo") -> Path:
    """An empty project folder; its home (``nexus`` runs in the folder)."""
    folder = tmp_path / name
    folder.mkdir()
    return folder / ".nexus"


def ok(out: Out) -> Out:
    assert out.code == 0, out.text
    return out


@pytest.mark.parametrize(
    ("template", "made"),
    [
        ("pipeline", ("out/report.md", "13 words, 10 distinct")),
        ("agent", ("out/summary.txt", "asks an agent to describe it")),
    ],
)
def test_a_project_template_validates_and_runs_as_made(
    tmp_path: Path, template: str, made: tuple[str, str]
) -> None:
    home = project(tmp_path)
    folder = home.parent
    created = ok(nexus(home, "init", "--template", template))
    assert "nexus run workflow.yaml" in created.stdout
    assert sorted(p.name for p in folder.iterdir()) == [".gitignore", "nexus.toml", "workflow.yaml"]
    assert ok(nexus(home, "validate", "workflow.yaml")).stdout.startswith("valid")
    ran = ok(nexus(home, "run", "workflow.yaml"))
    assert ran.stdout.startswith("succeeded")
    path, text = made
    assert text in (folder / path).read_text(encoding="utf-8")
    assert (home / "nexus.db").is_file()  # the state went to the project's .nexus


def test_the_approval_template_waits_and_finishes_once_approved(tmp_path: Path) -> None:
    home = project(tmp_path)
    folder = home.parent
    ok(nexus(home, "init", "--template", "approval"))
    ok(nexus(home, "validate", "workflow.yaml"))
    with subprocess.Popen(
        [str(NEXUS), "run", "workflow.yaml"],
        cwd=folder,
        env=cli_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            deadline = time.monotonic() + 30
            while True:
                assert time.monotonic() < deadline, "the run never asked for approval"
                assert proc.poll() is None, "the run ended without asking"
                if (home / "nexus.db").exists():
                    doc = nexus(home, "status", "latest", "--json").json()
                    if doc["tasks"]["deploy"]["status"] == "awaiting_approval":
                        break
                time.sleep(0.2)
            assert not (folder / "out" / "deployed.txt").exists()
            ok(nexus(home, "approve", "latest", "deploy", "--reason", "checked"))
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, stdout + stderr
    assert "awaiting approval" in stderr
    assert stdout.startswith("succeeded")
    announced = (folder / "out" / "announcement.txt").read_text(encoding="utf-8")
    assert announced == "Release 1.0 is out (deployed 1.0).\n"


def test_the_mission_template_runs_offline_as_made(tmp_path: Path) -> None:
    home = project(tmp_path)
    folder = home.parent
    created = ok(nexus(home, "init", "--template", "mission"))
    assert "git init -q && git add -A && git commit -qm start" in created.stdout
    assert "nexus mission spec.md --repo . --agents agents.yaml" in created.stdout
    names = sorted(p.name for p in folder.iterdir())
    assert names == [".gitignore", "agents.yaml", "nexus.toml", "roles.py", "spec.md"]
    assert (folder / ".gitignore").read_text().splitlines()[1:] == [".nexus/", ".nexus-missions/"]
    git = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "PATH": "/usr/bin:/bin",
           "GIT_AUTHOR_NAME": "u", "GIT_AUTHOR_EMAIL": "u@example.invalid",
           "GIT_COMMITTER_NAME": "u", "GIT_COMMITTER_EMAIL": "u@example.invalid"}  # fmt: skip
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "start"]):
        subprocess.run(["git", *step], cwd=folder, env=git, check=True)
    # the state home is in the repository: the worktrees go elsewhere, the roles load
    # from roles.py beside agents.yaml
    ran = subprocess.run(
        [str(NEXUS), "mission", "spec.md", "--repo", ".", "--agents", "agents.yaml", "--json"],
        cwd=folder, env=cli_env(home), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    summary = json.loads(ran.stdout)
    assert summary["merged"] == ["hello"]
    assert summary["attempts"] == 2  # the first change forgot R2; the gate said so
    assert summary["requirements_met"] == ["R1", "R2"]
    status = subprocess.run(["git", "status", "--porcelain"], cwd=folder, env=git,
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert status.stdout == ""  # the checkout is untouched
    ok(nexus(home, "evidence", "verify", summary["evidence"]))
    assert ok(nexus(home, "replay", "latest")).stdout.startswith("identical")


def test_nothing_is_overwritten_without_force_and_gitignore_is_appended_to(
    tmp_path: Path,
) -> None:
    home = project(tmp_path)
    folder = home.parent
    (folder / ".gitignore").write_text("node_modules/", encoding="utf-8")
    (folder / "workflow.yaml").write_text("mine\n", encoding="utf-8")

    refused = nexus(home, "init")
    assert refused.code == 2
    assert "nexus init would overwrite workflow.yaml" in refused.stderr
    assert "nothing was written" in refused.stderr
    assert "--force" in refused.stderr
    assert (folder / "workflow.yaml").read_text(encoding="utf-8") == "mine\n"
    assert not (folder / "nexus.toml").exists()
    assert (folder / ".gitignore").read_text(encoding="utf-8") == "node_modules/"

    done = ok(nexus(home, "init", "--force", "--json")).json()
    assert done["written"] == ["nexus.toml", "workflow.yaml"]
    assert done["gitignore"] == "added"
    ignore = (folder / ".gitignore").read_text(encoding="utf-8")
    assert ignore == "node_modules/\n# Nexus state: runs, keys, logs\n.nexus/\n"

    both = nexus(home, "init")
    assert both.code == 2
    assert "overwrite nexus.toml, workflow.yaml" in both.stderr
    again = ok(nexus(home, "init", "--force", "--template", "agent", "--json")).json()
    assert again["gitignore"] == "present"
    assert (folder / ".gitignore").read_text(encoding="utf-8") == ignore


def test_init_into_a_new_directory_lists_and_refuses_unknown_templates(
    tmp_path: Path,
) -> None:
    home = project(tmp_path)
    made = ok(nexus(home, "init", "sub/app", "--template", "approval"))
    assert "cd " in made.stdout
    assert (home.parent / "sub" / "app" / "workflow.yaml").is_file()
    assert "name: app" in (home.parent / "sub" / "app" / "workflow.yaml").read_text()

    listed = ok(nexus(home, "init", "--list", "--json")).json()
    assert [t["name"] for t in listed] == list(TEMPLATES)
    assert all(name in nexus(home, "init", "--list").stdout for name in TEMPLATES)
    unknown = nexus(home, "init", "--template", "crew")
    assert unknown.code == 2
    assert "no template 'crew': use one of pipeline, agent, approval, mission" in unknown.stderr


def test_every_template_ships_as_package_data() -> None:
    root = resources.files("nexus.cli").joinpath("templates")
    assert root.joinpath("nexus.toml").is_file()
    assert set(TEMPLATE_FILES) == set(TEMPLATES)
    for name, files in TEMPLATE_FILES.items():
        for file in files:
            assert root.joinpath(name, file).is_file(), (name, file)
    for source, _ in KINDS.values():
        assert root.joinpath("new", source).is_file(), source


def test_the_nexus_toml_loads_and_so_does_every_section_it_comments_out(tmp_path: Path) -> None:
    text = resources.files("nexus.cli").joinpath("templates", "nexus.toml").read_text()
    (tmp_path / "nexus.toml").write_text(text, encoding="utf-8")
    assert load_config(tmp_path / "nexus.toml").tenant == "default"
    # every commented line that is TOML (a table, or key = value) is valid as written
    code = re.compile(r'^# (\[[^\]]+\].*|[A-Za-z_"][^=]*=\s.*)$')
    live = "\n".join(m.group(1) for line in text.splitlines() if (m := code.match(line)))
    tables = tomllib.loads(live)
    assert set(tables) == {
        "tenant",
        "providers",
        "pricing",
        "mcp_servers",
        "budgets",
        "residency",
        "cache",
        "redaction",
    }
    (tmp_path / "nexus.toml").write_text(live + "\n", encoding="utf-8")
    config = load_config(tmp_path / "nexus.toml")
    assert config.tenant == "my-team"
    assert config.run_budget == {"usd": "2.5", "tool_calls": 200, "wall": 1800.0}


# -- nexus new ----------------------------------------------------------------------------


def test_a_new_workflow_and_agent_run_as_made(tmp_path: Path) -> None:
    home = project(tmp_path)
    folder = home.parent
    assert ok(nexus(home, "new", "workflow", "nightly")).stdout.startswith(
        "created workflow nightly: nightly.yaml"
    )
    ok(nexus(home, "validate", "nightly.yaml"))
    ran = ok(nexus(home, "run", "nightly.yaml", "-i", "who=you", "--json")).json()
    task = nexus(home, "inspect", ran["run_id"], "--task", "count", "--json").json()
    assert task["output"]["result"] == {"text": "hello, you", "letters": 8}

    ok(nexus(home, "new", "agent", "helper"))
    assert "agents:\n  helper:\n" in (folder / "helper.yaml").read_text(encoding="utf-8")
    ok(nexus(home, "validate", "helper.yaml"))
    ran = ok(nexus(home, "run", "helper.yaml", "--json")).json()
    task = nexus(home, "inspect", ran["run_id"], "--task", "ask", "--json").json()
    assert task["output"]["text"].startswith("I looked at the files here")


def test_a_new_tool_is_declared_approved_and_called(tmp_path: Path) -> None:
    home = project(tmp_path)
    folder = home.parent
    made = ok(nexus(home, "new", "tool", "echoes"))
    assert (folder / "tools" / "echoes.wat").is_file()
    snippet = [line.strip() for line in made.stdout.splitlines()]
    table = snippet[snippet.index("[wasm_tools.echoes]") : snippet.index("pure = true") + 1]
    assert table == ["[wasm_tools.echoes]", 'module = "tools/echoes.wat"', "pure = true"]
    (folder / "nexus.toml").write_text("\n".join(table) + "\n", encoding="utf-8")
    (folder / "flow.yaml").write_text(
        "version: 1\nname: flow\ntasks:\n  call: {tool: echoes, with: {text: hi}}\n",
        encoding="utf-8",
    )
    listed = ok(nexus(home, "tools", "--json")).json()["tools"]
    (tool,) = [t for t in listed if t["name"] == "echoes"]
    assert tool["description"].startswith("Echoes its arguments back")
    ok(nexus(home, "tools", "approve", "wasm:echoes", "--pin", tool["pin"]))
    ran = ok(nexus(home, "run", "flow.yaml", "--json")).json()
    task = nexus(home, "inspect", ran["run_id"], "--task", "call", "--json").json()
    assert task["output"]["result"] == {"echo": {"text": "hi"}}


def test_new_refuses_what_it_cannot_make(tmp_path: Path) -> None:
    home = project(tmp_path)
    folder = home.parent
    (folder / "nightly.yaml").write_text("mine\n", encoding="utf-8")
    taken = nexus(home, "new", "workflow", "nightly")
    assert taken.code == 2
    assert "nexus new would overwrite nightly.yaml" in taken.stderr
    assert (folder / "nightly.yaml").read_text(encoding="utf-8") == "mine\n"
    ok(nexus(home, "new", "workflow", "nightly", "--force"))
    assert "name: nightly" in (folder / "nightly.yaml").read_text(encoding="utf-8")

    bad = nexus(home, "new", "agent", "9lives")
    assert bad.code == 2
    assert "'9lives' cannot be a name" in bad.stderr
    kind = nexus(home, "new", "mission", "x")
    assert kind.code == 2
    assert "nexus new makes a workflow, agent, tool; not 'mission'" in kind.stderr
    assert json.loads(nexus(home, "new", "tool", "t1", "--json").stdout)["written"] == (
        "tools/t1.wat"
    )
