"""slack-sdk's clients, with the one HTTP exchange each makes bounded in size and in time.

slack-sdk builds every request (the JSON body, the ``Authorization`` header, its own
User-Agent) and reads every answer (``WebhookResponse``, ``SlackResponse`` and
``SlackApiError`` on ``ok: false``). Its urllib call, though, reads an answer to its end
however long it is, and bounds each socket read rather than the request, so an answer that
trickles in holds it without end. :class:`BoundedWebhookClient` and :class:`BoundedWebClient`
therefore override only the method that sends the request and reads the answer, and do that
through :func:`post`, which has three limits of its own: at most :data:`LONGEST_ANSWER_BYTES`
of an answer are read, whatever its length; the whole request, trickling answers included,
ends after its timeout, because a watchdog shuts the socket down then; and redirects are not
followed, so a token never travels to another host. urllib still does the work, so the usual
proxy variables apply (``NO_PROXY`` included).

Connecting comes before the watchdog can act: TCP connect and each read of the TLS handshake
are bounded by the socket timeout, name resolution only by the system's resolver settings.
The SDK's retries are switched off (``retry_handlers=[]``): the notifier owns retries.
"""

from __future__ import annotations

import codecs
import contextlib
import http.client
import json
import logging
import socket
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackRequestError
from slack_sdk.webhook import WebhookClient, WebhookResponse

# Slack answers in a few bytes; anything longer is cut here, before it is decoded or shown.
LONGEST_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """What the server answered: its status, headers and the start of its body."""

    status: int
    headers: dict[str, str]
    body: str


class RequestTimedOutError(TimeoutError):
    """The request as a whole took longer than its timeout."""


def post(url: str, body: bytes, *, headers: Mapping[str, str], timeout_seconds: float) -> Answer:
    """POST ``body`` to ``url`` with ``headers`` and return the answer, whatever its status.

    Raises :class:`RequestTimedOutError` when the whole exchange took longer than
    ``timeout_seconds``; :class:`OSError` or :class:`http.client.HTTPException` when the
    server cannot be reached or speaks no HTTP; :class:`ValueError` when ``url`` is not an
    http(s) URL or cannot be used. Messages never contain the URL.
    """
    # urllib would also open ftp: and file: URLs; its own words for a bad URL quote it.
    if urlsplit(url).scheme.lower() not in {"http", "https"}:
        raise ValueError("only http and https URLs are used")  # noqa: EM101 (no URL in it)
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
        url, data=body, headers=dict(headers), method="POST"
    )
    with _Watchdog(timeout_seconds) as watchdog:
        try:
            answer = _exchange(request, watchdog, timeout_seconds)
        except (OSError, http.client.HTTPException):
            if watchdog.expired:
                raise _timed_out(timeout_seconds) from None
            raise
    # Shut down mid-answer, the socket reads as an early end of the body: still a timeout.
    if watchdog.expired:
        raise _timed_out(timeout_seconds)
    return answer


class BoundedWebhookClient(WebhookClient):
    """slack-sdk's incoming webhook client, sending through :func:`post`."""

    def __init__(self, url: str, *, timeout_seconds: float, logger: logging.Logger) -> None:
        super().__init__(url, user_agent_prefix="opsctl", logger=logger, retry_handlers=[])
        self.timeout_seconds = timeout_seconds

    def _perform_http_request(
        self, *, body: dict[str, Any], headers: dict[str, str]
    ) -> WebhookResponse:
        headers["Content-Type"] = "application/json;charset=utf-8"
        answer = post(
            self.url,
            json.dumps(body).encode("utf-8"),
            headers=headers,
            timeout_seconds=self.timeout_seconds,
        )
        return WebhookResponse(
            url=self.url, status_code=answer.status, body=answer.body, headers=answer.headers
        )


class BoundedWebClient(WebClient):
    """slack-sdk's Web API client, sending through :func:`post` (JSON and form bodies; no
    file uploads, which opsctl does not make).
    """

    def __init__(
        self, token: str, *, base_url: str, timeout_seconds: float, logger: logging.Logger
    ) -> None:
        super().__init__(
            token=token,
            base_url=base_url,
            user_agent_prefix="opsctl",
            logger=logger,
            retry_handlers=[],
        )
        self.timeout_seconds = timeout_seconds

    def _perform_urllib_http_request(
        self, *, url: str, args: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        headers = args["headers"]
        if args.get("data") or args.get("files"):
            raise SlackRequestError("file uploads are not supported")  # noqa: EM101
        body = b""
        if args.get("json"):
            body = json.dumps(args["json"]).encode("utf-8")
            headers["Content-Type"] = "application/json;charset=utf-8"
        elif args.get("params"):
            body = urlencode(args["params"]).encode("utf-8")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        answer = post(url, body, headers=headers, timeout_seconds=self.timeout_seconds)
        return {"status": answer.status, "headers": answer.headers, "body": answer.body}


def _exchange(request: urllib.request.Request, watchdog: _Watchdog, timeout: float) -> Answer:
    opener = urllib.request.build_opener(
        _HTTPHandler(watchdog), _HTTPSHandler(watchdog), _KeepErrors()
    )
    with opener.open(request, timeout=timeout) as response:
        data = response.read(LONGEST_ANSWER_BYTES)
        charset = response.headers.get_content_charset() or "utf-8"
        return Answer(
            status=int(response.status),
            headers=dict(response.headers.items()),
            body=data.decode(_known_codec(charset), errors="replace"),
        )


def _timed_out(timeout_seconds: float) -> RequestTimedOutError:
    return RequestTimedOutError(f"timed out after {timeout_seconds:g} s")


def _known_codec(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


class _Watchdog:
    """Shuts down the sockets it watches once ``seconds`` have passed."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down at expiry (at once when that has passed)."""
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut_down(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    # The plain socket call, also for a TLS socket: it wakes a read blocked in another
    # thread, where closing would not, and leaves the TLS state alone.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _WatchedHTTPConnection(http.client.HTTPConnection):
    """A connection whose socket (once connected, TLS included) a watchdog can cut."""

    watchdog: _Watchdog | None = None

    def connect(self) -> None:
        super().connect()
        if self.watchdog is not None and self.sock is not None:
            self.watchdog.watch(self.sock)


class _WatchedHTTPSConnection(_WatchedHTTPConnection, http.client.HTTPSConnection):
    pass


def _factory(kind: type[_WatchedHTTPConnection], watchdog: _Watchdog) -> Any:
    def make(host: str, **options: Any) -> _WatchedHTTPConnection:
        connection = kind(host, **options)
        connection.watchdog = watchdog
        return connection

    return make


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, watchdog: _Watchdog) -> None:
        super().__init__()
        self._watchdog = watchdog

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_factory(_WatchedHTTPConnection, self._watchdog), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, watchdog: _Watchdog) -> None:
        import ssl

        self._ssl_context = ssl.create_default_context()
        super().__init__(context=self._ssl_context)
        self._watchdog = watchdog

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = _factory(_WatchedHTTPSConnection, self._watchdog)
        return self.do_open(connection, req, context=self._ssl_context)


class _KeepErrors(urllib.request.HTTPErrorProcessor):
    """Every status comes back as an answer for the caller to classify; in place of the
    default processor, it also keeps redirects from being followed.
    """

    def http_response(
        self, request: urllib.request.Request, response: http.client.HTTPResponse
    ) -> http.client.HTTPResponse:
        return response

    https_response = http_response
