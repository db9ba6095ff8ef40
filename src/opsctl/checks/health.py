"""The health report: each service's process state and declared checks, plus system checks."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from opsctl.checks._registry import BuildContext, build_check
from opsctl.checks._result import Check, Outcome, Report, health_status, utc_now
from opsctl.checks._runner import run_checks
from opsctl.config import DiskCheck, Project, TcpCheck

if TYPE_CHECKING:
    from opsctl.runtime import Runtime, Snapshot

_LOG_LINES_IN_DETAIL = 1
_MINUTE, _HOUR, _DAY = 60, 3600, 86400


def service_checks(project: Project, name: str) -> list[Check]:
    """Return the declared checks of service ``name``; a TCP check of its port if it has
    none; nothing if it has neither.
    """
    service = project.service(name)
    context = BuildContext(service=name, service_port=service.port)
    specs = list(service.health)
    if not specs and service.port is not None:
        specs = [TcpCheck(kind="tcp", port=service.port)]
    return [build_check(spec, context) for spec in specs]


def system_checks(project: Project) -> list[Check]:
    """Return the host checks from ``[monitoring]``: free disk space on each path."""
    disk = project.config.monitoring.disk
    specs = [
        DiskCheck(
            kind="disk",
            path=path,
            warn_free_percent=disk.warn_free_percent,
            fail_free_percent=disk.fail_free_percent,
        )
        for path in disk.paths
    ]
    return [build_check(spec) for spec in specs]


def process_check(project: Project, name: str, snapshot: Snapshot, runtime: Runtime) -> Check:
    """Return a check of service ``name``'s process state as ``snapshot`` recorded it."""
    outcome = judge_process(project, name, snapshot, runtime)
    return Check(
        name=f"{name}:process",
        kind="process",
        target=name,
        probe=lambda _timeout: outcome,
        service=name,
    )


def judge_process(project: Project, name: str, snapshot: Snapshot, runtime: Runtime) -> Outcome:
    """Judge one program: running, down, or crash-looping whatever supervisord's state."""
    if not snapshot.supervisor_running:
        return Outcome("fail", "supervisord is not running; start the stack with 'opsctl up'")
    info = snapshot.processes.get(name)
    if info is None:
        return Outcome(
            "fail", "not known to the running supervisord; run 'opsctl up' to apply the config"
        )

    runtime_config = project.config.runtime
    exits = snapshot.unexpected_exits.get(name, 0)
    if exits >= runtime_config.crash_loop_restarts:
        window = runtime_config.crash_loop_window_seconds
        return Outcome(
            "fail",
            f"crash-looping: {exits} unexpected exits in the last {window:g} s "
            f"(now {info.state}){_last_log(runtime, name)}",
        )
    if info.state == "RUNNING":
        restarts = f", {exits} unexpected exit(s) recently" if exits else ""
        return Outcome(
            "pass", f"running, pid {info.pid}, up {format_duration(info.uptime_seconds)}{restarts}"
        )

    if info.state == "STARTING" and not exits:
        # A first start that supervisord has not confirmed yet; `up` already waited for
        # the service's own checks. A restart after a crash is not healthy yet.
        return Outcome(
            "pass", f"starting, pid {info.pid}, up {format_duration(info.uptime_seconds)}"
        )
    if info.state == "STARTING":
        return Outcome(
            "fail", f"restarting after {exits} unexpected exit(s){_last_log(runtime, name)}"
        )
    detail = info.state.lower()
    if info.spawn_error:
        detail += f": {info.spawn_error}"
    elif info.state == "EXITED":
        detail += f", exit status {info.exit_status}"
    return Outcome("fail", detail + _last_log(runtime, name))


def _last_log(runtime: Runtime, name: str) -> str:
    lines = [
        line.strip() for line in runtime.read_log(name, lines=_LOG_LINES_IN_DETAIL) if line.strip()
    ]
    return f"; last log line: {lines[-1]}" if lines else ""


def health_checks(
    project: Project, snapshot: Snapshot, runtime: Runtime, services: Sequence[str] = ()
) -> list[Check]:
    """Return every check of a health run: per service, then the system checks."""
    checks: list[Check] = []
    for name in services or list(project.services):
        checks.append(process_check(project, name, snapshot, runtime))
        checks.extend(service_checks(project, name))
    if not services:
        checks.extend(system_checks(project))
    return checks


def run_health(project: Project, runtime: Runtime, *, services: Sequence[str] = ()) -> Report:
    """Run the health checks of ``services`` (all, plus system checks, when empty)."""
    for name in services:
        project.service(name)
    started_at = utc_now()
    begin = time.monotonic()
    snapshot = runtime.snapshot(window_seconds=project.config.runtime.crash_loop_window_seconds)
    results = run_checks(
        health_checks(project, snapshot, runtime, services),
        concurrency=project.config.verify.concurrency,
    )
    return Report(
        status=health_status(results),
        checks=results,
        started_at=started_at,
        duration_ms=round((time.monotonic() - begin) * 1000),
    )


def format_duration(seconds: float) -> str:
    """Format a duration as operators read it: ``42s``, ``5m03s``, ``2h10m``, ``3d04h``."""
    seconds = int(seconds)
    if seconds < _MINUTE:
        return f"{seconds}s"
    if seconds < _HOUR:
        return f"{seconds // _MINUTE}m{seconds % _MINUTE:02d}s"
    if seconds < _DAY:
        return f"{seconds // _HOUR}h{seconds % _HOUR // _MINUTE:02d}m"
    return f"{seconds // _DAY}d{seconds % _DAY // _HOUR:02d}h"
