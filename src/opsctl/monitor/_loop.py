"""The monitoring loop: every interval, run the health checks and the resource probes,
feed the alert state machines, record history, notify, and update /metrics.

It outlives every failure of what it watches: a probe that raises or hangs is logged,
counted and skipped for that cycle; the notifier runs on its own thread, so a Slack that
hangs delays no cycle.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.errors import BusyError, ExitCode
from opsctl.monitor._alerts import AlertPolicy, AlertState, Notice, Transition, observe
from opsctl.monitor._exporter import MetricsExporter
from opsctl.monitor._probes import (
    GpuProbe,
    RedisProbe,
    read_backup,
    read_disk,
    read_heartbeats,
    read_host,
)
from opsctl.monitor._rules import CycleData, observations
from opsctl.monitor._silences import Silence, is_silenced
from opsctl.monitor._store import CheckSample, MonitorStore, open_store
from opsctl.monitor._text import one_line
from opsctl.monitor._workers import Dispatcher, Guarded

if TYPE_CHECKING:
    from opsctl.config import Project
    from opsctl.gpu._model import GpuSnapshot
    from opsctl.notify import Notification, Notifier
    from opsctl.runtime import Runtime

logger = logging.getLogger(__name__)

LOCK_NAME = "monitor.lock"
_HEALTH_EXIT = {"healthy": ExitCode.OK, "degraded": ExitCode.DEGRADED}
_BACKUP_EVERY_SECONDS = 300.0
_PRUNE_EVERY_SECONDS = 3600.0
_FORGET_COMPONENT_SECONDS = 86400.0
_FORGET_ALERT_SECONDS = 86400.0


@dataclass(frozen=True)
class MonitorOptions:
    """How to run: the interval, where to serve /metrics (``None``: nowhere), and how many
    cycles (``None``: until stopped).
    """

    interval_seconds: float
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    max_cycles: int | None = None


@dataclass
class CycleOutcome:
    """What one cycle ended with: the health status and the probes that failed."""

    health: str | None
    failed_probes: list[str] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """``opsctl health``'s exit code for the health status (1 when it could not run)."""
        return int(_HEALTH_EXIT.get(self.health or "", ExitCode.FAILED))


class Monitor:
    """The state of a running monitor; :meth:`cycle` runs one round, :meth:`run` loops."""

    def __init__(
        self,
        project: Project,
        runtime: Runtime | None,
        *,
        options: MonitorOptions,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.project = project
        self.runtime = runtime
        self.options = options
        self.clock = clock
        section = project.config.monitoring
        self.policy = AlertPolicy(
            fire_after=section.fire_after,
            resolve_after=section.resolve_after,
            repeat_interval_seconds=section.repeat_interval_seconds,
            flap_window=section.flap_window,
            flap_changes=section.flap_changes,
        )
        self.store: MonitorStore = open_store(project.state_dir)
        self.alerts: dict[str, AlertState] = self.store.load_alerts()
        self.exporter = MetricsExporter()
        self.dispatcher = Dispatcher(notifier, idle_seconds=max(options.interval_seconds, 1.0))
        target = project.redis()
        self.redis_target = target
        self.redis_probe = RedisProbe(target) if target is not None else None
        self.gpu_probe = GpuProbe(project)
        self.components_seen: dict[str, float] = self.store.components_seen()
        self.failures: dict[str, int] = {}
        self._last_errors: dict[str, str] = {}
        self._backup_read_at = -_BACKUP_EVERY_SECONDS
        self._backup_figures: Any = None
        self._pruned_at = 0.0
        self._gpu_cleanup_at = -math.inf
        self._gpu_cleaner: threading.Thread | None = None
        self._silences: list[Silence] = []
        self._probes = self._make_probes()

    # One cycle

    def cycle(self) -> CycleOutcome:
        """Run every check and probe once, then alert, record, notify and export."""
        begin = time.monotonic()
        now = self.clock()
        data = CycleData(at=now)
        outcome = CycleOutcome(health=None)
        deadline = begin + max(self.options.interval_seconds, 5.0)

        started = {name: probe.start() for name, probe in self._probes.items()}
        data.report = self._guard("health", self._run_health)
        for name, probe in self._probes.items():
            if not started[name]:
                self._failed(name, "still running since an earlier cycle", outcome)
                continue
            try:
                setattr(data, name, probe.wait(deadline))
            except Exception as error:  # noqa: BLE001 (any failure of a probe is logged)
                self._failed(name, f"{type(error).__name__}: {error}", outcome)
            else:
                self._recovered(name)
        if data.report is None:
            outcome.failed_probes.append("health")
        else:
            outcome.health = data.report.status
        if data.gpu is not None:
            data.gpu_owners = self.gpu_probe.owners
            self._gpu_cleanup(data.gpu, now)
        data.backup = self._backup(now)
        self._note_components(data, now)

        self._judge(data, now, outcome)
        self._record(data, now)
        self._guard("metrics", lambda: self.exporter.update(data, self.alerts.values()))
        self._housekeeping(now)
        self.exporter.cycle_done(duration_seconds=time.monotonic() - begin, at=self.clock())
        queued = self.dispatcher.queued()
        if queued is not None:
            self.exporter.set_queued(queued)
        return outcome

    def _make_probes(self) -> dict[str, Guarded]:
        project = self.project
        probes = {
            "disks": Guarded(
                "disk", lambda: read_disk(list(project.config.monitoring.disk.paths), project.root)
            ),
            "host": Guarded("host", read_host),
        }
        if self.redis_probe is not None:
            probes["redis"] = Guarded("redis", self.redis_probe.read)
        target = self.redis_target
        if target is not None:
            stale = project.config.monitoring.thresholds.heartbeat_age_seconds
            stale_after = stale.warn or stale.critical or 60.0

            def heartbeats() -> Any:
                return read_heartbeats(target, project.name, stale_after_seconds=stale_after)

            probes["components"] = Guarded("heartbeats", heartbeats)
        probes["gpu"] = Guarded("gpu", self.gpu_probe.read)
        return probes

    def _run_health(self) -> Any:
        from opsctl.checks.health import run_health

        if self.runtime is None:
            return None
        return run_health(self.project, self.runtime)

    def _backup(self, now: float) -> Any:
        if now - self._backup_read_at >= _BACKUP_EVERY_SECONDS:
            self._backup_read_at = now
            self._backup_figures = self._guard("backup", lambda: read_backup(self.project))
        return self._backup_figures

    def _note_components(self, data: CycleData, now: float) -> None:
        """Remember when each component was last seen, so that one whose reports expired
        from Redis (its process died) still has a heartbeat alert: the age keeps growing.
        """
        if data.components is None:
            return
        present = set()
        for report in data.components:
            present.add(report.component)
            seen = report.last_seen.timestamp()
            self.components_seen[report.component] = max(
                self.components_seen.get(report.component, 0.0), seen
            )
        for name, seen in list(self.components_seen.items()):
            if name in present:
                continue
            if now - seen > _FORGET_COMPONENT_SECONDS:
                del self.components_seen[name]
                continue
            data.vanished[name] = seen

    def _judge(self, data: CycleData, now: float, outcome: CycleOutcome) -> None:
        from datetime import UTC, datetime

        # Silences the CLI wrote; if the file cannot be read now, the last ones known hold.
        read = self._guard("silences", self.store.silences)
        silences = self._silences = read if read is not None else self._silences
        moment = datetime.fromtimestamp(now, UTC)
        changed: list[AlertState] = []
        for observation in observations(self.project, data):
            previous = self.alerts.get(observation.key) or AlertState(observation.key, since=now)
            silenced = is_silenced(silences, observation.key, observation.service, moment)
            step = observe(previous, observation, now=now, policy=self.policy, silenced=silenced)
            self.alerts[observation.key] = step.state
            changed.append(step.state)
            transitions = step.transitions
            if self.dispatcher.notifier is None:
                # Without a notifier, notices are only logged: nobody was told.
                transitions = tuple(replace(t, queued=False) for t in transitions)
            outcome.transitions.extend(transitions)
            outcome.notices.extend(step.notices)
        for transition in outcome.transitions:
            log = logger.warning if transition.event in {"firing", "flapping"} else logger.info
            log(
                "Alert %s %s (%s%s)",
                one_line(transition.key),
                transition.event,
                one_line(transition.value or transition.severity),
                ", silenced" if transition.silenced else "",
            )
        self._guard("history", lambda: self.store.save_alerts(changed, outcome.transitions))
        for notice in outcome.notices:
            self.dispatcher.put(_notification(notice, now))
        self._note_delivered()

    def _note_delivered(self) -> None:
        """Mark in the history the transitions whose notification Slack confirmed."""
        delivered = self.dispatcher.take_delivered()
        if delivered:
            self._guard("history", lambda: self.store.mark_notified(delivered))

    def _record(self, data: CycleData, now: float) -> None:
        if data.report is None:
            return
        samples = [
            CheckSample(r.name, r.status, r.duration_ms, r.detail, r.service)
            for r in data.report.checks
        ]
        self._guard("history", lambda: self.store.record_results(samples, at=now))
        self._guard("history", lambda: self.store.save_components_seen(self.components_seen))

    def _gpu_cleanup(self, snapshot: GpuSnapshot, now: float) -> None:
        """Above ``gpu.policy.soft_percent`` on any device, apply the GPU policy on a thread of
        its own (asking components can take seconds, a restart longer): one at a time, at
        most once per ``automatic_every_seconds``.
        """
        policy = self.project.config.gpu.policy
        if not policy.automatic or now - self._gpu_cleanup_at < policy.automatic_every_seconds:
            return
        if self._gpu_cleaner is not None and self._gpu_cleaner.is_alive():
            return
        used = [device.memory_used_percent for device in snapshot.devices]
        if not any(percent is not None and percent >= policy.soft_percent for percent in used):
            return
        self._gpu_cleanup_at = now

        def run() -> None:
            from opsctl.gpu._cleanup import automatic_cleanup

            try:
                outcome = automatic_cleanup(self.project, snapshot)
            except Exception as error:  # noqa: BLE001 (the monitor outlives a failed cleanup)
                logger.warning("GPU cleanup failed: %s: %s", type(error).__name__, one_line(error))
                return
            steps = "; ".join(f"{step.action}: {step.status}" for step in outcome.steps)
            logger.warning(
                "GPU memory above the soft threshold; cleanup freed %d bytes (%s)",
                outcome.freed_bytes,
                steps or "nothing to do",
            )

        self._gpu_cleaner = threading.Thread(target=run, name="opsctl-gpu-cleanup", daemon=True)
        self._gpu_cleaner.start()

    def _housekeeping(self, now: float) -> None:
        if now - self._pruned_at < _PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = now
        days = self.project.config.monitoring.history_retention_days
        deleted = self._guard("history", lambda: self.store.prune(older_than=now - days * 86400))
        stale = [
            key
            for key, state in self.alerts.items()
            if now - state.last_observed_at > _FORGET_ALERT_SECONDS
        ]
        for key in stale:
            del self.alerts[key]
        if stale:
            self._guard("history", lambda: self.store.forget_alerts(stale))
        logger.debug("Pruned %s history rows; forgot %d alert(s)", deleted, len(stale))

    # Failures of what is watched

    def _guard(self, name: str, action: Callable[[], Any]) -> Any:
        try:
            result = action()
        except Exception as error:  # noqa: BLE001 (the loop outlives every failure)
            self._failed(name, f"{type(error).__name__}: {error}", None)
            return None
        self._recovered(name)
        return result

    def _failed(self, name: str, reason: str, outcome: CycleOutcome | None) -> None:
        from opsctl import secrets

        self.failures[name] = self.failures.get(name, 0) + 1
        reason = one_line(secrets.scrub(reason))
        # Logged when it starts or changes, not every cycle: a Redis down for an hour
        # should not write hundreds of identical lines.
        if self._last_errors.get(name) != reason:
            logger.warning("Probe %s failed: %s", name, reason)
            self._last_errors[name] = reason
        if outcome is not None:
            outcome.failed_probes.append(name)

    def _recovered(self, name: str) -> None:
        if self._last_errors.pop(name, None) is not None:
            logger.info("Probe %s works again", name)

    # The loop

    def run(self, stop: threading.Event) -> CycleOutcome | None:
        """Run cycles every interval until ``stop`` is set or ``max_cycles`` ran; return
        the last cycle's outcome.
        """
        last: CycleOutcome | None = None
        cycles = 0
        interval = self.options.interval_seconds
        while not stop.is_set():
            begin = time.monotonic()
            try:
                last = self.cycle()
            except Exception:  # a bug in one cycle must not end the watching
                self.failures["cycle"] = self.failures.get("cycle", 0) + 1
                logger.exception("A monitoring cycle failed; the next one runs as planned")
            cycles += 1
            if self.options.max_cycles is not None and cycles >= self.options.max_cycles:
                break
            elapsed = time.monotonic() - begin
            if elapsed > interval:
                logger.warning("A cycle took %.1f s, longer than the interval", elapsed)
            stop.wait(max(interval - elapsed, 0.0))
        return last

    def close(self) -> None:
        """Stop serving, hand over pending notifications, close connections and files."""
        self.exporter.close()
        self.dispatcher.close()
        self._note_delivered()
        if self.redis_probe is not None:
            self.redis_probe.close()
        self.store.close()


def _notification(notice: Notice, now: float) -> Notification:
    """``notice`` as the notifier's message, stamped with the cycle's time."""
    from datetime import UTC, datetime

    from opsctl.notify import Notification

    return Notification(**asdict(notice), at=datetime.fromtimestamp(now, UTC))


@contextlib.contextmanager
def monitor_lock(state_dir: Path) -> Iterator[None]:
    """Hold the project's monitor lock: two monitors would double every notification.

    Raises :class:`BusyError` (exit 75) when another monitor of the project holds it.
    """
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "r+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = handle.read().strip() or "another process"
            message = f"Another monitor of this project is running ({holder})."
            raise BusyError(message, hint="Stop it first, or let it do the watching.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        yield


def run_monitor(
    project: Project,
    runtime: Runtime | None,
    *,
    options: MonitorOptions,
    notifier: Notifier | None = None,
    stop: threading.Event | None = None,
    outcomes: list[CycleOutcome] | None = None,
) -> int:
    """Watch ``project`` until SIGTERM or SIGINT (or ``options.max_cycles`` cycles).

    Returns the exit code: 0 after SIGTERM, 130 after SIGINT, and after a cycle limit the
    last health run's code (0 healthy, 3 degraded, 1 unhealthy). Raises
    :class:`BusyError` when another monitor runs for the project and
    :class:`~opsctl.errors.ResourceUnavailableError` when /metrics cannot be served.
    The last cycle's outcome is appended to ``outcomes`` when given.
    """
    stop = stop or threading.Event()
    received: list[int] = []
    last: CycleOutcome | None = None
    with monitor_lock(project.state_dir), _signals(stop, received):
        monitor = Monitor(project, runtime, options=options, notifier=notifier)
        try:
            if options.metrics_port is not None:
                monitor.exporter.serve(options.metrics_host, options.metrics_port)
            logger.info(
                "Monitoring %s every %g s (state in %s)",
                project.name,
                options.interval_seconds,
                project.state_dir,
            )
            last = monitor.run(stop)
        finally:
            monitor.close()
    if outcomes is not None and last is not None:
        outcomes.append(last)
    if received:
        code = ExitCode.INTERRUPTED if received[0] == signal.SIGINT else ExitCode.OK
        logger.info("Monitor stopped by signal %d", received[0])
        return int(code)
    return last.exit_code if last is not None else int(ExitCode.OK)


@contextlib.contextmanager
def _signals(stop: threading.Event, received: list[int]) -> Iterator[None]:
    """Turn SIGTERM and SIGINT into a clean stop (only the main thread can catch them)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
