"""Alerts reach Slack (the local stand-in) through the project's notifier: while Slack
is down they wait on disk; when it is back each is delivered exactly once, in order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsctl.config import load_project
from opsctl.monitor import Monitor, MonitorOptions
from opsctl.notify import notifier_for, open_queue
from tests.slack_server import Hang, Ok, SlackServer
from tests.support import RedisServer, run_cli, start_redis, wait_for, write_project


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


def redis_events(project_root: Path) -> list[tuple[str, bool, bool]]:
    """(event, queued, notified) of each redis_up transition in the history, in order."""
    result = run_cli("-c", str(project_root / "opsctl.toml"), "health", "--history", "--json")
    transitions = json.loads(result.stdout)["transitions"] if result.exit_code == 0 else []
    return [(t["event"], t["queued"], t["notified"]) for t in transitions if t["key"] == "redis_up"]


@pytest.mark.slow
def test_notices_pending_when_stopped_during_a_slow_slack_are_queued_and_sent_after_restart(
    tmp_path: Path, redis_server: RedisServer, slack: SlackServer
) -> None:
    """SIGTERM while Slack hangs on the first of three notices: all three are on disk,
    the history says "queued", not "notified"; the next start delivers them in order
    and the history then says "notified".
    """
    root = tmp_path / "proj"
    write_project(
        root,
        f"""
        [project]
        name = "demo"
        [redis]
        url = "{redis_server.url}"
        [monitoring]
        interval_seconds = 0.5
        fire_after = 1
        resolve_after = 1
        repeat_interval_seconds = 0
        disk = {{ paths = ["{root}"] }}
        [notify]
        max_attempts = 1
        """,
        env=f"SLACK_WEBHOOK_URL={slack.webhook_url}\n",
    )
    slack.default = Hang(60)
    environment = {**os.environ, "OPSCTL_NOTIFY__TIMEOUT_SECONDS": "30"}
    log = tmp_path / "monitor.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "opsctl", "-c", str(root / "opsctl.toml"), "monitor"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=environment,
        )
    restarted = None
    try:
        wait_for(
            (root / ".opsctl" / "monitor.sqlite").exists,
            timeout_seconds=30,
            message="the monitor ran a cycle",
        )
        redis_server.stop()
        wait_for(lambda: len(slack.requests) == 1, timeout_seconds=30, message="Slack hangs")
        restarted = start_redis(redis_server.directory, port=redis_server.port)
        wait_for(
            lambda: len(redis_events(root)) == 2,
            timeout_seconds=30,
            message="redis_up resolves",
        )
        restarted.stop()
        wait_for(
            lambda: len(redis_events(root)) == 3,
            timeout_seconds=30,
            message="redis_up fires again",
        )
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        if restarted is not None:
            restarted.stop()

    assert code == 0
    text = log.read_text()
    assert "3 notification(s) wait in the queue on disk" in text
    assert "Traceback" not in text
    project = load_project(root / "opsctl.toml")
    waiting = [m.notification for m in open_queue(project).pending()]
    assert [(n.key, n.event) for n in waiting] == [
        ("redis_up", "firing"),
        ("redis_up", "resolved"),
        ("redis_up", "firing"),
    ]
    queued = [("firing", True, False), ("resolved", True, False), ("firing", True, False)]
    assert redis_events(root) == queued
    human = run_cli("-c", str(root / "opsctl.toml"), "health", "--history")
    assert "notified" not in human.stdout
    assert "queued" in human.stdout

    slack.default = Ok()
    again = run_cli("-c", str(root / "opsctl.toml"), "monitor", "--cycles", "2")

    assert again.exit_code in {0, 1, 3}, again.output
    assert redis_alerts(slack) == ["Firing", "Resolved", "Firing"]
    assert open_queue(project).pending() == []
    notified = [("firing", False, True), ("resolved", False, True), ("firing", False, True)]
    assert redis_events(root) == notified
