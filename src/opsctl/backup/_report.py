"""Telling the world how a run went: metrics for Prometheus and a notification."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opsctl.backup._store import Store

if TYPE_CHECKING:
    from opsctl.backup._manifest import Manifest
    from opsctl.config import Project

logger = logging.getLogger(__name__)

JOB = "backup"


@dataclass(frozen=True)
class RunOutcome:
    """What :func:`report` needs: the committed manifest, or why the run failed."""

    duration_seconds: float
    manifest: Manifest | None = None
    error: str | None = None
    hint: str | None = None


def report(project: Project, store: Store, outcome: RunOutcome) -> list[str]:
    """Publish metrics and send the notification; return warnings (never raises for a
    reporting problem: the backup's own result is what counts).
    """
    warnings = []
    problem = _publish_metrics(project, store, outcome)
    if problem:
        warnings.append(problem)
    problem = _notify(project, outcome)
    if problem:
        warnings.append(problem)
    return warnings


def _publish_metrics(project: Project, store: Store, outcome: RunOutcome) -> str | None:
    monitoring = project.config.monitoring
    if not monitoring.pushgateway_url and not monitoring.textfile_dir:
        return None
    from opsctl import metrics
    from opsctl.errors import OpsctlError

    registry = metrics.new_registry()
    complete = [stored for stored in store.list() if stored.problem is None]
    last = outcome.manifest or (complete[0].manifest if complete else None)
    metrics.gauge(registry, "opsctl_backup_last_run_success").set(1 if outcome.error is None else 0)
    metrics.gauge(registry, "opsctl_backup_duration_seconds").set(outcome.duration_seconds)
    if last is not None:
        metrics.gauge(registry, "opsctl_backup_last_success_timestamp_seconds").set(
            last.finished_at.timestamp()
        )
        metrics.gauge(registry, "opsctl_backup_size_bytes").set(last.archive_size_bytes)
        metrics.gauge(registry, "opsctl_backup_files").set(last.file_count)
    textfile = None
    if monitoring.textfile_dir:
        textfile = project.root / monitoring.textfile_dir
    try:
        metrics.publish(
            registry, job=JOB, push_gateway=monitoring.pushgateway_url, textfile_dir=textfile
        )
    except OpsctlError as error:
        logger.warning("Backup metrics were not published: %s", error.message)
        return f"metrics not published: {error.message}"
    return None


def _notify(project: Project, outcome: RunOutcome) -> str | None:
    if outcome.error is None and not project.config.notify.on_success:
        return None
    from opsctl.errors import OpsctlError
    from opsctl.notify import Notification, notifier_for

    try:
        notifier = notifier_for(project)
    except OpsctlError as error:
        logger.warning("No notification sent: %s", error.message)
        return f"no notification sent: {error.message}"
    if notifier is None:
        return None
    if outcome.error is not None:
        notification = Notification(
            key=f"backup:{project.name}",
            event="backup_failed",
            severity="critical",
            title=f"Backup of {project.name} failed on {socket.gethostname()}",
            detail=outcome.error,
            hint=outcome.hint or "Run: opsctl backup run -v",
        )
    else:
        assert outcome.manifest is not None  # noqa: S101 (a success has its manifest)
        manifest = outcome.manifest
        notification = Notification(
            key=f"backup:{project.name}",
            event="backup_succeeded",
            severity="info",
            title=f"Backup {manifest.id} of {project.name} succeeded",
            value=f"{manifest.archive_size_bytes / 1e6:.1f} MB",
            detail=f"{manifest.file_count} files in {outcome.duration_seconds:.1f} s",
        )
    if not notifier.send(notification):
        return "the notification was queued for later delivery"
    return None
