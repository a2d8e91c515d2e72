"""file.* and http tools: confined by the exec profile, refusals are clear."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nexus.domain.errors import NexusError, PolicyDenied
from nexus.tools.base import ToolContext
from nexus.tools.builtins import FileList, FileRead, FileWrite, HttpTool
from nexus.tools.profile import ExecProfile


def _ctx(workspace: Path, profile: ExecProfile | None = None) -> ToolContext:
    return ToolContext("run", "task", 1, workspace, profile=profile)


def _call(tool: Any, args: dict[str, Any], ctx: ToolContext) -> Any:
    return asyncio.run(tool(args, ctx))


def test_write_read_list_inside_the_workspace(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    assert _call(FileWrite(), {"path": "out/notes.txt", "text": "héllo"}, ctx) == {
        "path": "out/notes.txt",
        "bytes": 6,
    }
    _call(FileWrite(), {"path": "out/notes.txt", "text": "!", "append": True}, ctx)
    read = _call(FileRead(), {"path": "out/notes.txt"}, ctx)
    assert read["text"] == "héllo!"
    assert read["truncated"] is False
    listing = _call(FileList(), {"path": "out"}, ctx)
    assert listing["entries"] == [{"name": "notes.txt", "type": "file", "size": 7}]


def test_reads_are_capped_and_say_so(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("x" * 5000)
    result = _call(FileRead(), {"path": "big.txt", "max_bytes": 100}, _ctx(tmp_path))
    assert len(result["text"]) == 100
    assert result["truncated"] is True
    assert result["size"] == 5000


@pytest.mark.parametrize(
    "path", ["../outside.txt", "/etc/shadow", "/etc/passwd", "sub/../../outside.txt"]
)
def test_escapes_by_path_are_denied(tmp_path: Path, path: str) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (tmp_path / "outside.txt").write_text("secret")
    with pytest.raises(PolicyDenied, match="outside the granted paths"):
        _call(FileRead(), {"path": path}, _ctx(workspace))
    with pytest.raises(PolicyDenied):
        _call(FileWrite(), {"path": path, "text": "x"}, _ctx(workspace))


def test_symlinks_out_of_the_workspace_are_not_followed(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (workspace / "link").symlink_to(secret)
    (workspace / "dirlink").symlink_to(tmp_path)
    with pytest.raises(PolicyDenied, match="'link' is a symbolic link"):
        _call(FileRead(), {"path": "link"}, _ctx(workspace))
    with pytest.raises(PolicyDenied):
        _call(FileWrite(), {"path": "link", "text": "overwrite"}, _ctx(workspace))
    with pytest.raises(PolicyDenied):
        _call(FileList(), {"path": "dirlink"}, _ctx(workspace))
    assert secret.read_text() == "top secret"


def test_a_task_profile_narrows_the_tool(tmp_path: Path) -> None:
    read_only = ExecProfile(write_paths=())
    with pytest.raises(PolicyDenied, match="writing"):
        _call(FileWrite(), {"path": "a.txt", "text": "x"}, _ctx(tmp_path, read_only))
    granted = tmp_path / "data"
    granted.mkdir()
    (granted / "in.txt").write_text("data")
    ws = tmp_path / "ws"
    ws.mkdir()
    tool = FileRead(profile=ExecProfile(read_paths=(str(granted),)))
    assert _call(tool, {"path": str(granted / "in.txt")}, _ctx(ws))["text"] == "data"
    # the task's grant does not include /data: narrowing removes it
    with pytest.raises(PolicyDenied):
        _call(tool, {"path": str(granted / "in.txt")}, _ctx(ws, ExecProfile()))


def test_missing_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(NexusError, match=r"no file 'nope\.txt'"):
        _call(FileRead(), {"path": "nope.txt"}, _ctx(tmp_path))
    with pytest.raises(NexusError, match="must be a non-empty string"):
        _call(FileRead(), {"path": ""}, _ctx(tmp_path))


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_http_is_denied_by_default(tmp_path: Path, server: int) -> None:
    with pytest.raises(PolicyDenied, match=r"not in the network allow-list"):
        _call(HttpTool(), {"url": f"http://127.0.0.1:{server}/x"}, _ctx(tmp_path))


def test_http_to_an_allowed_host(tmp_path: Path, server: int) -> None:
    tool = HttpTool(profile=ExecProfile(network=(f"127.0.0.1:{server}",)))
    result = _call(tool, {"url": f"http://127.0.0.1:{server}/hello"}, _ctx(tmp_path))
    assert result["status"] == 200
    assert result["json"] == {"path": "/hello"}
    # another port on the same host is still denied
    with pytest.raises(PolicyDenied):
        _call(tool, {"url": f"http://127.0.0.1:{server + 1}/"}, _ctx(tmp_path))


def test_http_connection_failure_is_transient(tmp_path: Path) -> None:
    tool = HttpTool(profile=ExecProfile(network=("127.0.0.1:9",)))
    with pytest.raises(NexusError) as info:
        _call(tool, {"url": "http://127.0.0.1:9/"}, _ctx(tmp_path))
    assert info.value.kind == "transient"
    assert info.value.retryable
