"""``backup restore``: files back in place (or under ``--to``), Redis swapped safely.

Redis in place: the snapshot is extracted and checked next to the live ``dump.rdb``
first; only then is the service stopped (Redis may write its own snapshot as it stops),
the old file kept as ``dump.rdb.before-restore-<id>``, the new one renamed in, the
service started, and its key count compared with what the backup recorded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tarfile
import tempfile
import time
import xmlrpc.client
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl._files import fsync_folder
from opsctl.backup import _paths
from opsctl.backup import _redis as redis_source
from opsctl.backup._extract import ExtractResult, Refusal, Target, extract
from opsctl.backup._reader import DecompressError
from opsctl.backup._sources import Progress, destination
from opsctl.backup._store import Store, StoredBackup
from opsctl.errors import OperationFailedError, UsageError

if TYPE_CHECKING:
    from opsctl.config import Project

logger = logging.getLogger(__name__)
_READY_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class SourceRestore:
    """What happened to one source."""

    name: str
    target: str
    restored: list[str] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    detail: str = ""
    ok: bool = True


@dataclass(frozen=True)
class RestoreResult:
    """The outcome per source; ``ok`` when nothing was refused and every check passed."""

    id: str
    dry_run: bool
    sources: list[SourceRestore]

    @property
    def ok(self) -> bool:
        return all(source.ok for source in self.sources)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dry_run": self.dry_run,
            "status": "pass" if self.ok else "fail",
            "sources": [
                {
                    "name": source.name,
                    "target": source.target,
                    "status": "pass" if source.ok else "fail",
                    "restored": len(source.restored),
                    "refused": [{"name": r.name, "reason": r.reason} for r in source.refused],
                    "detail": source.detail,
                }
                for source in self.sources
            ],
        }


def restore_backup(
    project: Project,
    backup_id: str,
    *,
    sources: Sequence[str] = (),
    to: Path | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore backup ``backup_id`` (an id, a unique prefix, or ``latest``).

    Raises :class:`UsageError` for an unknown id or source, :class:`BusyError` while a
    run or prune holds the destination, :class:`OperationFailedError` for a damaged archive
    or a Redis that does not come back.
    """
    store = Store(destination(project))
    with store.locked("backup restore"):
        stored = store.find(backup_id)
        if stored.problem is not None:
            message = f"Backup {stored.id} is damaged: {stored.problem}."
            raise OperationFailedError(message, hint="Restore an older backup.")
        selected = select_stored_sources(stored, sources)
        if progress is not None:
            total = sum(e.size_bytes for e in stored.manifest.files if e.source in selected)
            progress.begin("restore", total)
        return _restore(project, stored, selected, to=to, dry_run=dry_run, progress=progress)


def select_stored_sources(stored: StoredBackup, wanted: Sequence[str]) -> list[str]:
    """The sources of ``stored`` to restore: those in ``wanted`` (all when empty), in the
    backup's order. Raises :class:`UsageError` for a source the backup does not hold.
    """
    present = [source.name for source in stored.manifest.sources]
    for name in wanted:
        if name not in present:
            message = (
                f"Backup {stored.id} holds no source '{name}' (it holds: {', '.join(present)})."
            )
            raise UsageError(message)
    return [name for name in present if not wanted or name in wanted]


def _restore(
    project: Project,
    stored: StoredBackup,
    selected: list[str],
    *,
    to: Path | None,
    dry_run: bool,
    progress: Progress | None,
) -> RestoreResult:
    targets = file_targets(project, to) if _paths.SOURCE in selected else []
    skipped = tuple(f"{s.name}/" for s in stored.manifest.sources if s.name not in selected)
    advance = progress.advance if progress is not None else None
    results: list[SourceRestore] = []
    with redis_staging(project, stored, selected, to=to, dry_run=dry_run) as staging:
        if staging is not None:
            targets.append(Target(f"{redis_source.SOURCE}/", staging.folder))
        extracted = _extract(stored, targets, skipped=skipped, dry_run=dry_run, progress=advance)
        if _paths.SOURCE in selected:
            results.append(_files_outcome(extracted, project, to))
        if staging is not None:
            results.append(redis_outcome(project, stored, extracted, staging, dry_run=dry_run))
    # Members that belong to no source at all are reported with the first source.
    sources_prefixes = (f"{_paths.SOURCE}/", f"{redis_source.SOURCE}/")
    stray = [r for r in extracted.refused if not r.name.startswith(sources_prefixes)]
    if stray and results:
        first = results[0]
        results[0] = replace(first, refused=[*first.refused, *stray], ok=False)
    return RestoreResult(stored.id, dry_run, results)


def _extract(
    stored: StoredBackup,
    targets: list[Target],
    *,
    skipped: tuple[str, ...],
    dry_run: bool,
    progress: Callable[[int], None] | None,
) -> ExtractResult:
    """Extract, turning a damaged archive or a failed write into one clear error."""
    manifest = {entry.name: entry for entry in stored.manifest.files}
    try:
        return extract(
            stored.archive,
            targets,
            manifest,
            skipped=skipped,
            dry_run=dry_run,
            progress=progress,
            algorithm=stored.manifest.checksum_algorithm,
        )
    except (DecompressError, tarfile.TarError, EOFError) as error:
        message = f"The archive of backup {stored.id} is damaged: {error}."
        hint = (
            "Files restored before the damage matched their checksums; the rest were not "
            f"touched. See: opsctl backup verify {stored.id}, or restore an older backup."
        )
        raise OperationFailedError(message, hint=hint) from None
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        message = f"Restoring backup {stored.id} failed: {error.strerror or error}{where}."
        raise OperationFailedError(message, hint="See: opsctl backup verify") from None


def file_targets(project: Project, to: Path | None) -> list[Target]:
    """Under ``--to`` everything goes below that folder. In place, only below the folders
    ``backup.paths`` names now: an archive cannot write anywhere else on the host.
    """
    if to is not None:
        base = to.resolve()
        return [Target(_paths.ROOT_PREFIX, base), Target(_paths.ABSOLUTE_PREFIX, base)]
    targets = []
    for pattern in project.config.backup.paths:
        folder = _static_prefix(pattern)
        path = folder if folder.is_absolute() else project.root / folder
        path = Path(os.path.normpath(path))
        targets.append(Target(_paths.member_name(path, project.root) + "/", path))
    return targets


def _static_prefix(pattern: str) -> Path:
    """The part of a glob before its first wildcard: ``data/*/x`` gives ``data``."""
    import glob

    parts = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path()


def _files_outcome(extracted: ExtractResult, project: Project, to: Path | None) -> SourceRestore:
    restored = [n for n in extracted.restored if n.startswith(f"{_paths.SOURCE}/")]
    refused = [r for r in extracted.refused if r.name.startswith(f"{_paths.SOURCE}/")]
    target = str(to.resolve() if to is not None else project.root)
    detail = f"{len(restored)} entries, {extracted.size_bytes} bytes"
    return SourceRestore(_paths.SOURCE, target, restored, refused, detail, ok=not refused)


@dataclass(frozen=True)
class _Staging:
    """Where the snapshot is extracted, and (in place) the live file it will replace."""

    folder: Path
    live: Path | None
    service: str | None
    source: redis_source.RedisSource | None


@contextlib.contextmanager
def redis_staging(
    project: Project, stored: StoredBackup, selected: list[str], *, to: Path | None, dry_run: bool
) -> Iterator[_Staging | None]:
    """Where the Redis snapshot is put before it goes live (``None`` when Redis is not
    selected): under ``--to``, or a private folder removed afterwards. Raises
    :class:`UsageError` when no Redis is configured to restore into.
    """
    if redis_source.SOURCE not in selected:
        yield None
        return
    if to is not None:
        yield _Staging(to.resolve() / redis_source.SOURCE, None, None, None)
        return
    source = redis_source.resolve_source(project)
    if source is None:
        message = "This backup holds Redis data, but backup.redis names no Redis to restore into."
        raise UsageError(message, hint="Set backup.redis, or restore with --to DIR.")
    service = redis_source.require_service(source)
    live = _live_rdb(source)
    # Locally the snapshot is staged beside the live file, so the swap is one rename.
    near = live.parent if project.config.runtime.kind == "local" else destination(project)
    folder = Path(tempfile.mkdtemp(prefix=".opsctl-restore-", dir=near))
    try:
        yield _Staging(folder, live, service, source)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _live_rdb(source: redis_source.RedisSource) -> Path:
    import redis

    client = redis_source.client_for(source)
    try:
        location = redis_source.rdb_location(client)
        appendonly = client.config_get("appendonly").get("appendonly")
    except redis.RedisError as error:
        message = f"Redis at {source.shown_url} does not answer: {error}."
        hint = "Start the stack (opsctl up) to restore into it, or restore with --to DIR."
        raise OperationFailedError(message, hint=hint) from None
    finally:
        client.close()
    if location is None:
        message = (
            f"Redis at {source.shown_url} does not tell where its dump file is "
            "(CONFIG is disabled)."
        )
        raise OperationFailedError(message, hint="Restore with --to DIR and swap the file by hand.")
    if appendonly in {"yes", b"yes"}:
        message = (
            f"Redis at {source.shown_url} runs with appendonly yes: it would load its AOF, "
            "not the restored snapshot."
        )
        hint = "Restore with --to DIR, then load the RDB the way Redis documents with AOF on."
        raise OperationFailedError(message, hint=hint)
    return Path(location[0]) / location[1]


def redis_outcome(
    project: Project,
    stored: StoredBackup,
    extracted: ExtractResult,
    staging: _Staging,
    *,
    dry_run: bool,
) -> SourceRestore:
    """The Redis source's outcome: in place, the staged snapshot swapped in (described only,
    in a dry run) and the key count compared with the manifest's.
    """
    refused = [r for r in extracted.refused if r.name == redis_source.MEMBER]
    metadata = next(s.metadata for s in stored.manifest.sources if s.name == redis_source.SOURCE)
    if staging.live is None or refused:
        target = str(staging.folder / "dump.rdb")
        ok = not refused
        return SourceRestore(
            redis_source.SOURCE, target, [redis_source.MEMBER] if ok else [], refused, "", ok
        )
    assert staging.source is not None and staging.service is not None  # noqa: S101
    expected = int(metadata.get("keys", 0))
    if dry_run:
        detail = (
            f"would stop {staging.service}, replace {staging.live}, start it "
            f"and expect {expected} keys"
        )
        return SourceRestore(
            redis_source.SOURCE, str(staging.live), [redis_source.MEMBER], [], detail
        )
    keys = _swap(project, stored.id, staging)
    exact = bool(metadata.get("keys_exact", True))
    ok = keys == expected or not exact
    detail = f"{keys} keys after the restore, {expected} at backup time"
    if not exact:
        detail += " (approximate: Redis was written to during the backup)"
    if not ok:
        detail += "; the key count differs"
    return SourceRestore(
        redis_source.SOURCE, str(staging.live), [redis_source.MEMBER], [], detail, ok
    )


def _swap(project: Project, backup_id: str, staging: _Staging) -> int:
    from opsctl.runtime import get_runtime

    assert staging.live is not None and staging.service is not None and staging.source is not None  # noqa: S101
    staged = staging.folder / "dump.rdb"
    runtime = get_runtime(project)
    supervisor = runtime.client()
    stop_timeout = project.service(staging.service).stop_timeout_seconds + 10
    kept = staging.live.with_name(f"{staging.live.name}.before-restore-{backup_id}")
    try:
        logger.info("Stopping %s to swap its snapshot", staging.service)
        supervisor.stop(staging.service, timeout_seconds=stop_timeout)
        if staging.live.exists():
            os.replace(staging.live, kept)
        if project.config.runtime.kind == "docker":
            runtime.copy_in(staged, str(staging.live))
        else:
            os.replace(staged, staging.live)
            fsync_folder(staging.live.parent)  # the swap itself, before Redis reads it
        logger.info("Starting %s with the restored snapshot", staging.service)
        supervisor.start(staging.service)
    except (OSError, xmlrpc.client.Error) as error:
        message = f"Swapping the snapshot of {staging.service} failed: {error}."
        hint = f"The previous snapshot is kept as {kept}; see: opsctl status"
        raise OperationFailedError(message, hint=hint) from None
    return _wait_loaded(staging.source)


def _wait_loaded(source: redis_source.RedisSource) -> int:
    import redis

    deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
    last_error = "no answer"
    while time.monotonic() < deadline:
        try:
            client = redis_source.client_for(source)
            try:
                if not int(client.info("persistence").get("loading", 0)):
                    return redis_source.key_count(client)
            finally:
                client.close()
        except redis.RedisError as error:
            last_error = str(error)
        time.sleep(0.1)
    message = f"Redis at {source.shown_url} did not come back after the restore: {last_error}."
    raise OperationFailedError(message, hint="See its log: opsctl logs SERVICE")
