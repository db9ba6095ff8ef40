"""``notify``: send a test message, list and flush the queue of undelivered ones."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
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
    from pathlib import Path

    from opsctl.config import Project
    from opsctl.notify import FlushResult, Notifier, QueuedMessage

app = typer.Typer(
    name="notify",
    help="Send notifications: a test message, the queue of undelivered ones.",
    no_args_is_help=True,
    add_completion=False,
)

JsonOption = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
_DAMAGED_NAMES_SHOWN = 3


@app.command()
def test(ctx: typer.Context, json: JsonOption = False) -> None:
    """Send a test message to Slack, after whatever is still queued.

    Exits 0 when it was delivered; 1 when it was not (queued for a later try, or refused
    by Slack for good), with the reason, or when the queue's folder is damaged; 2 when no
    Slack is configured; 130 when interrupted (Ctrl-C or SIGTERM), the message then queued.
    """
    from opsctl.notify import Notification

    project = load_project(ctx)
    notifier = _notifier(project)
    notifier.queue.check()
    notification = Notification(
        key="opsctl:test",
        event="test",
        severity="info",
        title=f"Test notification from {project.name}",
        hint="Nothing to do: this message shows that notifications reach this channel.",
    )
    with _stopped_by_signals(notifier):
        result = notifier.deliver(notification)
    delivered = result.status == "delivered"
    earlier = len([number for number in result.flush.delivered if number != result.sequence])
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
    the message's detail. Damaged files are moved aside and counted (they are never
    delivered). Works without Slack configured. Exits 0, or 1 when the queue's folder cannot
    be read.
    """
    from opsctl.notify import open_queue

    project = load_project(ctx)
    queue = open_queue(project)
    queue.check()
    now = datetime.now(UTC)
    rows = [_queue_row(message, now) for message in [*queue.pending(), *queue.dead()]]
    damaged = queue.damaged()
    if json:
        print_json(
            {
                "queued": [row for row in rows if row["state"] == "queued"],
                "dead": [row for row in rows if row["state"] == "dead"],
                "damaged": damaged,
                "folder": str(queue.folder),
            }
        )
        return
    if rows or not damaged:
        _render_queue(rows, problems_only=quiet(ctx))
    if damaged:
        _render_damaged(damaged, queue.folder / "dead")


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
    good, or the queue's folder is damaged; 2 when no Slack is configured; 75 when another
    process is delivering; 130 when interrupted (Ctrl-C or SIGTERM), nothing lost.
    """
    from opsctl.errors import BusyError

    project = load_project(ctx)
    notifier = _notifier(project)
    notifier.queue.check()
    with _stopped_by_signals(notifier):
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


@contextlib.contextmanager
def _stopped_by_signals(notifier: Notifier) -> Iterator[None]:
    """Stop the block at once on SIGINT or SIGTERM, even inside a request, and exit 130.

    Queued messages are safe: a file leaves the queue only once Slack confirmed it. SIGINT
    is caught even where the shell had it ignored (a background job), as ``kill -INT``
    means to stop.
    """

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread can catch signals
        return

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except KeyboardInterrupt:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        error_console().print(
            plain(f"Interrupted; {_waiting(notifier)} still queued, nothing lost."),
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _waiting(notifier: Notifier) -> str:
    from opsctl.errors import OpsctlError

    try:
        return f"{notifier.queued_count()} notification(s)"
    except (OSError, OpsctlError):
        return "the notifications"


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


def _render_damaged(names: list[str], folder: Path) -> None:
    shown = ", ".join(names[:_DAMAGED_NAMES_SHOWN])
    if len(names) > _DAMAGED_NAMES_SHOWN:
        shown += ", …"
    said = (
        f"{len(names)} damaged notification file(s) set aside in {folder}, never to be "
        f"delivered: {shown}. Read what you need from them, then delete them."
    )
    error_console().print(plain(said), soft_wrap=True)


def _render_flush(report: dict[str, Any], *, problems_only: bool) -> None:
    out = error_console()
    for dead in report["dead"]:
        out.print(plain(f"#{dead['sequence']} refused for good: {dead['reason']}"), soft_wrap=True)
    if report["remaining"]:
        out.print(plain(f"{report['remaining']} notification(s) still queued: {report['reason']}"))
    if not problems_only:
        console().print(f"Delivered {report['delivered']} notification(s).", markup=False)
