"""A local HTTP server that stands in for a key provider, and project helpers for key tests.

The server listens on 127.0.0.1 only, answers every request with a scripted reply (per path,
or a default one) and records what it was sent, so a test can check method, path and auth.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from opsctl.config import Project, load_project
from tests.support import write_project

# Keys shaped like each built-in provider's, made up for the tests.
SLACK_BOT = "xoxb-1111111111-2222222222-TestBotTokenAbcdef012345"
SLACK_WEBHOOK = "https://hooks.slack.com/services/T00TEST00/B00TEST00/TestWebhookSecret0123456789"
GITHUB = "ghp_" + "Gh0TestToken" * 3 + "abcd"
OPENAI = "sk-testOpenAi0123456789abcdefXYZ"
ANTHROPIC = "sk-ant-testAnthropic0123456789abcdef"
HUGGINGFACE = "hf_" + "TestHuggingFace0123456789abcdefgh"
POLYGON = "TestPolygonKey_0123456789abcd"
ALPACA_ID = "PKTEST0123456789ABCD"
ALPACA_SECRET = "TestAlpacaSecret/0123456789+abcdefghij"

JSON_OK = json.dumps({"ok": True, "id": 1})


@dataclass(frozen=True)
class Reply:
    """What the fake provider answers."""

    status: int = 200
    body: str = JSON_OK
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class Seen:
    """One request the fake provider received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class FakeProvider:
    """A scripted HTTP server on 127.0.0.1 with a random free port."""

    def __init__(self) -> None:
        self.default = Reply()
        self.routes: dict[str, Reply] = {}
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def start(self) -> FakeProvider:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def close_unstarted(self) -> None:
        """Release the port of a server that was never started."""
        self._server.server_close()

    def answer(self, reply: Reply, path: str | None = None) -> None:
        """Answer requests for ``path`` (every path when ``None``) with ``reply``."""
        if path is None:
            self.default = reply
        else:
            self.routes[path] = reply

    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self.requests)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                seen = Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with fake._lock:
                    fake.requests.append(seen)
                reply = fake.routes.get(parts.path, fake.default)
                if reply.delay_seconds and fake._stop.wait(reply.delay_seconds):
                    return
                payload = reply.body.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up waiting

            do_GET = do_POST = do_HEAD = _serve  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        return Handler


@contextmanager
def fake_provider() -> Iterator[FakeProvider]:
    server = FakeProvider().start()
    try:
        yield server
    finally:
        server.close()


def make_project(root: Path, toml: str, *, env: str | None = None) -> Project:
    """Write a project into ``root`` and load it as the CLI would."""
    return load_project(write_project(root, toml, env=env))


def env_lines(values: dict[str, str]) -> str:
    """A .env text assigning ``values``, single-quoted (none of the test keys need escaping)."""
    return "".join(f"{name}='{value}'\n" for name, value in values.items())
