"""The restic backend (``backup.backend = "restic"``): the same five operations as the archive
backend, over a restic repository at ``backup.destination`` (a folder or a restic URL).

A backup is one restic snapshot tagged ``opsctl`` and ``opsctl-id:<id>``. It holds the files
``backup.paths`` selects (listed to restic one by one, so excludes mean exactly what they
mean for the archive backend), the Redis snapshot staged as ``redis/dump.rdb`` and the
manifest (``opsctl-manifest.json``) in ``<state_dir>/restic-staging``. Manifests read back
from the repository are cached in ``<state_dir>/restic-manifests``: a snapshot never
changes, so ``list`` costs one ``restic snapshots`` call once the cache is warm.
"""

from __future__ import annotations

import builtins
import dataclasses
import logging
import re
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from opsctl import __version__
from opsctl._files import write_atomic
from opsctl.backup import _paths
from opsctl.backup import _redis as redis_source
from opsctl.backup._manifest import FileEntry, Manifest, SourceEntry, new_backup_id
from opsctl.backup._prune import PruneResult, check_plan
from opsctl.backup._report import RunOutcome, report
from opsctl.backup._restic import DEFAULT_TAG, ResticRepository, ResticSnapshot
from opsctl.backup._restic_place import place_files
from opsctl.backup._restore import (
    RestoreResult,
    SourceRestore,
    redis_outcome,
    redis_staging,
    select_stored_sources,
)
from opsctl.backup._run import RunResult
from opsctl.backup._sources import Progress, destination, select_sources
from opsctl.backup._store import DamagedManifest, Store, StoredBackup
from opsctl.backup._verify import VerifyResult
from opsctl.errors import OperationFailedError, OpsctlError, UsageError

if TYPE_CHECKING:
    from opsctl.config import Project

logger = logging.getLogger(__name__)

ID_TAG_PREFIX = "opsctl-id:"
MANIFEST_NAME = "opsctl-manifest.json"
STAGING_NAME = "restic-staging"
CACHE_NAME = "restic-manifests"
ARCHIVE_FORMAT = "restic"
# restic's remote backends (sftp:, s3:, rest:, b2:, ...) start with a scheme and a colon.
_REMOTE = re.compile(r"^[A-Za-z][A-Za-z0-9]*:")
_MOST_PROBLEMS_SHOWN = 20


class ResticStore(Store):
    """The lock of a restic backend (in the repository folder, or in the state folder for a
    remote repository) whose ``list`` is the repository's backups, for the run's report.
    """

    def __init__(self, project: Project) -> None:
        super().__init__(_lock_folder(project))
        self.project = project

    def list(self) -> builtins.list[StoredBackup]:
        try:
            return list_backups(self.project)
        except OpsctlError as error:
            logger.warning("Cannot list the restic backups: %s", error.message)
            return []


def repository_for(project: Project) -> ResticRepository:
    """The project's repository: ``backup.destination``, a folder (relative to the root) or a
    restic URL; the password comes from the environment or ``.env``. Raises
    :class:`ConfigError` when no password is set.
    """
    setting = project.config.backup.destination
    location = setting if _is_remote(setting) else str(destination(project))
    return ResticRepository(location, environ=project.environ)


def _is_remote(setting: str) -> bool:
    return bool(_REMOTE.match(setting)) and not setting.startswith("local:")


def _lock_folder(project: Project) -> Path:
    if _is_remote(project.config.backup.destination):
        return project.state_dir / "backup-restic"
    return destination(project)


# backup run


def run_backup(
    project: Project, *, sources: Sequence[str] = (), progress: Progress | None = None
) -> RunResult:
    """Back up ``sources`` (all configured when empty) into one new restic snapshot, then
    prune when ``backup.prune_after_run`` is set; reports metrics and notifications.

    Raises :class:`ConfigError`/:class:`UsageError` before anything is written,
    :class:`BusyError` when another operation holds the destination or restic's lock,
    :class:`ResourceUnavailableError` without ``restic``, and :class:`OperationFailedError`
    when the backup fails; a snapshot of a failed run is forgotten again.
    """
    selected = select_sources(project, sources)
    if project.config.backup.prune_after_run:
        from opsctl.backup._retention import Policy

        Policy.from_section(project.config.backup.retention)
    repository = repository_for(project)
    store = ResticStore(project)
    begin = time.monotonic()
    try:
        with store.locked("backup run"):
            repository.ensure_initialized()
            manifest = _write_snapshot(project, repository, store, selected, progress)
    except OpsctlError as error:
        if error.exit_code == OperationFailedError.exit_code:
            report(project, store, RunOutcome(time.monotonic() - begin, error=error.message))
        raise
    except OSError as error:
        message = f"The backup failed: {error.strerror or error} ({error.filename or ''})."
        report(project, store, RunOutcome(time.monotonic() - begin, error=message))
        raise OperationFailedError(message) from None

    logger.info("Backup %s committed as restic snapshot %s", manifest.id, manifest.archive_name)
    pruned = (
        prune_backups(project, dry_run=False) if project.config.backup.prune_after_run else None
    )
    warnings = report(project, store, RunOutcome(time.monotonic() - begin, manifest=manifest))
    return RunResult(manifest, [], pruned, warnings)


def _write_snapshot(
    project: Project,
    repository: ResticRepository,
    store: Store,
    selected: list[str],
    progress: Progress | None,
) -> Manifest:
    started_at = _now()
    backup_id = new_backup_id(started_at)
    staging = _fresh_staging(project)
    listed: list[Path] = []
    entries: list[FileEntry] = []
    source_entries: list[SourceEntry] = []
    if _paths.SOURCE in selected:
        skip = (store.folder, project.state_dir)
        source_entries.append(_plan_files(project, skip, entries, listed))
    if redis_source.SOURCE in selected:
        source_entries.append(_stage_redis(project, staging, entries, listed))
    manifest = _manifest(project, backup_id, started_at, source_entries, entries)
    write_atomic(staging / MANIFEST_NAME, manifest.to_json(), mode=0o600)
    listed.append(staging / MANIFEST_NAME)
    files_from = staging.parent / f".{STAGING_NAME}.list"
    write_atomic(files_from, "".join(f"{path}\n" for path in listed), mode=0o600)
    if progress is not None:
        progress.begin("restic", manifest.content_bytes)

    tags = [DEFAULT_TAG, f"{ID_TAG_PREFIX}{backup_id}"]
    previous = repository.snapshots(tag=DEFAULT_TAG)
    try:
        snapshot = repository.backup(
            [],
            tags=tags,
            time=started_at,
            files_from=files_from,
            parent=previous[0].id if previous else None,
        )
    except OpsctlError:
        _forget_failed(repository, backup_id)
        raise
    finally:
        files_from.unlink(missing_ok=True)
    if progress is not None:
        progress.advance(manifest.content_bytes)
    _cache_manifest(project, snapshot, manifest)
    return _as_listed(manifest, snapshot)


def _forget_failed(repository: ResticRepository, backup_id: str) -> None:
    """restic keeps the snapshot of a run that could not read some files: forget it, so
    that a failed run never lists as a backup.
    """
    try:
        doomed = [s.id for s in repository.snapshots(tag=f"{ID_TAG_PREFIX}{backup_id}")]
        repository.forget(doomed, prune=False)
    except OpsctlError as error:
        logger.warning("Could not forget the snapshot of failed run %s: %s", backup_id, error)


def _fresh_staging(project: Project) -> Path:
    """``<state_dir>/restic-staging``, emptied: the same path every run, so restic records
    the same paths and finds its parent snapshot.
    """
    staging = project.state_dir / STAGING_NAME
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700, parents=True)
    return staging


def _plan_files(
    project: Project, skip: tuple[Path, ...], entries: list[FileEntry], listed: list[Path]
) -> SourceEntry:
    """Plan ``backup.paths`` as the archive backend does; list to restic every file and link
    and every empty folder (a folder with listed content comes with it).
    """
    section = project.config.backup
    plan = _paths.plan_paths(section.paths, section.exclude, root=project.root, skip=skip)
    found: list[tuple[_paths.PathItem, FileEntry]] = []
    vanished = []
    for item in plan.items:
        try:
            entry = _file_entry(item)
        except FileNotFoundError:
            vanished.append(str(item.path))
            continue
        if entry is not None:
            found.append((item, entry))
    leaves = {item.path for item, entry in found if entry.type != "dir" or _is_empty(item.path)}
    covered = {parent for path in leaves for parent in path.parents}
    kept = [(item, entry) for item, entry in found if item.path in leaves | covered]
    listed += [item.path for item, _ in kept if item.path in leaves]
    entries += [entry for _, entry in kept]
    files = [entry for _, entry in kept if entry.type == "file"]
    metadata = {
        "patterns": list(section.paths),
        "exclude": list(section.exclude),
        "root": str(project.root),
        "unmatched": list(plan.unmatched),
        "vanished": vanished,
    }
    return SourceEntry(
        _paths.SOURCE, "paths", len(files), sum(e.size_bytes for e in files), metadata
    )


def _file_entry(item: _paths.PathItem) -> FileEntry | None:
    """The manifest entry of one planned path; ``None`` for sockets, FIFOs and devices."""
    info = item.path.lstat()
    name, path = item.name, str(item.path)
    mode, mtime = stat.S_IMODE(info.st_mode), info.st_mtime
    if stat.S_ISREG(info.st_mode):
        return FileEntry(name, _paths.SOURCE, path, "file", info.st_size, mode=mode, mtime=mtime)
    if stat.S_ISDIR(info.st_mode):
        return FileEntry(name, _paths.SOURCE, path, "dir", mode=mode, mtime=mtime)
    if stat.S_ISLNK(info.st_mode):
        link = str(item.path.readlink())
        return FileEntry(name, _paths.SOURCE, path, "symlink", mode=mode, mtime=mtime, link=link)
    return None


def _is_empty(folder: Path) -> bool:
    try:
        return not any(folder.iterdir())
    except OSError:
        return True


def _stage_redis(
    project: Project, staging: Path, entries: list[FileEntry], listed: list[Path]
) -> SourceEntry:
    """Take the Redis snapshot with the archive backend's code; copy it into the staging."""
    source = redis_source.resolve_source(project)
    assert source is not None  # noqa: S101 (selected only when configured)
    staged = staging / redis_source.MEMBER
    staged.parent.mkdir(mode=0o700)
    with redis_source.take_snapshot(project, source, workdir=staging) as snapshot:
        with staged.open("xb") as handle:
            shutil.copyfileobj(snapshot.handle, handle, 1 << 20)
        metadata = {"url": source.shown_url, "service": source.service, **snapshot.metadata}
    size = staged.stat().st_size
    entry = FileEntry(
        redis_source.MEMBER, redis_source.SOURCE, str(staged), "file", size, mtime=time.time()
    )
    entries.append(entry)
    listed.append(staged)
    return SourceEntry(redis_source.SOURCE, "redis", 1, size, metadata)


def _manifest(
    project: Project,
    backup_id: str,
    started_at: datetime,
    sources: list[SourceEntry],
    entries: list[FileEntry],
) -> Manifest:
    """The manifest stored inside the snapshot; its archive is named once the snapshot is."""
    import hashlib

    try:
        config_hash = hashlib.sha256(project.config_path.read_bytes()).hexdigest()
    except OSError:
        config_hash = ""
    return Manifest(
        id=backup_id,
        started_at=started_at,
        finished_at=_now(),
        host=socket.gethostname(),
        project=project.name,
        opsctl_version=__version__,
        config_sha256=config_hash,
        archive_name="",
        archive_size_bytes=0,
        sources=tuple(sources),
        files=tuple(entries),
    )


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


# backup list


def list_backups(project: Project) -> list[StoredBackup]:
    """The repository's opsctl snapshots as backups, newest first (none before the first
    run). A snapshot without a readable manifest is listed with its problem.
    """
    repository = repository_for(project)
    if not repository.exists():
        return []
    return _stored_backups(project, repository)


def damaged_manifests(project: Project) -> list[DamagedManifest]:
    """None: a snapshot without a usable manifest is listed with its problem instead."""
    del project
    return []


def _stored_backups(project: Project, repository: ResticRepository) -> list[StoredBackup]:
    found = []
    for snapshot in repository.snapshots(tag=DEFAULT_TAG):
        backup_id = _backup_id(snapshot)
        if backup_id is not None:
            found.append(_stored(project, repository, snapshot, backup_id))
    return sorted(found, key=lambda s: (s.manifest.started_at, s.id), reverse=True)


def _backup_id(snapshot: ResticSnapshot) -> str | None:
    for tag in snapshot.tags:
        if tag.startswith(ID_TAG_PREFIX):
            return tag[len(ID_TAG_PREFIX) :]
    return None


def _stored(
    project: Project, repository: ResticRepository, snapshot: ResticSnapshot, backup_id: str
) -> StoredBackup:
    cached = project.state_dir / CACHE_NAME / f"{snapshot.id}.json"
    problem = None
    try:
        text = cached.read_text(encoding="utf-8") if cached.is_file() else None
        if text is None:
            text = repository.dump(snapshot.id, _manifest_path(snapshot))
            manifest = Manifest.from_json(text)
            write_atomic(cached, text, mode=0o600)
        else:
            manifest = Manifest.from_json(text)
        if manifest.id != backup_id:
            problem = f"its manifest is of backup {manifest.id}"
    except (OperationFailedError, ValueError, OSError) as error:
        reason = error.message if isinstance(error, OpsctlError) else str(error)
        logger.debug("No manifest in snapshot %s: %s", snapshot.short_id, reason)
        manifest = _placeholder(snapshot, backup_id)
        problem = "the snapshot holds no readable opsctl manifest"
    # A restic backup has no archive file: ``archive`` is where its snapshot holds the manifest.
    return StoredBackup(_as_listed(manifest, snapshot), Path(_manifest_path(snapshot)), problem)


def _manifest_path(snapshot: ResticSnapshot) -> str:
    """Where the snapshot holds the manifest: the one listed path that ends like it."""
    ends = [path for path in snapshot.paths if path.endswith(f"/{STAGING_NAME}/{MANIFEST_NAME}")]
    return ends[0] if ends else f"/{STAGING_NAME}/{MANIFEST_NAME}"


def _cache_manifest(project: Project, snapshot: ResticSnapshot, manifest: Manifest) -> None:
    cached = project.state_dir / CACHE_NAME / f"{snapshot.id}.json"
    try:
        cached.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(cached, manifest.to_json(), mode=0o600)
    except OSError as error:
        logger.debug("Cannot cache the manifest of %s: %s", snapshot.short_id, error)


def _as_listed(manifest: Manifest, snapshot: ResticSnapshot) -> Manifest:
    """Name the snapshot as the archive; its size is the content's (restic deduplicates)."""
    return dataclasses.replace(
        manifest, archive_name=snapshot.id, archive_size_bytes=manifest.content_bytes
    )


def _placeholder(snapshot: ResticSnapshot, backup_id: str) -> Manifest:
    moment = snapshot.time.astimezone(UTC)
    return Manifest(backup_id, moment, moment, snapshot.host, "", "", "", "", 0, (), ())


def _find(backups: list[StoredBackup], backup_id: str, where: str) -> StoredBackup:
    if backup_id == "latest":
        if not backups:
            message = f"There is no backup in the restic repository {where} yet."
            raise UsageError(message, hint="Run: opsctl backup run")
        return backups[0]
    matches = [stored for stored in backups if stored.id.startswith(backup_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        message = f"No backup '{backup_id}' in the restic repository {where}."
        raise UsageError(message, hint="List them with: opsctl backup list")
    message = f"'{backup_id}' matches {len(matches)} backups; give more of the id."
    raise UsageError(message)


# backup verify


def verify_backups(
    project: Project, *, backup_id: str | None = None, all_backups: bool = False
) -> list[VerifyResult]:
    """Verify one backup (an id, a unique prefix, ``latest``; default the newest) or all.

    ``restic check`` verifies the repository's structure (with ``--all``, every stored byte
    too); each backup's snapshot must hold its manifest and every path it lists, with the
    listed sizes, and a single backup is read back whole (restic authenticates every byte).
    Raises :class:`UsageError` for an unknown id, :class:`BusyError` while restic's lock
    is held.
    """
    repository = repository_for(project)
    backups = _stored_backups(project, repository) if repository.exists() else []
    where = repository.repository
    targets = backups if all_backups else [_find(backups, backup_id or "latest", where)]
    repository_problem = _check(repository, read_data=all_backups)
    results = []
    for stored in targets:
        problems = [repository_problem] if repository_problem else []
        results.append(_verify_one(repository, stored, problems, read_back=not all_backups))
    return results


def _check(repository: ResticRepository, *, read_data: bool) -> str | None:
    try:
        repository.check(read_data=read_data)
    except OperationFailedError as error:
        return f"restic check: {error.message}"
    return None


def _verify_one(
    repository: ResticRepository, stored: StoredBackup, problems: list[str], *, read_back: bool
) -> VerifyResult:
    if stored.problem is not None:
        return VerifyResult(stored.id, False, 0, 0, [*problems, stored.problem])
    snapshot_id = stored.manifest.archive_name
    try:
        nodes = {str(node["path"]): node for node in repository.nodes(snapshot_id)}
        if read_back:
            repository.read_snapshot(snapshot_id)
    except OperationFailedError as error:
        problems.append(f"the snapshot cannot be read: {error.message}")
        nodes = {}
    checked = size = 0
    for entry in stored.manifest.files:
        node = nodes.get(entry.path)
        if node is None:
            problems.append(f"{entry.name}: listed in the manifest, absent from the snapshot")
        elif entry.type == "file":
            checked += 1
            size += entry.size_bytes
            if node.get("size", 0) != entry.size_bytes:
                problems.append(f"{entry.name}: its size differs from the manifest's")
    if len(problems) > _MOST_PROBLEMS_SHOWN:
        more = len(problems) - _MOST_PROBLEMS_SHOWN
        problems = [*problems[:_MOST_PROBLEMS_SHOWN], f"... and {more} more"]
    return VerifyResult(stored.id, not problems, checked, size, problems)


# backup restore


def restore_backup(
    project: Project,
    backup_id: str,
    *,
    sources: Sequence[str] = (),
    to: Path | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore backup ``backup_id`` (an id, a unique prefix, or ``latest``): restic restores
    the snapshot into a private folder, then files are put in place by the archive
    backend's rules and Redis is swapped by its code.

    Raises :class:`UsageError` for an unknown id or source, :class:`BusyError` while another
    operation holds the destination, :class:`OperationFailedError` when restic cannot
    restore or Redis does not come back.
    """
    repository = repository_for(project)
    with ResticStore(project).locked("backup restore"):
        backups = _stored_backups(project, repository) if repository.exists() else []
        stored = _find(backups, backup_id, repository.repository)
        if stored.problem is not None:
            message = f"Backup {stored.id} is damaged: {stored.problem}."
            raise OperationFailedError(message, hint="Restore an older backup.")
        selected = select_stored_sources(stored, sources)
        if progress is not None:
            total = sum(e.size_bytes for e in stored.manifest.files if e.source in selected)
            progress.begin("restore", total)
        project.state_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".restic-restore-", dir=project.state_dir) as tmp:
            scratch = Path(tmp)
            if not dry_run:
                _restic_restore(repository, stored, selected, scratch)
            results = _put_in_place(project, stored, selected, scratch, to=to, dry_run=dry_run)
    return RestoreResult(stored.id, dry_run, results)


def _restic_restore(
    repository: ResticRepository, stored: StoredBackup, selected: list[str], scratch: Path
) -> None:
    """Restore the selected sources' paths of the snapshot under ``scratch``."""
    redis_paths = [e.path for e in stored.manifest.files if e.source == redis_source.SOURCE]
    if _paths.SOURCE not in selected:
        repository.restore(stored.manifest.archive_name, scratch, include=redis_paths)
        return
    staged = [str(Path(path).parent.parent) for path in redis_paths]
    if redis_source.SOURCE not in selected:
        repository.restore(stored.manifest.archive_name, scratch, exclude=staged)
        return
    repository.restore(stored.manifest.archive_name, scratch)


def _put_in_place(
    project: Project,
    stored: StoredBackup,
    selected: list[str],
    scratch: Path,
    *,
    to: Path | None,
    dry_run: bool,
) -> list[SourceRestore]:
    from opsctl.backup._extract import ExtractResult

    results = []
    if _paths.SOURCE in selected:
        manifest_path = frozenset({str(stored.archive)})
        placed = place_files(
            project, stored.manifest, scratch, to=to, dry_run=dry_run, also_listed=manifest_path
        )
        results.append(placed)
    with redis_staging(project, stored, selected, to=to, dry_run=dry_run) as staging:
        if staging is not None:
            entry = next(e for e in stored.manifest.files if e.name == redis_source.MEMBER)
            if not dry_run:
                staging.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                restored = scratch / entry.path.lstrip("/")
                shutil.copyfile(restored, staging.folder / "dump.rdb")
            extracted = ExtractResult(restored=[redis_source.MEMBER], size_bytes=entry.size_bytes)
            results.append(redis_outcome(project, stored, extracted, staging, dry_run=dry_run))
    return results


# backup prune


def prune_backups(project: Project, *, dry_run: bool) -> PruneResult:
    """Forget the snapshots ``backup.retention`` does not keep: opsctl plans (the rules of
    docs/retention.md, on the backups' recorded times) and restic forgets exactly those
    snapshots, then frees their data.

    Raises :class:`ConfigError` for an empty or malformed policy, :class:`BusyError` when
    another operation holds the destination or restic's lock, and
    :class:`OperationFailedError` if a plan would remove the newest complete backup.
    """
    from opsctl.backup._retention import Policy, Snapshot, plan

    policy = Policy.from_section(project.config.backup.retention)
    repository = repository_for(project)
    with ResticStore(project).locked("backup prune"):
        listed = _stored_backups(project, repository) if repository.exists() else []
        backups = {stored.id: stored for stored in listed}
        snapshots = [Snapshot(id=s.id, time=s.manifest.started_at) for s in listed]
        decisions = plan(snapshots, policy)
        doomed = [d.snapshot.id for d in decisions if not d.keep]
        check_plan(backups, doomed)
        if dry_run:
            return PruneResult(decisions, [], dry_run=True)
        snapshot_ids = [backups[backup_id].manifest.archive_name for backup_id in doomed]
        logger.info("Forgetting restic snapshots of backups %s", ", ".join(doomed) or "none")
        repository.forget(snapshot_ids)
    return PruneResult(decisions, doomed, dry_run=False)
