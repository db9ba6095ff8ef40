"""``monitor``: watch the stack continuously; manage silences; show alert states."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsctl.commands._common import (
    JSON_HELP,
    console,
    error_console,
    load_project,
    load_runtime,
    plain,
    print_json,
    quiet,
)

if TYPE_CHECKING:
    from opsctl.monitor import AlertState, Silence

# The help text is the callback's docstring: what the loop does and its exit codes.
app = typer.Typer(name="monitor", add_completion=False)

JsonOption = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
_STATE_STYLES = {"ok": "green", "pending": "yellow", "firing": "bold red", "flapping": "magenta"}
# A transition's NOTE in health --history: held back, delivered, or waiting for Slack.
_NOTES = ("silenced", "notified", "queued")


@app.callback(invoke_without_command=True)
def monitor(
    ctx: typer.Context,
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval",
            min=0.1,
            help="Seconds between cycles (default: monitoring.interval_seconds).",
            show_default=False,
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=1,
            max=65535,
            help="Serve /metrics on this port (default: monitoring.metrics_port; none: off).",
            show_default=False,
        ),
    ] = None,
    once: Annotated[
        bool,
        typer.Option("--once", help="Run one cycle and exit with health's exit code (cron)."),
    ] = False,
    cycles: Annotated[
        int | None,
        typer.Option("--cycles", min=1, help="Stop after this many cycles.", show_default=False),
    ] = None,
    json: Annotated[
        bool, typer.Option("--json", help="After the last cycle, print what it found as JSON.")
    ] = False,
) -> None:
    """Run the monitoring loop until stopped (SIGTERM: exit 0; Ctrl-C: exit 130).

    Every interval: the health checks, disk, memory, load, the stack's Redis, backup age,
    component heartbeats and GPUs. Alerts fire after monitoring.fire_after bad cycles,
    resolve after monitoring.resolve_after good ones, and go to Slack when it is
    configured. With --once (or --cycles) it exits with health's code: 0 healthy,
    3 degraded, 1 unhealthy. Exits 75 when another monitor of the project runs and 4 when
    the /metrics port cannot be bound.
    """
    if ctx.invoked_subcommand is not None:
        return
    from opsctl.monitor import MonitorOptions, run_monitor
    from opsctl.notify import notifier_for

    runtime = load_runtime(ctx, lenient=True)
    project = runtime.project
    section = project.config.monitoring
    options = MonitorOptions(
        interval_seconds=interval or section.interval_seconds,
        metrics_host=section.metrics_host,
        metrics_port=metrics_port or section.metrics_port,
        max_cycles=1 if once else cycles,
    )
    outcome: list[Any] = []
    code = run_monitor(
        project, runtime, options=options, notifier=notifier_for(project), outcomes=outcome
    )
    if json:
        print_json(_outcome_dict(outcome[-1]) if outcome else {})
    raise typer.Exit(code)


def _outcome_dict(outcome: Any) -> dict[str, Any]:
    from dataclasses import asdict

    from opsctl.monitor import transition_dict

    return {
        "health": outcome.health,
        "failed_probes": outcome.failed_probes,
        "transitions": [transition_dict(t) for t in outcome.transitions],
        "notifications": [asdict(notice) for notice in outcome.notices],
    }


@app.command()
def silence(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            help="An alert (disk_free:/srv), a family (disk_free), a glob, or a service "
            "(200 characters at most)."
        ),
    ],
    duration: Annotated[
        str,
        typer.Argument(help="How long, largest unit first: 30m, 2h, 1d, 1h30m (90 days at most)."),
    ],
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why, for whoever reads the list.")
    ] = "",
    everything: Annotated[
        bool,
        typer.Option("--all", help="Confirm a target of wildcards only ('*'): every alert."),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Silence an alert, or every alert of a service, for a while.

    A silenced alert still changes state and is recorded; it notifies nobody. When the
    silence ends, whatever changed meanwhile is notified once. The running monitor
    picks it up at its next cycle. Silencing everything ('*') takes --all.
    """
    from opsctl.monitor import add_silence, known_targets, parse_duration
    from opsctl.monitor._silences import LONGEST_SILENCE

    project = load_project(ctx, lenient=True)
    length = parse_duration(duration, what="silence duration", longest=LONGEST_SILENCE)
    created = add_silence(project, target, length, reason=reason, everything=everything)
    known = known_targets(project)
    covered = any(created.matches(name, name) for name in known)
    if json:
        print_json(created.to_dict())
        return
    if not covered:
        error_console().print(
            f"note: '{plain(created.target)}' matches no alert or service seen so far; "
            "it will apply to any matching alert or service that appears later "
            "(see: opsctl monitor alerts)."
        )
    console().print(
        f"Silenced {plain(created.target)} until {created.to_dict()['expires_at']} "
        f"(id {created.id})."
    )


@app.command()
def silences(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include expired silences.")] = False,
    json: JsonOption = False,
) -> None:
    """List the silences in force: id, target, time left, reason and who set it."""
    from opsctl.monitor import list_silences

    project = load_project(ctx, lenient=True)
    found = list_silences(project, include_expired=all_)
    if json:
        print_json({"silences": [s.to_dict() for s in found]})
        return
    _render_silences(found)


@app.command()
def unsilence(
    ctx: typer.Context,
    which: Annotated[str, typer.Argument(help="A silence's id, or the target it silences.")],
    json: JsonOption = False,
) -> None:
    """End a silence now (by id, or every silence of a target). Exits 2 when none matches."""
    from opsctl.monitor import remove_silences

    project = load_project(ctx, lenient=True)
    removed = remove_silences(project, which)
    if json:
        print_json({"removed": [s.to_dict() for s in removed]})
        return
    for item in removed:
        console().print(f"Ended silence {item.id} of {plain(item.target)}.")


@app.command()
def alerts(
    ctx: typer.Context,
    json: JsonOption = False,
) -> None:
    """Show every alert the monitor knows: state, severity, since when, last value.

    Exits 0 when none fires, 3 when only warnings fire, 1 when a critical one fires.
    """
    from opsctl.monitor import alert_dict, alert_states

    project = load_project(ctx, lenient=True)
    states = alert_states(project)
    if json:
        print_json({"alerts": [alert_dict(state) for state in states]})
    else:
        _render_alerts(states, problems_only=quiet(ctx))
    severities = {s.severity for s in states if s.state == "firing"}
    raise typer.Exit(1 if "critical" in severities else 3 if severities else 0)


def _render_alerts(states: list[AlertState], *, problems_only: bool) -> None:
    from rich.table import Table

    from opsctl.monitor import alert_dict

    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in ("ALERT", "STATE", "SEVERITY", "SINCE", "VALUE", "TITLE"):
        table.add_column(column)
    for state in states:
        row = alert_dict(state)
        if problems_only and row["state"] == "ok":
            continue
        style = _STATE_STYLES.get(row["state"], "")
        table.add_row(
            plain(state.key),
            f"[{style}]{row['state']}[/]" if style else row["state"],
            row["severity"] or "",
            row["since"] or "",
            plain(row["value"] or ""),
            plain(row["title"] or ""),
        )
    out = console()
    if table.row_count:
        out.print(table)
    elif not states:
        out.print("No alerts recorded yet: the monitor has not run for this project.")
    elif not problems_only:
        out.print("No alerts.")


def _render_silences(found: list[Silence]) -> None:
    from rich.table import Table

    if not found:
        console().print("No silences in force.")
        return
    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in ("ID", "TARGET", "EXPIRES", "LEFT", "BY", "REASON"):
        table.add_column(column)
    for item in found:
        row = item.to_dict()
        table.add_row(
            str(item.id),
            plain(item.target),
            row["expires_at"],
            _left(row["remaining_seconds"]),
            plain(item.created_by),
            plain(item.reason),
        )
    console().print(table)


def _left(seconds: int) -> str:
    from opsctl.checks.health import format_duration

    return format_duration(seconds) if seconds else "expired"


def show_history(project: Any, *, since: str, json: bool, ctx: typer.Context) -> None:
    """Print what the monitor recorded over ``since`` (for ``opsctl health --history``)."""
    from opsctl.monitor import parse_since, read_history

    history = read_history(project, since=parse_since(since))
    if json:
        print_json(history.to_dict())
        return
    _render_history(history.to_dict(), problems_only=quiet(ctx))


def _render_history(data: dict[str, Any], *, problems_only: bool) -> None:
    from rich.table import Table

    out = console()
    if not data["recorded"]:
        out.print("No history: `opsctl monitor` has not run for this project yet.")
        return
    uptime = Table(show_edge=False, pad_edge=False, box=None, title=f"Since {data['since']}")
    for column in ("CHECK", "UPTIME", "PASS", "WARN", "FAIL", "MEAN MS"):
        uptime.add_column(column, justify="left" if column == "CHECK" else "right")
    for row in data["uptime"]:
        percent = row["uptime_percent"]
        if problems_only and percent == 100:  # noqa: PLR2004 (a whole percentage)
            continue
        uptime.add_row(
            plain(row["check"]),
            "-" if percent is None else f"{percent:.2f} %",
            str(row["pass"]),
            str(row["warn"]),
            str(row["fail"]),
            f"{row['mean_duration_ms']:.0f}",
        )
    if uptime.row_count:
        out.print(uptime)
    changes = Table(show_edge=False, pad_edge=False, box=None)
    for column in ("AT", "WHAT", "EVENT", "FROM", "TO", "VALUE", "NOTE"):
        changes.add_column(column)
    for row in data["transitions"]:
        note = next((name for name in _NOTES if row.get(name)), "")
        changes.add_row(
            row["at"],
            plain(row["key"]),
            row["event"],
            row["from_state"],
            row["to_state"],
            plain(row["value"] or row["detail"] or ""),
            note,
        )
    out.print(changes if changes.row_count else "No transitions in that period.")
    if data["firing"]:
        names = ", ".join(plain(alert["alert"]) for alert in data["firing"])
        out.print(f"[bold red]Firing now[/]: {names}")
