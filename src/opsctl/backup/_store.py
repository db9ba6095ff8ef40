"""The destination folder: committed backups, the run lock, and leftovers of killed runs.

Layout: ``<id>.tar.zst`` and ``<id>.json`` per backup; ``.<id>.tar.zst.partial`` while an
archive is written; ``.opsctl-backup.lock`` held by the one run, prune or restore that may
change the folder. The folder is 0700 and every file 0600.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from opsctl._files import write_atomic
from opsctl.backup._leftovers import remove_dead_temporaries
from opsctl.backup._manifest import ID_PATTERN, Manifest
from opsctl.errors import BusyError, OperationFailedError, UsageError

logger = logging.getLogger(__name__)

LOCK_NAME = ".opsctl-backup.lock"
ARCHIVE_SUFFIX = ".tar.zst"
PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True)
class StoredBackup:
    """A committed backup as found in the destination; ``problem`` says why it is damaged."""

    manifest: Manifest
    archive: Path
    problem: str | None = None

    @property
    def id(self) -> str:
        return self.manifest.id


class Store:
    """The backups in one destination folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def archive_path(self, backup_id: str) -> Path:
        return self.folder / f"{backup_id}{ARCHIVE_SUFFIX}"

    def partial_path(self, backup_id: str) -> Path:
        return self.folder / f".{backup_id}{ARCHIVE_SUFFIX}{PARTIAL_SUFFIX}"

    def manifest_path(self, backup_id: str) -> Path:
        return self.folder / f"{backup_id}.json"

    def ensure(self) -> None:
        """Create the folder (0700) if needed; a folder readable by others is made private."""
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.folder.stat().st_mode & 0o077:
                os.chmod(self.folder, 0o700)
        except OSError as error:
            message = f"Cannot create the backup destination {self.folder}: {error.strerror}."
            raise OperationFailedError(message, hint="Check backup.destination.") from None

    @contextlib.contextmanager
    def locked(self, action: str) -> Iterator[None]:
        """Hold the destination's lock for ``action``; raise :class:`BusyError` (exit 75)
        when another process holds it. The OS releases a lock when its holder dies, so a
        lock left by a killed run is simply taken over.
        """
        self.ensure()
        path = self.folder / LOCK_NAME
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "r+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = handle.read().strip() or "another process"
                message = f"Another backup operation holds {self.folder} ({holder})."
                raise BusyError(message, hint="Wait for it to finish; cron may retry.") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{action}, pid {os.getpid()}\n")
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()

    def list(self) -> builtins.list[StoredBackup]:
        """Committed backups, newest first. Partial archives and archives without a
        manifest are not backups and are never listed.
        """
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.glob("*.json"):
            if not ID_PATTERN.match(path.stem):
                continue
            stored = self._read(path)
            if stored is not None:
                found.append(stored)
        return sorted(
            found, key=lambda stored: (stored.manifest.started_at, stored.id), reverse=True
        )

    def _read(self, path: Path) -> StoredBackup | None:
        try:
            manifest = Manifest.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as error:
            logger.warning("Ignoring %s: %s", path, error)
            return None
        archive = self.folder / manifest.archive_name
        problem = None
        try:
            size = archive.stat().st_size
            if size != manifest.archive_size_bytes:
                problem = f"archive is {size} bytes, manifest says {manifest.archive_size_bytes}"
        except OSError:
            problem = f"archive {archive.name} is missing"
        return StoredBackup(manifest, archive, problem)

    def find(self, backup_id: str) -> StoredBackup:
        """The backup ``backup_id`` names: a whole id, a unique prefix of one, or ``latest``."""
        backups = self.list()
        if backup_id == "latest":
            if not backups:
                message = f"There is no backup in {self.folder} yet."
                raise UsageError(message, hint="Run: opsctl backup run")
            return backups[0]
        matches = [stored for stored in backups if stored.id.startswith(backup_id)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            message = f"No backup '{backup_id}' in {self.folder}."
            raise UsageError(message, hint="List them with: opsctl backup list")
        message = f"'{backup_id}' matches {len(matches)} backups; give more of the id."
        raise UsageError(message)

    def commit(self, manifest: Manifest) -> None:
        """Write the manifest atomically: from this moment the backup exists."""
        write_atomic(self.manifest_path(manifest.id), manifest.to_json(), mode=0o600)

    def delete(self, stored: StoredBackup) -> None:
        """Remove a backup: the manifest first, so that it stops existing before its data."""
        self.manifest_path(stored.id).unlink(missing_ok=True)
        _fsync_folder(self.folder)
        stored.archive.unlink(missing_ok=True)

    def clean_leftovers(self) -> builtins.list[str]:
        """Remove what killed runs left: partial archives, archives nobody committed,
        temporary files, and the temporary files of killed restores (``.NAME.opsctl-restore-
        PID`` of a process that is gone). Call only while holding the lock. Returns the names
        removed.
        """
        if not self.folder.is_dir():
            return []
        committed = {stored.manifest.archive_name for stored in self.list()}
        removed = []
        for path in self.folder.iterdir():
            name = path.name
            partial = name.startswith(".") and name.endswith((PARTIAL_SUFFIX, ".tmp"))
            orphan = name.endswith(ARCHIVE_SUFFIX) and name not in committed
            if (partial or orphan) and path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)
                removed.append(name)
        if removed:
            logger.info("Removed leftovers of interrupted runs in %s: %s", self.folder, removed)
        return sorted([*removed, *remove_dead_temporaries(self.folder)])


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
