"""``verify``: is the stack ready for production? Fast, parallel, machine-readable."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from opsctl.commands._common import JSON_HELP, console, load_runtime, plain, print_json, quiet

if TYPE_CHECKING:
    from opsctl.checks import Report
    from opsctl.config import Project
    from opsctl.errors import ExitCode

_STATUS_STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


class OutputFormat(StrEnum):
    """How ``verify`` prints its report on stdout."""

    table = "table"
    tap = "tap"


def verify(
    ctx: typer.Context,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run only checks with this name, section or tag (repeatable)."),
    ] = None,
    skip: Annotated[
        list[str] | None,
        typer.Option(
            "--skip", help="Leave out checks with this name, section or tag (repeatable)."
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Warnings count: exit 3 when only warnings.")
    ] = False,
    online: Annotated[
        bool,
        typer.Option(
            "--online", help="Verify keys live with their providers, not only their shape."
        ),
    ] = False,
    json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Also write a JUnit XML report to this file.")
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="table, or tap for TAP version 13.")
    ] = (OutputFormat.table),
    push_gateway: Annotated[
        str | None,
        typer.Option(
            "--push-gateway",
            metavar="URL",
            help="Push opsctl_verify_* to this Pushgateway (default: monitoring.pushgateway_url).",
        ),
    ] = None,
    textfile: Annotated[
        Path | None,
        typer.Option(
            "--textfile",
            metavar="DIR",
            help="Write opsctl_verify_* to DIR/opsctl_verify.prom for node_exporter "
            "(default: monitoring.textfile_dir).",
        ),
    ] = None,
) -> None:
    """Check that the stack is ready to run: config, files, keys, ports, disk, backup, GPU,
    memory bank, and every [[verify.checks]] entry, concurrently, each within its timeout.
    With a Pushgateway or a textfile folder, the verdict is also published as metrics.

    Exits 0 when ready, 1 when a check failed (or publishing the metrics failed), 3 with
    --strict when only warnings.
    """
    from opsctl._files import write_atomic
    from opsctl.checks.formats import to_junit, to_tap
    from opsctl.checks.verify import run_verify, verify_exit_code

    runtime = load_runtime(ctx)
    strict = strict or runtime.project.config.verify.strict
    targets = _metric_targets(runtime.project, push_gateway, textfile)
    report = run_verify(runtime.project, runtime, only=only or [], skip=skip or [], online=online)
    if junit is not None:
        write_atomic(junit, to_junit(report, strict=strict), mode=0o644)
    if json:
        print_json({**report.to_dict(), "strict": strict})
    elif output_format is OutputFormat.tap:
        import sys

        sys.stdout.write(to_tap(report, strict=strict))
    else:
        render_verify_report(report, problems_only=quiet(ctx))
    code = verify_exit_code(report, strict=strict)
    if targets is not None:
        code = _publish_metrics(report, targets, code)
    raise typer.Exit(int(code))


def _metric_targets(
    project: Project, push_gateway: str | None, textfile: Path | None
) -> tuple[str | None, Path | None] | None:
    """Where to publish the verdict: the options, else [monitoring]; None when nowhere.
    A malformed URL is refused here, before any check runs.
    """
    from opsctl.metrics._publish import validate_gateway_url

    monitoring = project.config.monitoring
    url = push_gateway or monitoring.pushgateway_url or None
    folder = textfile
    if folder is None and monitoring.textfile_dir:
        folder = project.root / monitoring.textfile_dir
    if url is None and folder is None:
        return None
    if url is not None:
        validate_gateway_url(url)
    return url, folder


def _publish_metrics(
    report: Report, targets: tuple[str | None, Path | None], code: ExitCode
) -> ExitCode:
    """Publish the verdict; a failure is reported on stderr and turns success into exit 1
    (a failed verify keeps its own code).
    """
    from opsctl.checks import utc_now
    from opsctl.errors import ExitCode, OperationFailedError
    from opsctl.metrics import publish
    from opsctl.metrics._batch import verify_registry

    registry = verify_registry(report, finished_at=utc_now())
    try:
        publish(registry, job="verify", push_gateway=targets[0], textfile_dir=targets[1])
    except OperationFailedError as error:
        if code is ExitCode.OK:
            raise
        import sys

        from opsctl import secrets

        sys.stderr.write(f"error: {secrets.scrub(error.message)}\n")
    return code


def render_verify_report(report: Report, *, problems_only: bool) -> None:
    """Print the report as a table grouped by section, then a summary line."""
    from rich.table import Table

    from opsctl.checks import effective_status

    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in ("CHECK", "STATUS", "DETAIL", "MS"):
        table.add_column(column, justify="right" if column == "MS" else "left")
    section = None
    for result in report.checks:
        status = effective_status(result)
        if problems_only and status in {"pass", "skip"}:
            continue
        if result.section != section:
            section = result.section
            table.add_row(f"[bold]{section}[/]", "", "", "")
        attempts = f" (after {result.attempts} attempts)" if result.attempts > 1 else ""
        table.add_row(
            f"  {plain(result.name)}",
            f"[{_STATUS_STYLES[status]}]{status}[/]",
            plain(result.detail + attempts),
            str(result.duration_ms),
        )
    out = console()
    if table.row_count:
        out.print(table)
    summary = report.summary
    style = "green" if report.status == "pass" else "bold red"
    if not problems_only or report.status != "pass" or summary["warn"]:
        counts = (
            f"{summary['pass']} passed, {summary['warn']} warned, {summary['fail']} failed, "
            f"{summary['skip']} skipped"
        )
        out.print(f"[{style}]verify {report.status}[/]: {counts} ({report.duration_ms} ms)")
