"""The Slack transports on their own: answers read in bounded size and time, reasons kept
short and scrubbed, Retry-After read defensively.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import pytest

from opsctl import secrets
from opsctl.notify._slack import BotTransport, WebhookTransport, retry_after
from tests.slack_server import Flood, Malformed, SlackServer

MESSAGE = {
    "text": "hello",
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}],
}


@pytest.fixture
def scrubbed_lengths(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the length of every text handed to secrets.scrub (and skip the scrubbing)."""
    lengths: list[int] = []

    def record(text: str) -> str:
        lengths.append(len(text))
        return text

    monkeypatch.setattr(secrets, "scrub", record)
    return lengths


@pytest.mark.timeout(120)
def test_huge_malformed_answer_is_cut_before_it_is_scrubbed(
    slack: SlackServer, scrubbed_lengths: list[int]
) -> None:
    """A 50 MB body is read only in part, and only a short piece of it is scrubbed and kept."""
    slack.script(Malformed(body="A" * 50_000_000))
    transport = WebhookTransport(slack.webhook_url)

    attempt = transport.post(MESSAGE, timeout_seconds=30)

    assert (attempt.delivered, attempt.retryable) == (False, True)
    assert attempt.reason.startswith("malformed answer: HTTP 200 AAAA")
    assert len(attempt.reason) < 300
    assert scrubbed_lengths
    assert max(scrubbed_lengths) <= 4096


@pytest.mark.timeout(120)
@pytest.mark.parametrize("via", ["webhook", "bot"])
def test_endless_answer_is_not_read_to_its_end(
    via: str, slack: SlackServer, scrubbed_lengths: list[int]
) -> None:
    """The client stops reading an answer after a bounded amount and hangs up."""
    slack.script(Flood(size_bytes=200_000_000, status=500))
    transport = (
        WebhookTransport(slack.webhook_url)
        if via == "webhook"
        else BotTransport(slack.bot_token, slack.channel, api_url=slack.api_url)
    )

    attempt = transport.post(MESSAGE, timeout_seconds=30)

    assert (attempt.delivered, attempt.retryable) == (False, True)
    assert attempt.reason.startswith("HTTP 500")
    assert max(scrubbed_lengths) <= 4096
    _wait_for_hang_up(slack)
    assert slack.hung_up == [0]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("via", ["webhook", "bot"])
def test_trickling_answer_is_cut_off_at_the_request_timeout(via: str, slack: SlackServer) -> None:
    """An answer that keeps arriving byte by byte (so no single read ever times out) is
    abandoned when the request's whole time is up, and reads as a timeout.
    """
    slack.script(Flood(size_bytes=300, chunk_bytes=1, interval_seconds=0.1))
    transport = (
        WebhookTransport(slack.webhook_url)
        if via == "webhook"
        else BotTransport(slack.bot_token, slack.channel, api_url=slack.api_url)
    )

    attempt = transport.post(MESSAGE, timeout_seconds=1.0)

    assert (attempt.delivered, attempt.retryable) == (False, True)
    assert attempt.reason == "unreachable: timed out after 1 s"
    _wait_for_hang_up(slack)
    assert slack.hung_up == [0]


def test_answer_echoing_the_webhook_url_is_scrubbed(slack: SlackServer) -> None:
    """A reason built from Slack's answer never shows the webhook's secret part."""
    secret = slack.webhook_path.rsplit("/", 1)[1]
    slack.script(Malformed(body=f"bad request to {slack.webhook_url} " * 3, status=400))
    transport = WebhookTransport(slack.webhook_url)

    attempt = transport.post(MESSAGE, timeout_seconds=5)

    assert attempt.reason.startswith("HTTP 400 bad request to")
    assert secret not in attempt.reason


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30", 30.0), ("1.5", 1.5), ("-4", 0.0), ("inf", None), ("nan", None), ("soon", None)],
)
def test_retry_after_accepts_only_finite_numbers(value: str, seconds: float | None) -> None:
    """Retry-After is a number of seconds; infinities, NaN and words are ignored."""
    assert retry_after({"retry-after": value}) == seconds


def _wait_for_hang_up(slack: SlackServer) -> None:
    from tests.support import wait_for

    wait_for(lambda: bool(slack.hung_up), timeout_seconds=30, message="the client hung up")


@pytest.mark.parametrize("via", ["webhook", "bot"])
def test_requests_are_built_and_sent_by_slack_sdk(
    via: str, slack: SlackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both transports go through slack-sdk's own client method, and the request carries the
    User-Agent slack-sdk builds (naming its version), not one opsctl wrote.
    """
    from slack_sdk import WebClient
    from slack_sdk.version import __version__ as sdk_version
    from slack_sdk.webhook import WebhookClient

    owner, name = (WebhookClient, "send_dict") if via == "webhook" else (WebClient, "api_call")
    calls: list[str] = []
    original = getattr(owner, name)

    def spy(self: object, *args: object, **kwargs: object) -> object:
        calls.append(name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    transport = (
        WebhookTransport(slack.webhook_url)
        if via == "webhook"
        else BotTransport(slack.bot_token, slack.channel, api_url=slack.api_url)
    )

    attempt = transport.post(MESSAGE, timeout_seconds=5)

    assert attempt.delivered is True
    assert calls == [name]
    [request] = slack.requests
    assert f"slackclient/{sdk_version}" in request.headers["user-agent"]
    assert request.headers["user-agent"].startswith("opsctl ")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"channel": "C0ALERTS01"}', "malformed answer: no ok field"),
        ('["ok"]', "malformed answer"),
        ("[]", "malformed answer"),
        ("<html>busy</html>", "malformed answer: HTTP 200"),
    ],
)
def test_bot_answer_that_is_not_slacks_is_retried(
    body: str, reason: str, slack: SlackServer
) -> None:
    """A 200 whose body is not a JSON object with ``ok`` is worth retrying, not a refusal."""
    slack.script(Malformed(body=body))
    transport = BotTransport(slack.bot_token, slack.channel, api_url=slack.api_url)

    attempt = transport.post(MESSAGE, timeout_seconds=5)

    assert (attempt.delivered, attempt.retryable) == (False, True)
    assert attempt.reason.startswith(reason)


def test_webhook_url_that_is_not_http_is_refused_without_quoting_it() -> None:
    """A URL urllib cannot use is refused for good, and the reason never shows it."""
    transport = WebhookTransport("ftp://127.0.0.1/services/T0/B0/SecretPartOfTheUrl0123")

    attempt = transport.post(MESSAGE, timeout_seconds=5)

    assert (attempt.delivered, attempt.retryable) == (False, False)
    assert attempt.reason == "request refused: the URL cannot be used"
    assert "SecretPartOfTheUrl0123" not in attempt.reason


class _Redirecting(BaseHTTPRequestHandler):
    """Answers every POST to /from/... with a 307 to /to/ on the same server."""

    paths: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (the http.server API)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.paths.append(self.path)
        location = "/to/" if self.path.startswith("/from/") else None
        self.send_response(307 if location else 200)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirecting() -> Iterator[str]:
    """A server on 127.0.0.1 that redirects; yields its base URL."""
    _Redirecting.paths = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("via", ["webhook", "bot"])
def test_redirects_are_not_followed(via: str, redirecting: str) -> None:
    """A redirect is an answer like any other: the message, and the token, go nowhere else."""
    transport = (
        WebhookTransport(redirecting + "/from/services/T0/B0/X0")
        if via == "webhook"
        else BotTransport("xoxb-0-0-RedirectedToken0123", "#alerts", api_url=redirecting + "/from/")
    )

    attempt = transport.post(MESSAGE, timeout_seconds=5)

    assert attempt.delivered is False
    assert attempt.reason.startswith(("HTTP 307", "malformed answer: HTTP 307"))
    assert _Redirecting.paths == [
        "/from/services/T0/B0/X0" if via == "webhook" else "/from/chat.postMessage"
    ]
