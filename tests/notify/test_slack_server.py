"""The Slack stand-in itself: the protocol details other tests rely on."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from tests.slack_server import RateLimited, SlackServer


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (loopback)
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def test_chat_post_message_accepts_a_form_body(slack: SlackServer) -> None:
    """A form-encoded chat.postMessage with the token in the body is posted."""
    form = {
        "token": slack.bot_token,
        "channel": "#ops",
        "text": "hello",
        "blocks": json.dumps([{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]),
    }
    body = urllib.parse.urlencode(form).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    status, text, _ = post(slack.api_url + "chat.postMessage", body, headers)

    assert status == 200
    answer = json.loads(text)
    assert answer["ok"] is True
    assert answer["channel"] == "C0OPS00002"
    assert slack.messages[0].payload["blocks"][0]["text"]["text"] == "hi"


def test_api_errors_come_as_ok_false(slack: SlackServer) -> None:
    """A missing token, a wrong channel and oversize blocks get Slack's error names."""
    url = slack.api_url + "chat.postMessage"
    json_type = {"Content-Type": "application/json"}
    bearer = {**json_type, "Authorization": f"Bearer {slack.bot_token}"}
    big = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    cases = [
        (json_type, {"channel": "#ops", "text": "t"}, "not_authed"),
        (bearer, {"channel": "#nope", "text": "t"}, "channel_not_found"),
        (bearer, {"channel": "#ops", "text": "t", "blocks": big}, "invalid_blocks"),
        (bearer, {"channel": "#ops"}, "no_text"),
    ]
    for headers, payload, error in cases:
        status, text, _ = post(url, json.dumps(payload).encode(), headers)
        assert (status, json.loads(text)) == (200, {"ok": False, "error": error})
    assert slack.messages == []


def test_rate_limit_and_unknown_webhook(slack: SlackServer) -> None:
    """429 carries Retry-After; a webhook path the stand-in does not know is no_service."""
    slack.script(RateLimited(retry_after_seconds=7))
    body = json.dumps({"text": "t"}).encode()
    headers = {"Content-Type": "application/json"}

    status, _, response_headers = post(slack.webhook_url, body, headers)
    assert (status, response_headers["Retry-After"]) == (429, "7")
    status, text, _ = post(slack.url + "/services/T0/B0/wrong", body, headers)
    assert (status, text) == (404, "no_service")
    status, text, _ = post(slack.webhook_url, body, headers)
    assert (status, text) == (200, "ok")
    assert [request.answer for request in slack.requests] == ["rate_limited", "no_service", "ok"]
