"""``backup run``: one archive of the configured sources, committed by its manifest."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from opsctl import __version__
from opsctl.backup import _paths
from opsctl.backup import _redis as redis_source
from opsctl.backup._archive import ArchiveWriter
from opsctl.backup._manifest import FileEntry, Manifest, SourceEntry, new_backup_id
from opsctl.backup._report import RunOutcome, report
from opsctl.backup._sources import Progress, destination, select_sources
from opsctl.backup._store import Store
from opsctl.errors import OperationFailedError, OpsctlError

if TYPE_CHECKING:
    from opsctl.backup._prune import PruneResult
    from opsctl.config import Project

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """A committed backup, what the run cleaned up and pruned, and what went wrong on
    the side (metrics, notifications) without failing it.
    """

    manifest: Manifest
    leftovers_removed: list[str] = field(default_factory=list)
    pruned: PruneResult | None = None
    warnings: list[str] = field(default_factory=list)


def run_backup(
    project: Project, *, sources: Sequence[str] = (), progress: Progress | None = None
) -> RunResult:
    """Back up ``sources`` (all configured when empty) into one new archive, then prune
    when ``backup.prune_after_run`` is set. Reports metrics and notifications either way.

    Raises :class:`ConfigError`/:class:`UsageError` before anything is written,
    :class:`BusyError` when another run holds the destination, and
    :class:`OperationFailedError` when the backup fails; nothing partial is left listed.
    """
    selected = select_sources(project, sources)
    if project.config.backup.prune_after_run:
        from opsctl.backup._retention import Policy

        Policy.from_section(project.config.backup.retention)  # a bad policy fails first
    store = Store(destination(project))
    begin = time.monotonic()
    try:
        with store.locked("backup run"):
            leftovers = store.clean_leftovers()
            manifest = _write_backup(project, store, selected, progress)
    except OpsctlError as error:
        if error.exit_code != OperationFailedError.exit_code:
            raise
        _report_failure(project, store, begin, error.message, error.hint)
        raise
    except OSError as error:
        message = (
            f"The backup failed: {error.strerror or error} ({error.filename or store.folder})."
        )
        hint = "Nothing partial was kept; the previous backups are intact."
        _report_failure(project, store, begin, message, hint)
        raise OperationFailedError(message, hint=hint) from None

    logger.info("Backup %s committed in %s", manifest.id, store.folder)
    pruned = None
    if project.config.backup.prune_after_run:
        from opsctl.backup._prune import prune_backups

        pruned = prune_backups(project, dry_run=False)
    outcome = RunOutcome(time.monotonic() - begin, manifest=manifest)
    warnings = report(project, store, outcome)
    return RunResult(manifest, leftovers, pruned, warnings)


def _report_failure(
    project: Project, store: Store, begin: float, message: str, hint: str | None
) -> None:
    report(project, store, RunOutcome(time.monotonic() - begin, error=message, hint=hint))


def _write_backup(
    project: Project, store: Store, selected: list[str], progress: Progress | None
) -> Manifest:
    started_at = _now()
    backup_id = new_backup_id(started_at)
    partial, final = store.partial_path(backup_id), store.archive_path(backup_id)
    advance = progress.advance if progress is not None else None
    store.mark_pending(backup_id)
    entries: list[FileEntry] = []
    source_entries: list[SourceEntry] = []
    with ArchiveWriter(partial, final, progress=advance) as writer:
        if _paths.SOURCE in selected:
            source_entries.append(_add_paths(project, store, writer, entries, progress))
        if redis_source.SOURCE in selected:
            source_entries.append(_add_redis(project, store, writer, entries, progress))
        size = writer.finish()
    manifest = Manifest(
        id=backup_id,
        started_at=started_at,
        finished_at=_now(),
        host=socket.gethostname(),
        project=project.name,
        opsctl_version=__version__,
        config_sha256=_config_hash(project),
        archive_name=final.name,
        archive_size_bytes=size,
        sources=tuple(source_entries),
        files=tuple(entries),
    )
    try:
        store.commit(manifest)
    except BaseException:
        final.unlink(missing_ok=True)
        raise
    return manifest


def _add_paths(
    project: Project,
    store: Store,
    writer: ArchiveWriter,
    entries: list[FileEntry],
    progress: Progress | None,
) -> SourceEntry:
    section = project.config.backup
    plan = _paths.plan_paths(
        section.paths, section.exclude, root=project.root, skip=(store.folder,)
    )
    if progress is not None:
        progress.begin("files", _total_bytes(plan))
    items = [(item.name, item.path, str(item.path)) for item in plan.items]
    try:
        stored = writer.add_paths(items, source=_paths.SOURCE)
    except PermissionError as error:
        message = f"Cannot read {error.filename}: {error.strerror}."
        raise OperationFailedError(message, hint="Give opsctl read access or exclude it.") from None
    added, vanished = stored.entries, stored.vanished
    entries += added
    files = [entry for entry in added if entry.type == "file"]
    metadata = {
        "patterns": list(section.paths),
        "exclude": list(section.exclude),
        "root": str(project.root),
        "unmatched": list(plan.unmatched),
        "vanished": vanished,
        "changed_while_read": [entry.path for entry in files if entry.changed],
    }
    return SourceEntry(
        _paths.SOURCE, "paths", len(files), sum(entry.size_bytes for entry in files), metadata
    )


def _total_bytes(plan: _paths.PathPlan) -> int:
    total = 0
    for item in plan.items:
        try:
            info = item.path.lstat()
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            total += info.st_size
    return total


def _add_redis(
    project: Project,
    store: Store,
    writer: ArchiveWriter,
    entries: list[FileEntry],
    progress: Progress | None,
) -> SourceEntry:
    source = redis_source.resolve_source(project)
    assert source is not None  # noqa: S101 (selected only when configured)
    with redis_source.take_snapshot(project, source, workdir=store.folder) as snapshot:
        if progress is not None:
            progress.begin("redis", snapshot.size_bytes)
        info = os.fstat(snapshot.handle.fileno())
        entry = writer.add_stream(
            redis_source.MEMBER,
            snapshot.handle,
            info,
            source=redis_source.SOURCE,
            original=source.shown_url,
        )
    entries.append(entry)
    metadata = {"url": source.shown_url, "service": source.service, **snapshot.metadata}
    return SourceEntry(redis_source.SOURCE, "redis", 1, entry.size_bytes, metadata)


def _now() -> datetime:
    """The current UTC time at the manifest's precision (milliseconds)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _config_hash(project: Project) -> str:
    try:
        return hashlib.sha256(project.config_path.read_bytes()).hexdigest()
    except OSError:
        return ""
