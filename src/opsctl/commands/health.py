"""``health``: one honest verdict on the running stack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from opsctl.commands._common import (
    JSON_HELP,
    console,
    load_project,
    load_runtime,
    plain,
    print_json,
    quiet,
)

if TYPE_CHECKING:
    from opsctl.checks import Report

_STATUS_STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
_EXIT_CODES = {"healthy": 0, "degraded": 3, "unhealthy": 1}


def health(
    ctx: typer.Context,
    services: Annotated[
        list[str] | None,
        typer.Argument(help="Check only these services; all, plus the host, when none."),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
    history: Annotated[
        bool,
        typer.Option(
            "--history", help="Show what the monitor recorded (transitions, uptime) instead."
        ),
    ] = False,
    since: Annotated[
        str,
        typer.Option(
            "--since", help="With --history: how far back (30m, 24h, 7d, 1d12h; 3650d at most)."
        ),
    ] = "24h",
) -> None:
    """Run every health check concurrently, each within its own deadline.

    Per service: its process state (a program that keeps crashing is reported as
    crash-looping whatever supervisord shows), then its declared checks (a TCP check of
    its port when it declares none). Then the host's free disk space. Exits 0 when healthy,
    3 when only warnings, 1 when anything failed. With --history, runs nothing: shows the
    alert and check transitions `opsctl monitor` recorded and each check's uptime (exit 0).
    """
    if history:
        from opsctl.commands.monitor import show_history

        show_history(load_project(ctx, lenient=True), since=since, json=json, ctx=ctx)
        raise typer.Exit(0)
    from opsctl.checks.health import run_health

    runtime = load_runtime(ctx, lenient=True)
    report = run_health(runtime.project, runtime, services=services or [])
    if json:
        print_json(report.to_dict())
    else:
        render_report(report, problems_only=quiet(ctx))
    raise typer.Exit(_EXIT_CODES[report.status])


def render_report(report: Report, *, problems_only: bool) -> None:
    """Print a report as a table and a summary line."""
    from rich.table import Table

    from opsctl.checks import effective_status

    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in ("CHECK", "STATUS", "TARGET", "DETAIL", "MS"):
        table.add_column(column, justify="right" if column == "MS" else "left")
    for result in report.checks:
        status = effective_status(result)
        if problems_only and status in {"pass", "skip"}:
            continue
        table.add_row(
            result.name,
            f"[{_STATUS_STYLES[status]}]{status}[/]",
            plain(result.target),
            plain(result.detail),
            str(result.duration_ms),
        )
    out = console()
    if table.row_count:
        out.print(table)
    summary = report.summary
    style = {"healthy": "green", "degraded": "yellow"}.get(report.status, "bold red")
    if not problems_only or report.status != "healthy":
        out.print(
            f"[{style}]{report.status}[/]: {summary['pass']} passed, {summary['warn']} warned, "
            f"{summary['fail']} failed ({report.duration_ms} ms)"
        )
