"""The figures batch commands publish at the end of a run."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from opsctl.metrics import gauge, new_registry

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from opsctl.checks import Report


def verify_registry(report: Report, *, finished_at: datetime) -> CollectorRegistry:
    """Return a registry holding the ``opsctl_verify_*`` figures of ``report``.

    Every status gets a sample, zero included, so that a rule on ``status="fail"`` sees
    the count drop back to 0 instead of a series that vanished.
    """
    registry = new_registry()
    gauge(registry, "opsctl_verify_last_run_timestamp_seconds").set(finished_at.timestamp())
    gauge(registry, "opsctl_verify_success").set(1 if report.status == "pass" else 0)
    gauge(registry, "opsctl_verify_duration_seconds").set(report.duration_ms / 1000)
    checks = gauge(registry, "opsctl_verify_checks")
    for status, count in report.summary.items():
        checks.labels(status=status).set(count)
    return registry
