"""The agent against a real redis-server: reports, their expiry, validation, outages."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from opsctl.agent import Agent, ComponentReport, read_components, request
from opsctl.config._project import RedisTarget
from opsctl.errors import OperationFailedError
from tests.agent.conftest import PASSWORD, PROJECT
from tests.support import RedisServer, free_port, start_redis, wait_for


def make_agent(target: RedisTarget, name: str = "worker", **options: float) -> Agent:
    return Agent(name, url=target.url, password=target.password, project=PROJECT, **options)


def reports(target: RedisTarget, *, stale_after_seconds: float = 60) -> list[ComponentReport]:
    return read_components(target, PROJECT, stale_after_seconds=stale_after_seconds)


def only(target: RedisTarget) -> ComponentReport:
    found = reports(target)
    assert len(found) == 1, found
    return found[0]


def test_heartbeat_is_visible_then_expires_after_the_ttl(target: RedisTarget) -> None:
    """One heartbeat makes the component visible with its pid and host; without another it
    is gone once its TTL has passed.
    """
    agent = make_agent(target, ttl_seconds=1)
    agent.heartbeat()

    report = only(target)
    assert (report.component, report.pid, report.host) == (
        "worker",
        os.getpid(),
        socket.gethostname(),
    )
    assert report.status == "ok"
    assert not report.stale
    wait_for(lambda: reports(target) == [], timeout_seconds=10, message="the report to expire")


def test_started_agent_keeps_its_report_alive_past_the_ttl(target: RedisTarget) -> None:
    """Heartbeats every interval renew the TTL, so the report outlives it; stop() removes it."""
    agent = make_agent(target, ttl_seconds=1).start(interval_seconds=0.2)
    try:
        wait_for(lambda: len(reports(target)) == 1, timeout_seconds=10, message="first heartbeat")
        first_seen = only(target).last_seen
        wait_for(
            lambda: only(target).last_seen > first_seen,
            timeout_seconds=10,
            message="a later heartbeat",
        )
        time.sleep(1.5)  # longer than the TTL: only heartbeats keep it there
        assert len(reports(target)) == 1
    finally:
        agent.stop()
    assert reports(target) == []
    assert not agent.running


def test_report_older_than_the_threshold_is_stale_but_present(target: RedisTarget) -> None:
    """A component that stopped heartbeating is marked stale before its key expires."""
    make_agent(target, ttl_seconds=30).heartbeat()

    wait_for(
        lambda: reports(target, stale_after_seconds=0.3)[0].stale,
        timeout_seconds=10,
        message="the report to turn stale",
    )
    assert not reports(target, stale_after_seconds=60)[0].stale


def test_status_detail_and_gauges_round_trip(target: RedisTarget) -> None:
    """What the component sets is what opsctl reads, gauges as floats."""
    agent = make_agent(target)
    agent.gauge("queue_depth", 12)
    agent.gauge("gpu.cache_bytes", 1.5e9)
    agent.set_status("degraded", "model   reload\nin progress")

    report = only(target)
    assert report.status == "degraded"
    assert report.detail == "model reload in progress"
    assert report.gauges == {"queue_depth": 12.0, "gpu.cache_bytes": 1.5e9}
    assert report.handles == ()

    agent.gauge("queue_depth", 3)
    agent.set_status("ok")
    report = only(target)
    assert (report.status, report.detail, report.gauges["queue_depth"]) == ("ok", "", 3.0)
    assert report.to_dict()["gauges"] == {"queue_depth": 3.0, "gpu.cache_bytes": 1.5e9}


def test_started_agent_publishes_a_status_change_without_waiting_for_the_interval(
    target: RedisTarget,
) -> None:
    """set_status wakes the heartbeat thread: the change shows long before the next beat."""
    agent = make_agent(target, ttl_seconds=120).start(interval_seconds=100)
    try:
        wait_for(lambda: len(reports(target)) == 1, timeout_seconds=10, message="first heartbeat")
        agent.set_status("failing", "CUDA out of memory")
        wait_for(
            lambda: only(target).status == "failing",
            timeout_seconds=10,
            message="the failing status",
        )
        assert only(target).detail == "CUDA out of memory"
    finally:
        agent.stop()


def test_reports_are_sorted_by_component_name(target: RedisTarget) -> None:
    """read_components returns components by name, whatever order they registered in."""
    for name in ("zeta", "alpha", "mid-1"):
        make_agent(target, name).heartbeat()

    assert [r.component for r in reports(target)] == ["alpha", "mid-1", "zeta"]


def test_reports_of_another_project_are_not_read(target: RedisTarget) -> None:
    """Projects sharing one Redis see only their own components."""
    Agent("worker", url=target.url, password=PASSWORD, project="elsewhere").heartbeat()
    Agent("web", url=target.url, password=PASSWORD, project="agent*").heartbeat()

    assert reports(target) == []
    assert [r.component for r in read_components(target, "elsewhere", stale_after_seconds=60)] == [
        "worker"
    ]


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda a: Agent("bad name"), "Invalid component name 'bad name'"),
        (lambda a: Agent("x:y"), "Invalid component name 'x:y'"),
        (lambda a: Agent(""), "Invalid component name ''"),
        (lambda a: a.set_status("broken"), "Invalid component status 'broken': use one of ok"),
        (lambda a: a.gauge("depth", float("nan")), "Gauge 'depth' needs a finite number"),
        (lambda a: a.gauge("depth", float("inf")), "Gauge 'depth' needs a finite number"),
        (lambda a: a.gauge("depth", "3"), "Gauge 'depth' needs a number, not str"),
        (lambda a: a.gauge("depth", True), "Gauge 'depth' needs a number, not bool"),
        (lambda a: a.gauge("depth", 10**400), "Gauge 'depth' needs a finite number, not an int"),
        (lambda a: a.gauge("depth", -(10**400)), "Gauge 'depth' needs a finite number"),
        (lambda a: Agent("w", ttl_seconds=10**400), "ttl_seconds needs a finite number"),
        (lambda a: Agent("w", ttl_seconds=True), "ttl_seconds needs a number, not bool"),
        (lambda a: a.start(interval_seconds=10**400), "interval_seconds needs a finite number"),
        (lambda a: a.start(interval_seconds=True), "interval_seconds needs a number, not bool"),
        (lambda a: a.gauge("9lives", 1), "Invalid gauge name '9lives'"),
        (lambda a: a.on_request("free caches", dict), "Invalid request kind 'free caches'"),
        (lambda a: a.on_request("gpu.free", "nope"), "must be callable"),
        (lambda a: a.start(interval_seconds=30), "must be above 0 and below ttl_seconds (30)"),
        (lambda a: a.start(interval_seconds=0), "must be above 0 and below ttl_seconds"),
        (lambda a: Agent("w", ttl_seconds=0.5), "ttl_seconds must be at least 1"),
    ],
)
def test_invalid_input_raises_value_error_naming_it(call: object, expected: str) -> None:
    """Bad names, statuses, gauge values, kinds and intervals are refused with a clear message."""
    agent = Agent("valid", url="redis://127.0.0.1:1/0", project=PROJECT)
    with pytest.raises(ValueError) as raised:
        call(agent)  # type: ignore[operator]
    assert expected in str(raised.value)


def test_agent_without_redis_settings_is_off_and_harmless(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With no URL given and none in the environment the agent says so once and does nothing."""
    with caplog.at_level(logging.WARNING, logger="opsctl.agent"):
        agent = Agent("worker")
    assert not agent.enabled
    assert "OPSCTL_REDIS_URL" in caplog.text
    agent.set_status("degraded", "still fine")
    agent.gauge("depth", 1)
    assert agent.start(interval_seconds=1) is agent
    assert not agent.running
    agent.stop()


def test_agent_takes_its_settings_from_the_environment(
    target: RedisTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPSCTL_REDIS_URL, OPSCTL_REDIS_PASSWORD and OPSCTL_PROJECT are all it needs."""
    monkeypatch.setenv("OPSCTL_REDIS_URL", target.url)
    monkeypatch.setenv("OPSCTL_REDIS_PASSWORD", PASSWORD)
    monkeypatch.setenv("OPSCTL_PROJECT", PROJECT)
    Agent("from-env").heartbeat()

    assert only(target).component == "from-env"


def test_wrong_password_does_not_raise_into_the_app(
    target: RedisTarget, caplog: pytest.LogCaptureFixture
) -> None:
    """Refused authentication is an outage like any other: logged without the password."""
    agent = Agent("worker", url=target.url, password="wrong-password-123", project=PROJECT)
    with caplog.at_level(logging.WARNING, logger="opsctl.agent"):
        agent.heartbeat()
        agent.set_status("ok")
    assert reports(target) == []
    assert caplog.text.count("cannot reach Redis") == 1
    assert "wrong-password-123" not in caplog.text


def test_redis_stopped_and_restarted_under_a_running_agent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The application keeps calling the agent through an outage without an exception;
    the outage is logged once, and heartbeats and requests resume when Redis is back.
    """
    folder = tmp_path / "restart"
    port = free_port()
    server = start_redis(folder, port=port, password=PASSWORD)
    target = RedisTarget(server.url, PASSWORD)
    agent = make_agent(target, ttl_seconds=5)
    agent.on_request("ping", lambda payload: {"pong": payload["n"]})
    calls_failed: list[BaseException] = []
    keep_calling = threading.Event()

    def application() -> None:
        counter = 0
        while not keep_calling.is_set():
            try:
                agent.gauge("counter", counter)
                agent.set_status("ok", f"call {counter}")
            except BaseException as error:  # noqa: BLE001 (the test records any)
                calls_failed.append(error)
            counter += 1
            time.sleep(0.05)

    app = threading.Thread(target=application)
    caplog.set_level(logging.INFO, logger="opsctl.agent")
    agent.start(interval_seconds=0.2)
    app.start()
    try:
        wait_for(lambda: len(reports(target)) == 1, timeout_seconds=10, message="registration")
        server.stop()
        wait_for(
            lambda: "cannot reach Redis" in caplog.text,
            timeout_seconds=10,
            message="the outage to be logged",
        )
        time.sleep(1.5)  # several failed heartbeats and request polls
        assert caplog.text.count("cannot reach Redis") == 1
        assert app.is_alive()

        restarted: RedisServer = start_redis(folder, port=port, password=PASSWORD)
        try:
            wait_for(
                lambda: len(reports(target)) == 1, timeout_seconds=15, message="heartbeat to resume"
            )
            assert only(target).detail.startswith("call ")
            replies = request(target, PROJECT, "ping", {"n": 5}, timeout_seconds=10)
            assert [(r.ok, r.result) for r in replies] == [(True, {"pong": 5})]
            assert caplog.text.count("reaches Redis again") == 1
        finally:
            keep_calling.set()
            app.join(10)
            agent.stop()
            restarted.stop()
    finally:
        keep_calling.set()
        server.stop()
    assert calls_failed == []


def test_reading_an_unreachable_redis_fails_with_a_clear_masked_message() -> None:
    """read_components names the server, masks the password and exits 1 through the CLI."""
    url = f"redis://user:hidden-password-9@127.0.0.1:{free_port()}/0"
    with pytest.raises(OperationFailedError) as raised:
        read_components(RedisTarget(url, None), PROJECT, stale_after_seconds=60)
    message = raised.value.message
    assert message.startswith("Cannot read component reports: Redis at redis://user:********@")
    assert "hidden-password-9" not in message


def test_importing_the_agent_does_not_import_redis() -> None:
    """Embedding costs nothing until the agent connects: redis is imported lazily."""
    import subprocess
    import sys

    code = "import sys, opsctl.agent; print(sorted({'redis', 'pydantic'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
