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
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from opsctl._files import fsync_folder, write_atomic
from opsctl.backup._leftovers import remove_dead_temporaries
from opsctl.backup._manifest import ID_PATTERN, Manifest
from opsctl.errors import BusyError, OperationFailedError, UsageError

logger = logging.getLogger(__name__)

LOCK_NAME = ".opsctl-backup.lock"
ARCHIVE_SUFFIX = ".tar.zst"
PARTIAL_SUFFIX = ".partial"
# Clocks of hosts sharing a destination may differ a little; more than this is forged.
FUTURE_TOLERANCE = timedelta(minutes=5)
_PENDING_MARK = "writing "


@dataclass(frozen=True)
class StoredBackup:
    """A committed backup as found in the destination; ``problem`` says why it is damaged."""

    manifest: Manifest
    archive: Path
    problem: str | None = None

    @property
    def id(self) -> str:
        return self.manifest.id


@dataclass(frozen=True)
class DamagedManifest:
    """A ``<id>.json`` that is not a usable manifest: never listed as a backup, never acted
    on (nothing it names is read or removed).
    """

    id: str
    path: Path
    problem: str


class Store:
    """The backups in one destination folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock_handle: IO[str] | None = None
        self._carried: builtins.list[str] = []

    def archive_path(self, backup_id: str) -> Path:
        return self.folder / f"{backup_id}{ARCHIVE_SUFFIX}"

    def partial_path(self, backup_id: str) -> Path:
        return self.folder / f".{backup_id}{ARCHIVE_SUFFIX}{PARTIAL_SUFFIX}"

    def manifest_path(self, backup_id: str) -> Path:
        return self.folder / f"{backup_id}.json"

    def ensure(self) -> None:
        """Create the folder (0700) if needed; a folder readable by others is made private."""
        if self.folder.is_symlink() and not self.folder.exists():
            message = (
                f"The backup destination {self.folder} is a symlink to "
                f"'{os.readlink(self.folder)}', which does not exist."
            )
            raise OperationFailedError(message, hint="Create its target or fix the link.")
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
            # What a killed run wrote stays: it names the archive it was committing. Other
            # operations carry that note forward for the next run to act on.
            self._carried = [
                line for line in handle.read(4096).splitlines() if line.startswith(_PENDING_MARK)
            ]
            _rewrite(handle, [f"{action}, pid {os.getpid()}", *self._carried])
            self._lock_handle = handle
            try:
                yield
            finally:
                self._lock_handle = None
                _rewrite(handle, self._carried)

    def mark_pending(self, backup_id: str) -> None:
        """Note in the lock file that this run writes ``backup_id``'s archive, so that if it
        is killed before its commit, the next run knows that archive was its own.
        """
        if self._lock_handle is None:
            return
        self._lock_handle.write(f"{_PENDING_MARK}{backup_id}{ARCHIVE_SUFFIX}\n")
        self._lock_handle.flush()
        os.fsync(self._lock_handle.fileno())

    def list(self) -> builtins.list[StoredBackup]:
        """Committed backups, newest first. Partial archives, archives without a manifest
        and damaged manifests (see :meth:`damaged`) are not backups and are never listed.
        """
        return self.scan()[0]

    def damaged(self) -> builtins.list[DamagedManifest]:
        """The ``<id>.json`` files that are not valid manifests, by name."""
        return self.scan()[1]

    def scan(self) -> tuple[builtins.list[StoredBackup], builtins.list[DamagedManifest]]:
        """Read every ``<id>.json``: the backups, newest first, and the damaged manifests.

        A manifest counts only if it is a regular file that parses, its id is its own file
        name and its archive is ``<id>.tar.zst`` beside it: nothing a manifest says can
        make opsctl read or remove a file elsewhere. One dated more than
        ``FUTURE_TOLERANCE`` ahead is damaged too, so it never becomes ``latest`` nor
        pushes real backups out of retention.
        """
        if not self.folder.is_dir():
            return [], []
        found, damaged = [], []
        now = datetime.now(UTC)
        for path in sorted(self.folder.glob("*.json")):
            if not ID_PATTERN.fullmatch(path.stem):
                continue
            try:
                found.append(self._read(path, now))
            except ValueError as error:
                logger.warning("Ignoring %s: %s", path, error)
                damaged.append(DamagedManifest(path.stem, path, str(error)))
        found.sort(key=lambda stored: (stored.manifest.started_at, stored.id), reverse=True)
        return found, damaged

    def _read(self, path: Path, now: datetime) -> StoredBackup:
        """Read one manifest; raise :class:`ValueError` saying why it is not usable."""
        manifest = Manifest.from_json(_read_regular_file(path))
        expected_archive = f"{path.stem}{ARCHIVE_SUFFIX}"
        if manifest.id != path.stem:
            message = f"its id {manifest.id!r} is not its file name"
            raise ValueError(message)
        if manifest.archive_name != expected_archive:
            message = f"it names the archive {manifest.archive_name!r}, not {expected_archive!r}"
            raise ValueError(message)
        if manifest.started_at > now + FUTURE_TOLERANCE:
            message = f"it is dated in the future ({manifest.started_at.isoformat()})"
            raise ValueError(message)
        archive = self.folder / expected_archive
        problem = None
        try:
            info = archive.lstat()
        except OSError:
            problem = f"archive {archive.name} is missing"
        else:
            if not stat.S_ISREG(info.st_mode):
                problem = f"archive {archive.name} is not a regular file"
            elif info.st_size != manifest.archive_size_bytes:
                size = info.st_size
                problem = f"archive is {size} bytes, manifest says {manifest.archive_size_bytes}"
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
            for damaged in self.damaged():
                if damaged.id.startswith(backup_id):
                    message = f"Backup {damaged.id} is damaged: {damaged.problem}."
                    raise OperationFailedError(message, hint="Restore another backup.")
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
        fsync_folder(self.folder)
        stored.archive.unlink(missing_ok=True)

    def clean_leftovers(self) -> builtins.list[str]:
        """Remove what killed runs left: partial archives and temporary files, the archive a
        killed run was committing (named in the lock file it left), and the temporary files
        of killed restores (``.NAME.opsctl-restore-PID`` of a process that is gone). Call
        only while holding the lock. Returns the names removed.

        Any other archive without its manifest may be someone's only copy: it is kept and
        reported in the log. An archive whose ``<id>.json`` exists, damaged or not, is
        never touched.
        """
        if not self.folder.is_dir():
            return []
        pending = self._pending_archive()
        removed = []
        for path in self.folder.iterdir():
            name = path.name
            if name.startswith(".") and name.endswith((PARTIAL_SUFFIX, ".tmp")):
                if path.is_file() and not path.is_symlink():
                    path.unlink(missing_ok=True)
                    removed.append(name)
            elif name.endswith(ARCHIVE_SUFFIX) and not self._has_manifest(name):
                if name == pending and path.is_file() and not path.is_symlink():
                    path.unlink(missing_ok=True)
                    removed.append(name)
                else:
                    logger.warning(
                        "Keeping %s: it has no manifest, and no killed run of opsctl was "
                        "writing it. Remove it by hand if it is not needed.",
                        path,
                    )
        if removed:
            logger.info("Removed leftovers of interrupted runs in %s: %s", self.folder, removed)
        return sorted([*removed, *remove_dead_temporaries(self.folder)])

    def _has_manifest(self, archive_name: str) -> bool:
        stem = archive_name[: -len(ARCHIVE_SUFFIX)]
        return os.path.lexists(self.folder / f"{stem}.json")

    def _pending_archive(self) -> str | None:
        """The archive the previous lock holder was committing when it died, if any."""
        carried, self._carried = self._carried, []
        for line in carried:
            if line.startswith(_PENDING_MARK):
                name = line[len(_PENDING_MARK) :].strip()
                if ID_PATTERN.fullmatch(name[: -len(ARCHIVE_SUFFIX)]):
                    return name
        return None


def _rewrite(handle: IO[str], lines: builtins.list[str]) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write("".join(f"{line}\n" for line in lines))
    handle.flush()


def _read_regular_file(path: Path) -> str:
    """The text of ``path``, which must be a regular file (a FIFO would block, a symlink
    could point anywhere); raise :class:`ValueError` otherwise.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as error:
        message = f"cannot be opened: {error.strerror}"
        raise ValueError(message) from None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            message = "not a regular file"
            raise ValueError(message)
        try:
            return handle.read().decode("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            message = f"cannot be read: {error}"
            raise ValueError(message) from None
