"""Each check kind against real local servers, files and processes."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from opsctl.checks import BuildContext, build_check, run_checks
from opsctl.config import CommandCheck, DiskCheck, HttpCheck, RedisCheck, TcpCheck
from tests.support import free_port, wait_for


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        status, body = {"/ok": (200, b"all ok"), "/busy": (503, b"<html>busy</html>")}.get(
            self.path, (404, b"no")
        )
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def http_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


def run_one(spec: object, context: BuildContext | None = None) -> tuple[str, str]:
    (result,) = run_checks([build_check(spec, context)])
    return result.status, result.detail


def test_tcp_check_passes_on_listening_port_and_fails_on_closed_one(silent_server: int) -> None:
    """tcp passes when the port accepts, fails naming the address when refused."""
    assert run_one(TcpCheck(kind="tcp", port=silent_server))[0] == "pass"
    closed = free_port()
    status, detail = run_one(TcpCheck(kind="tcp", port=closed))
    assert status == "fail"
    assert f"127.0.0.1:{closed}" in detail


def test_tcp_check_takes_the_service_port() -> None:
    """A tcp check without a port checks its service's port."""
    check = build_check(TcpCheck(kind="tcp"), BuildContext(service="api", service_port=4321))
    assert check.target == "127.0.0.1:4321"
    assert check.name == "api:tcp 4321"


def test_http_check_status_and_body(http_server: int) -> None:
    """http passes on the expected status and body, fails on another status or missing text."""
    base = f"http://127.0.0.1:{http_server}"
    assert run_one(HttpCheck(kind="http", url=f"{base}/ok", body_contains="ok"))[0] == "pass"
    status, detail = run_one(HttpCheck(kind="http", url=f"{base}/busy"))
    assert status == "fail"
    assert detail.startswith("status 503, expected 200")
    status, detail = run_one(HttpCheck(kind="http", url=f"{base}/ok", body_contains="ready"))
    assert (status, detail) == ("fail", "status 200, but the body lacks 'ready'")
    assert run_one(HttpCheck(kind="http", url=f"{base}/busy", expect_status=[503]))[0] == "pass"


def test_http_check_against_silent_server_fails_at_its_timeout(silent_server: int) -> None:
    """An endpoint that accepts and never answers fails at the check's timeout, not later."""
    spec = HttpCheck(kind="http", url=f"http://127.0.0.1:{silent_server}/", timeout_seconds=0.5)
    begin = time.monotonic()
    status, detail = run_one(spec)
    elapsed = time.monotonic() - begin
    assert status == "fail"
    assert "0.5 s" in detail
    assert 0.5 <= elapsed < 1.5


def test_command_check_exit_code_and_output() -> None:
    """command compares the exit code and looks for text in the output."""
    assert (
        run_one(
            CommandCheck(kind="command", argv=["sh", "-c", "echo ready"], output_contains="ready")
        )[0]
        == "pass"
    )
    status, detail = run_one(CommandCheck(kind="command", argv=["sh", "-c", "echo nope; exit 3"]))
    assert status == "fail"
    assert detail == "exit code 3, expected 0: nope"
    status, detail = run_one(CommandCheck(kind="command", argv=["/nonexistent/tool"]))
    assert status == "fail"
    assert "cannot run" in detail


def test_disk_check_thresholds(tmp_path: object) -> None:
    """disk passes, warns or fails as the free share crosses the thresholds."""
    free = 100 * shutil.disk_usage(str(tmp_path)).free / shutil.disk_usage(str(tmp_path)).total
    assert (
        run_one(
            DiskCheck(kind="disk", path=str(tmp_path), warn_free_percent=0, fail_free_percent=0)
        )[0]
        == "pass"
    )
    warn = DiskCheck(
        kind="disk", path=str(tmp_path), warn_free_percent=min(free + 1, 100), fail_free_percent=0
    )
    assert run_one(warn)[0] == "warn"
    fail = DiskCheck(
        kind="disk", path=str(tmp_path), warn_free_percent=100, fail_free_percent=min(free + 1, 100)
    )
    assert run_one(fail)[0] == "fail"
    assert run_one(DiskCheck(kind="disk", path="/no/such/path"))[0] == "fail"


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_redis_check_against_real_server(tmp_path: object) -> None:
    """redis passes with the right password, fails with a wrong one and when nothing listens."""
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--requirepass",
            "pw-123456",
        ],
        cwd=str(tmp_path),
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}"
        wait_for(
            lambda: run_one(RedisCheck(kind="redis", url=url, password="pw-123456"))[0] == "pass",
            timeout_seconds=10,
            message="redis",
        )
        status, detail = run_one(RedisCheck(kind="redis", url=url, password="pw-123456"))
        assert detail.startswith("PONG; redis ")
        status, detail = run_one(RedisCheck(kind="redis", url=url, password="wrong"))
        assert status == "fail"
        assert "pw-123456" not in detail
        status, _ = run_one(RedisCheck(kind="redis", url=url))
        assert status == "fail"
    finally:
        server.terminate()
        server.wait(10)
    assert run_one(RedisCheck(kind="redis", url=url, timeout_seconds=1))[0] == "fail"
