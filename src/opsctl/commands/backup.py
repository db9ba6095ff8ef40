"""``backup``: run, list, verify, restore and prune backups of files and Redis."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
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
    from opsctl.backup import DamagedManifest, Progress, RestoreResult, StoredBackup

app = typer.Typer(
    name="backup",
    help="Back up, list, verify, restore and prune backups of files and Redis.",
    no_args_is_help=True,
    add_completion=False,
)

JsonOption = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking.")]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")
]
SourceOption = Annotated[
    list[str] | None,
    typer.Option("--source", "-s", help="Only this source (files, redis); repeatable."),
]


@app.command()
def run(ctx: typer.Context, source: SourceOption = None, json: JsonOption = False) -> None:
    """Back up the configured paths and Redis into one new archive.

    Made for cron: silent on success without a terminal, exit 1 and an alert on failure,
    75 when another run holds the destination. Nothing partial is ever listed; leftovers of
    killed runs are removed. Prunes afterwards when backup.prune_after_run is set.
    """
    from opsctl.backup import backend_for

    project = load_project(ctx)
    with _progress(ctx, json=json) as progress:
        result = backend_for(project).run_backup(project, sources=source or [], progress=progress)
    manifest = result.manifest
    if json:
        data = _summary(manifest.to_dict())
        data["leftovers_removed"] = result.leftovers_removed
        data["pruned"] = result.pruned.removed if result.pruned else []
        data["warnings"] = result.warnings
        print_json(data)
        return
    if sys.stdout.isatty() and not quiet(ctx):
        console().print(
            f"backup {manifest.id}: {manifest.file_count} files, "
            f"{_size(manifest.archive_size_bytes)} in {manifest.duration_seconds:.1f} s",
            markup=False,
        )


@app.command("list")
def list_(ctx: typer.Context, json: JsonOption = False) -> None:
    """List the committed backups, newest first: id, time, size, files, sources."""
    from opsctl.backup import backend_for, destination

    project = load_project(ctx)
    backend = backend_for(project)
    backups = backend.list_backups(project)
    damaged = backend.damaged_manifests(project)
    if json:
        rows = [_row(stored) for stored in backups] + [_damaged_row(d) for d in damaged]
        print_json({"destination": str(destination(project)), "backups": rows})
        return
    _render_list(backups, destination(project))
    for entry in damaged:
        console().print(
            f"{entry.id}: [red]damaged manifest[/] {plain(entry.path.name)}: {plain(entry.problem)}"
        )


@app.command()
def verify(
    ctx: typer.Context,
    backup_id: Annotated[
        str | None, typer.Argument(metavar="ID", help="The backup (default: the newest).")
    ] = None,
    all_backups: Annotated[bool, typer.Option("--all", help="Verify every backup.")] = False,
    json: JsonOption = False,
) -> None:
    """Re-read backups end to end and re-hash every file against the manifest.

    Exits 1 when any backup is damaged.
    """
    from opsctl.backup import backend_for

    project = load_project(ctx)
    results = backend_for(project).verify_backups(
        project, backup_id=backup_id, all_backups=all_backups
    )
    if json:
        print_json({"backups": [result.to_dict() for result in results]})
    else:
        out = console()
        for result in results:
            if result.ok and quiet(ctx):
                continue
            verdict = "[green]ok[/]" if result.ok else "[bold red]DAMAGED[/]"
            out.print(
                f"{result.id}: {verdict} ({result.files_checked} files, {_size(result.size_bytes)})"
            )
            for problem in result.problems:
                out.print(f"  {plain(problem)}")
    raise typer.Exit(0 if all(result.ok for result in results) else 1)


@app.command()
def restore(
    ctx: typer.Context,
    backup_id: Annotated[
        str, typer.Argument(metavar="ID", help="The backup: an id, a unique prefix, or latest.")
    ],
    source: SourceOption = None,
    to: Annotated[
        Path | None,
        typer.Option("--to", help="Restore under this folder instead of in place."),
    ] = None,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
    json: JsonOption = False,
) -> None:
    """Restore a backup: files in place (or under --to), Redis by swapping its snapshot.

    Extraction is safe: absolute paths, '..', links that escape, hard links outside the
    backup and device files are refused and reported. Every file is checked against its
    checksum before it replaces anything. Redis in place: its service is stopped, the RDB
    swapped (the old one kept beside it), the service started and its key count checked.
    Exits 1 when anything was refused or a check failed.
    """
    from opsctl.backup import backend_for

    project = load_project(ctx)
    _check_backup_id(backup_id)
    if not dry_run and _overwrites(to):
        where = f"into {to}" if to else f"in place under {project.root}"
        _confirm(f"Restore backup {backup_id} {where}, replacing what is there?", yes=yes)
    with _progress(ctx, json=json) as progress:
        result = backend_for(project).restore_backup(
            project, backup_id, sources=source or [], to=to, dry_run=dry_run, progress=progress
        )
    if json:
        print_json(result.to_dict())
    else:
        _render_restore(result, problems_only=quiet(ctx))
    raise typer.Exit(0 if result.ok else 1)


@app.command()
def prune(
    ctx: typer.Context,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
    json: JsonOption = False,
) -> None:
    """Remove the backups backup.retention does not keep (restic forget rules).

    The newest complete backup is never removed, nor every backup. See docs/retention.md.
    """
    from opsctl.backup import backend_for

    project = load_project(ctx)
    if not dry_run:
        _confirm("Remove the backups the retention policy does not keep?", yes=yes)
    result = backend_for(project).prune_backups(project, dry_run=dry_run)
    if json:
        print_json(result.to_dict())
        return
    out = console()
    for decision in result.decisions:
        if decision.keep and quiet(ctx):
            continue
        verb = "keep  " if decision.keep else ("would remove" if dry_run else "removed")
        reasons = f" ({', '.join(decision.reasons)})" if decision.reasons else ""
        out.print(f"{verb} {decision.snapshot.id}{reasons}", markup=False)


# Rendering


def _summary(manifest: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in manifest.items() if key != "files"}


def _row(stored: StoredBackup) -> dict[str, Any]:
    manifest = stored.manifest
    return {
        "id": manifest.id,
        "started_at": manifest.to_dict()["started_at"],
        "finished_at": manifest.to_dict()["finished_at"],
        "host": manifest.host,
        "size_bytes": manifest.archive_size_bytes,
        "content_bytes": manifest.content_bytes,
        "files": manifest.file_count,
        "sources": [source.name for source in manifest.sources],
        "status": "complete" if stored.problem is None else "damaged",
        "problem": stored.problem,
    }


def _damaged_row(entry: DamagedManifest) -> dict[str, Any]:
    return {"id": entry.id, "status": "damaged", "problem": f"manifest: {entry.problem}"}


def _render_list(backups: list[StoredBackup], folder: Path) -> None:
    from rich.table import Table

    out = console()
    if not backups:
        error_console().print(f"No backups in {folder} yet.", markup=False)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("ID", "STARTED (UTC)", "AGE", "SIZE", "FILES", "SOURCES", "STATUS"):
        table.add_column(column)
    now = datetime.now(UTC)
    for stored in backups:
        manifest = stored.manifest
        status = (
            "[green]complete[/]" if stored.problem is None else f"[red]{plain(stored.problem)}[/]"
        )
        table.add_row(
            manifest.id,
            f"{manifest.started_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
            _age((now - manifest.started_at).total_seconds()),
            _size(manifest.archive_size_bytes),
            str(manifest.file_count),
            ", ".join(source.name for source in manifest.sources),
            status,
        )
    out.print(table)


def _render_restore(result: RestoreResult, *, problems_only: bool) -> None:
    out = console()
    prefix = "dry run: " if result.dry_run else ""
    for source in result.sources:
        if source.ok and problems_only:
            continue
        verdict = "[green]ok[/]" if source.ok else "[bold red]FAILED[/]"
        out.print(
            f"{prefix}{source.name} -> {plain(source.target)}: {verdict} {plain(source.detail)}"
        )
        for refusal in source.refused:
            out.print(f"  refused {plain(refusal.name)}: {plain(refusal.reason)}")


_KILO = 1000
_HOUR_SECONDS = 3600
_DAY_SECONDS = 86400


def _size(size_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size_bytes < _KILO or unit == "GB":
            return f"{size_bytes:.0f} {unit}" if unit == "B" else f"{size_bytes:.1f} {unit}"
        size_bytes /= _KILO
    return f"{size_bytes:.1f} GB"


def _age(seconds: float) -> str:
    if seconds < _HOUR_SECONDS:
        return f"{max(seconds, 0) / 60:.0f} min"
    if seconds < 2 * _DAY_SECONDS:
        return f"{seconds / _HOUR_SECONDS:.1f} h"
    return f"{seconds / _DAY_SECONDS:.1f} d"


# Interaction


def _overwrites(to: Path | None) -> bool:
    """In place always may; a folder only when something is already in it."""
    if to is None:
        return True
    return to.exists() and (not to.is_dir() or any(to.iterdir()))


def _check_backup_id(backup_id: str) -> None:
    """Refuse what cannot name a backup before asking anything about it."""
    import re

    from opsctl.errors import UsageError

    if backup_id != "latest" and not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z-]*", backup_id):
        message = f"'{backup_id}' is not a backup id (an id, a unique prefix of one, or latest)."
        raise UsageError(message, hint="List them with: opsctl backup list")


def _confirm(question: str, *, yes: bool) -> None:
    from opsctl.errors import UsageError

    if yes:
        return
    if not sys.stdin.isatty():
        message = "This changes data and standard input is not a terminal to confirm it."
        raise UsageError(message, hint="Pass --yes, or --dry-run to see what it would do.")
    if not typer.confirm(question, default=False, err=True):
        raise typer.Exit(1)


@contextmanager
def _progress(ctx: typer.Context, *, json: bool) -> Iterator[Progress | None]:
    """Progress bars on stderr at a terminal; nothing for cron, pipes, -q or --json."""
    import os

    if json or quiet(ctx) or not sys.stderr.isatty() or os.environ.get("TERM") == "dumb":
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=error_console(),
        transient=True,
    )
    with bar:
        yield _Bar(bar)


class _Bar:
    """Adapts rich's progress display to the core's progress interface."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.task: Any = None

    def begin(self, description: str, total_bytes: int | None) -> None:
        if self.task is not None:
            self.bar.update(self.task, visible=False)
        self.task = self.bar.add_task(description, total=total_bytes)

    def advance(self, size_bytes: int) -> None:
        if self.task is not None:
            self.bar.advance(self.task, size_bytes)
