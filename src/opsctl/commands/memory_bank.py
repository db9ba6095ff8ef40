"""``memory-bank``: activate, inspect and extend the project's memory bank."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsctl.commands._common import JSON_HELP, console, load_project, plain, print_json, quiet

if TYPE_CHECKING:
    from opsctl.memory_bank import BankReport

app = typer.Typer(
    name="memory-bank",
    help="Activate, inspect and extend the memory bank that people and assistants keep.",
    no_args_is_help=True,
    add_completion=False,
)

JsonOption = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
_SPARKS = "▁▂▃▄▅▆▇█"


@app.command()
def init(ctx: typer.Context) -> None:
    """Create the bank folder and the profile's files, each with its heading; never overwrites."""
    from opsctl.memory_bank import bank_folder, init_bank

    project = load_project(ctx)
    results = init_bank(project)
    out = console()
    for name, created in results:
        if created or not quiet(ctx):
            out.print(
                f"{'created' if created else 'kept   '} {bank_folder(project) / name}", markup=False
            )


@app.command()
def activate(ctx: typer.Context, json: JsonOption = False) -> None:
    """Load every file, check the expected set, print the bank's status, and record it.

    Exits 0 when active (every expected file present), 1 when inactive.
    """
    from opsctl.memory_bank import inspect_bank, record_activation

    project = load_project(ctx)
    report = inspect_bank(project)
    record_activation(project, report)
    _render_status(ctx, report, as_json=json)


@app.command()
def status(ctx: typer.Context, json: JsonOption = False) -> None:
    """Print the bank's status like `activate`, without recording an activation."""
    from opsctl.memory_bank import inspect_bank

    _render_status(ctx, inspect_bank(load_project(ctx)), as_json=json)


@app.command()
def log(
    ctx: typer.Context,
    file: Annotated[
        str, typer.Argument(help="The bank file, with or without .md (e.g. decisionLog).")
    ],
    title: Annotated[str, typer.Argument(help="The entry's title.")],
    body: Annotated[
        str | None,
        typer.Option("--body", help="The entry's text; '-' reads it from standard input."),
    ] = None,
) -> None:
    """Append a timestamped entry to a bank file, atomically, in the bank's time zone."""
    from opsctl.memory_bank import append_entry

    text = sys.stdin.read() if body == "-" else (body or "")
    path = append_entry(load_project(ctx), file, title, text)
    if not quiet(ctx):
        console().print(f"logged '{' '.join(title.split())}' in {path}", markup=False)


@app.command()
def history(
    ctx: typer.Context,
    last: Annotated[
        int, typer.Option("--last", min=1, help="How many recent activations to show.")
    ] = 30,
    json: JsonOption = False,
) -> None:
    """Show each file's entries, size and staleness over the recorded activations."""
    import logging

    from opsctl.memory_bank import load_history

    project = load_project(ctx)
    records, broken = load_history(project)
    if broken:
        logging.getLogger(__name__).warning("Skipped unreadable history lines: %s", broken)
    records = records[-last:]
    series = _series(records)
    if json:
        print_json({"activations": len(records), "files": series})
        return
    _render_history(series, len(records))


@app.command()
def show(
    ctx: typer.Context,
    budget: Annotated[
        int | None,
        typer.Option("--budget", min=1, help="Cut to about this many tokens (4 characters each)."),
    ] = None,
) -> None:
    """Print the whole bank as one text to paste into an assistant.

    With --budget, the text outside entries is kept and entries are taken newest first
    until the budget is reached; each file notes how many entries were left out.
    """
    from opsctl.memory_bank import show_bank

    shown = show_bank(load_project(ctx), budget_tokens=budget)
    sys.stdout.write(shown.text)
    if shown.omitted:
        left_out = ", ".join(f"{name}: {count}" for name, count in shown.omitted.items())
        sys.stderr.write(f"about {shown.tokens} tokens; entries left out: {left_out}\n")


@app.command("install-hook")
def install_hook(
    ctx: typer.Context,
    roo: Annotated[
        bool, typer.Option("--roo", help="Write the memory-bank mode into .roomodes (Roo Code).")
    ] = False,
    cline: Annotated[
        bool, typer.Option("--cline", help="Write the rules into .clinerules (Cline).")
    ] = False,
    shell: Annotated[
        bool, typer.Option("--shell", help="Also write a shell snippet that activates on start.")
    ] = False,
) -> None:
    """Make assistants activate the bank at the start of every session.

    Without --roo or --cline, writes what the configured profile's assistant reads
    (.roomodes for roo, .clinerules for cline, both for custom). Other modes and rules
    in those files are kept.
    """
    from opsctl.memory_bank import install_clinerules, install_roomodes, install_shell_snippet

    project = load_project(ctx)
    profile = project.config.memory_bank.profile
    if not roo and not cline:
        roo, cline = profile in {"roo", "custom"}, profile in {"cline", "custom"}
    written = []
    if roo:
        written.append(install_roomodes(project))
    if cline:
        written.append(install_clinerules(project))
    if shell:
        snippet = install_shell_snippet(project)
        written.append(snippet)
    out = console()
    for path in written:
        out.print(f"wrote {path}", markup=False)
    if shell:
        out.print(
            f"to activate in every shell started here, add to ~/.bashrc:  . '{snippet}'",
            markup=False,
        )


def _render_status(ctx: typer.Context, report: BankReport, *, as_json: bool) -> None:
    if as_json:
        print_json(report.to_dict())
    else:
        _print_status(report, problems_only=quiet(ctx))
    raise typer.Exit(0 if report.active else 1)


def _print_status(report: BankReport, *, problems_only: bool) -> None:
    from rich.table import Table

    from opsctl.checks.health import format_duration

    out = console()
    out.print("[MEMORY BANK: ACTIVE]" if report.active else "[MEMORY BANK: INACTIVE]", markup=False)
    table = Table(show_edge=False, pad_edge=False, box=None, show_header=True)
    for column in ("FILE", "STATE", "ENTRIES", "NEWEST", "AGE", "SIZE", "TOKENS", "FINDINGS"):
        table.add_column(column)
    for file in report.files:
        problem = not file.present or file.stale or file.error or file.findings
        if problems_only and not problem:
            continue
        if not file.present:
            table.add_row(
                file.name,
                "[bold red]missing[/]" if file.expected else "absent",
                "",
                "",
                "",
                "",
                "",
                "",
            )
            continue
        state = (
            "[red]unreadable[/]"
            if file.error
            else "[yellow]stale[/]"
            if file.stale
            else "[green]fresh[/]"
        )
        age = f"{format_duration(file.age_seconds)} ago" if file.age_seconds is not None else "-"
        table.add_row(
            file.name + ("" if file.expected else " (extra)"),
            state,
            str(file.entries),
            file.newest_entry.strftime("%Y-%m-%d %H:%M") if file.newest_entry else "-",
            age + (" (changed)" if file.age_source == "modified" else ""),
            f"{file.size_bytes / 1024:.1f} KiB",
            f"~{file.tokens}",
            str(len(file.findings)) if file.findings else "",
        )
    if table.row_count:
        out.print(table)
    out.print(f"{report.folder} ({report.profile} profile)", markup=False, style="dim")


def _series(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    names = list(dict.fromkeys(name for record in records for name in record["files"]))
    return {
        name: [
            {"at": record.get("at"), **record["files"].get(name, {"present": False})}
            for record in records
        ]
        for name in names
    }


def sparkline(values: list[float]) -> str:
    """Draw ``values`` as a line of block characters scaled between their min and max."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1
    return "".join(_SPARKS[round((value - low) / span * (len(_SPARKS) - 1))] for value in values)


def _render_history(series: dict[str, list[dict[str, Any]]], activations: int) -> None:
    from rich.table import Table

    out = console()
    if not activations:
        out.print("No activations recorded yet; run 'opsctl memory-bank activate'.")
        return
    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in ("FILE", "ENTRIES", "TREND", "SIZE TREND", "STALE"):
        table.add_column(column)
    for name, points in series.items():
        name = plain(name)  # noqa: PLW2901
        entries = [float(p.get("entries") or 0) for p in points]
        sizes = [float(p.get("size_bytes") or 0) for p in points]
        stale = sum(1 for p in points if p.get("stale"))
        missing = sum(1 for p in points if not p.get("present"))
        note = f"{stale} of {len(points)}" + (f", missing {missing}" if missing else "")
        table.add_row(
            name,
            f"{entries[0]:.0f} → {entries[-1]:.0f}",
            sparkline(entries),
            sparkline(sizes),
            note,
        )
    out.print(table)
    out.print(f"over the last {activations} activations", style="dim")
