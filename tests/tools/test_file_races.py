"""file.* tools attacked: a directory swapped for a symlink mid-call, odd paths, trusted files.

Every test here attacks a boundary and would pass a refusal-free tool by
mistake only if the boundary held: the race tests count escapes while another
*process* swaps a directory on the path for a symlink to an outside directory
in a tight loop, through both resolvers (openat2 and the no-follow walk).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.domain.errors import NexusError, PolicyDenied
from nexus.security import paths as _paths
from nexus.security.trusted import TrustedPaths, trusted_paths
from nexus.tools.base import ToolContext
from nexus.tools.builtins import FileList, FileRead, FileWrite
from nexus.tools.profile import ExecProfile

SECRET = "outside-secret"


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test through openat2 and through the fallback walk (forced)."""
    if request.param == "openat2":
        if not _paths.have_openat2():
            pytest.skip("this kernel has no openat2")
    else:
        monkeypatch.setattr(_paths, "_openat2", False)
    return str(request.param)


def _ctx(workspace: Path, **kwargs: Any) -> ToolContext:
    return ToolContext("run", "task", 1, workspace, **kwargs)


def _call(tool: Any, args: dict[str, Any], ctx: ToolContext) -> Any:
    return asyncio.run(tool(args, ctx))


# -- the race ------------------------------------------------------------------------

_SWAPPER = textwrap.dedent(
    """
    import ctypes, os, sys
    d, link, outside = sys.argv[1:4]
    os.symlink(outside, link)
    libc = ctypes.CDLL(None, use_errno=True)
    RENAME_EXCHANGE = 2
    AT_FDCWD = -100
    a, b = os.fsencode(d), os.fsencode(link)
    while True:  # d is, in turn, the real directory and a link to outside
        libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
    """
)


@pytest.fixture
def swapped(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A workspace whose ``d`` another process keeps swapping for a link to ``outside``."""
    ws = tmp_path / "ws"
    (ws / "d").mkdir(parents=True)
    (ws / "d" / "f").write_text("inside")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text(SECRET)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SWAPPER, str(ws / "d"), str(ws / "swap"), str(outside)]
    )
    try:
        yield ws, outside
    finally:
        proc.kill()
        proc.wait()


async def _race(ws: Path, outside: Path, tries: int) -> tuple[int, int, int, int]:
    """(read escapes, write escapes, crashes, successful calls) over ``tries`` of each.

    A crash is any error other than a clear :class:`NexusError`.
    """
    ctx = _ctx(ws)
    read, write = FileRead(), FileWrite()
    read_escapes = write_escapes = crashes = ok = 0
    for i in range(tries):
        try:
            result = await read({"path": "d/f"}, ctx)
            ok += 1
            read_escapes += result["text"] == SECRET
        except NexusError:
            pass
        except Exception:
            crashes += 1
        try:
            await write({"path": "d/f", "text": f"write {i}"}, ctx)
            ok += 1
        except NexusError:
            pass
        except Exception:
            crashes += 1
        if (outside / "f").read_text() != SECRET:
            write_escapes += 1
            (outside / "f").write_text(SECRET)
    return read_escapes, write_escapes, crashes, ok


def test_a_swapped_directory_never_lets_a_call_out(
    swapped: tuple[Path, Path], resolver: str
) -> None:
    ws, outside = swapped
    read_escapes, write_escapes, crashes, ok = asyncio.run(_race(ws, outside, 1000))
    assert (read_escapes, write_escapes, crashes) == (0, 0, 0)
    assert ok > 0  # the race really ran: some calls found the real directory
    assert sorted(os.listdir(outside)) == ["f"]


@pytest.mark.slow
def test_ten_thousand_swaps_zero_escapes(swapped: tuple[Path, Path], resolver: str) -> None:
    ws, outside = swapped
    read_escapes, write_escapes, crashes, ok = asyncio.run(_race(ws, outside, 10_000))
    assert (read_escapes, write_escapes, crashes) == (0, 0, 0)
    assert ok > 0
    assert sorted(os.listdir(outside)) == ["f"]


def test_a_swapped_listing_never_shows_the_outside(
    swapped: tuple[Path, Path], resolver: str
) -> None:
    ws, outside = swapped
    (outside / "only-outside").write_text("x")

    async def listings() -> int:
        seen = 0
        for _ in range(500):
            try:
                names = {e["name"] for e in (await FileList()({"path": "d"}, _ctx(ws)))["entries"]}
            except (NexusError, OSError):
                continue
            seen += "only-outside" in names
        return seen

    assert asyncio.run(listings()) == 0


# -- symlinks inside the workspace -----------------------------------------------------


def test_symlinks_inside_the_workspace_are_refused(tmp_path: Path, resolver: str) -> None:
    ws = tmp_path / "ws"
    (ws / "real").mkdir(parents=True)
    (ws / "real" / "f").write_text("data")
    (ws / "dirlink").symlink_to(ws / "real")
    (ws / "filelink").symlink_to(ws / "real" / "f")
    ctx = _ctx(ws)
    assert _call(FileRead(), {"path": "real/f"}, ctx)["text"] == "data"
    for path in ("dirlink/f", "filelink"):
        with pytest.raises(PolicyDenied, match="symbolic link"):
            _call(FileRead(), {"path": path}, ctx)
        with pytest.raises(PolicyDenied, match="symbolic link"):
            _call(FileWrite(), {"path": path, "text": "x"}, ctx)
    with pytest.raises(PolicyDenied, match=r"'dirlink' is a symbolic link"):
        _call(FileList(), {"path": "dirlink"}, ctx)
    # a dangling link is not created through either
    (ws / "dangling").symlink_to(tmp_path / "created-outside")
    with pytest.raises(PolicyDenied, match="symbolic link"):
        _call(FileWrite(), {"path": "dangling", "text": "x"}, ctx)
    assert not (tmp_path / "created-outside").exists()
    assert (ws / "real" / "f").read_text() == "data"


def test_a_hard_link_is_not_written_through(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    other = tmp_path / "other.txt"
    other.write_text("keep")
    os.link(other, ws / "hard.txt")
    with pytest.raises(PolicyDenied, match="hard link"):
        _call(FileWrite(), {"path": "hard.txt", "text": "changed"}, _ctx(ws))
    assert other.read_text() == "keep"


def test_special_files_are_refused_without_blocking(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    os.mkfifo(ws / "pipe")
    with pytest.raises(NexusError, match="not a regular file"):
        _call(FileRead(), {"path": "pipe"}, _ctx(ws))
    with pytest.raises(NexusError, match="not a regular file"):
        _call(FileWrite(), {"path": "pipe", "text": "x"}, _ctx(ws))


def test_parents_are_created_beneath_the_workspace_only(tmp_path: Path, resolver: str) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "up").symlink_to(tmp_path)
    assert _call(FileWrite(), {"path": "a/b/c.txt", "text": "x"}, _ctx(ws))["bytes"] == 1
    assert (ws / "a" / "b" / "c.txt").read_text() == "x"
    with pytest.raises(PolicyDenied, match="'up' is a symbolic link"):
        _call(FileWrite(), {"path": "up/new/c.txt", "text": "x"}, _ctx(ws))
    assert not (tmp_path / "new").exists()


def test_a_workspace_that_is_not_its_real_path_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "f").write_text("x")
    (tmp_path / "ws").symlink_to(real)
    with pytest.raises(PolicyDenied, match="real path"):
        _call(FileRead(), {"path": "f"}, _ctx(tmp_path / "ws"))


# -- random paths never resolve outside -------------------------------------------------

_PARTS = st.sampled_from(["a", "b", "..", ".", "", "out", "inlink", "f", "new", "ws"])
_PATHS = st.builds(
    lambda parts, absolute: ("/" if absolute else "") + "/".join(parts),
    st.lists(_PARTS, min_size=1, max_size=6),
    st.booleans(),
)


def _tree(base: Path) -> tuple[Path, Path, dict[str, bytes]]:
    ws = base / "ws"
    (ws / "a" / "b").mkdir(parents=True)
    (ws / "a" / "f").write_text("a-f")
    (ws / "out").symlink_to(base / "outside")
    (ws / "a" / "inlink").symlink_to(ws / "a" / "b")
    outside = base / "outside"
    outside.mkdir()
    (outside / "f").write_text(SECRET)
    (outside / "a").mkdir()
    (outside / "a" / "f").write_text(SECRET)
    (base / "f").write_text(SECRET)
    return ws, outside, _snapshot(base, skip=ws)


def _snapshot(base: Path, skip: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for root, dirs, files in os.walk(base):
        if Path(root) == skip:
            dirs.clear()
            continue
        for name in files:
            out[os.path.join(root, name)] = Path(root, name).read_bytes()
        for name in dirs:
            out[os.path.join(root, name) + "/"] = b""
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(paths=st.lists(_PATHS, min_size=1, max_size=5), walk=st.booleans())
def test_random_paths_never_reach_outside(paths: list[str], walk: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(os.path.realpath(tmp))
        ws, _, before = _tree(base)
        saved = _paths._openat2
        _paths._openat2 = False if walk else None
        try:
            for path in paths:
                for tool, args in (
                    (FileWrite(), {"path": path, "text": "written"}),
                    (FileRead(), {"path": path}),
                    (FileList(), {"path": path}),
                ):
                    try:
                        result = _call(tool, args, _ctx(ws))
                    except NexusError:
                        continue
                    assert SECRET not in str(result)
                    if tool.name == "file.list":
                        # only what is really in the workspace
                        listed = {e["name"] for e in result["entries"]}
                        assert "outside" not in listed
        finally:
            _paths._openat2 = saved
        assert _snapshot(base, skip=ws) == before


@given(path=_PATHS)
def test_split_beneath_never_climbs(path: str) -> None:
    parts = _paths.split_beneath(path)
    if parts is None:
        return
    assert not {"..", ".", ""} & set(parts)
    assert not os.path.normpath(os.path.join("/r", *parts)).startswith("/r/..")


# -- what Nexus trusts ---------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, ToolContext]:
    ws = tmp_path / "proj"
    (ws / ".nexus").mkdir(parents=True)
    (ws / ".nexus" / "signing.key").write_text("private key")
    (ws / "nexus.toml").write_text("[budgets]\n")
    trusted = trusted_paths(home=ws / ".nexus", config=ws / "nexus.toml", environ={}, cwd=ws)
    return ws, _ctx(ws, trusted=trusted)


@pytest.mark.parametrize(
    "path", ["nexus.toml", ".nexus/signing.key", ".nexus/new.db", "sub/.nexus/x", "sub/nexus.toml"]
)
def test_trusted_paths_are_never_written(project: tuple[Path, ToolContext], path: str) -> None:
    ws, ctx = project
    with pytest.raises(PolicyDenied, match="Nexus trusts"):
        _call(FileWrite(), {"path": path, "text": "[tools]\nevil = 1\n"}, ctx)
    assert (ws / "nexus.toml").read_text() == "[budgets]\n"
    assert (ws / ".nexus" / "signing.key").read_text() == "private key"
    assert not (ws / "sub").exists()


def test_the_state_directory_is_never_read(project: tuple[Path, ToolContext]) -> None:
    ws, ctx = project
    with pytest.raises(PolicyDenied, match="Nexus's state"):
        _call(FileRead(), {"path": ".nexus/signing.key"}, ctx)
    with pytest.raises(PolicyDenied, match="Nexus's state"):
        _call(FileList(), {"path": ".nexus"}, ctx)
    with pytest.raises(PolicyDenied, match="Nexus's state"):
        _call(FileRead(), {"path": str(ws / ".nexus" / "signing.key")}, ctx)
    # the configuration may be read; only writing it is refused
    assert _call(FileRead(), {"path": "nexus.toml"}, ctx)["text"] == "[budgets]\n"


def test_a_granted_path_holding_nexus_code_is_still_refused(tmp_path: Path) -> None:
    # a stand-in for the virtual environment: a failing run must not write the real one
    ws, venv = tmp_path / "ws", tmp_path / "venv"
    (venv / "lib").mkdir(parents=True)
    ws.mkdir()
    trusted = TrustedPaths((venv,))
    tool = FileWrite(profile=ExecProfile(write_paths=("$WORKSPACE", str(tmp_path))))
    for target in (venv / "lib" / "evil.pth", venv / "new" / "x.py"):
        with pytest.raises(PolicyDenied, match=f"lies under {venv}, which is a path Nexus trusts"):
            _call(tool, {"path": str(target), "text": "import os"}, _ctx(ws, trusted=trusted))
        assert not target.exists()
    assert not (venv / "new").exists()
    # this process's own trust list holds its interpreter's prefix
    assert trusted_paths().covers(Path(sys.prefix) / "lib" / "evil.pth")
