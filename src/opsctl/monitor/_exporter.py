"""The monitor's /metrics: every figure of a cycle, by the catalog's names, on one registry
served by prometheus_client's HTTP server on a daemon thread.

Label sets are bounded by the config (checks, services, paths, alerts) or by the
application code (components, their gauge names); a series whose subject disappears is
removed, so a scrape never shows figures of things no longer there.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from opsctl.errors import ConfigError, OpsctlError, ResourceUnavailableError
from opsctl.monitor._text import one_line

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Gauge

    from opsctl.gpu._model import GpuSnapshot
    from opsctl.gpu._status import ProcessOwner
    from opsctl.monitor._alerts import AlertState
    from opsctl.monitor._rules import CycleData

logger = logging.getLogger(__name__)

# The application decides its components' and gauges' names; past these many series a
# family stops growing, so a bug there cannot blow up Prometheus.
MAX_COMPONENTS = 200
MAX_COMPONENT_GAUGES = 1000


class _Series:
    """One labelled family whose label sets are replaced as a whole each time it is set."""

    def __init__(self, registry: CollectorRegistry, name: str) -> None:
        from opsctl.metrics import gauge

        self.gauge = gauge(registry, name)
        self._labels: set[tuple[str, ...]] = set()

    def replace(self, values: Mapping[tuple[str, ...], float]) -> None:
        for labels, value in values.items():
            self.gauge.labels(*labels).set(value)
        for labels in self._labels - set(values):
            self.gauge.remove(*labels)
        self._labels = set(values)


class MetricsExporter:
    """Holds the registry and turns each cycle's figures into samples."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from opsctl.metrics import counter, new_registry

        self.registry = registry if registry is not None else new_registry()
        self._cycles = counter(self.registry, "opsctl_monitor_cycles_total")
        self._series: dict[str, _Series] = {}
        self._server: Any = None

    def _gauge(self, name: str) -> Gauge:
        from opsctl.metrics import gauge

        return gauge(self.registry, name)

    def series(self, name: str) -> _Series:
        """The labelled family ``name``, made on first use."""
        if name not in self._series:
            self._series[name] = _Series(self.registry, name)
        return self._series[name]

    def update(self, data: CycleData, alerts: Iterable[AlertState]) -> None:
        """Set every family the cycle measured; leave the others as they were."""
        if data.report is not None:
            self._checks(data)
        if data.disks is not None:
            self.series("opsctl_disk_free_bytes").replace(
                {(d.path,): d.free_bytes for d in data.disks}
            )
            self.series("opsctl_disk_size_bytes").replace(
                {(d.path,): d.size_bytes for d in data.disks}
            )
        if data.host is not None:
            self._gauge("opsctl_memory_available_bytes").set(data.host.memory_available_bytes)
            self._gauge("opsctl_memory_total_bytes").set(data.host.memory_total_bytes)
            self._gauge("opsctl_load1").set(data.host.load1)
            self._gauge("opsctl_cpu_count").set(data.host.cpu_count)
        if data.redis is not None:
            self._redis(data)
        if data.backup is not None and data.backup.newest_finished_at is not None:
            age = data.at - data.backup.newest_finished_at.timestamp()
            self._gauge("opsctl_backup_age_seconds").set(max(age, 0.0))
        if data.components is not None:
            self._components(data)
        if data.gpu is not None:
            self._gpu(data.gpu, data.gpu_owners)
        self._alerts(alerts)

    def cycle_done(self, *, duration_seconds: float, at: float) -> None:
        """Count a finished cycle."""
        self._cycles.inc()
        self._gauge("opsctl_monitor_cycle_duration_seconds").set(duration_seconds)
        self._gauge("opsctl_monitor_last_cycle_timestamp_seconds").set(at)

    def set_queued(self, count: int) -> None:
        """How many notifications wait for the notifier."""
        self._gauge("opsctl_notifications_queued").set(count)

    def _checks(self, data: CycleData) -> None:
        from opsctl.checks import effective_status

        assert data.report is not None  # noqa: S101 (the caller checked)
        success: dict[tuple[str, ...], float] = {}
        duration: dict[tuple[str, ...], float] = {}
        service_up: dict[tuple[str, ...], float] = {}
        for result in data.report.checks:
            labels = (result.name, result.service or "")
            up = 0.0 if effective_status(result) == "fail" else 1.0
            success[labels] = up
            duration[labels] = result.duration_ms / 1000
            if result.service is not None:
                service_up[(result.service,)] = min(service_up.get((result.service,), 1.0), up)
        self.series("opsctl_check_success").replace(success)
        self.series("opsctl_check_duration_seconds").replace(duration)
        self.series("opsctl_service_up").replace(service_up)

    def _redis(self, data: CycleData) -> None:
        redis = data.redis
        assert redis is not None  # noqa: S101 (the caller checked)
        self._gauge("opsctl_redis_up").set(1 if redis.up else 0)
        if not redis.up:
            return
        self._gauge("opsctl_redis_used_memory_bytes").set(redis.used_memory_bytes)
        self._gauge("opsctl_redis_maxmemory_bytes").set(redis.maxmemory_bytes)
        self._gauge("opsctl_redis_connected_clients").set(redis.connected_clients)
        if redis.last_save_timestamp is not None:
            self._gauge("opsctl_redis_last_save_timestamp_seconds").set(redis.last_save_timestamp)
        if redis.last_bgsave_ok is not None:
            self._gauge("opsctl_redis_last_bgsave_success").set(1 if redis.last_bgsave_ok else 0)

    def _components(self, data: CycleData) -> None:
        up: dict[tuple[str, ...], float] = {}
        seen: dict[tuple[str, ...], float] = {}
        gauges: dict[tuple[str, ...], float] = {}
        for report in data.components or []:
            key = (report.component,)
            if key not in up and len(up) >= MAX_COMPONENTS:
                continue
            fresh = 1.0 if report.status == "ok" and not report.stale else 0.0
            up[key] = max(up.get(key, 0.0), fresh)
            seen[key] = max(seen.get(key, 0.0), report.last_seen.timestamp())
            for name, value in report.gauges.items():
                if len(gauges) < MAX_COMPONENT_GAUGES:
                    gauges[(report.component, name)] = value
        for name in data.vanished:
            up[(name,)] = 0.0
        self.series("opsctl_component_up").replace(up)
        self.series("opsctl_component_last_heartbeat_timestamp_seconds").replace(seen)
        self.series("opsctl_component_gauge").replace(gauges)

    def _gpu(self, snapshot: GpuSnapshot, owners: list[ProcessOwner] | None) -> None:
        from opsctl.gpu._metrics import fill_registry

        fill_registry(self.registry, snapshot, owners)

    def _alerts(self, alerts: Iterable[AlertState]) -> None:
        firing: dict[tuple[str, ...], float] = {}
        for state in alerts:
            for severity in ("warning", "critical"):
                on = state.state == "firing" and state.severity == severity
                firing[(state.key, severity)] = 1.0 if on else 0.0
        self.series("opsctl_alert_firing").replace(firing)

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics on ``host:port`` from a daemon thread; return the port bound.

        Raises :class:`~opsctl.errors.ConfigError` (exit 2) when ``host`` cannot be resolved
        or is no address of this machine, and :class:`ResourceUnavailableError` (exit 4)
        when the port cannot be bound there (in use, or privileged).
        """
        from prometheus_client import start_http_server

        try:
            server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except (OSError, UnicodeError) as error:
            raise _bind_error(host, port, error) from None
        self._server = server
        bound = server.server_address[1]
        logger.info("Serving /metrics on http://%s:%d/metrics", host, bound)
        return int(bound)

    def close(self) -> None:
        """Stop serving /metrics."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def port_in_use(host: str, port: int) -> bool:
    """Tell whether something accepts connections on ``host:port`` (for messages and tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _bind_error(host: str, port: int, error: OSError | UnicodeError) -> OpsctlError:
    """The error to report when /metrics cannot be served on ``host:port``: a host that
    does not resolve or is not this machine's is the config's fault; a taken port is not.
    """
    shown = one_line(host)
    if isinstance(error, UnicodeError | socket.gaierror):
        reason = error.strerror if isinstance(error, socket.gaierror) else "not a valid name"
        message = (
            f"Cannot serve /metrics: monitoring.metrics_host '{shown}' does not resolve ({reason})."
        )
        return ConfigError(message, hint=_HOST_HINT)
    reason = error.strerror or str(error)
    message = f"Cannot serve /metrics on {shown}:{port}: {reason}."
    if error.errno == errno.EADDRNOTAVAIL:
        return ConfigError(message, hint=_HOST_HINT)
    if error.errno == errno.EADDRINUSE:
        hint = (
            "Another process (perhaps another monitor) uses the port: stop it, or choose "
            "another with monitoring.metrics_port or --metrics-port."
        )
    else:
        hint = (
            "Choose another port with monitoring.metrics_port or --metrics-port (ports "
            "below 1024 need privileges)."
        )
    return ResourceUnavailableError(message, hint=hint)


_HOST_HINT = "Set monitoring.metrics_host to an address of this machine, such as 127.0.0.1."
