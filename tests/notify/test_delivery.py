"""Delivery through the real transports to the Slack stand-in: Block Kit content, retries
of what is worth retrying, permanent errors reported without retrying, the time budget.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opsctl.notify import DeliverySettings, MessageQueue, Notification, Notifier, notifier_for
from opsctl.notify._slack import Attempt
from tests.notify.conftest import ProjectFactory
from tests.slack_server import Fail, Hang, Malformed, RateLimited, ServerError, SlackServer


def alert(title: str = "Disk almost full", **changes: str) -> Notification:
    """A firing critical alert with every field set."""
    fields = {
        "key": "disk_used:/srv",
        "event": "firing",
        "severity": "critical",
        "title": title,
        "service": "api",
        "value": "93.1 %",
        "threshold": "> 90 %",
        "hint": "Free space under /srv or grow the volume.",
        "detail": "/srv: 93.1 % used, 6.9 GiB free",
        "host": "gpu-box-1",
    }
    return Notification(**{**fields, **changes})  # type: ignore[arg-type]


def notifier(make_project: ProjectFactory, **options: str) -> Notifier:
    result = notifier_for(make_project(**options))
    assert result is not None
    return result


@pytest.mark.parametrize("via", ["webhook", "bot"])
def test_message_arrives_as_block_kit_with_every_field(
    via: str, slack: SlackServer, make_project: ProjectFactory
) -> None:
    """Webhook and bot both post one Block Kit message carrying every field and a fallback."""
    sender = notifier(make_project, via=via)

    assert sender.send(alert()) is True

    [message] = slack.messages
    payload = message.payload or {}
    assert message.protocol == ("webhook" if via == "webhook" else "api")
    blocks = payload["blocks"]
    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["text"] == ":red_circle: Firing: Disk almost full"
    fields = [field["text"] for field in blocks[2]["fields"]]
    assert fields[:4] == [
        "*Severity*\nCRITICAL",
        "*Service*\napi",
        "*Value*\n93.1 % (threshold &gt; 90 %)",
        "*Host*\ngpu-box-1",
    ]
    assert fields[4].startswith("*Time (UTC)*\n20") and fields[4].endswith("Z")
    texts = [block.get("text", {}).get("text", "") for block in blocks]
    assert "*What to do:* Free space under /srv or grow the volume." in texts
    assert "```/srv: 93.1 % used, 6.9 GiB free```" in texts
    assert "disk_used:/srv" in blocks[-1]["elements"][0]["text"]
    assert payload["text"].startswith("[CRITICAL] Firing: Disk almost full · service api")
    if via == "bot":
        assert payload["channel"] == slack.channel
        assert message.headers["authorization"] == f"Bearer {slack.bot_token}"
    assert sender.queued_count() == 0


def test_rate_limit_waits_for_retry_after(slack: SlackServer, make_project: ProjectFactory) -> None:
    """A 429 is retried, and not before the Retry-After the stand-in sent."""
    sender = notifier(make_project)
    slack.script(RateLimited(retry_after_seconds=1))

    result = sender.deliver(alert())

    assert result.status == "delivered"
    assert result.flush.requests == 2
    first, second = slack.requests
    assert (first.answer, second.answer) == ("rate_limited", "ok")
    assert second.received_at - first.received_at >= 1.0


def test_retry_after_beyond_the_cap_queues_and_holds_every_sender(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """A Retry-After longer than the cap is not waited for in the call: the message is
    queued, and no request is sent to Slack until the time has passed.
    """
    sender = notifier(make_project, extra="max_attempts = 3\n")
    slack.script(RateLimited(retry_after_seconds=2))
    cautious = Notifier(
        sender.transport,
        sender.queue,
        settings=DeliverySettings(retry_cap_seconds=0.5, backoff_seconds=0.02),
        source="proj",
    )

    assert cautious.send(alert("first")) is False
    assert cautious.send(alert("second")) is False

    assert [request.answer for request in slack.requests] == ["rate_limited"]
    assert cautious.queued_count() == 2
    assert sender.flush() == 2  # this one may wait up to 5 s: it waits out the rest
    assert [m.payload["text"].split(": ", 1)[1].split(" ·")[0] for m in slack.messages] == [
        "first",
        "second",
    ]
    assert slack.messages[0].received_at - slack.requests[0].received_at >= 2.0


@pytest.mark.parametrize("via", ["webhook", "bot"])
def test_server_errors_are_retried_then_delivered(
    via: str, slack: SlackServer, make_project: ProjectFactory
) -> None:
    """500, 502 and 503 are retried with backoff until Slack accepts the message."""
    sender = notifier(make_project, via=via)
    slack.script(ServerError(500), ServerError(502), ServerError(503))

    result = sender.deliver(alert())

    assert result.status == "delivered"
    answers = [request.answer for request in slack.requests]
    assert answers == ["server_error:500", "server_error:502", "server_error:503", "ok"]
    assert len(slack.messages) == 1


@pytest.mark.parametrize("via", ["webhook", "bot"])
def test_malformed_answers_and_hangs_are_retried(
    via: str, slack: SlackServer, make_project: ProjectFactory
) -> None:
    """A body that is not Slack's answer, and a request left unanswered past the timeout,
    are both retried.
    """
    sender = notifier(make_project, via=via)  # a 1 s timeout
    slack.script(Malformed(), Hang(seconds=3))

    assert sender.send(alert()) is True

    assert [request.answer for request in slack.requests] == ["malformed", "hang", "ok"]


def test_attempts_are_bounded_and_the_message_stays_queued(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """When every attempt fails, exactly max_attempts requests are made, then it is queued."""
    sender = notifier(make_project)
    slack.script(*[ServerError()] * 10)

    result = sender.deliver(alert())

    assert result.status == "queued"
    assert "HTTP 500" in (result.reason or "")
    assert len(slack.requests) == 4
    [queued] = sender.queue.pending()
    assert queued.attempts == 4
    assert "HTTP 500" in (queued.last_error or "")


@pytest.mark.parametrize(
    ("via", "behaviour", "said"),
    [
        ("webhook", Fail("no_service"), "HTTP 404 no_service"),
        ("webhook", Fail("invalid_token"), "HTTP 403 invalid_token"),
        ("webhook", Fail("channel_is_archived"), "HTTP 410 channel_is_archived"),
        ("bot", Fail("invalid_auth"), "invalid_auth"),
        ("bot", Fail("channel_not_found"), "channel_not_found"),
    ],
)
def test_permanent_errors_are_not_retried_and_become_dead_letters(
    via: str, behaviour: Fail, said: str, slack: SlackServer, make_project: ProjectFactory
) -> None:
    """Slack's permanent refusals cost one request; the message is kept as a dead letter
    with the reason, and the next message is not held up by it.
    """
    sender = notifier(make_project, via=via)
    slack.script(behaviour)

    result = sender.deliver(alert("refused"))

    assert result.status == "dead"
    assert said in (result.reason or "")
    assert len(slack.requests) == 1
    [dead] = sender.queue.dead()
    assert dead.notification.title == "refused"
    assert said in (dead.last_error or "")
    assert sender.send(alert("next")) is True
    assert sender.queue.dead() == [dead]


def test_wrong_bot_token_is_refused_by_the_stand_in(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """The stand-in checks the token like Slack does: a wrong one is invalid_auth."""
    sender = notifier(
        make_project,
        via="none",
        extra=f'slack_channel = "{slack.channel}"\n',
        env="SLACK_BOT_TOKEN=xoxb-0-0-NotTheRightToken123",
    )

    result = sender.deliver(alert())

    assert result.status == "dead"
    assert "invalid_auth" in (result.reason or "")
    assert len(slack.requests) == 1


class _Clock:
    """A monotonic clock that moves only when code sleeps or a request takes its time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def time(self) -> float:
        import time

        return time.time()


class _SlowSlack:
    """A transport whose every request takes all the time it is given, then fails."""

    description = "a Slack that never answers"

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.requests: list[tuple[float, float]] = []

    def post(self, message: object, *, timeout_seconds: float) -> Attempt:
        self.requests.append((self.clock.now, timeout_seconds))
        self.clock.sleep(timeout_seconds)
        return Attempt(delivered=False, retryable=True, reason="unreachable: timed out")


def test_no_request_outlives_the_time_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However the retries fall, every request ends within max_total_seconds of the call."""
    from opsctl.notify import _notifier

    clock = _Clock()
    monkeypatch.setattr(_notifier, "time", clock)
    transport = _SlowSlack(clock)
    settings = DeliverySettings(
        timeout_seconds=2.0, max_attempts=20, backoff_seconds=0.05, max_total_seconds=4.5
    )
    sender = Notifier(
        transport, MessageQueue(tmp_path / "notify", max_messages=10), settings=settings, source="p"
    )
    started = clock.now

    result = sender.deliver(alert())

    assert result.status == "queued"
    assert len(transport.requests) == 2
    assert all(start + timeout <= started + 4.5 for start, timeout in transport.requests)
    assert clock.now <= started + 4.5
