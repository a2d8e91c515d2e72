"""A workflow's workspace attacked: symlinks, ``..``, system directories, a swap before the run.

The workspace is resolved once, to its real path, and must lie under the
workflow file's directory or the current one; never in a system directory.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nexus.domain.errors import UserError, WorkflowError
from nexus.domain.state import RunState
from nexus.engine.facade import Engine
from nexus.planning.workflow import compile_workflow, load_workflow
from nexus.security.workspaces import bind_workspace, workspace_problem
from nexus.store.base import Lease
from nexus.store.sqlite import SQLiteStore
from nexus.tools.base import FunctionTool
from nexus.tools.builtins import builtin_tools

FLOW = "version: 1\nname: w\ntasks:\n  a:\n    tool: noop\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory (the cwd) with its flows in ``flows/``, and ``outside`` next to it."""
    proj = tmp_path / "proj"
    (proj / "flows").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    monkeypatch.chdir(proj)
    return proj


def _flow(project: Path, workspace: str) -> Path:
    path = project / "flows" / "wf.yaml"
    path.write_text(FLOW + f"workspace: {workspace}\n")
    return path


def test_a_workspace_in_the_project_is_its_real_path(project: Path) -> None:
    (project / "real").mkdir()
    (project / "flows" / "alias").symlink_to(project / "real")
    assert load_workflow(_flow(project, "../real")).workspace == str(project / "real")
    # a symlink that stays inside the allowed roots is resolved, once
    assert load_workflow(_flow(project, "alias")).workspace == str(project / "real")
    assert load_workflow(_flow(project, "new/dir")).workspace == str(project / "flows/new/dir")


def test_a_symlink_at_the_last_component_is_refused(project: Path) -> None:
    (project / "flows" / "ws").symlink_to(project.parent / "outside")
    with pytest.raises(WorkflowError) as info:
        load_workflow(_flow(project, "ws"))
    message = str(info.value)
    assert "wf.yaml" in message
    assert "field 'workspace'" in message
    assert str(project / "flows" / "ws") in message  # the path as written...
    assert str(project.parent / "outside") in message  # ...and where it really is
    assert "outside the allowed roots" in message


def test_a_symlink_at_a_middle_component_is_refused(project: Path) -> None:
    (project / "flows" / "mid").symlink_to(project.parent / "outside")
    with pytest.raises(WorkflowError, match="outside the allowed roots"):
        load_workflow(_flow(project, "mid/deeper/ws"))


@pytest.mark.parametrize("workspace", ["../../outside", "../../../..", "./../../outside/x"])
def test_dotdot_escapes_are_refused(project: Path, workspace: str) -> None:
    with pytest.raises(WorkflowError, match=r"field 'workspace'.*may not be used"):
        load_workflow(_flow(project, workspace))


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("/root", "a home directory"),
        ("/etc", "system directory /etc"),
        ("/usr/local/share", "system directory /usr"),
        ("/", "a system directory"),
        ("/proc/self", "system directory /proc"),
    ],
)
def test_system_directories_are_refused_even_under_the_cwd(
    project: Path, monkeypatch: pytest.MonkeyPatch, target: str, reason: str
) -> None:
    # from / every directory is "under the cwd": the system rules still hold
    monkeypatch.chdir("/")
    (project / "flows" / "sys").symlink_to(target)
    with pytest.raises(WorkflowError, match=reason):
        load_workflow(_flow(project, "sys"))
    with pytest.raises(WorkflowError, match=reason):
        load_workflow(_flow(project, target))


def test_nexus_state_and_environment_are_not_workspaces(project: Path) -> None:
    with pytest.raises(WorkflowError, match="which Nexus trusts"):
        load_workflow(_flow(project, "../.nexus"))


def test_code_built_workflows_keep_out_of_system_directories() -> None:
    doc = {"version": 1, "name": "w", "tasks": {"a": {"tool": "noop"}}, "workspace": "/etc"}
    with pytest.raises(WorkflowError, match="system directory /etc"):
        compile_workflow(doc)


def test_another_users_home_is_refused() -> None:
    assert workspace_problem("/root/x", roots=None, cwd="/work") is not None
    assert workspace_problem("/root/x", roots=None, cwd="/root/proj") is None
    assert workspace_problem("/home", roots=None) == "/home is a system directory"


# -- the engine binds the real path -----------------------------------------------------


def test_a_symlink_swapped_in_between_validate_and_run_is_refused(project: Path) -> None:
    (project / "ws").mkdir()
    plan = load_workflow(_flow(project, "../ws"))
    assert plan.workspace == str(project / "ws")
    # a task of another run replaces the directory with a link to somewhere else
    (project / "ws").rmdir()
    (project / "ws").symlink_to(project.parent / "outside")

    async def run() -> int:
        store = SQLiteStore.open(project / "db.sqlite")
        try:
            with pytest.raises(UserError, match=r"now resolves to .*outside.*does not follow"):
                await Engine(store, tools=builtin_tools()).start(plan)
            return len(await store.list_runs())
        finally:
            await store.close()

    assert asyncio.run(run()) == 0  # refused before anything was recorded


def test_a_missing_workspace_is_created_without_following_links(tmp_path: Path) -> None:
    assert bind_workspace(str(tmp_path / "a" / "b"), create=True) == str(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    with pytest.raises(UserError, match="no symlink on its path is followed"):
        bind_workspace(str(tmp_path / "link" / "c"), create=True)
    assert not (tmp_path / "a" / "c").exists()


@pytest.mark.parametrize("change", ["symlink", "vanished"])
def test_resume_refuses_a_workspace_that_changed(project: Path, change: str) -> None:
    ws = project / "ws"
    ws.mkdir()
    blocked = asyncio.Event()

    async def hang() -> None:
        if not blocked.is_set():  # the first run hangs until its process "dies"
            blocked.set()
            await asyncio.Event().wait()

    flow = FLOW.replace("tool: noop", "tool: hang") + "workspace: ../ws\n"
    (project / "flows" / "hang.yaml").write_text(flow)
    plan = load_workflow(project / "flows" / "hang.yaml", known_tools=["hang"])
    registry = builtin_tools()
    registry.add(FunctionTool("hang", hang))

    async def crash(store: SQLiteStore) -> str:
        driver = asyncio.create_task(Engine(store, tools=registry).start(plan))
        await asyncio.wait_for(blocked.wait(), 10)
        driver.cancel()
        with pytest.raises(asyncio.CancelledError):
            await driver
        run_id = (await store.list_runs())[0].run_id
        dead = Lease(owner="crashed", host=socket.gethostname(), pid=_dead_pid(), heartbeat=0.0)
        assert await store.swap_lease(run_id, dead, None)
        return run_id

    async def main() -> None:
        store = SQLiteStore.open(project / "db.sqlite")
        try:
            run_id = await crash(store)
            assert RunState.fold(await store.load(run_id)).workspace == str(ws)
            os.rename(ws, project / "moved")
            if change == "symlink":
                ws.symlink_to(project.parent / "outside")
            expected = "now resolves to" if change == "symlink" else "no longer exists"
            for _ in range(2):  # the lease is given back: the second try is refused alike
                with pytest.raises(UserError, match=rf"cannot continue run {run_id}: .*{expected}"):
                    await Engine(store, tools=registry).resume(run_id)
            # refused before anything was recorded
            assert RunState.fold(await store.load(run_id)).status == "running"
        finally:
            await store.close()

    asyncio.run(main())
    assert sorted(os.listdir(project.parent / "outside")) == []


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("command", ["validate", "run"])
def test_the_cli_refuses_a_symlinked_workspace_with_exit_2(project: Path, command: str) -> None:
    (project / "flows" / "ws").symlink_to("/root")
    flow = _flow(project, "ws")
    env = {**os.environ, "NEXUS_HOME": str(project / ".nexus"), "NO_COLOR": "1"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "nexus"), command, str(flow)],
        capture_output=True,
        text=True,
        env=env,
        cwd=project,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ")
    for fragment in ("wf.yaml", "field 'workspace'", "resolves to /root", "home directory"):
        assert fragment in proc.stderr, (fragment, proc.stderr)
