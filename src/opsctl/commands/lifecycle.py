"""``up``, ``down``, ``restart``, ``status`` and ``logs``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer

from opsctl.commands._common import JSON_HELP, console, load_runtime, plain, print_json, quiet

if TYPE_CHECKING:
    from opsctl.agent import ComponentReport
    from opsctl.runtime import Runtime, ServiceOutcome, ServiceStatus

logger = logging.getLogger(__name__)

_ACTION_STYLES = {
    "started": "green",
    "restarted": "green",
    "running": "green",
    "stopped": "green",
    "not running": "dim",
    "failed": "bold red",
    "skipped": "yellow",
}
_HEALTH_STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red"}
_COMPONENT_STYLES = {"ok": "green", "degraded": "yellow", "failing": "bold red"}
# A component report older than this is marked stale when [monitoring] sets no warning age.
_STALE_AFTER_SECONDS = 60.0
_COMPONENTS_TIMEOUT_SECONDS = 3.0

ServicesArgument = Annotated[
    list[str] | None,
    typer.Argument(help="Services to act on; all when none is named.", show_default=False),
]
TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--timeout", min=0.1, help="Seconds to wait for health; default runtime.up_timeout_seconds."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def up(
    ctx: typer.Context,
    services: ServicesArgument = None,
    timeout: TimeoutOption = None,
    skip_verify: Annotated[
        bool, typer.Option("--skip-verify", help="Start even if readiness checks fail (says so).")
    ] = False,
    json: JsonOption = False,
) -> None:
    """Start the stack, or the named services and what they depend on.

    Services start in dependency order; each must run and pass its health checks before
    what depends on it starts. Running services whose definition is unchanged are left
    alone, so `up` can be run again at any time. Exits 1, with the tail of each failed
    service's log, if anything did not come up within the timeout.

    Nothing starts until `opsctl verify` passes; --skip-verify overrides that.
    """
    from opsctl.runtime import Stack

    runtime = load_runtime(ctx)
    _sync_environments(runtime)
    _verify_first(runtime, skip=skip_verify, as_json=json)
    result = Stack(runtime).up(services or [], timeout_seconds=timeout)
    _render_outcomes(ctx, result.services, as_json=json, ok=result.ok)


def down(ctx: typer.Context, json: JsonOption = False) -> None:
    """Stop every service in reverse dependency order, then supervisord.

    Each service gets its stop signal and stop timeout, then is killed with the processes
    it started; a dependent is confirmed down before what it depends on is stopped.
    """
    from opsctl.runtime import Stack

    result = Stack(load_runtime(ctx, lenient=True)).down()
    if result.supervisor_was_running and not json:
        logger.info("supervisord stopped")
    _render_outcomes(ctx, result.services, as_json=json, ok=result.ok)


def restart(
    ctx: typer.Context,
    services: ServicesArgument = None,
    timeout: TimeoutOption = None,
    json: JsonOption = False,
) -> None:
    """Restart the named services (all when none is named), re-reading the config and .env.

    They stop in reverse dependency order and start again in order, waiting for health.
    """
    from opsctl.runtime import Stack

    result = Stack(load_runtime(ctx)).restart(services or [], timeout_seconds=timeout)
    _render_outcomes(ctx, result.services, as_json=json, ok=result.ok)


def status(ctx: typer.Context, json: JsonOption = False) -> None:
    """Show each service's state, pid, uptime, port and health, then what the components
    that embed opsctl's agent last reported to the stack's Redis.

    Exits 0 whenever the state could be read; `opsctl health` is the command that judges.
    A Redis that cannot be read is said in one line; the services are still shown.
    """
    from opsctl.runtime import Stack

    runtime = load_runtime(ctx, lenient=True)
    rows = Stack(runtime).status()
    components, components_error = _read_components(runtime)
    if json:
        print_json(
            {
                "services": [_status_dict(row) for row in rows],
                "components": [report.to_dict() for report in components],
                "components_error": components_error,
            }
        )
        return
    _render_status(rows, problems_only=quiet(ctx))
    _render_components(components, components_error, problems_only=quiet(ctx))


def logs(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="The service whose output to show.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until interrupted.")
    ] = False,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=0, help="How many of the last lines to show.")
    ] = 50,
) -> None:
    """Show the last lines of a service's combined stdout and stderr, or follow them."""
    import sys

    runtime = load_runtime(ctx, lenient=True)
    runtime.project.service(service)
    if follow:
        try:
            for line in runtime.follow_log(service, lines=lines):
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        return
    for line in runtime.read_log(service, lines=lines):
        sys.stdout.write(line + "\n")


def exec_(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="The service whose environment to run in.")],
    command: Annotated[list[str], typer.Argument(help="The command and its arguments, after --.")],
) -> None:
    """Run a command where SERVICE runs (in its container, with the docker runtime), with
    its environment and working directory: `opsctl exec api -- python manage.py check`.

    The command's exit code is opsctl's.
    """
    runtime = load_runtime(ctx)
    runtime.project.service(service)
    raise typer.Exit(runtime.exec(service, command))


def _sync_environments(runtime: Runtime) -> None:
    """Build the services' Python environments that are missing or stale, before starting."""
    from opsctl.venvs import sync_environment

    if runtime.kind == "docker":
        return  # the image holds them, built with it
    for name, service in runtime.project.services.items():
        if service.python is not None:
            sync_environment(runtime.project, name)


def _verify_first(runtime: Runtime, *, skip: bool, as_json: bool) -> None:
    """Run verify before starting anything; stop with exit 1 if it fails."""
    from opsctl.checks.verify import run_verify
    from opsctl.commands.verify import render_verify_report

    if skip:
        logger.warning("Skipping readiness verification (--skip-verify): starting unverified")
        return
    # The engine and the image are checked by the docker runtime itself when it starts,
    # which reports them with exit 4 (a required resource is absent) and how to fix it.
    report = run_verify(runtime.project, runtime, skip=["docker"])
    if report.status == "pass":
        return
    if as_json:
        print_json({"ok": False, "verify": report.to_dict(), "services": []})
    else:
        render_verify_report(report, problems_only=True)
    logger.error("Refusing to start: readiness verification failed. Fix it, or pass --skip-verify.")
    raise typer.Exit(1)


def _render_outcomes(
    ctx: typer.Context, outcomes: list[ServiceOutcome], *, as_json: bool, ok: bool
) -> None:
    if as_json:
        print_json(
            {
                "ok": ok,
                "services": [
                    {
                        "name": o.name,
                        "action": o.action,
                        "detail": o.detail,
                        "log_tail": list(o.log_tail),
                    }
                    for o in outcomes
                ],
            }
        )
    else:
        _render_outcome_table(outcomes, problems_only=quiet(ctx))
    if not ok:
        raise typer.Exit(1)


def _render_outcome_table(outcomes: list[ServiceOutcome], *, problems_only: bool) -> None:
    from rich.table import Table

    out = console()
    shown = [o for o in outcomes if not problems_only or o.action in {"failed", "skipped"}]
    if not shown:
        return
    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in ("SERVICE", "RESULT", "DETAIL"):
        table.add_column(column)
    for outcome in shown:
        style = _ACTION_STYLES.get(outcome.action, "")
        table.add_row(outcome.name, f"[{style}]{outcome.action}[/]", plain(outcome.detail))
    out.print(table)
    for outcome in shown:
        if outcome.log_tail:
            out.print(f"\n[bold]Last lines of {outcome.name}'s log:[/]")
            for line in outcome.log_tail:
                out.print("  " + line, markup=False)


def _status_dict(row: ServiceStatus) -> dict[str, object]:
    return {
        "name": row.name,
        "state": row.state,
        "pid": row.pid,
        "uptime_seconds": row.uptime_seconds,
        "port": row.port,
        "health": row.health,
        "detail": row.detail,
        "checks": row.checks,
    }


def _render_status(rows: list[ServiceStatus], *, problems_only: bool) -> None:
    from rich.table import Table

    from opsctl.checks.health import format_duration

    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in ("SERVICE", "STATE", "PID", "UPTIME", "PORT", "HEALTH", "DETAIL"):
        table.add_column(column)
    for row in rows:
        if problems_only and row.health == "pass":
            continue
        table.add_row(
            row.name,
            row.state,
            str(row.pid) if row.pid else "-",
            format_duration(row.uptime_seconds) if row.uptime_seconds is not None else "-",
            str(row.port) if row.port else "-",
            f"[{_HEALTH_STYLES.get(row.health, '')}]{row.health}[/]",
            plain(row.detail),
        )
    if table.row_count:
        console().print(table)


def _read_components(runtime: Runtime) -> tuple[list[ComponentReport], str | None]:
    """Return the components' reports, or none and why they could not be read."""
    from opsctl.agent import read_components
    from opsctl.errors import OperationFailedError

    project = runtime.project
    target = project.redis()
    if target is None:
        return [], None
    threshold = project.config.monitoring.thresholds.heartbeat_age_seconds.warn
    try:
        reports = read_components(
            target,
            project.name,
            stale_after_seconds=threshold or _STALE_AFTER_SECONDS,
            timeout_seconds=_COMPONENTS_TIMEOUT_SECONDS,
        )
    except OperationFailedError as error:
        return [], error.message
    return reports, None


def _render_components(
    reports: list[ComponentReport], error: str | None, *, problems_only: bool
) -> None:
    from rich.table import Table

    from opsctl.checks.health import format_duration

    if error is not None:
        logger.warning("%s", error)
        return
    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in ("COMPONENT", "PID", "HOST", "STATUS", "LAST SEEN", "GAUGES", "DETAIL"):
        table.add_column(column)
    for report in reports:
        if problems_only and report.status == "ok" and not report.stale:
            continue
        status = f"{report.status} (stale)" if report.stale else report.status
        style = "yellow" if report.stale else _COMPONENT_STYLES.get(report.status, "")
        table.add_row(
            plain(report.component),
            str(report.pid) if report.pid else "-",
            plain(report.host or "-"),
            f"[{style}]{plain(status)}[/]",
            format_duration(report.age_seconds) + " ago",
            plain(", ".join(f"{name}={value:g}" for name, value in sorted(report.gauges.items()))),
            plain(report.detail),
        )
    if table.row_count:
        console().print()
        console().print(table)
