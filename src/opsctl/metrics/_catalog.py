"""Every metric opsctl exports: name, type, help, unit, labels and who exports it.

The catalog is the single source of the names: the monitor's ``/metrics``, the batch
commands' pushes and textfiles, the rendered alerting rules and the Grafana dashboard all
take them from here, and ``docs/metrics.md`` documents them. Names follow Prometheus
conventions (base units, ``_seconds``, ``_bytes``, ``_total`` for counters,
``_timestamp_seconds`` for Unix times), except the GPU figures, which keep dcgm-exporter's
names and labels verbatim so that dashboards and rules written for it work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["gauge", "counter"]
Exporter = Literal["monitor", "backup", "verify", "gpu"]

#: Every label used in the catalog, with the bound that keeps its set of values small.
LABEL_BOUNDS: dict[str, str] = {
    "check": "the checks configured in opsctl.toml (services' health checks, [[verify.checks]])",
    "service": 'the services in opsctl.toml; for GPU memory also "" (held by no service)',
    "path": "the paths in [monitoring.disk].paths",
    "component": "the components that embed opsctl.agent (fixed by the application code)",
    "name": "the gauge names a component publishes (fixed by the application code)",
    "alert": "the monitor's alert rules (one per check and per watched figure in opsctl.toml)",
    "severity": "info, warning or critical",
    "status": "pass, warn, fail or skip",
    "file": "the memory bank's files (the fixed set its profile expects)",
    "gpu": "the GPU's index on the host (one value per device)",
    "UUID": "the GPU's UUID (one value per device)",
    "device": "the device name, nvidia<index> (one value per device)",
    "modelName": "the GPU's product name (one value per device)",
    "Hostname": "the host's name (one value per host)",
}

_GPU_LABELS = ("gpu", "UUID", "device", "modelName", "Hostname")


@dataclass(frozen=True)
class MetricSpec:
    """One metric family.

    ``unit`` is the Prometheus unit when the name ends with it (``seconds``, ``bytes``), a
    plain unit for the GPU's verbatim names (``MiB``, ``percent``, ``celsius``, ``watts``,
    ``megahertz``), or ``""`` for counts and 0/1 flags. ``group`` gathers families on one
    Grafana row.
    """

    name: str
    type: MetricType
    help: str
    unit: str
    labels: tuple[str, ...]
    exporter: Exporter
    group: str

    @property
    def sample_names(self) -> tuple[str, ...]:
        """The sample names a scrape shows for this family (a counter adds ``_created``)."""
        if self.type == "counter":
            return (self.name, self.name.removesuffix("_total") + "_created")
        return (self.name,)


def _spec(
    name: str,
    type_: MetricType,
    help_: str,
    *,
    unit: str = "",
    labels: tuple[str, ...] = (),
    exporter: Exporter,
    group: str,
) -> MetricSpec:
    return MetricSpec(name, type_, help_, unit, labels, exporter, group)


def _monitor(
    name: str, help_: str, group: str, *, unit: str = "", labels: tuple[str, ...] = ()
) -> MetricSpec:
    return _spec(name, "gauge", help_, unit=unit, labels=labels, exporter="monitor", group=group)


def _gpu(name: str, help_: str, *, unit: str) -> MetricSpec:
    return _spec(name, "gauge", help_, unit=unit, labels=_GPU_LABELS, exporter="gpu", group="gpu")


_SPECS: tuple[MetricSpec, ...] = (
    # Checks and services, as the monitor sees them.
    _monitor(
        "opsctl_check_success",
        "1 when the check's last run passed (or only warned), 0 when it failed.",
        "checks",
        labels=("check", "service"),
    ),
    _monitor(
        "opsctl_check_duration_seconds",
        "How long the check's last run took.",
        "checks",
        unit="seconds",
        labels=("check", "service"),
    ),
    _monitor(
        "opsctl_service_up",
        "1 when the service runs and its health checks pass, 0 otherwise.",
        "checks",
        labels=("service",),
    ),
    # Host resources.
    _monitor(
        "opsctl_disk_free_bytes",
        "Bytes available to unprivileged users on the file system holding the path.",
        "host",
        unit="bytes",
        labels=("path",),
    ),
    _monitor(
        "opsctl_disk_size_bytes",
        "Size of the file system holding the path.",
        "host",
        unit="bytes",
        labels=("path",),
    ),
    _monitor(
        "opsctl_memory_available_bytes",
        "Memory available for new work without swapping (MemAvailable).",
        "host",
        unit="bytes",
    ),
    _monitor("opsctl_memory_total_bytes", "Total usable memory of the host.", "host", unit="bytes"),
    _monitor("opsctl_load1", "One-minute load average of the host.", "host"),
    _monitor("opsctl_cpu_count", "CPUs this host has.", "host"),
    # The stack's Redis.
    _monitor("opsctl_redis_up", "1 when the stack's Redis answered INFO, 0 otherwise.", "redis"),
    _monitor(
        "opsctl_redis_used_memory_bytes",
        "Memory Redis uses for its data (INFO used_memory).",
        "redis",
        unit="bytes",
    ),
    _monitor(
        "opsctl_redis_maxmemory_bytes",
        "Redis maxmemory setting; 0 when unlimited.",
        "redis",
        unit="bytes",
    ),
    _monitor("opsctl_redis_connected_clients", "Clients connected to Redis.", "redis"),
    _monitor(
        "opsctl_redis_last_save_timestamp_seconds",
        "Unix time of Redis's last successful snapshot (INFO rdb_last_save_time).",
        "redis",
        unit="seconds",
    ),
    _monitor(
        "opsctl_redis_last_bgsave_success",
        "1 when Redis's last background save succeeded, 0 when it failed.",
        "redis",
    ),
    # Components reporting through opsctl.agent.
    _monitor(
        "opsctl_component_up",
        "1 when the component's heartbeat is fresh and its status is ok, 0 otherwise.",
        "components",
        labels=("component",),
    ),
    _monitor(
        "opsctl_component_last_heartbeat_timestamp_seconds",
        "Unix time of the component's last heartbeat.",
        "components",
        unit="seconds",
        labels=("component",),
    ),
    _monitor(
        "opsctl_component_gauge",
        "A custom figure the component published (opsctl.agent Agent.gauge).",
        "components",
        labels=("component", "name"),
    ),
    # The monitor itself.
    _monitor(
        "opsctl_alert_firing",
        "1 while the alert fires, 0 otherwise.",
        "monitor",
        labels=("alert", "severity"),
    ),
    _monitor(
        "opsctl_notifications_queued",
        "Notifications waiting on disk until the notifier answers again.",
        "monitor",
    ),
    _spec(
        "opsctl_monitor_cycles_total",
        "counter",
        "Monitoring cycles completed since the monitor started.",
        exporter="monitor",
        group="monitor",
    ),
    _monitor(
        "opsctl_monitor_cycle_duration_seconds",
        "How long the last monitoring cycle took.",
        "monitor",
        unit="seconds",
    ),
    _monitor(
        "opsctl_monitor_last_cycle_timestamp_seconds",
        "Unix time at which the last monitoring cycle ended.",
        "monitor",
        unit="seconds",
    ),
    _monitor(
        "opsctl_backup_age_seconds",
        "Age of the newest successful backup, as the monitor found it.",
        "backup",
        unit="seconds",
    ),
    # Backup runs (pushed or written as a textfile by `opsctl backup run`).
    _spec(
        "opsctl_backup_last_success_timestamp_seconds",
        "gauge",
        "Unix time at which the last successful backup ended.",
        unit="seconds",
        exporter="backup",
        group="backup",
    ),
    _spec(
        "opsctl_backup_last_run_success",
        "gauge",
        "1 when the last backup run succeeded, 0 when it failed.",
        exporter="backup",
        group="backup",
    ),
    _spec(
        "opsctl_backup_duration_seconds",
        "gauge",
        "How long the last backup run took.",
        unit="seconds",
        exporter="backup",
        group="backup",
    ),
    _spec(
        "opsctl_backup_size_bytes",
        "gauge",
        "Size of the last successful backup.",
        unit="bytes",
        exporter="backup",
        group="backup",
    ),
    _spec(
        "opsctl_backup_files",
        "gauge",
        "Files in the last successful backup.",
        exporter="backup",
        group="backup",
    ),
    # Readiness runs (pushed or written as a textfile by `opsctl verify`).
    _spec(
        "opsctl_verify_last_run_timestamp_seconds",
        "gauge",
        "Unix time at which the last verify run ended.",
        unit="seconds",
        exporter="verify",
        group="verify",
    ),
    _spec(
        "opsctl_verify_success",
        "gauge",
        "1 when the last verify run passed, 0 when it failed.",
        exporter="verify",
        group="verify",
    ),
    _spec(
        "opsctl_verify_checks",
        "gauge",
        "Checks of the last verify run, by status.",
        labels=("status",),
        exporter="verify",
        group="verify",
    ),
    _spec(
        "opsctl_verify_duration_seconds",
        "gauge",
        "How long the last verify run took.",
        unit="seconds",
        exporter="verify",
        group="verify",
    ),
    # The memory bank (samples made by opsctl.memory_bank._metrics; help texts must match).
    _monitor("opsctl_memory_bank_active", "1 when every expected file is present.", "memory_bank"),
    _monitor(
        "opsctl_memory_bank_entries",
        "Timestamped entries in the file.",
        "memory_bank",
        labels=("file",),
    ),
    _monitor(
        "opsctl_memory_bank_age_seconds",
        "Seconds since the file's newest entry (or last change when it has none).",
        "memory_bank",
        unit="seconds",
        labels=("file",),
    ),
    _monitor(
        "opsctl_memory_bank_stale",
        "1 when the file is older than stale_after_days.",
        "memory_bank",
        labels=("file",),
    ),
    # GPU: dcgm-exporter's names, units and labels.
    _gpu("DCGM_FI_DEV_FB_USED", "Frame buffer memory in use, in MiB.", unit="MiB"),
    _gpu("DCGM_FI_DEV_FB_FREE", "Frame buffer memory free, in MiB.", unit="MiB"),
    _gpu("DCGM_FI_DEV_GPU_UTIL", "GPU utilisation, in percent.", unit="percent"),
    _gpu(
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        "Memory (copy engine) utilisation, in percent.",
        unit="percent",
    ),
    _gpu("DCGM_FI_DEV_GPU_TEMP", "GPU temperature, in degrees Celsius.", unit="celsius"),
    _gpu("DCGM_FI_DEV_POWER_USAGE", "Power drawn by the GPU, in watts.", unit="watts"),
    _gpu("DCGM_FI_DEV_SM_CLOCK", "Streaming multiprocessor clock, in MHz.", unit="megahertz"),
    _gpu("DCGM_FI_DEV_MEM_CLOCK", "Memory clock, in MHz.", unit="megahertz"),
    # dcgm-exporter declares the ECC totals counters; they are gauges here because
    # prometheus_client would append _total to a counter's name, and the name must stay
    # verbatim. The value is the driver's cumulative volatile count, set on each reading.
    _gpu(
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "Single-bit (corrected) ECC errors since the driver loaded.",
        unit="",
    ),
    _gpu(
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "Double-bit (uncorrected) ECC errors since the driver loaded.",
        unit="",
    ),
    _spec(
        "opsctl_gpu_process_memory_bytes",
        "gauge",
        'GPU memory held by a service\'s processes; service "" for memory held by no service.',
        unit="bytes",
        labels=("gpu", "service"),
        exporter="gpu",
        group="gpu",
    ),
)

#: The catalog by name, in documentation order.
CATALOG: dict[str, MetricSpec] = {spec.name: spec for spec in _SPECS}


def spec_for(name: str) -> MetricSpec:
    """Return the catalog entry for ``name``; ``KeyError`` naming it when there is none."""
    try:
        return CATALOG[name]
    except KeyError:
        message = f"{name!r} is not in opsctl's metric catalog (opsctl.metrics._catalog)."
        raise KeyError(message) from None
