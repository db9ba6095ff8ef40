"""The monitor running for real: against a real redis-server that is stopped and started
again under it, scraped over HTTP, stopped by signals, and through the CLI.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsctl.config import load_project
from opsctl.monitor import Monitor, MonitorOptions
from tests.support import RedisServer, free_port, run_cli, start_redis, wait_for, write_project

FAST = """
[monitoring]
interval_seconds = 0.5
fire_after = 2
resolve_after = 2
repeat_interval_seconds = 0
disk = {{ paths = ["{root}"] }}
"""


def project_toml(root: Path, redis_url: str, extra: str = "") -> str:
    return (
        f'[project]\nname = "demo"\n[redis]\nurl = "{redis_url}"\n' + FAST.format(root=root) + extra
    )


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Fetch /metrics and parse it with prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:  # noqa: S310 (loopback)
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(
    metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return metrics.get((name, frozenset(labels.items())))


def try_scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    try:
        return scrape(port)
    except OSError:
        return {}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis(tmp_path / "redis")
    yield server
    server.stop()


def start_monitor(config: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "opsctl", "-v", "-c", str(config), "monitor", *args],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


@pytest.mark.slow
def test_redis_restarted_under_the_monitor_fires_resolves_and_is_in_history(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """The monitor keeps running while Redis is down, reports the gap on /metrics and as an
    alert that fires and resolves, records both in the history, and exits 0 on SIGTERM.
    """
    root = tmp_path / "proj"
    config = write_project(root, project_toml(root, redis_server.url))
    port = free_port()
    log = tmp_path / "monitor.log"
    process = start_monitor(config, "--metrics-port", str(port), log=log)
    firing = ("opsctl_alert_firing", {"alert": "redis_up", "severity": "critical"})
    try:
        wait_for(
            lambda: sample(try_scrape(port), "opsctl_redis_up") == 1.0,
            timeout_seconds=30,
            message="the monitor reports Redis up",
        )
        assert sample(scrape(port), *firing[:1], **firing[1]) == 0.0

        redis_server.stop()
        wait_for(
            lambda: sample(try_scrape(port), *firing[:1], **firing[1]) == 1.0,
            timeout_seconds=30,
            message="the redis_up alert fires",
        )
        metrics = scrape(port)
        assert sample(metrics, "opsctl_redis_up") == 0.0
        assert process.poll() is None

        restarted = start_redis(redis_server.directory, port=redis_server.port)
        try:
            wait_for(
                lambda: sample(try_scrape(port), *firing[:1], **firing[1]) == 0.0,
                timeout_seconds=30,
                message="the redis_up alert resolves",
            )
            cycles = sample(scrape(port), "opsctl_monitor_cycles_total")
            assert cycles is not None
            assert cycles >= 5  # one up, two down to fire, two up to resolve
        finally:
            restarted.stop()
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)

    assert code == 0
    text = log.read_text()
    assert "Alert redis_up firing" in text
    assert "Traceback" not in text

    result = run_cli("-c", str(config), "health", "--history", "--json")
    assert result.exit_code == 0
    history = json.loads(result.stdout)
    events = [(t["event"], t["to_state"]) for t in history["transitions"] if t["key"] == "redis_up"]
    assert events == [("firing", "firing"), ("resolved", "ok")]
    assert history["firing"] == []
    assert any(row["check"] == f"disk {root}" for row in history["uptime"])


@pytest.mark.slow
def test_ctrl_c_stops_with_130_and_state_survives(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """SIGINT ends the loop cleanly with 130; alert states are there for the next run."""
    root = tmp_path / "proj"
    config = write_project(root, project_toml(root, redis_server.url))
    log = tmp_path / "monitor.log"
    process = start_monitor(config, log=log)
    try:
        wait_for(
            lambda: (
                (root / ".opsctl" / "monitor.sqlite").exists()
                and "redis_up" in run_cli("-c", str(config), "monitor", "alerts", "--json").stdout
            ),
            timeout_seconds=30,
            message="the monitor recorded its first cycle",
        )
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)

    assert code == 130
    assert "Traceback" not in log.read_text()
    alerts = json.loads(run_cli("-c", str(config), "monitor", "alerts", "--json").stdout)
    states = {a["alert"]: a["state"] for a in alerts["alerts"]}
    assert states["redis_up"] == "ok"
    assert states["memory_used"] in {"ok", "pending", "firing"}


def test_metrics_port_in_use_is_a_clear_error_with_exit_4(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """A taken /metrics port: one line naming host and port, exit 4, no traceback."""
    root = tmp_path / "proj"
    config = write_project(root, project_toml(root, redis_server.url))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("-c", str(config), "monitor", "--once", "--metrics-port", str(port))

    assert result.exit_code == 4
    assert f"Cannot serve /metrics on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.output


def test_a_second_monitor_of_the_project_is_busy(tmp_path: Path, redis_server: RedisServer) -> None:
    """Two monitors would notify everything twice: the second exits 75."""
    from opsctl.monitor._loop import monitor_lock

    root = tmp_path / "proj"
    config = write_project(root, project_toml(root, redis_server.url))
    with monitor_lock(root / ".opsctl"):
        result = run_cli("-c", str(config), "monitor", "--once")

    assert result.exit_code == 75
    assert "Another monitor of this project is running" in result.stderr


def test_once_exits_with_health_code(tmp_path: Path, redis_server: RedisServer) -> None:
    """--once is one cycle with health's exit code: 0 healthy, 1 when a check fails."""
    root = tmp_path / "proj"
    config = write_project(root, project_toml(root, redis_server.url))
    healthy = run_cli("-c", str(config), "monitor", "--once", "--json")

    config = write_project(
        root,
        project_toml(root, redis_server.url, '[services.api]\ncommand = "sleep 1000"\n'),
    )
    unhealthy = run_cli("-c", str(config), "monitor", "--once", "--json")

    assert healthy.exit_code == 0, healthy.output
    assert json.loads(healthy.stdout)["health"] == "healthy"
    assert unhealthy.exit_code == 1
    outcome = json.loads(unhealthy.stdout)
    assert outcome["health"] == "unhealthy"
    assert outcome["failed_probes"] == []


def test_heartbeats_of_components_are_watched(tmp_path: Path, redis_server: RedisServer) -> None:
    """A component that reports through opsctl.agent is up on /metrics; one reporting
    'failing' fires its component alert; one that stops beating fires its heartbeat alert.
    """
    from opsctl.agent import Agent

    root = tmp_path / "proj"
    thresholds = "[monitoring.thresholds]\nheartbeat_age_seconds = { warn = 0.4, critical = 0.8 }\n"
    write_project(root, project_toml(root, redis_server.url, thresholds))
    project = load_project(root / "opsctl.toml")
    agent = Agent("worker", url=redis_server.url, project="demo", ttl_seconds=30)
    agent.gauge("queue_depth", 7)
    agent.heartbeat()
    monitor = Monitor(project, None, options=MonitorOptions(interval_seconds=0.5))
    try:
        monitor.cycle()
        from prometheus_client import generate_latest

        text = generate_latest(monitor.exporter.registry).decode()
        assert 'opsctl_component_up{component="worker"} 1.0' in text
        assert 'opsctl_component_gauge{component="worker",name="queue_depth"} 7.0' in text

        agent.set_status("failing", "GPU lost")
        agent.heartbeat()
        monitor.cycle()
        outcome = monitor.cycle()
        assert ("component:worker", "firing") in [(t.key, t.event) for t in outcome.transitions]
        assert monitor.alerts["component:worker"].severity == "critical"

        wait_for(
            lambda: (
                monitor.cycle() is not None and monitor.alerts["heartbeat:worker"].state == "firing"
            ),
            timeout_seconds=10,
            message="the heartbeat alert fires once no heartbeat comes",
        )
    finally:
        monitor.close()
        agent.stop()


def test_gpu_figures_come_from_the_snapshot(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With recorded device answers, dcgm-exporter's names appear on /metrics and the GPU
    memory alert is observed per device.
    """
    recorded = Path(__file__).parents[1] / "gpu" / "recorded" / "h100-container.json"
    monkeypatch.setenv("OPSCTL_GPU_RECORDED", str(recorded))
    root = tmp_path / "proj"
    write_project(root, project_toml(root, redis_server.url))
    project = load_project(root / "opsctl.toml")
    monitor = Monitor(project, None, options=MonitorOptions(interval_seconds=0.5))
    try:
        monitor.cycle()
        from prometheus_client import generate_latest

        text = generate_latest(monitor.exporter.registry).decode()
    finally:
        monitor.close()

    assert "DCGM_FI_DEV_FB_USED{" in text
    assert 'gpu="0"' in text
    assert "gpu_memory:0" in monitor.alerts
    # The recorded processes belong to no service of this project: counted under "".
    assert 'opsctl_gpu_process_memory_bytes{gpu="0",service=""}' in text


def test_unreadable_gpu_recording_costs_only_the_gpu_figures(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A malformed recording is reported once; the cycle still measures the rest."""
    recorded = tmp_path / "broken.json"
    recorded.write_text("{not json")
    monkeypatch.setenv("OPSCTL_GPU_RECORDED", str(recorded))
    root = tmp_path / "proj"
    write_project(root, project_toml(root, redis_server.url))
    project = load_project(root / "opsctl.toml")
    monitor = Monitor(project, None, options=MonitorOptions(interval_seconds=0.5))
    try:
        outcome = monitor.cycle()
        from prometheus_client import generate_latest

        text = generate_latest(monitor.exporter.registry).decode()
    finally:
        monitor.close()

    assert "gpu" not in outcome.failed_probes
    assert monitor.gpu_probe.absent_reason is not None
    assert "broken.json" in monitor.gpu_probe.absent_reason
    assert "DCGM_FI_DEV_FB_USED{" not in text
    assert "opsctl_redis_up 1.0" in text


def test_probe_that_raises_is_logged_and_the_cycle_goes_on(
    tmp_path: Path, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing probe costs only its own figures: the others still arrive."""
    root = tmp_path / "proj"
    write_project(
        root, project_toml(root, redis_server.url).replace(f'["{root}"]', '["/nonexistent/x"]')
    )
    project = load_project(root / "opsctl.toml")
    monitor = Monitor(project, None, options=MonitorOptions(interval_seconds=0.5))
    try:
        first = monitor.cycle()
        second = monitor.cycle()
    finally:
        monitor.close()

    assert "disks" in first.failed_probes
    assert "disks" in second.failed_probes
    assert monitor.failures["disks"] == 2
    assert "redis_up" in monitor.alerts
    assert "memory_used" in monitor.alerts
    # Logged once, not every cycle.
    assert sum("Probe disks failed" in r.getMessage() for r in caplog.records) == 1
    assert os.environ.get("OPSCTL_GPU_RECORDED") is None


def test_backup_age_comes_from_the_newest_complete_backup(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """No backup yet is critical; after a real `opsctl backup run` the age is minutes."""
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "data" / "a.txt").write_text("payload\n")
    extra = '[backup]\npaths = ["data"]\nmax_age_hours = 1\n'
    config = write_project(root, project_toml(root, redis_server.url, extra))
    project = load_project(config)

    before = Monitor(project, None, options=MonitorOptions(interval_seconds=0.5))
    try:
        before.cycle()
    finally:
        before.close()
    assert run_cli("-c", str(config), "backup", "run").exit_code == 0
    after = Monitor(project, None, options=MonitorOptions(interval_seconds=0.5))
    try:
        after.cycle()
        from prometheus_client import generate_latest

        text = generate_latest(after.exporter.registry).decode()
    finally:
        after.close()

    first = before.alerts["backup_age"].last
    second = after.alerts["backup_age"].last
    assert first is not None
    assert (first.level, first.value) == ("critical", "none")
    assert second is not None
    assert second.level == "ok"
    assert second.threshold == ">= 1 h"
    age = next(
        float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("opsctl_backup_age_seconds ")
    )
    assert 0 <= age < 600


@pytest.mark.slow
def test_a_hanging_probe_is_abandoned_at_the_deadline_and_not_restarted(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """A probe that never returns costs its figures, not the cycle, nor a thread a cycle."""
    import threading

    from opsctl.monitor._workers import Guarded

    root = tmp_path / "proj"
    write_project(root, project_toml(root, redis_server.url))
    project = load_project(root / "opsctl.toml")
    release = threading.Event()
    calls = []

    def hang() -> None:
        calls.append(1)
        release.wait(60)

    monitor = Monitor(project, None, options=MonitorOptions(interval_seconds=0.5))
    monitor._probes["host"] = Guarded("host", hang)
    try:
        first = monitor.cycle()
        second = monitor.cycle()
    finally:
        release.set()
        monitor.close()

    assert "host" in first.failed_probes
    assert "host" in second.failed_probes
    assert len(calls) == 1
    assert "redis_up" in monitor.alerts
    assert "memory_used" not in monitor.alerts


def test_redis_password_never_appears_in_logs_or_notices(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The Redis URL's password is masked in the alert and in every log line."""
    import logging

    password = "monitor-secret-pw-4711"
    server = start_redis(tmp_path / "redis", password=password)
    root = tmp_path / "proj"
    url = f"redis://:{password}@127.0.0.1:{server.port}/0"
    write_project(root, project_toml(root, url))
    project = load_project(root / "opsctl.toml")
    monitor = Monitor(project, None, options=MonitorOptions(interval_seconds=0.5))
    caplog.set_level(logging.DEBUG, logger="opsctl")
    try:
        monitor.cycle()
        server.stop()
        outcomes = [monitor.cycle(), monitor.cycle()]
    finally:
        monitor.close()
        server.stop()

    notices = [n for o in outcomes for n in o.notices]
    assert [n.key for n in notices] == ["redis_up"]
    assert "********" in notices[0].title
    assert all(password not in repr(n) for n in notices)
    assert all(password not in record.getMessage() for record in caplog.records)
    assert any("Probe" in record.getMessage() for record in caplog.records)


def test_check_name_with_a_newline_stays_on_one_log_line(tmp_path: Path) -> None:
    """A newline in a check's name is written as \\n: it cannot forge a second log line."""
    root = tmp_path / "proj"
    config = write_project(
        root,
        f"""
        [project]
        name = "demo"
        [monitoring]
        interval_seconds = 0.2
        fire_after = 1
        disk = {{ paths = ["{root}"] }}
        [services.api]
        command = "sleep 1000"
        [[services.api.health]]
        kind = "tcp"
        port = {free_port()}
        name = "bad\\nWARNING forged line"
        """,
    )

    result = subprocess.run(
        [sys.executable, "-m", "opsctl", "-c", str(config), "monitor", "--cycles", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1, result.stderr
    assert "Alert check:bad\\nWARNING forged line firing" in result.stderr
    assert not any(line.startswith("WARNING forged") for line in result.stderr.splitlines())


@pytest.mark.parametrize("host", ["bad host", "a..b"])
def test_unresolvable_metrics_host_is_a_config_error_not_a_port_in_use(
    tmp_path: Path, redis_server: RedisServer, host: str
) -> None:
    """A metrics_host that does not resolve (no DNS query: glibc and Python refuse these
    names themselves) exits 2 naming the key, without the "port in use" hint.
    """
    root = tmp_path / "proj"
    config = write_project(
        root,
        project_toml(root, redis_server.url).replace(
            "interval_seconds = 0.5", f'interval_seconds = 0.5\nmetrics_host = "{host}"'
        ),
    )

    result = run_cli("-c", str(config), "monitor", "--once", "--metrics-port", str(free_port()))

    assert result.exit_code == 2, result.output
    assert f"monitoring.metrics_host '{host}' does not resolve" in result.stderr
    assert "uses the port" not in result.stderr
    assert "Traceback" not in result.output
