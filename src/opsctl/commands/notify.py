"""``notify``: send a test message, list and flush the queue of undelivered ones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsctl.commands._common import (
    JSON_HELP,
    console,
    error_console,
    load_project,
    plain,
    print_json,
    quiet,
)

if TYPE_CHECKING:
    from opsctl.config import Project
    from opsctl.notify import FlushResult, Notifier, QueuedMessage

app = typer.Typer(
    name="notify",
    help="Send notifications: a test message, the queue of undelivered ones.",
    no_args_is_help=True,
    add_completion=False,
)

JsonOption = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


@app.command()
def test(ctx: typer.Context, json: JsonOption = False) -> None:
    """Send a test message to Slack, after whatever is still queued.

    Exits 0 when it was delivered; 1 when it was not (queued for a later try, or refused
    by Slack for good), with the reason; 2 when no Slack is configured.
    """
    from opsctl.notify import Notification

    project = load_project(ctx)
    notifier = _notifier(project)
    notification = Notification(
        key="opsctl:test",
        event="test",
        severity="info",
        title=f"Test notification from {project.name}",
        hint="Nothing to do: this message shows that notifications reach this channel.",
    )
    result = notifier.deliver(notification)
    delivered = result.status == "delivered"
    earlier = len(result.flush.delivered) - (1 if delivered else 0)
    report = {
        "delivered": delivered,
        "status": result.status,
        "reason": result.reason,
        "sequence": result.sequence,
        "via": notifier.transport.description,
        "earlier_delivered": earlier,
        "queued": result.flush.remaining,
        "requests": result.flush.requests,
    }
    if json:
        print_json(report)
    else:
        _render_test(report, problems_only=quiet(ctx))
    raise typer.Exit(0 if delivered else 1)


@app.command("queue")
def queue_(ctx: typer.Context, json: JsonOption = False) -> None:
    """List the notifications waiting to be delivered and the dead letters Slack refused.

    Shows each one's number, event, severity, title, age, attempts and last error; never
    the message's detail. Works without Slack configured.
    """
    from opsctl.notify import open_queue

    project = load_project(ctx)
    queue = open_queue(project)
    now = datetime.now(UTC)
    rows = [_queue_row(message, now) for message in [*queue.pending(), *queue.dead()]]
    if json:
        print_json(
            {
                "queued": [row for row in rows if row["state"] == "queued"],
                "dead": [row for row in rows if row["state"] == "dead"],
                "folder": str(queue.folder),
            }
        )
        return
    _render_queue(rows, problems_only=quiet(ctx))


@app.command()
def flush(
    ctx: typer.Context,
    dead: Annotated[
        bool,
        typer.Option(
            "--dead", help="Also retry the dead letters (after fixing what Slack refused)."
        ),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Deliver the queued notifications now, oldest first.

    Stops at the first message Slack does not accept yet, so that order holds. Exits 0
    when the queue is empty afterwards; 1 when messages remain or Slack refused some for
    good; 2 when no Slack is configured; 75 when another process is delivering.
    """
    from opsctl.errors import BusyError

    project = load_project(ctx)
    notifier = _notifier(project)
    result = notifier.flush_queue(include_dead=dead)
    if result.busy:
        message = "Another process is delivering the notification queue right now."
        raise BusyError(message, hint="Try again in a minute.")
    report = _flush_report(result)
    if json:
        print_json(report)
    else:
        _render_flush(report, problems_only=quiet(ctx))
    raise typer.Exit(0 if not result.remaining and not result.dead else 1)


def _notifier(project: Project) -> Notifier:
    from opsctl.errors import ConfigError
    from opsctl.notify import missing_configuration_hint, notifier_for

    notifier = notifier_for(project)
    if notifier is None:
        message = "No Slack notifications are configured for this project."
        raise ConfigError(message, hint=missing_configuration_hint(project))
    return notifier


def _queue_row(message: QueuedMessage, now: datetime) -> dict[str, Any]:
    notification = message.notification
    return {
        "sequence": message.sequence,
        "state": "dead" if message.dead else "queued",
        "key": notification.key,
        "event": notification.event,
        "severity": notification.severity,
        "title": notification.title,
        "service": notification.service,
        "at": notification.to_dict()["at"],
        "queued_at": message.queued_at.isoformat(),
        "age_seconds": round((now - message.queued_at).total_seconds(), 1),
        "attempts": message.attempts,
        "last_error": message.last_error,
    }


def _flush_report(result: FlushResult) -> dict[str, Any]:
    return {
        "delivered": len(result.delivered),
        "dead": [{"sequence": number, "reason": reason} for number, reason in result.dead],
        "remaining": result.remaining,
        "reason": result.reason,
        "requests": result.requests,
    }


def _render_test(report: dict[str, Any], *, problems_only: bool) -> None:
    if report["earlier_delivered"] and not problems_only:
        said = f"delivered {report['earlier_delivered']} queued notification(s) first"
        error_console().print(said, markup=False, soft_wrap=True)
    if report["delivered"]:
        if not problems_only:
            console().print(f"Test message delivered ({report['via']}).", markup=False)
        return
    if report["status"] == "dead":
        said = f"Slack refused the test message: {report['reason']} (kept as a dead letter)."
    else:
        said = f"Test message not delivered: {report['reason']}; queued for a later try."
    error_console().print(plain(said), soft_wrap=True)


def _render_queue(rows: list[dict[str, Any]], *, problems_only: bool) -> None:
    from rich.table import Table

    from opsctl.checks.health import format_duration

    if not rows:
        if not problems_only:
            console().print("No notification is waiting.", markup=False)
        return
    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in ("#", "STATE", "EVENT", "SEVERITY", "TITLE", "AGE", "TRIES", "LAST ERROR"):
        table.add_column(column)
    for row in rows:
        state = "[bold red]dead[/]" if row["state"] == "dead" else "[yellow]queued[/]"
        table.add_row(
            str(row["sequence"]),
            state,
            plain(row["event"]),
            plain(row["severity"]),
            plain(row["title"]),
            format_duration(max(row["age_seconds"], 0)),
            str(row["attempts"]),
            plain(row["last_error"] or "-"),
        )
    console().print(table)


def _render_flush(report: dict[str, Any], *, problems_only: bool) -> None:
    out = error_console()
    for dead in report["dead"]:
        out.print(plain(f"#{dead['sequence']} refused for good: {dead['reason']}"), soft_wrap=True)
    if report["remaining"]:
        out.print(plain(f"{report['remaining']} notification(s) still queued: {report['reason']}"))
    if not problems_only:
        console().print(f"Delivered {report['delivered']} notification(s).", markup=False)
