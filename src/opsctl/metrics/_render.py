"""Prometheus scrape config, alerting rules and a Grafana dashboard, from the catalog.

Every expression is written with the catalog's names (``_name`` refuses any other), and
every figure a rule compares against comes from opsctl.toml, so the rules fire where the
monitor's own alerts do.
"""

from __future__ import annotations

import json
import math
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opsctl.errors import ConfigError, UsageError
from opsctl.metrics._catalog import CATALOG, MetricSpec
from opsctl.metrics._yaml import to_yaml

if TYPE_CHECKING:
    from opsctl.config import Project
    from opsctl.config._model import Threshold

MONITOR_JOB = "opsctl-monitor"
PUSHGATEWAY_JOB = "opsctl-pushgateway"
ALERTS_FILE = "opsctl-alerts.yml"
#: Names Prometheus itself provides, which rules may use besides the catalog's.
PROMETHEUS_NAMES = frozenset({"up"})
_UNSPECIFIED_HOSTS = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104 (compared, never bound)


def _name(name: str) -> str:
    """A metric name for an expression; KeyError when the catalog lacks it."""
    if name not in CATALOG and name not in PROMETHEUS_NAMES:
        message = f"{name!r} is not in opsctl's metric catalog."
        raise KeyError(message)
    return name


def _duration(seconds: float) -> str:
    """A Prometheus duration: whole seconds, or milliseconds below that."""
    if seconds >= 1:
        return f"{math.ceil(seconds)}s"
    return f"{max(math.ceil(seconds * 1000), 1)}ms"


def _number(value: float) -> str:
    return f"{value:g}"


# --- prometheus.yml ---------------------------------------------------------------------


def prometheus_config(project: Project) -> dict[str, Any]:
    """Return a prometheus.yml scraping the monitor's /metrics and, when configured, the
    Pushgateway (with ``honor_labels`` so pushed job and instance labels are kept).

    Raises ConfigError when there is nothing to scrape: neither
    ``[monitoring].metrics_port`` nor ``[monitoring].pushgateway_url`` is set.
    """
    monitoring = project.config.monitoring
    interval = _duration(monitoring.interval_seconds)
    jobs: list[dict[str, Any]] = []
    if monitoring.metrics_port is not None:
        jobs.append(_monitor_job(project, interval))
    if monitoring.pushgateway_url:
        jobs.append(_pushgateway_job(project, monitoring.pushgateway_url))
    if not jobs:
        message = (
            f"{project.config_path}: monitoring.metrics_port and monitoring.pushgateway_url "
            "are both unset; there is nothing for Prometheus to scrape."
        )
        raise ConfigError(message, hint="Set [monitoring].metrics_port, then render again.")

    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [ALERTS_FILE],
        "scrape_configs": jobs,
    }


def _monitor_job(project: Project, interval: str) -> dict[str, Any]:
    monitoring = project.config.monitoring
    host = monitoring.metrics_host
    # A monitor listening on every address is scraped by this host's name.
    if host in _UNSPECIFIED_HOSTS:
        host = socket.gethostname()
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return {
        "job_name": MONITOR_JOB,
        "scrape_interval": interval,
        "metrics_path": "/metrics",
        "static_configs": [
            {"targets": [f"{host}:{monitoring.metrics_port}"], "labels": {"project": project.name}}
        ],
    }


def _pushgateway_job(project: Project, url: str) -> dict[str, Any]:
    from opsctl.metrics._publish import validate_gateway_url

    try:
        validate_gateway_url(url)
    except UsageError as error:
        message = f"{project.config_path}: monitoring.pushgateway_url: {error.message}"
        raise ConfigError(message) from None

    parts = urlsplit(url.strip())
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    job: dict[str, Any] = {
        "job_name": PUSHGATEWAY_JOB,
        "honor_labels": True,
        "scheme": parts.scheme,
        "metrics_path": parts.path.rstrip("/") + "/metrics",
        "static_configs": [{"targets": [f"{host}:{port}"], "labels": {"project": project.name}}],
    }
    if parts.username:
        # The password stays out of the rendered file: Prometheus reads it from a file.
        job["basic_auth"] = {"username": parts.username, "password_file": "pushgateway.password"}
    return job


# --- alerting rules ---------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One alerting rule; ``names`` are the catalog names its expression uses."""

    alert: str
    expr: str
    severity: str
    summary: str
    description: str
    for_seconds: float = 0.0
    names: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.alert, "expr": self.expr}
        if self.for_seconds > 0:
            rule["for"] = _duration(self.for_seconds)
        rule["labels"] = {"severity": self.severity}
        rule["annotations"] = {"summary": self.summary, "description": self.description}
        return rule


def alert_rules(project: Project) -> list[Rule]:
    """Return the alerting rules for ``project``, thresholds taken from opsctl.toml."""
    monitoring = project.config.monitoring
    hold = monitoring.fire_after * monitoring.interval_seconds
    return [
        *_service_rules(hold),
        *_host_rules(project, hold),
        *_redis_rules(project, hold),
        *_backup_rules(project),
        *_component_rules(project, hold),
        *_gpu_rules(project, hold),
        *_monitor_rules(project),
    ]


def alerts_config(project: Project) -> dict[str, Any]:
    """Return the Prometheus rules file: one group holding :func:`alert_rules`."""
    interval = _duration(project.config.monitoring.interval_seconds)
    rules = [rule.to_dict() for rule in alert_rules(project)]
    return {"groups": [{"name": f"opsctl-{project.name}", "interval": interval, "rules": rules}]}


def _levels(threshold: Threshold | None) -> list[tuple[str, float]]:
    if threshold is None:
        return []
    levels = [("warning", threshold.warn), ("critical", threshold.critical)]
    return [(severity, value) for severity, value in levels if value is not None]


def _service_rules(hold: float) -> list[Rule]:
    service_up, check_success = _name("opsctl_service_up"), _name("opsctl_check_success")
    return [
        Rule(
            "OpsctlServiceDown",
            f"{service_up} == 0",
            "critical",
            "Service {{ $labels.service }} is down",
            "Service {{ $labels.service }} is not running or fails its health checks.",
            hold,
            (service_up,),
        ),
        Rule(
            "OpsctlCheckFailing",
            f"{check_success} == 0",
            "warning",
            "Check {{ $labels.check }} is failing",
            "Check {{ $labels.check }} of service {{ $labels.service }} fails.",
            hold,
            (check_success,),
        ),
    ]


def _host_rules(project: Project, hold: float) -> list[Rule]:
    monitoring = project.config.monitoring
    free, size = _name("opsctl_disk_free_bytes"), _name("opsctl_disk_size_bytes")
    available, total = _name("opsctl_memory_available_bytes"), _name("opsctl_memory_total_bytes")
    load, cpus = _name("opsctl_load1"), _name("opsctl_cpu_count")
    rules: list[Rule] = []
    disk_levels = [
        ("warning", monitoring.disk.warn_free_percent),
        ("critical", monitoring.disk.fail_free_percent),
    ]
    for severity, percent in disk_levels:
        if percent <= 0:
            continue
        rules.append(
            Rule(
                f"OpsctlDiskSpaceLow{severity.title()}",
                f"{free} / {size} * 100 < {_number(percent)}",
                severity,
                "Disk space low on {{ $labels.path }}",
                f"Under {_number(percent)} % free on the file system holding "
                '{{ $labels.path }} ({{ $value | printf "%.1f" }} % free).',
                hold,
                (free, size),
            )
        )
    for severity, percent in _levels(monitoring.thresholds.memory_used_percent):
        rules.append(
            Rule(
                f"OpsctlMemoryHigh{severity.title()}",
                f"(1 - {available} / {total}) * 100 > {_number(percent)}",
                severity,
                "Memory use high",
                f'Over {_number(percent)} % of memory in use ({{{{ $value | printf "%.1f" }}}} %).',
                hold,
                (available, total),
            )
        )
    for severity, ratio in _levels(monitoring.thresholds.load_per_cpu):
        rules.append(
            Rule(
                f"OpsctlLoadHigh{severity.title()}",
                f"{load} / {cpus} > {_number(ratio)}",
                severity,
                "Load high",
                f"One-minute load per CPU over {_number(ratio)} "
                '({{ $value | printf "%.2f" }}).',
                hold,
                (load, cpus),
            )
        )
    return rules


def _redis_rules(project: Project, hold: float) -> list[Rule]:
    up, used = _name("opsctl_redis_up"), _name("opsctl_redis_used_memory_bytes")
    limit, bgsave = _name("opsctl_redis_maxmemory_bytes"), _name("opsctl_redis_last_bgsave_success")
    rules = [
        Rule(
            "OpsctlRedisDown",
            f"{up} == 0",
            "critical",
            "Redis is down",
            "The stack's Redis does not answer.",
            hold,
            (up,),
        ),
        Rule(
            "OpsctlRedisLastBgsaveFailed",
            f"{bgsave} == 0",
            "critical",
            "Redis's last background save failed",
            "Redis could not write its snapshot; data since the last good one is at risk.",
            0,
            (bgsave,),
        ),
    ]
    for severity, percent in _levels(project.config.monitoring.thresholds.redis_memory_percent):
        rules.append(
            Rule(
                f"OpsctlRedisMemoryNearMax{severity.title()}",
                f"{used} / ({limit} > 0) * 100 > {_number(percent)}",
                severity,
                "Redis memory near maxmemory",
                f"Redis uses over {_number(percent)} % of maxmemory "
                '({{ $value | printf "%.1f" }} %).',
                hold,
                (used, limit),
            )
        )
    return rules


def _backup_rules(project: Project) -> list[Rule]:
    from opsctl.config._model import Threshold

    age = _name("opsctl_backup_age_seconds")
    last_success = _name("opsctl_backup_last_success_timestamp_seconds")
    last_run = _name("opsctl_backup_last_run_success")
    threshold = project.config.monitoring.thresholds.backup_age_hours
    if threshold is None:
        hours = project.config.backup.max_age_hours
        threshold = Threshold(warn=hours, critical=2 * hours)
    rules = [
        Rule(
            "OpsctlBackupFailed",
            f"{last_run} == 0",
            "critical",
            "The last backup run failed",
            "opsctl backup run failed on {{ $labels.instance }}; see its log.",
            0,
            (last_run,),
        )
    ]
    for severity, hours in _levels(threshold):
        seconds = _number(hours * 3600)
        rules.append(
            Rule(
                f"OpsctlBackupTooOld{severity.title()}",
                f"max({age}) > {seconds} or (time() - max({last_success})) > {seconds}",
                severity,
                "Backup too old",
                f"The newest successful backup is over {_number(hours)} h old.",
                0,
                (age, last_success),
            )
        )
    return rules


def _component_rules(project: Project, hold: float) -> list[Rule]:
    up = _name("opsctl_component_up")
    heartbeat = _name("opsctl_component_last_heartbeat_timestamp_seconds")
    rules = [
        Rule(
            "OpsctlComponentNotOk",
            f"{up} == 0",
            "warning",
            "Component {{ $labels.component }} is not ok",
            "Component {{ $labels.component }} reports a non-ok status or a stale heartbeat.",
            hold,
            (up,),
        )
    ]
    for severity, seconds in _levels(project.config.monitoring.thresholds.heartbeat_age_seconds):
        rules.append(
            Rule(
                f"OpsctlHeartbeatStale{severity.title()}",
                f"time() - {heartbeat} > {_number(seconds)}",
                severity,
                "Component {{ $labels.component }} heartbeat is stale",
                f"No heartbeat from {{{{ $labels.component }}}} for over {_number(seconds)} s.",
                0,
                (heartbeat,),
            )
        )
    return rules


def _gpu_rules(project: Project, hold: float) -> list[Rule]:
    used, free = _name("DCGM_FI_DEV_FB_USED"), _name("DCGM_FI_DEV_FB_FREE")
    temperature = _name("DCGM_FI_DEV_GPU_TEMP")
    uncorrected = _name("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL")
    thresholds = project.config.monitoring.thresholds
    rules: list[Rule] = []
    for severity, percent in _levels(thresholds.gpu_memory_percent):
        rules.append(
            Rule(
                f"OpsctlGpuMemoryHigh{severity.title()}",
                f"{used} / ({used} + {free}) * 100 > {_number(percent)}",
                severity,
                "GPU {{ $labels.gpu }} memory high",
                f"Over {_number(percent)} % of GPU {{{{ $labels.gpu }}}}'s memory in use "
                '({{ $value | printf "%.1f" }} %).',
                hold,
                (used, free),
            )
        )
    for severity, celsius in _levels(thresholds.gpu_temperature_celsius):
        rules.append(
            Rule(
                f"OpsctlGpuTemperatureHigh{severity.title()}",
                f"{temperature} > {_number(celsius)}",
                severity,
                "GPU {{ $labels.gpu }} is hot",
                f"GPU {{{{ $labels.gpu }}}} is over {_number(celsius)} °C ({{{{ $value }}}} °C).",
                hold,
                (temperature,),
            )
        )
    rules.append(
        Rule(
            "OpsctlGpuUncorrectedEccErrors",
            f"delta({uncorrected}[15m]) > 0",
            "critical",
            "GPU {{ $labels.gpu }} has uncorrected ECC errors",
            "New double-bit ECC errors on GPU {{ $labels.gpu }}: drain and reset it.",
            0,
            (uncorrected,),
        )
    )
    return rules


def _monitor_rules(project: Project) -> list[Rule]:
    monitoring = project.config.monitoring
    last_cycle = _name("opsctl_monitor_last_cycle_timestamp_seconds")
    queued = _name("opsctl_notifications_queued")
    verify = _name("opsctl_verify_success")
    up = _name("up")
    late = _number(3 * monitoring.interval_seconds)
    rules = [
        Rule(
            "OpsctlVerifyFailing",
            f"{verify} == 0",
            "warning",
            "opsctl verify fails",
            "The last opsctl verify run on {{ $labels.instance }} failed.",
            0,
            (verify,),
        ),
        Rule(
            "OpsctlNotificationsQueued",
            f"{queued} > 0",
            "warning",
            "Notifications cannot be delivered",
            "{{ $value }} notifications wait on disk: the notifier does not answer.",
            15 * 60,
            (queued,),
        ),
    ]
    if monitoring.metrics_port is not None:
        expr = (
            f'{up}{{job="{MONITOR_JOB}"}} == 0 or absent({up}{{job="{MONITOR_JOB}"}}) '
            f"or (time() - {last_cycle}) > {late}"
        )
        rules.append(
            Rule(
                "OpsctlMonitorNotRunning",
                expr,
                "critical",
                "opsctl monitor is not running",
                f"opsctl monitor cannot be scraped or its last cycle ended over {late} s ago.",
                2 * monitoring.interval_seconds,
                (up, last_cycle),
            )
        )
    return rules


# --- Grafana ----------------------------------------------------------------------------

_GRAFANA_UNITS = {
    "seconds": "s",
    "bytes": "bytes",
    "MiB": "decmbytes",
    "percent": "percent",
    "celsius": "celsius",
    "watts": "watt",
    "megahertz": "none",
}
_GROUP_TITLES = {
    "checks": "Checks and services",
    "host": "Host",
    "redis": "Redis",
    "components": "Components",
    "monitor": "Monitor",
    "backup": "Backup",
    "verify": "Verify",
    "memory_bank": "Memory bank",
    "gpu": "GPU",
}
_PANEL_WIDTH = 8
_PANEL_HEIGHT = 7
_GRID_COLUMNS = 24


def panel_query(spec: MetricSpec) -> tuple[str, str, str]:
    """Return the expression, title and Grafana unit of the panel for ``spec``: a rate for
    counters, an age for Unix timestamps, the value itself otherwise.
    """
    name = _name(spec.name)
    if spec.type == "counter":
        return f"rate({name}[5m])", f"{name} (per second)", "ops"
    if name.endswith("_timestamp_seconds"):
        return f"time() - {name}", f"{name} (age)", "s"
    return name, name, _GRAFANA_UNITS.get(spec.unit, "none")


def grafana_dashboard(project: Project) -> dict[str, Any]:
    """Return a Grafana dashboard (import format, ``${DS_PROMETHEUS}`` datasource input)
    with one row per group and one time-series panel per metric family of the catalog.
    """
    datasource = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    panels: list[dict[str, Any]] = []
    y = 0
    for group, specs in _groups().items():
        panels.append(_row(len(panels) + 1, _GROUP_TITLES.get(group, group), y))
        y += 1
        for index, spec in enumerate(specs):
            x = (index * _PANEL_WIDTH) % _GRID_COLUMNS
            if index and x == 0:
                y += _PANEL_HEIGHT
            panels.append(_panel(len(panels) + 1, spec, datasource, x, y))
        y += _PANEL_HEIGHT
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "The Prometheus that scrapes opsctl",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "title": f"opsctl: {project.name}",
        "uid": f"opsctl-{project.name}"[:40],
        "tags": ["opsctl"],
        "timezone": "utc",
        "schemaVersion": 39,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "panels": panels,
    }


def _groups() -> dict[str, list[MetricSpec]]:
    groups: dict[str, list[MetricSpec]] = {}
    for spec in CATALOG.values():
        groups.setdefault(spec.group, []).append(spec)
    return groups


def _row(panel_id: int, title: str, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"h": 1, "w": _GRID_COLUMNS, "x": 0, "y": y},
        "panels": [],
    }


def _panel(
    panel_id: int, spec: MetricSpec, datasource: dict[str, str], x: int, y: int
) -> dict[str, Any]:
    expr, title, unit = panel_query(spec)
    legend = " ".join(f"{{{{{label}}}}}" for label in spec.labels) or "{{instance}}"
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "description": spec.help,
        "datasource": datasource,
        "gridPos": {"h": _PANEL_HEIGHT, "w": _PANEL_WIDTH, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [{"refId": "A", "datasource": datasource, "expr": expr, "legendFormat": legend}],
    }


# --- text -------------------------------------------------------------------------------


def render_prometheus(project: Project) -> str:
    """The scrape config as YAML text."""
    header = f"# Prometheus scrape config for opsctl project {project.name!r}.\n"
    header += f"# Write `opsctl config render alerts` beside it as {ALERTS_FILE}.\n"
    return header + to_yaml(prometheus_config(project))


def render_alerts(project: Project) -> str:
    """The alerting-rules file as YAML text."""
    header = f"# Prometheus alerting rules for opsctl project {project.name!r}.\n"
    return header + to_yaml(alerts_config(project))


def render_grafana(project: Project) -> str:
    """The dashboard as JSON text."""
    return json.dumps(grafana_dashboard(project), indent=2, ensure_ascii=False)
