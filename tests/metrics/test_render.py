"""`opsctl config render prometheus|alerts|grafana`: parsed, checked with promtool, and
written only with the catalog's names and the thresholds of opsctl.toml.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsctl.metrics import CATALOG
from opsctl.metrics._render import ALERTS_FILE, MONITOR_JOB, PROMETHEUS_NAMES, PUSHGATEWAY_JOB
from opsctl.metrics._yaml import to_yaml
from tests.support import run_cli, write_project

FULL = """
[project]
name = "shop"

[monitoring]
interval_seconds = 10
metrics_port = 9464
pushgateway_url = "https://ops:pg-secret-value@push.example.invalid:9443/gw/"

[monitoring.disk]
warn_free_percent = 12
fail_free_percent = 4

[monitoring.thresholds]
redis_memory_percent = { warn = 70, critical = 85 }
gpu_memory_percent = { warn = 88, critical = 96 }
heartbeat_age_seconds = { warn = 45, critical = 120 }

[backup]
max_age_hours = 0.01
"""

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left"}
_KEYWORDS |= {"group_right", "bool", "offset", "inf", "nan"}


def expression_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions,
    keywords, label matchers, label lists, durations or numbers.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)", text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match.group(1).lower() in _KEYWORDS:
            continue
        names.add(match.group(1))
    return names


def known_names() -> set[str]:
    return {name for spec in CATALOG.values() for name in spec.sample_names} | PROMETHEUS_NAMES


@pytest.fixture
def config(tmp_path: Path) -> str:
    return str(write_project(tmp_path / "project", FULL))


def render(config: str, target: str, *args: str) -> str:
    result = run_cli("-c", config, "config", "render", target, *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: scripts/setup.sh --dev installs Debian's prometheus"
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def alert_rules(config: str) -> list[dict[str, Any]]:
    document = yaml.safe_load(render(config, "alerts"))
    (group,) = document["groups"]
    return list(group["rules"])


# --- the name checker itself --------------------------------------------------------------


def test_name_checker_finds_names_and_ignores_functions_labels_and_durations() -> None:
    """The checker the render tests rely on sees exactly the selected names."""
    expr = (
        'max(opsctl_backup_age_seconds{job="x"}) > 3.6e+03 or (time() - '
        "sum by (gpu) (rate(DCGM_FI_DEV_FB_USED[5m]))) > 1 and bogus_name"
    )
    assert expression_names(expr) == {
        "opsctl_backup_age_seconds",
        "DCGM_FI_DEV_FB_USED",
        "bogus_name",
    }
    assert not expression_names(expr) <= known_names()


# --- prometheus -------------------------------------------------------------------------


def test_prometheus_config_scrapes_the_monitor_and_the_pushgateway(config: str) -> None:
    """The monitor's host:port from [monitoring]; the Pushgateway with honor_labels, its
    scheme and path prefix, and its user but never its password.
    """
    text = render(config, "prometheus")
    document = yaml.safe_load(text)

    jobs = {job["job_name"]: job for job in document["scrape_configs"]}
    monitor, gateway = jobs[MONITOR_JOB], jobs[PUSHGATEWAY_JOB]
    assert monitor["static_configs"] == [
        {"targets": ["127.0.0.1:9464"], "labels": {"project": "shop"}}
    ]
    assert monitor["metrics_path"] == "/metrics"
    assert document["global"]["scrape_interval"] == "10s"
    assert gateway["honor_labels"] is True
    assert gateway["scheme"] == "https"
    assert gateway["metrics_path"] == "/gw/metrics"
    assert gateway["static_configs"][0]["targets"] == ["push.example.invalid:9443"]
    assert gateway["basic_auth"]["username"] == "ops"
    assert "pg-secret-value" not in text
    assert document["rule_files"] == [ALERTS_FILE]


def test_monitor_listening_everywhere_is_scraped_by_host_name(tmp_path: Path) -> None:
    """metrics_host 0.0.0.0 is no address to scrape: the host's name is used."""
    toml = '[monitoring]\nmetrics_host = "0.0.0.0"\nmetrics_port = 9100\n'
    config = str(write_project(tmp_path / "p", toml))

    document = yaml.safe_load(render(config, "prometheus"))

    (job,) = document["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"{socket.gethostname()}:9100"]


def test_nothing_to_scrape_is_a_config_error(tmp_path: Path) -> None:
    """Neither a metrics port nor a Pushgateway: exit 2 naming both keys."""
    config = str(write_project(tmp_path / "p", '[project]\nname = "x"\n'))

    result = run_cli("-c", config, "config", "render", "prometheus")

    assert result.exit_code == 2
    assert "monitoring.metrics_port" in result.stderr
    assert "monitoring.pushgateway_url" in result.stderr
    assert result.stdout == ""


def test_malformed_pushgateway_url_is_a_config_error(tmp_path: Path) -> None:
    """A Pushgateway URL that is not http(s) is named with its key."""
    config = str(write_project(tmp_path / "p", '[monitoring]\npushgateway_url = "ftp://h:1"\n'))

    result = run_cli("-c", config, "config", "render", "prometheus")

    assert result.exit_code == 2
    assert "monitoring.pushgateway_url" in result.stderr


def test_promtool_accepts_the_config_and_rules_together(config: str, tmp_path: Path) -> None:
    """prometheus.yml and the rules file it names pass promtool check config and rules."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    written = run_cli("-c", config, "config", "render", "prometheus", "-o", str(folder / "p.yml"))
    assert written.exit_code == 0, written.output
    (folder / ALERTS_FILE).write_text(render(config, "alerts"))

    checked = promtool("check", "config", "p.yml", cwd=folder)
    rules = promtool("check", "rules", ALERTS_FILE, cwd=folder)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_output_file_is_written_atomically_with_mode_0644(config: str, tmp_path: Path) -> None:
    """-o replaces the file as a whole (new inode) and leaves it world-readable."""
    target = tmp_path / "alerts.yml"
    target.write_text("old")
    old_inode = target.stat().st_ino

    result = run_cli("-c", config, "config", "render", "alerts", "--output", str(target))

    assert result.exit_code == 0, result.output
    assert target.stat().st_ino != old_inode
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert yaml.safe_load(target.read_text())["groups"]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# --- alerts -----------------------------------------------------------------------------


def test_every_rule_uses_only_catalog_names(config: str) -> None:
    """No rendered expression selects a name the catalog lacks."""
    rules = alert_rules(config)

    used = set().union(*(expression_names(rule["expr"]) for rule in rules))

    assert used <= known_names(), used - known_names()
    assert len(used) >= 15


def test_rules_cover_what_on_call_needs(config: str) -> None:
    """One rule (or a warning/critical pair) per situation the issue lists."""
    names = {rule["alert"] for rule in alert_rules(config)}

    for expected in (
        "OpsctlServiceDown",
        "OpsctlCheckFailing",
        "OpsctlDiskSpaceLowWarning",
        "OpsctlDiskSpaceLowCritical",
        "OpsctlRedisMemoryNearMaxWarning",
        "OpsctlRedisLastBgsaveFailed",
        "OpsctlBackupTooOldWarning",
        "OpsctlBackupTooOldCritical",
        "OpsctlHeartbeatStaleWarning",
        "OpsctlGpuMemoryHighWarning",
        "OpsctlGpuMemoryHighCritical",
        "OpsctlMonitorNotRunning",
    ):
        assert expected in names


def test_rules_take_their_thresholds_from_the_config(config: str) -> None:
    """Disk, Redis, GPU, heartbeat and backup figures are opsctl.toml's, not defaults."""
    rules = {rule["alert"]: rule for rule in alert_rules(config)}

    assert rules["OpsctlDiskSpaceLowWarning"]["expr"].endswith("< 12")
    assert rules["OpsctlDiskSpaceLowCritical"]["expr"].endswith("< 4")
    assert rules["OpsctlRedisMemoryNearMaxWarning"]["expr"].endswith("> 70")
    assert rules["OpsctlRedisMemoryNearMaxCritical"]["expr"].endswith("> 85")
    assert rules["OpsctlGpuMemoryHighWarning"]["expr"].endswith("> 88")
    assert rules["OpsctlGpuMemoryHighCritical"]["expr"].endswith("> 96")
    assert rules["OpsctlHeartbeatStaleCritical"]["expr"].endswith("> 120")
    assert rules["OpsctlBackupTooOldWarning"]["expr"].endswith("> 36")
    assert rules["OpsctlBackupTooOldCritical"]["expr"].endswith("> 72")
    assert rules["OpsctlServiceDown"]["for"] == "20s"
    assert rules["OpsctlGpuMemoryHighCritical"]["labels"] == {"severity": "critical"}


def test_disabled_disk_levels_render_no_rule(tmp_path: Path) -> None:
    """A free-space level of 0 is off in opsctl.toml, so no rule for it."""
    toml = "[monitoring]\nmetrics_port = 9100\n[monitoring.disk]\nwarn_free_percent = 10\n"
    toml += "fail_free_percent = 0\n"
    config = str(write_project(tmp_path / "p", toml))

    names = {rule["alert"] for rule in alert_rules(config)}

    assert "OpsctlDiskSpaceLowWarning" in names
    assert "OpsctlDiskSpaceLowCritical" not in names


RULE_TESTS: dict[str, Any] = {
    "rule_files": [ALERTS_FILE],
    "evaluation_interval": "10s",
    "tests": [
        {
            "interval": "10s",
            "input_series": [
                {
                    "series": 'opsctl_service_up{service="api",job="opsctl-monitor",'
                    'instance="h:9464"}',
                    "values": "1 0 0 0 0 0 0 0",
                },
                {"series": 'up{job="opsctl-monitor",instance="h:9464"}', "values": "1x8"},
                {
                    "series": 'opsctl_monitor_last_cycle_timestamp_seconds{job="opsctl-monitor",'
                    'instance="h:9464"}',
                    "values": "0+10x8",
                },
                {"series": 'DCGM_FI_DEV_FB_USED{gpu="0"}', "values": "92x8"},
                {"series": 'DCGM_FI_DEV_FB_FREE{gpu="0"}', "values": "8x8"},
                {
                    "series": 'opsctl_backup_last_success_timestamp_seconds{job="backup",'
                    'instance="h"}',
                    "values": "0x8",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "10s", "alertname": "OpsctlServiceDown", "exp_alerts": []},
                {
                    "eval_time": "40s",
                    "alertname": "OpsctlServiceDown",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "critical",
                                "service": "api",
                                "job": "opsctl-monitor",
                                "instance": "h:9464",
                            },
                            "exp_annotations": {
                                "summary": "Service api is down",
                                "description": "Service api is not running or fails its "
                                "health checks.",
                            },
                        }
                    ],
                },
                {
                    "eval_time": "40s",
                    "alertname": "OpsctlGpuMemoryHighWarning",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "warning", "gpu": "0"},
                            "exp_annotations": {
                                "summary": "GPU 0 memory high",
                                "description": "Over 88 % of GPU 0's memory in use (92.0 %).",
                            },
                        }
                    ],
                },
                {"eval_time": "40s", "alertname": "OpsctlGpuMemoryHighCritical", "exp_alerts": []},
                {
                    "eval_time": "50s",
                    "alertname": "OpsctlBackupTooOldWarning",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "warning"},
                            "exp_annotations": {
                                "summary": "Backup too old",
                                "description": "The newest successful backup is over 0.01 h old.",
                            },
                        }
                    ],
                },
                {"eval_time": "50s", "alertname": "OpsctlBackupTooOldCritical", "exp_alerts": []},
                {"eval_time": "70s", "alertname": "OpsctlMonitorNotRunning", "exp_alerts": []},
            ],
        },
        {
            "interval": "10s",
            "input_series": [],
            "alert_rule_test": [
                {
                    "eval_time": "1m",
                    "alertname": "OpsctlMonitorNotRunning",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "critical", "job": "opsctl-monitor"},
                            "exp_annotations": {
                                "summary": "opsctl monitor is not running",
                                "description": "opsctl monitor cannot be scraped or its last "
                                "cycle ended over 30 s ago.",
                            },
                        }
                    ],
                }
            ],
        },
    ],
}


def test_rules_fire_and_stay_quiet_as_promtool_evaluates_them(config: str, tmp_path: Path) -> None:
    """Evaluated by promtool on synthetic series: a service down fires after its hold,
    GPU memory at 92 % warns but is not critical, a 50 s old backup is over 36 s, a silent
    monitor is reported and a healthy one is not.
    """
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / ALERTS_FILE).write_text(render(config, "alerts"))
    (folder / "tests.yml").write_text(to_yaml(RULE_TESTS))

    result = promtool("test", "rules", "tests.yml", cwd=folder)

    assert result.returncode == 0, result.stdout + result.stderr


# --- grafana ----------------------------------------------------------------------------


def test_grafana_dashboard_has_a_panel_per_family_with_the_datasource_input(
    config: str,
) -> None:
    """Import format with ${DS_PROMETHEUS}; every catalog family is graphed once, and every
    panel expression uses catalog names only.
    """
    dashboard = json.loads(render(config, "grafana"))

    assert [item["name"] for item in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    panels = [panel for panel in dashboard["panels"] if panel["type"] == "timeseries"]
    graphed: list[str] = []
    for panel in panels:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        (target,) = panel["targets"]
        names = expression_names(target["expr"])
        assert names <= known_names(), names
        graphed.extend(names)
    assert sorted(graphed) == sorted(CATALOG)
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def test_grafana_panels_carry_units_and_turn_timestamps_into_ages(config: str) -> None:
    """Bytes panels say bytes; a Unix-time family is shown as its age in seconds."""
    panels = {
        panel["targets"][0]["expr"]: panel
        for panel in json.loads(render(config, "grafana"))["panels"]
        if panel["type"] == "timeseries"
    }

    assert panels["opsctl_disk_free_bytes"]["fieldConfig"]["defaults"]["unit"] == "bytes"
    age = panels["time() - opsctl_backup_last_success_timestamp_seconds"]
    assert age["fieldConfig"]["defaults"]["unit"] == "s"
    assert "rate(opsctl_monitor_cycles_total[5m])" in panels
