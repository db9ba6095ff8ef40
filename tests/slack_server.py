"""A local stand-in for Slack, for any test that sends notifications.

It listens on 127.0.0.1 on a free port and speaks the two protocols opsctl uses:

- incoming webhooks: ``POST /services/T…/B…/X…`` with a JSON body; answers ``200 ok``
  (text), or Slack's errors: ``404 no_service`` (unknown webhook), ``400 invalid_payload``,
  ``400 no_text``, ``400 invalid_blocks``, ``403 invalid_token`` …;
- the Web API's ``POST /api/chat.postMessage`` with ``Authorization: Bearer TOKEN`` and a
  JSON or form body; answers ``{"ok": true, "channel": ID, "ts": …}`` or
  ``{"ok": false, "error": "invalid_auth" | "not_authed" | "channel_not_found" | …}``.

Like Slack it checks the token, the webhook path, the channel and Block Kit's size limits
(50 blocks, header 150 characters, section text 3000, 10 fields of 2000).

Usage::

    from tests.slack_server import SlackServer, RateLimited, ServerError, Hang

    with SlackServer() as slack:
        env = {"SLACK_WEBHOOK_URL": slack.webhook_url}
        # or SLACK_BOT_TOKEN=slack.bot_token with [notify] slack_channel = slack.channel
        # and slack_api_url = slack.api_url
        slack.script(RateLimited(retry_after_seconds=1), ServerError())  # the next 2 requests
        ...                                                              # then: Ok()
        assert [m.payload["text"] for m in slack.messages] == [...]
        slack.down()   # refuses connections (stops listening) until slack.up()

Behaviours, applied one per request in arrival order (``slack.default`` once the script
is used up): :class:`Ok`, :class:`RateLimited` (429 + Retry-After), :class:`ServerError`
(5xx), :class:`Malformed` (a body that is not Slack's answer), :class:`Flood` (a huge body,
or one that trickles in), :class:`Hang` (reads the request, answers nothing, closes after a
while), :class:`Fail` (a permanent error in the protocol's own shape). ``slack.requests``
records every request received, in order, with the monotonic time it arrived;
``slack.messages`` only those that were posted; ``slack.hung_up`` the indexes of the requests
whose answer the client stopped reading before its end.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs

WEBHOOK_PATH = "/services/T0STANDIN/B0STANDIN/StandInWebhookSecret0123456"
BOT_TOKEN = "xoxb-0000000000-1111111111-StandInBotTokenSecret0123"
CHANNELS = {"#alerts": "C0ALERTS01", "#ops": "C0OPS00002"}

# Slack's errors for an incoming webhook, by the status it answers them with.
_WEBHOOK_STATUS = {
    "no_service": 404,
    "channel_not_found": 404,
    "invalid_token": 403,
    "action_prohibited": 403,
    "channel_is_archived": 410,
    "invalid_payload": 400,
    "no_text": 400,
    "invalid_blocks": 400,
    "too_many_attachments": 400,
}


@dataclass(frozen=True)
class Ok:
    """Post the message if it is valid, then answer after ``delay_seconds``."""

    delay_seconds: float = 0.0


@dataclass(frozen=True)
class RateLimited:
    """429 with ``Retry-After`` (whole seconds, as Slack sends it)."""

    retry_after_seconds: int = 1


@dataclass(frozen=True)
class ServerError:
    """A 5xx with a short HTML body, as a load balancer would send."""

    status: int = 500


@dataclass(frozen=True)
class Malformed:
    """``status`` with a body that is not Slack's answer (not ``ok``, not JSON)."""

    body: str = "<html><body>upstream said something odd</body></html>"
    status: int = 200


@dataclass(frozen=True)
class Flood:
    """``status`` with ``size_bytes`` of filler, announced in Content-Length and written
    ``chunk_bytes`` at a time, ``interval_seconds`` apart: a huge answer, or (small chunks,
    an interval) one that trickles in without ever leaving the socket idle.
    """

    size_bytes: int = 50_000_000
    chunk_bytes: int = 1 << 16
    interval_seconds: float = 0.0
    status: int = 200


@dataclass(frozen=True)
class Hang:
    """Read the request, answer nothing for ``seconds``, then close the connection."""

    seconds: float = 5.0


@dataclass(frozen=True)
class Fail:
    """A permanent error: webhook ``STATUS error`` text, or API ``{"ok": false, ...}``."""

    error: str = "invalid_auth"


Behaviour = Ok | RateLimited | ServerError | Malformed | Flood | Hang | Fail


@dataclass(frozen=True)
class Received:
    """One request the stand-in received."""

    protocol: Literal["webhook", "api", "other"]
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any] | None
    received_at: float
    answer: str
    posted: bool

    @property
    def text(self) -> str:
        """The body as text (to look for what must never be sent)."""
        return self.body.decode("utf-8", errors="replace")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up before the whole answer is sent is a case under test.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


@dataclass
class SlackServer:
    """The stand-in; start it with ``with SlackServer() as slack`` or ``.start()``."""

    channels: dict[str, str] = field(default_factory=lambda: dict(CHANNELS))
    bot_token: str = BOT_TOKEN
    webhook_path: str = WEBHOOK_PATH
    default: Behaviour = field(default_factory=Ok)
    requests: list[Received] = field(default_factory=list)
    hung_up: list[int] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._script: deque[Behaviour] = deque()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> SlackServer:
        """Listen on 127.0.0.1 (the same port again after :meth:`down`)."""
        self._server = _Server(("127.0.0.1", self.port), self._handler_class())
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening; connections are refused from now on."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def down(self) -> None:
        """Slack is unreachable: stop listening, so connections are refused."""
        self.stop()

    def up(self) -> None:
        """Slack is back, on the same port."""
        if self._server is None:
            self.start()

    def __enter__(self) -> SlackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests configure and read ----------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        """The incoming webhook's URL (its last part is its secret)."""
        return self.url + self.webhook_path

    @property
    def api_url(self) -> str:
        """The Web API's base URL, for ``[notify] slack_api_url``."""
        return self.url + "/api/"

    @property
    def channel(self) -> str:
        """A channel name the stand-in knows."""
        return next(iter(self.channels))

    def script(self, *behaviours: Behaviour) -> None:
        """Answer the next requests with ``behaviours``, one each, in order."""
        with self._lock:
            self._script.extend(behaviours)

    @property
    def messages(self) -> list[Received]:
        """The requests that were posted to a channel, in order."""
        with self._lock:
            return [request for request in self.requests if request.posted]

    def wait_for_messages(self, count: int, *, timeout_seconds: float = 30.0) -> list[Received]:
        """Wait until at least ``count`` messages were posted; fail the test if not."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages
            time.sleep(0.05)
        raise AssertionError(f"{len(self.messages)} of {count} Slack messages arrived")

    # -- the protocol ---------------------------------------------------------------

    def _next_behaviour(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def _record(self, request: Received) -> int:
        with self._lock:
            self.requests.append(request)
            return len(self.requests) - 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server API)
                stand_in._handle(self)

            def do_GET(self) -> None:  # noqa: N802
                self.send_error(405)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        arrived = time.monotonic()
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in handler.headers.items()}
        payload = _parse_body(body, headers.get("content-type", ""))
        path = handler.path.split("?", 1)[0]
        protocol: Literal["webhook", "api", "other"] = (
            "webhook"
            if path.startswith("/services/")
            else "api"
            if path.startswith("/api/")
            else "other"
        )
        behaviour = self._next_behaviour()

        def record(answer: str, *, posted: bool = False) -> int:
            return self._record(
                Received(protocol, "POST", path, headers, body, payload, arrived, answer, posted)
            )

        if isinstance(behaviour, Hang):
            record("hang")
            time.sleep(behaviour.seconds)
            handler.close_connection = True
            return
        if isinstance(behaviour, RateLimited):
            record("rate_limited")
            extra = {"Retry-After": str(behaviour.retry_after_seconds)}
            if protocol == "api":
                _send(handler, 429, _json({"ok": False, "error": "ratelimited"}), extra=extra)
            else:
                _send(handler, 429, "rate_limited", extra=extra)
            return
        if isinstance(behaviour, ServerError):
            record(f"server_error:{behaviour.status}")
            _send(
                handler, behaviour.status, "<html><body>Internal error</body></html>", "text/html"
            )
            return
        if isinstance(behaviour, Malformed):
            record("malformed")
            _send(handler, behaviour.status, behaviour.body, "text/html")
            return
        if isinstance(behaviour, Flood):
            index = record("flood")
            if not _flood(handler, behaviour):
                with self._lock:
                    self.hung_up.append(index)
            return
        forced = behaviour.error if isinstance(behaviour, Fail) else None
        delay = behaviour.delay_seconds if isinstance(behaviour, Ok) else 0.0
        if protocol == "webhook":
            self._answer_webhook(handler, path, payload, forced, record, delay)
        elif protocol == "api":
            self._answer_api(handler, path, headers, payload, forced, record, delay)
        else:
            record("not_found")
            _send(handler, 404, "not found")

    def _answer_webhook(
        self,
        handler: BaseHTTPRequestHandler,
        path: str,
        payload: dict[str, Any] | None,
        forced: str | None,
        record: Any,
        delay: float,
    ) -> None:
        error = forced
        if error is None and path != self.webhook_path:
            error = "no_service"
        if error is None:
            error = _message_problem(payload)
        if error is not None:
            record(error)
            _send(handler, _WEBHOOK_STATUS.get(error, 400), error)
            return
        record("ok", posted=True)
        time.sleep(delay)  # posted, not yet confirmed: the window a crash can fall into
        _send(handler, 200, "ok")

    def _answer_api(
        self,
        handler: BaseHTTPRequestHandler,
        path: str,
        headers: dict[str, str],
        payload: dict[str, Any] | None,
        forced: str | None,
        record: Any,
        delay: float,
    ) -> None:
        if path != "/api/chat.postMessage":
            record("unknown_method")
            _send(handler, 404, _json({"ok": False, "error": "unknown_method"}))
            return
        payload = payload or {}
        authorization = headers.get("authorization", "")
        token = authorization.removeprefix("Bearer ").strip() or str(payload.get("token") or "")
        channel = str(payload.get("channel") or "")
        ids = set(self.channels.values())
        error = forced
        if error is None and not token:
            error = "not_authed"
        if error is None and token != self.bot_token:
            error = "invalid_auth"
        if error is None and channel not in self.channels and channel not in ids:
            error = "channel_not_found"
        if error is None:
            error = _message_problem(payload)
        if error is not None:
            record(error)
            _send(handler, 200, _json({"ok": False, "error": error}))
            return
        channel_id = self.channels.get(channel, channel)
        record("ok", posted=True)
        time.sleep(delay)
        answer = {"ok": True, "channel": channel_id, "ts": f"{time.time():.6f}"}
        _send(handler, 200, _json({**answer, "message": {"text": payload.get("text")}}))


def _parse_body(body: bytes, content_type: str) -> dict[str, Any] | None:
    text = body.decode("utf-8", errors="replace")
    try:
        if "application/x-www-form-urlencoded" in content_type:
            form: dict[str, Any] = {k: v[-1] for k, v in parse_qs(text).items()}
            if isinstance(form.get("blocks"), str):
                form["blocks"] = json.loads(form["blocks"])
            return form
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _message_problem(payload: dict[str, Any] | None) -> str | None:
    """Slack's answer to a message it would refuse, or ``None`` when it is fine."""
    if payload is None:
        return "invalid_payload"
    blocks = payload.get("blocks")
    if not payload.get("text") and not blocks:
        return "no_text"
    if blocks is None:
        return None
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "invalid_blocks"
    for block in blocks:
        if not _block_fits(block):
            return "invalid_blocks"
    return None


def _block_fits(block: Any) -> bool:
    if not isinstance(block, dict):
        return False
    text = block.get("text") or {}
    length = len(str(text.get("text", ""))) if isinstance(text, dict) else 0
    if block.get("type") == "header":
        return text.get("type") == "plain_text" and 0 < length <= 150
    if block.get("type") == "section":
        fields = block.get("fields") or []
        return (
            length <= 3000
            and len(fields) <= 10
            and all(len(str(item.get("text", ""))) <= 2000 for item in fields)
            and (length > 0 or bool(fields))
        )
    if block.get("type") == "context":
        elements = block.get("elements") or []
        return 0 < len(elements) <= 10
    return block.get("type") in {"divider", "actions", "image", "rich_text", "input", "file"}


def _flood(handler: BaseHTTPRequestHandler, flood: Flood) -> bool:
    """Write ``flood``'s answer; ``False`` when the client hung up before its end."""
    handler.send_response(flood.status)
    handler.send_header("Content-Type", "text/plain; charset=utf-8")
    handler.send_header("Content-Length", str(flood.size_bytes))
    handler.end_headers()
    left = flood.size_bytes
    chunk = b"A" * flood.chunk_bytes
    try:
        while left > 0:
            handler.wfile.write(chunk[:left])
            handler.wfile.flush()
            left -= len(chunk[:left])
            time.sleep(flood.interval_seconds)
    except OSError:
        handler.close_connection = True
        return False
    return True


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data)


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: str,
    content_type: str | None = None,
    *,
    extra: dict[str, str] | None = None,
) -> None:
    data = body.encode("utf-8")
    if content_type is None:
        content_type = "application/json" if body.startswith("{") else "text/plain"
    handler.send_response(status)
    handler.send_header("Content-Type", f"{content_type}; charset=utf-8")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (extra or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)
