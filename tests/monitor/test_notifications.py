"""Alerts reach Slack (the local stand-in) through the project's notifier: while Slack
is down they wait on disk; when it is back each is delivered exactly once, in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opsctl.config import load_project
from opsctl.monitor import Monitor, MonitorOptions
from opsctl.notify import notifier_for
from tests.slack_server import SlackServer
from tests.support import RedisServer, start_redis, wait_for, write_project


@pytest.fixture(autouse=True)
def no_real_slack(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing from the developer's shell points a test at the real Slack."""
    for name in ("SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with SlackServer() as server:
        yield server


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis(tmp_path / "redis")
    yield server
    server.stop()


def make_monitor(root: Path, redis_url: str, slack: SlackServer) -> Monitor:
    write_project(
        root,
        f"""
        [project]
        name = "demo"
        [redis]
        url = "{redis_url}"
        [monitoring]
        interval_seconds = 0.2
        fire_after = 2
        resolve_after = 2
        repeat_interval_seconds = 0
        [notify]
        timeout_seconds = 0.5
        backoff_seconds = 0.02
        max_attempts = 2
        max_total_seconds = 2.0
        """,
        env=f"SLACK_WEBHOOK_URL={slack.webhook_url}\n",
    )
    project = load_project(root / "opsctl.toml")
    return Monitor(
        project,
        None,
        options=MonitorOptions(interval_seconds=0.2),
        notifier=notifier_for(project),
    )


def cycles(monitor: Monitor, count: int) -> list[str]:
    """Run ``count`` cycles; return the events of the notices they produced."""
    events = []
    for _ in range(count):
        events += [f"{n.key} {n.event}" for n in monitor.cycle().notices]
    return events


def redis_alerts(slack: SlackServer) -> list[str]:
    """The redis_up messages Slack got, as 'Firing'/'Resolved' labels, in order."""
    texts = [
        m.payload["text"] for m in slack.messages if m.payload and "redis://" in m.payload["text"]
    ]
    return [text.split("]", 1)[1].split(":", 1)[0].strip() for text in texts]


def test_slack_down_for_several_intervals_then_back_delivers_each_alert_once_in_order(
    tmp_path: Path, redis_server: RedisServer, slack: SlackServer
) -> None:
    """Fired, resolved and fired again while Slack refuses connections: once it answers,
    the three messages arrive exactly once each, in the order they happened.
    """
    monitor = make_monitor(tmp_path / "proj", redis_server.url, slack)
    try:
        assert cycles(monitor, 1) == []
        slack.down()

        redis_server.stop()
        produced = cycles(monitor, 2)
        restarted = start_redis(redis_server.directory, port=redis_server.port)
        produced += cycles(monitor, 2)
        restarted.stop()
        produced += cycles(monitor, 3)
        assert produced == ["redis_up firing", "redis_up resolved", "redis_up firing"]
        wait_for(
            lambda: monitor.dispatcher.pending() == 0 and monitor.dispatcher.queued() == 3,
            timeout_seconds=30,
            message="the three notices wait in the notifier's queue",
        )
        assert slack.messages == []

        slack.up()
        slack.wait_for_messages(3)
        cycles(monitor, 3)  # more cycles, more flushes: nothing may be sent twice
        wait_for(
            lambda: monitor.dispatcher.queued() == 0,
            timeout_seconds=30,
            message="the queue drains",
        )
    finally:
        monitor.close()

    assert redis_alerts(slack) == ["Firing", "Resolved", "Firing"]
    assert len(slack.messages) == 3
    assert all("StandInWebhookSecret" not in m.text for m in slack.messages)


def test_silenced_alert_sends_nothing_to_slack(
    tmp_path: Path, redis_server: RedisServer, slack: SlackServer
) -> None:
    """A silence on the alert's family keeps Slack quiet; the transition is recorded."""
    from datetime import timedelta

    from opsctl.monitor import add_silence

    monitor = make_monitor(tmp_path / "proj", redis_server.url, slack)
    try:
        add_silence(monitor.project, "redis_up", timedelta(hours=1), reason="maintenance")
        redis_server.stop()
        outcome = [monitor.cycle() for _ in range(3)]
        monitor.dispatcher.close()
    finally:
        monitor.close()

    transitions = [t for o in outcome for t in o.transitions if t.key == "redis_up"]
    assert [(t.event, t.silenced, t.notified) for t in transitions] == [("firing", True, False)]
    assert slack.messages == []
