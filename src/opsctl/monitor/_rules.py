"""What one cycle saw, turned into one observation per alert.

Alert keys are stable and bounded by the config: ``check:<check name>`` per health check,
``disk_free:<path>``, ``memory_used``, ``load_per_cpu``, ``redis_up``, ``redis_memory``,
``redis_bgsave``, ``backup_age``, ``heartbeat:<component>``, ``component:<component>``,
``gpu_memory:<index>`` and ``gpu_temperature:<index>``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opsctl.monitor._alerts import Level, Observation

if TYPE_CHECKING:
    from opsctl.agent import ComponentReport
    from opsctl.checks import CheckResult, Report
    from opsctl.config import Project
    from opsctl.config._model import Threshold
    from opsctl.gpu._model import GpuSnapshot
    from opsctl.gpu._status import ProcessOwner
    from opsctl.monitor._probes import BackupFigures, DiskFigures, HostFigures, RedisFigures

_WORST_STATUS = {"ok": 0, "degraded": 1, "failing": 2}
_CHECK_LEVELS: dict[str, Level] = {"fail": "critical", "warn": "warning"}
_STATUS_LEVELS: dict[str, Level] = {"ok": "ok", "degraded": "warning"}


@dataclass
class CycleData:
    """Everything one cycle measured; ``None`` where a probe did not run or failed."""

    at: float
    report: Report | None = None
    disks: list[DiskFigures] | None = None
    host: HostFigures | None = None
    redis: RedisFigures | None = None
    backup: BackupFigures | None = None
    components: list[ComponentReport] | None = None
    vanished: dict[str, float] = field(default_factory=dict)
    gpu: GpuSnapshot | None = None
    gpu_owners: list[ProcessOwner] | None = None


def observations(project: Project, data: CycleData) -> Iterator[Observation]:
    """Yield an observation for every alert the cycle has figures for."""
    if data.report is not None:
        yield from _checks(data.report.checks)
    if data.disks is not None:
        yield from _disks(project, data.disks)
    if data.host is not None:
        yield from _host(project, data.host)
    if data.redis is not None:
        yield from _redis(project, data.redis)
    if data.backup is not None:
        yield _backup(project, data.backup, data.at)
    if data.components is not None:
        yield from _components(project, data.components, data.vanished, data.at)
    if data.gpu is not None:
        yield from _gpu(project, data.gpu)


def level_for(value: float, threshold: Threshold | None) -> Level:
    """``critical`` at or above the critical level, ``warning`` at or above warn, else ok."""
    if threshold is None:
        return "ok"
    if threshold.critical is not None and value >= threshold.critical:
        return "critical"
    if threshold.warn is not None and value >= threshold.warn:
        return "warning"
    return "ok"


def is_system_disk_check(result: CheckResult) -> bool:
    """The health run's own disk checks of ``[monitoring.disk]``: the ``disk_free`` alerts
    judge the same paths with the same thresholds, so these raise no alert of their own.
    """
    return result.kind == "disk" and result.service is None


def _checks(results: Sequence[CheckResult]) -> Iterator[Observation]:
    from opsctl.checks import effective_status

    for result in results:
        if is_system_disk_check(result):
            continue
        status = effective_status(result)
        level: Level = _CHECK_LEVELS.get(status, "ok")
        hint = f"opsctl logs {result.service}" if result.kind == "process" else "opsctl health"
        yield Observation(
            key=f"check:{result.name}",
            level=level,
            title=f"Check {result.name} {'passes' if level == 'ok' else status + 's'}",
            service=result.service,
            value=status,
            threshold="pass",
            hint=hint,
            detail=result.detail,
        )


def _threshold_text(threshold: Threshold | None, level: Level, unit: str) -> str | None:
    if threshold is None:
        return None
    chosen = threshold.critical if level == "critical" else threshold.warn
    chosen = chosen if chosen is not None else threshold.critical
    return None if chosen is None else f">= {chosen:g}{unit}"


def _figure(
    key: str,
    value: float,
    threshold: Threshold | None,
    *,
    what: str,
    unit: str,
    hint: str,
    service: str | None = None,
    detail: str | None = None,
) -> Observation:
    level = level_for(value, threshold)
    shown = f"{value:.1f}{unit}"
    return Observation(
        key=key,
        level=level,
        title=f"{what}: {shown}",
        service=service,
        value=shown,
        threshold=_threshold_text(threshold, level, unit),
        hint=hint,
        detail=detail,
    )


def _disks(project: Project, disks: list[DiskFigures]) -> Iterator[Observation]:
    section = project.config.monitoring.disk
    for disk in disks:
        free = disk.free_percent
        level: Level = "ok"
        limit = section.warn_free_percent
        if free < section.fail_free_percent:
            level, limit = "critical", section.fail_free_percent
        elif free < section.warn_free_percent:
            level = "warning"
        yield Observation(
            key=f"disk_free:{disk.path}",
            level=level,
            title=f"Disk {disk.path}: {free:.1f} % free ({disk.free_bytes / (1 << 30):.1f} GiB)",
            value=f"{free:.1f} % free",
            threshold=f"< {limit:g} % free",
            hint="Free space: old logs, backups (opsctl backup prune), caches.",
        )


def _host(project: Project, host: HostFigures) -> Iterator[Observation]:
    thresholds = project.config.monitoring.thresholds
    yield _figure(
        "memory_used",
        host.memory_used_percent,
        thresholds.memory_used_percent,
        what="Memory used",
        unit=" %",
        hint="Find the largest processes (ps aux --sort=-rss) and restart or resize them.",
    )
    yield _figure(
        "load_per_cpu",
        host.load_per_cpu,
        thresholds.load_per_cpu,
        what=f"Load per CPU ({host.load1:.2f} over {host.cpu_count} CPUs)",
        unit="",
        hint="Find what uses the CPUs (top) and whether it should.",
    )


def _redis(project: Project, redis: RedisFigures) -> Iterator[Observation]:
    thresholds = project.config.monitoring.thresholds
    # A Redis that is a service of the stack has health checks alerting on it already.
    if project.config.redis.url:
        yield Observation(
            key="redis_up",
            level="ok" if redis.up else "critical",
            title=f"Redis at {redis.url} {'answers' if redis.up else 'does not answer'}",
            value="up" if redis.up else "down",
            threshold="up",
            hint="Check the Redis server and its log.",
            detail=redis.error,
        )
    if not redis.up:
        return
    percent = redis.memory_percent
    if percent is not None:
        yield _figure(
            "redis_memory",
            percent,
            thresholds.redis_memory_percent,
            what="Redis memory of maxmemory",
            unit=" %",
            hint="Check key growth and TTLs, or raise maxmemory.",
        )
    if redis.last_bgsave_ok is not None:
        yield Observation(
            key="redis_bgsave",
            level="ok" if redis.last_bgsave_ok else "warning",
            title=f"Redis background save {'succeeds' if redis.last_bgsave_ok else 'failed'}",
            value="ok" if redis.last_bgsave_ok else "err",
            threshold="ok",
            hint="Read Redis's log: disk full or permissions of its dir.",
        )


def _backup(project: Project, backup: BackupFigures, now: float) -> Observation:
    from opsctl.config._model import Threshold

    threshold = project.config.monitoring.thresholds.backup_age_hours
    if threshold is None:
        hours = project.config.backup.max_age_hours
        threshold = Threshold(warn=hours, critical=2 * hours)
    hint = "Run opsctl backup run and check its cron line and log."
    if backup.newest_finished_at is None:
        return Observation(
            key="backup_age",
            level="critical",
            title=f"No complete backup in {backup.destination}",
            value="none",
            threshold=_threshold_text(threshold, "critical", " h"),
            hint=hint,
        )
    hours_old = max(now - backup.newest_finished_at.timestamp(), 0.0) / 3600
    return _figure(
        "backup_age", hours_old, threshold, what="Newest backup age", unit=" h", hint=hint
    )


def _components(
    project: Project,
    reports: list[ComponentReport],
    vanished: dict[str, float],
    now: float,
) -> Iterator[Observation]:
    threshold = project.config.monitoring.thresholds.heartbeat_age_seconds
    by_component: dict[str, list[ComponentReport]] = {}
    for report in reports:
        by_component.setdefault(report.component, []).append(report)
    hint = "Check the component's process and log (opsctl status, opsctl logs)."
    for name, group in sorted(by_component.items()):
        freshest = min(group, key=lambda report: report.age_seconds)
        yield _figure(
            f"heartbeat:{name}",
            freshest.age_seconds,
            threshold,
            what=f"Heartbeat of {name} is old",
            unit=" s",
            hint=hint,
        )
        worst = max(group, key=lambda report: _WORST_STATUS.get(report.status, 2))
        level: Level = _STATUS_LEVELS.get(worst.status, "critical")
        yield Observation(
            key=f"component:{name}",
            level=level,
            title=f"Component {name} reports {worst.status}",
            value=worst.status,
            threshold="ok",
            hint=hint,
            detail=worst.detail or None,
        )
    for name, last_seen in sorted(vanished.items()):
        yield _figure(
            f"heartbeat:{name}",
            max(now - last_seen, 0.0),
            threshold,
            what=f"Heartbeat of {name} is old (no report in Redis)",
            unit=" s",
            hint=hint,
        )


def _gpu(project: Project, snapshot: GpuSnapshot) -> Iterator[Observation]:
    thresholds = project.config.monitoring.thresholds
    hint = "See opsctl gpu status; opsctl gpu cleanup frees memory held by dead processes."
    for device in snapshot.devices:
        if device.memory_used_percent is not None:
            yield _figure(
                f"gpu_memory:{device.index}",
                device.memory_used_percent,
                thresholds.gpu_memory_percent,
                what=f"GPU {device.index} memory used",
                unit=" %",
                hint=hint,
            )
        if device.temperature_celsius is not None:
            yield _figure(
                f"gpu_temperature:{device.index}",
                device.temperature_celsius,
                thresholds.gpu_temperature_celsius,
                what=f"GPU {device.index} temperature",
                unit=" C",
                hint="Check the cooling and the power limit (nvidia-smi -q -d TEMPERATURE).",
            )
