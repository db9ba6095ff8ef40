"""The lifecycle of the whole stack, written once against the runtime interface.

Start order follows ``depends_on``: a service starts once everything it depends on runs
and passes its health checks. Stop order is the reverse, and each dependent is confirmed
down before what it depends on is stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from opsctl._files import tail_lines, write_atomic
from opsctl.checks import effective_status, run_checks
from opsctl.checks.health import judge_process, service_checks
from opsctl.errors import BusyError, OperationFailedError, UsageError
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
_POLL_SECONDS = 0.1
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
        """Start ``names`` (all when empty); see :meth:`_up`. One lifecycle run at a time."""
        with self._lifecycle_lock():
            return self._up(names, timeout_seconds=timeout_seconds)

    def _up(self, names: Sequence[str] = (), *, timeout_seconds: float | None = None) -> UpResult:
        """Start ``names`` (all services when empty) and what they depend on, level by level,
        and wait until each runs and passes its health checks. Idempotent: a running service
        whose definition did not change is left alone; one whose definition changed is
        restarted.
        """
        self._require_known(names)
        if not self.project.services:
            message = f"{self.project.config_path} declares no services to start."
            raise UsageError(message, hint="Add a [services.NAME] table with a command.")
        resume = self._prepare()
        wanted = list(names) or list(self.project.services)
        targets = with_dependencies(self.project.services, [*wanted, *resume])
        return self._start(targets, timeout_seconds=timeout_seconds)

    def restart(
        self, names: Sequence[str] = (), *, timeout_seconds: float | None = None
    ) -> UpResult:
        """Restart ``names`` (all when empty); see :meth:`_restart`. One run at a time."""
        with self._lifecycle_lock():
            return self._restart(names, timeout_seconds=timeout_seconds)

    def _restart(
        self, names: Sequence[str] = (), *, timeout_seconds: float | None = None
    ) -> UpResult:
        """Stop ``names`` (all when empty) in reverse dependency order, then start them again
        in order, waiting for health. Re-reads ``.env`` and the config.
        """
        self._require_known(names)
        resume = self._prepare()
        targets = set(names) or set(self.project.services)
        self._stop(targets)
        wanted = with_dependencies(self.project.services, sorted(targets | resume))
        result = self._start(wanted, timeout_seconds=timeout_seconds)
        return UpResult(
            [
                ServiceOutcome(o.name, "restarted", o.detail)
                if o.action == "started" and o.name in targets
                else o
                for o in result.services
            ]
        )

    def down(self) -> DownResult:
        """Stop everything; see :meth:`_down`. One lifecycle run at a time."""
        with self._lifecycle_lock():
            return self._down()

    def _down(self) -> DownResult:
        """Stop every service in reverse dependency order, then supervisord itself."""
        if not self.runtime.supervisor_running():
            outcomes = [ServiceOutcome(name, "not running") for name in self.project.services]
            return DownResult(outcomes, supervisor_was_running=False)

        outcomes = self._stop(set(self.project.services), include_unknown=True)
        total = sum(service.stop_timeout_seconds for service in self.project.services.values())
        self.runtime.stop_supervisor(timeout_seconds=total + _RPC_MARGIN_SECONDS)
        self.runtime.reap_leftovers()
        self._remove_socket_folder()
        logger.info("Stack %s is down", self.project.name)
        return DownResult(outcomes, supervisor_was_running=True)

    def _remove_socket_folder(self) -> None:
        folder = self.paths.socket_file.parent
        if folder != self.paths.run_dir:
            with contextlib.suppress(OSError):
                folder.rmdir()

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

    @contextlib.contextmanager
    def _lifecycle_lock(self) -> Iterator[None]:
        """Hold the project's lifecycle lock; raise :class:`BusyError` (exit 75) when another
        up, down or restart holds it.
        """
        self.paths.ensure()
        path = self.paths.run_dir / "lifecycle.lock"
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                message = f"Another opsctl up, down or restart is running for {self.project.name}."
                raise BusyError(message, hint=f"Wait for it to finish (lock: {path}).") from None
            yield

    # Preparing supervisord

    def _require_known(self, names: Iterable[str]) -> None:
        for name in names:
            self.project.service(name)

    def _prepare(self) -> set[str]:
        """Write specs and supervisord.conf; start supervisord or apply a changed config.

        Returns the programs a config change stopped while they ran: they start again.
        """
        conf = self.write_state()
        resume: set[str] = set()
        if not self.runtime.supervisor_running():
            logger.info("Starting supervisord for %s", self.project.name)
            self.runtime.start_supervisor()
        elif conf != self._applied_conf():
            resume = self._apply_changed_conf()
        write_atomic(self.paths.applied_conf_file, conf)
        return resume

    def write_state(self) -> str:
        """Write the program specs and supervisord.conf under the state folder; return the
        conf. A running program keeps the spec it started with until it is restarted.
        """
        self.paths.ensure()
        for name in self.project.services:
            spec = json.dumps(program_spec(self.project, name), indent=2, sort_keys=True)
            write_atomic(self.paths.spec_file(name), spec)
        for leftover in (self.paths.run_dir / "programs").glob("*.json"):
            if leftover.name.split(".")[0] not in self.project.services:
                leftover.unlink()

        conf = render_supervisord_conf(
            self.project, self.paths, launcher=self.runtime.launcher, daemon=self.runtime.daemon
        )
        write_atomic(self.paths.conf_file, conf)
        return conf

    def _applied_conf(self) -> str | None:
        try:
            return self.paths.applied_conf_file.read_text()
        except OSError:
            return None

    def _spec_changed(self, name: str) -> bool:
        """True when the spec differs from the one the running program was started with."""
        try:
            started = self.paths.started_spec_file(name).read_text()
        except OSError:
            return False
        return started != self.paths.spec_file(name).read_text()

    def _mark_started(self, name: str) -> None:
        write_atomic(self.paths.started_spec_file(name), self.paths.spec_file(name).read_text())

    def _apply_changed_conf(self) -> set[str]:
        import xmlrpc.client

        client = self.runtime.client()
        try:
            added, changed, removed = client.reload_config()
        except xmlrpc.client.Fault as fault:
            message = f"supervisord refused the new configuration: {fault.faultString}"
            raise OperationFailedError(
                message, hint="Fix the config; the stack runs unchanged."
            ) from None
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

    def _start(self, targets: set[str], *, timeout_seconds: float | None) -> UpResult:
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
            actions = {name: self._start_one(name, processes.get(name)) for name in names}
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

    def _start_one(self, name: str, info: ProcessInfo | None) -> Action:
        client = self.runtime.client()
        if info is not None and info.state in RUNNING_STATES:
            if not self._spec_changed(name):
                return "running"
            logger.info("Restarting %s: its definition changed", name)
            client.stop(name, timeout_seconds=self._stop_timeout(name))
            self._mark_started(name)
            client.start(name)
            return "restarted"
        logger.info("Starting %s", name)
        self._mark_started(name)
        client.start(name)
        return "started"

    def _wait_ready(self, name: str, *, deadline: float, timeout_seconds: float) -> str | None:
        """Wait until ``name`` is ready; return why not, or ``None``.

        A service with checks is ready as soon as it runs and passes them, even before
        supervisord counts it as started (``start_seconds``); one without checks is ready
        once supervisord does.
        """
        client = self.runtime.client()
        service = self.project.service(name)
        checks = service_checks(self.project, name)
        problem = "not started"
        while True:
            info = client.process(name)
            if info.state == "RUNNING" or (info.state == "STARTING" and checks):
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
