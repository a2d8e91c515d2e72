"""The ``http`` tool and redirects: never followed; one leading off the allow-list is refused.

Two loopback servers: the allowed one on 127.0.0.1 answers every request with
a redirect to the other, on 127.0.0.2, which records what reaches it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nexus.domain.errors import ErrorKind, PolicyDenied
from nexus.tools.base import ToolContext
from nexus.tools.builtins import HttpTool
from nexus.tools.profile import ExecProfile


@dataclass
class Server:
    port: int
    hits: list[str] = field(default_factory=list)
    location: str = ""
    status: int = 307


def _serve(host: str) -> Iterator[Server]:
    record = Server(port=0)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            record.hits.append(f"{self.command} {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if record.location:
                self.send_response(record.status)
                self.send_header("Location", record.location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer((host, 0), Handler)
    record.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def allowed() -> Iterator[Server]:
    yield from _serve("127.0.0.1")


@pytest.fixture
def unlisted() -> Iterator[Server]:
    yield from _serve("127.0.0.2")


def _call(tool: HttpTool, args: dict[str, Any], tmp_path: Path) -> Any:
    return asyncio.run(tool(args, ToolContext("run", "task", 1, tmp_path)))


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_redirect_off_the_allow_list_is_refused_naming_the_host(
    tmp_path: Path, allowed: Server, unlisted: Server, status: int, method: str
) -> None:
    allowed.status = status
    allowed.location = f"http://127.0.0.2:{unlisted.port}/collect"
    tool = HttpTool(profile=ExecProfile(network=(f"127.0.0.1:{allowed.port}",)))
    url = f"http://127.0.0.1:{allowed.port}/start"

    with pytest.raises(PolicyDenied) as info:
        _call(tool, {"url": url, "method": method, "json": {"secret": 1}}, tmp_path)

    message = str(info.value)
    assert info.value.kind == ErrorKind.POLICY_DENIED
    assert f"to 127.0.0.2:{unlisted.port}, which is not in the network allow-list" in message
    assert f"redirected ({status})" in message
    assert allowed.hits == [f"{method} /start"]
    assert unlisted.hits == [], "the redirect was followed"


def test_a_relative_redirect_names_the_resolved_host(tmp_path: Path, allowed: Server) -> None:
    allowed.location = "//127.0.0.2:9/elsewhere"  # scheme-relative: another host
    tool = HttpTool(profile=ExecProfile(network=(f"127.0.0.1:{allowed.port}",)))
    with pytest.raises(
        PolicyDenied, match=r"to 127\.0\.0\.2:9, which is not in the network allow-list"
    ):
        _call(tool, {"url": f"http://127.0.0.1:{allowed.port}/"}, tmp_path)


def test_a_redirect_to_an_allowed_host_is_returned_not_followed(
    tmp_path: Path, allowed: Server, unlisted: Server
) -> None:
    allowed.location = f"http://127.0.0.2:{unlisted.port}/next"
    network = (f"127.0.0.1:{allowed.port}", f"127.0.0.2:{unlisted.port}")
    tool = HttpTool(profile=ExecProfile(network=network))

    result = _call(tool, {"url": f"http://127.0.0.1:{allowed.port}/"}, tmp_path)

    assert result["status"] == 307
    assert result["headers"]["location"] == allowed.location
    assert unlisted.hits == [], "the tool must not follow redirects, even to allowed hosts"
    # the agent may ask for it explicitly, and that is checked like any request
    assert _call(tool, {"url": allowed.location}, tmp_path)["json"] == {"ok": True}
    assert unlisted.hits == ["GET /next"]
