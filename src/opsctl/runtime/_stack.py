"""The lifecycle of the whole stack, written once against the runtime interface.

Start order follows ``depends_on``: a service starts once everything it depends on runs
and passes its health checks. Stop order is the reverse, and each dependent is confirmed
down before what it depends on is stopped.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from opsctl._files import tail_lines, write_atomic
from opsctl.checks import effective_status, run_checks
from opsctl.checks.health import judge_process, service_checks
from opsctl.runtime._base import Runtime
from opsctl.runtime._render import (
    dependency_levels,
    program_spec,
    render_supervisord_conf,
    with_dependencies,
)
from opsctl.runtime._supervisor import DOWN_STATES, RUNNING_STATES, ProcessInfo

logger = logging.getLogger(__name__)

Action = Literal["started", "restarted", "running", "stopped", "not running", "failed", "skipped"]
_POLL_SECONDS = 0.2
_LOG_TAIL_LINES = 10
_RPC_MARGIN_SECONDS = 10.0


@dataclass(frozen=True)
class ServiceOutcome:
    """What a lifecycle command did to one service."""

    name: str
    action: Action
    detail: str = ""
    log_tail: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpResult:
    """The outcome of ``up`` or ``restart`` for each service it touched."""

    services: list[ServiceOutcome]

    @property
    def ok(self) -> bool:
        """True when no service failed or was left unstarted."""
        return all(outcome.action not in {"failed", "skipped"} for outcome in self.services)


@dataclass(frozen=True)
class DownResult:
    """The outcome of ``down``."""

    services: list[ServiceOutcome]
    supervisor_was_running: bool

    @property
    def ok(self) -> bool:
        """True when every service is confirmed down."""
        return all(outcome.action != "failed" for outcome in self.services)


@dataclass(frozen=True)
class ServiceStatus:
    """One row of ``status``."""

    name: str
    state: str
    pid: int | None
    uptime_seconds: int | None
    port: int | None
    health: str
    detail: str
    checks: list[dict[str, object]] = field(default_factory=list)


class Stack:
    """Brings the project's services up and down through a :class:`Runtime`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.project = runtime.project
        self.paths = runtime.paths

    def up(self, names: Sequence[str] = (), *, timeout_seconds: float | None = None) -> UpResult:
        """Start ``names`` (all services when empty) and what they depend on, level by level,
        and wait until each runs and passes its health checks. Idempotent: a running service
        whose definition did not change is left alone; one whose definition changed is
        restarted.
        """
        self._require_known(names)
        changed = self._prepare()
        targets = with_dependencies(
            self.project.services, list(names) or list(self.project.services)
        )
        return self._start(targets, restart=changed, timeout_seconds=timeout_seconds)

    def restart(
        self, names: Sequence[str] = (), *, timeout_seconds: float | None = None
    ) -> UpResult:
        """Stop ``names`` (all when empty) in reverse dependency order, then start them again
        in order, waiting for health. Re-reads ``.env`` and the config.
        """
        self._require_known(names)
        self._prepare()
        targets = set(names) or set(self.project.services)
        self._stop(targets)
        wanted = with_dependencies(self.project.services, sorted(targets))
        result = self._start(wanted, restart=set(), timeout_seconds=timeout_seconds)
        return UpResult(
            [
                ServiceOutcome(o.name, "restarted", o.detail)
                if o.action == "started" and o.name in targets
                else o
                for o in result.services
            ]
        )

    def down(self) -> DownResult:
        """Stop every service in reverse dependency order, then supervisord itself."""
        if not self.runtime.supervisor_running():
            outcomes = [ServiceOutcome(name, "not running") for name in self.project.services]
            return DownResult(outcomes, supervisor_was_running=False)

        outcomes = self._stop(set(self.project.services), include_unknown=True)
        total = sum(service.stop_timeout_seconds for service in self.project.services.values())
        self.runtime.stop_supervisor(timeout_seconds=total + _RPC_MARGIN_SECONDS)
        logger.info("Stack %s is down", self.project.name)
        return DownResult(outcomes, supervisor_was_running=True)

    def status(self) -> list[ServiceStatus]:
        """Return each service's state, pid, uptime, port and health."""
        runtime_config = self.project.config.runtime
        snapshot = self.runtime.snapshot(window_seconds=runtime_config.crash_loop_window_seconds)
        checks = {name: service_checks(self.project, name) for name in self.project.services}
        if snapshot.supervisor_running:
            results = run_checks([c for group in checks.values() for c in group])
        else:
            results = []

        rows = []
        for name, service in self.project.services.items():
            info = snapshot.processes.get(name)
            process = judge_process(self.project, name, snapshot, self.runtime)
            own = [r for r in results if r.service == name]
            statuses = {process.status} | {effective_status(r) for r in own}
            health = "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"
            failing = [f"{r.name}: {r.detail}" for r in own if r.status != "pass"]
            detail = (
                process.detail if process.status != "pass" else "; ".join(failing) or process.detail
            )
            rows.append(
                ServiceStatus(
                    name=name,
                    state=info.state
                    if info
                    else ("UNKNOWN" if snapshot.supervisor_running else "DOWN"),
                    pid=info.pid if info and info.pid else None,
                    uptime_seconds=info.uptime_seconds if info and info.pid else None,
                    port=service.port,
                    health=health,
                    detail=detail,
                    checks=[r.to_dict() for r in own],
                )
            )
        return rows

    # Preparing supervisord

    def _require_known(self, names: Iterable[str]) -> None:
        for name in names:
            self.project.service(name)

    def _prepare(self) -> set[str]:
        """Write specs and supervisord.conf; start supervisord or apply a changed config.

        Returns the services whose launch spec changed since the last run.
        """
        changed, conf_changed = self.write_state()
        if not self.runtime.supervisor_running():
            logger.info("Starting supervisord for %s", self.project.name)
            self.runtime.start_supervisor()
        elif conf_changed:
            changed |= self._apply_changed_conf()
        return changed

    def write_state(self) -> tuple[set[str], bool]:
        """Write the program specs and supervisord.conf under the state folder.

        Returns the services whose spec changed, and whether supervisord.conf changed.
        """
        self.paths.ensure()
        changed = set()
        for name in self.project.services:
            spec_file = self.paths.spec_file(name)
            existed = spec_file.exists()
            spec = json.dumps(program_spec(self.project, name), indent=2, sort_keys=True)
            if write_atomic(spec_file, spec) and existed:
                changed.add(name)
        for leftover in (self.paths.run_dir / "programs").glob("*.json"):
            if leftover.stem not in self.project.services:
                leftover.unlink()

        conf = render_supervisord_conf(
            self.project, self.paths, launcher=self.runtime.launcher, daemon=self.runtime.daemon
        )
        conf_changed = write_atomic(self.paths.conf_file, conf)
        return changed, conf_changed

    def _apply_changed_conf(self) -> set[str]:
        client = self.runtime.client()
        added, changed, removed = client.reload_config()
        logger.info(
            "Applying changed config: added %s, changed %s, removed %s", added, changed, removed
        )
        running_before = {
            name for name, info in client.processes().items() if info.state in RUNNING_STATES
        }
        for name in removed + changed:
            client.stop(name, timeout_seconds=self._stop_timeout(name))
            client.remove_group(name)
        for name in added + changed:
            client.add_group(name)
        return set(changed) & running_before

    # Starting

    def _start(
        self, targets: set[str], *, restart: set[str], timeout_seconds: float | None
    ) -> UpResult:
        timeout = timeout_seconds or self.project.config.runtime.up_timeout_seconds
        deadline = time.monotonic() + timeout
        client = self.runtime.client()
        outcomes: list[ServiceOutcome] = []
        blocked = False

        for level in dependency_levels(self.project.services):
            names = [name for name in level if name in targets]
            if blocked:
                outcomes += [
                    ServiceOutcome(n, "skipped", "not started: a dependency failed") for n in names
                ]
                continue
            processes = client.processes()
            actions = {
                name: self._start_one(name, processes.get(name), restart=name in restart)
                for name in names
            }
            for name in names:
                failure = self._wait_ready(name, deadline=deadline, timeout_seconds=timeout)
                if failure:
                    blocked = True
                    outcomes.append(
                        ServiceOutcome(
                            name,
                            "failed",
                            failure,
                            tuple(self.runtime.read_log(name, lines=_LOG_TAIL_LINES)),
                        )
                    )
                else:
                    outcomes.append(ServiceOutcome(name, actions[name]))
        return UpResult(outcomes)

    def _start_one(self, name: str, info: ProcessInfo | None, *, restart: bool) -> Action:
        client = self.runtime.client()
        if info is not None and info.state in RUNNING_STATES:
            if not restart:
                return "running"
            logger.info("Restarting %s: its definition changed", name)
            client.stop(name, timeout_seconds=self._stop_timeout(name))
            client.start(name)
            return "restarted"
        logger.info("Starting %s", name)
        client.start(name)
        return "started"

    def _wait_ready(self, name: str, *, deadline: float, timeout_seconds: float) -> str | None:
        """Wait until ``name`` runs and passes its checks; return why not, or ``None``."""
        client = self.runtime.client()
        service = self.project.service(name)
        checks = service_checks(self.project, name)
        problem = "not started"
        while True:
            info = client.process(name)
            if info.state == "RUNNING":
                results = run_checks(checks)
                failing = [r for r in results if effective_status(r) == "fail"]
                if not failing:
                    logger.info("%s is ready", name)
                    return None
                problem = "; ".join(f"{r.name}: {r.detail}" for r in failing)
            elif info.state == "FATAL" or (info.state == "EXITED" and service.autorestart is False):
                return f"{info.state.lower()}: {_why(info)}"
            elif info.state == "STOPPED":
                return "stopped while starting"
            else:
                problem = (
                    f"{info.state.lower()} (must stay up {service.start_seconds} s){_spawn(info)}"
                )
            if time.monotonic() >= deadline:
                return f"not ready within {timeout_seconds:g} s: {problem}"
            time.sleep(_POLL_SECONDS)

    # Stopping

    def _stop(self, targets: set[str], *, include_unknown: bool = False) -> list[ServiceOutcome]:
        client = self.runtime.client()
        processes = client.processes()
        levels = [
            [n for n in level if n in targets] for level in dependency_levels(self.project.services)
        ]
        if include_unknown:
            # Programs of an older config that is not applied yet stop first.
            levels.append([n for n in processes if n not in self.project.services])

        outcomes: list[ServiceOutcome] = []
        for level in reversed(levels):
            if not level:
                continue
            # One level stops in parallel; the next waits until all of it is confirmed down.
            with ThreadPoolExecutor(max_workers=len(level)) as pool:
                outcomes += pool.map(lambda name: self._stop_one(name, processes.get(name)), level)
        return outcomes

    def _stop_one(self, name: str, info: ProcessInfo | None) -> ServiceOutcome:
        if info is None or info.state not in RUNNING_STATES or not info.pid:
            return ServiceOutcome(name, "not running")

        logger.info("Stopping %s (pid %d)", name, info.pid)
        begin = time.monotonic()
        client = self.runtime.client()
        try:
            client.stop(name, timeout_seconds=self._stop_timeout(name) + _RPC_MARGIN_SECONDS)
        except Exception as error:  # reported per service; the batch goes on
            return ServiceOutcome(name, "failed", f"stop request failed: {error}")

        state = client.process(name).state
        if state not in DOWN_STATES or self.runtime.pid_alive(info.pid):
            return ServiceOutcome(name, "failed", f"pid {info.pid} is still alive (state {state})")
        elapsed = time.monotonic() - begin
        how = "killed after its stop timeout" if self._was_killed(name, info.pid) else "stopped"
        return ServiceOutcome(name, "stopped", f"pid {info.pid} {how} in {elapsed:.1f} s")

    def _stop_timeout(self, name: str) -> float:
        service = self.project.services.get(name)
        return float(service.stop_timeout_seconds if service else 10) + _RPC_MARGIN_SECONDS

    def _was_killed(self, name: str, pid: int) -> bool:
        pattern = re.compile(rf"killing '?{re.escape(name)}'? \({pid}\) with SIGKILL")
        return any(pattern.search(line) for line in tail_lines(self.paths.supervisord_log, 200))


def _why(info: ProcessInfo) -> str:
    """supervisord's reason (its exit status is only meaningful without one)."""
    return info.spawn_error or f"exit status {info.exit_status}"


def _spawn(info: ProcessInfo) -> str:
    return f": {info.spawn_error}" if info.spawn_error else ""
