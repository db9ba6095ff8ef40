"""Putting the files of a restic restore in place, by the archive backend's safety rules.

restic restores a snapshot into a private folder; from there each manifest entry is checked
(no absolute names or ``..``, no symlink that leaves its target folder or points at an
absolute path, nothing through a symlink this restore made, only files, folders and links,
only what lies under the folders ``backup.paths`` names now), copied under a temporary name
beside its destination, compared with the manifest (size, and checksum when recorded), then
renamed into place. Anything in the snapshot the manifest does not list is refused.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from opsctl.backup import _paths
from opsctl.backup._checksum import new_hasher
from opsctl.backup._durable import Syncer
from opsctl.backup._extract import (
    Refusal,
    Target,
    name_problem,
    place,
    ready_folder,
    symlink_problem,
)
from opsctl.backup._leftovers import temporary_path
from opsctl.backup._restore import SourceRestore, file_targets

if TYPE_CHECKING:
    from opsctl.backup._manifest import FileEntry, Manifest
    from opsctl.config import Project

_CHUNK_BYTES = 1 << 20
_KINDS = {"file": stat.S_ISREG, "dir": stat.S_ISDIR, "symlink": stat.S_ISLNK}


class _DamagedError(Exception):
    pass


@dataclass
class _Placement:
    targets: list[Target]
    scratch: Path
    algorithm: str
    dry_run: bool
    restored: list[str] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    size_bytes: int = 0
    links_made: set[Path] = field(default_factory=set)
    folders_ready: set[Path] = field(default_factory=set)
    folders: list[tuple[Path, FileEntry]] = field(default_factory=list)
    syncer: Syncer = field(default_factory=Syncer)

    def entry(self, entry: FileEntry) -> None:
        problem = name_problem(entry.name)
        placed = place(self.targets, entry.name) if problem is None else None
        if problem is None and placed is None:
            problem = "outside every folder this restore writes to"
        if problem is not None or placed is None:
            self.refused.append(Refusal(entry.name, problem or "refused"))
            return
        base, relative = placed
        destination = base / relative if relative else base
        problem = self._kind_problem(entry, relative) or self._path_problem(base, destination)
        if problem is not None:
            self.refused.append(Refusal(entry.name, problem))
            return
        if self.dry_run:
            self.restored.append(entry.name)
            self.size_bytes += entry.size_bytes
            return
        try:
            self._write(entry, destination)
        except (OSError, _DamagedError) as error:
            reason = str(error) if isinstance(error, _DamagedError) else f"cannot write: {error}"
            self.refused.append(Refusal(entry.name, reason))
            return
        self.restored.append(entry.name)

    def _kind_problem(self, entry: FileEntry, relative: str) -> str | None:
        if entry.type == "symlink":
            return symlink_problem(relative, entry.link or "")
        if entry.type in _KINDS:
            return None
        return f"{entry.type} refused"

    def _path_problem(self, base: Path, destination: Path) -> str | None:
        current = base
        for part in destination.relative_to(base).parts[:-1]:
            current = current / part
            if current in self.links_made:
                return f"passes through the symlink {current}, which this restore created"
        if destination in self.links_made:
            return f"replaces the symlink {destination}, which this restore created"
        return None

    def _write(self, entry: FileEntry, destination: Path) -> None:
        staged = self.scratch / entry.path.lstrip("/")
        info = staged.lstat()
        if not _KINDS[entry.type](info.st_mode):
            message = f"the snapshot holds no {entry.type} here (damaged or altered snapshot)"
            raise _DamagedError(message)
        if entry.type == "dir":
            ready_folder(destination, self.folders_ready)
            self.folders.append((destination, entry))
            return
        ready_folder(destination.parent, self.folders_ready)
        if destination.is_dir() and not destination.is_symlink():
            message = "a folder is in the way of this file"
            raise _DamagedError(message)
        temporary = temporary_path(destination)
        temporary.unlink(missing_ok=True)
        try:
            if entry.type == "symlink":
                if os.readlink(staged) != entry.link:
                    message = "the link in the snapshot differs from the manifest's"
                    raise _DamagedError(message)
                os.symlink(os.readlink(staged), temporary)
                self.links_made.add(destination)
            else:
                self._copy(staged, temporary, entry)
            if os.geteuid() == 0:
                os.lchown(temporary, info.st_uid, info.st_gid)
            os.replace(temporary, destination)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise

    def _copy(self, staged: Path, temporary: Path, entry: FileEntry) -> None:
        digest = new_hasher(self.algorithm)
        size = 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        descriptor = os.open(temporary, flags, 0o600)
        try:
            with staged.open("rb") as source, open(descriptor, "wb", closefd=False) as out:
                while piece := source.read(_CHUNK_BYTES):
                    digest.update(piece)
                    out.write(piece)
                    size += len(piece)
            os.fchmod(descriptor, entry.mode & 0o7777)
            os.utime(descriptor, (entry.mtime, entry.mtime))
        except BaseException:
            os.close(descriptor)
            raise
        self.syncer.submit(descriptor)  # fsynced and closed on the syncer's thread
        if size != entry.size_bytes:
            message = f"{size} bytes in the snapshot, the manifest says {entry.size_bytes}"
            raise _DamagedError(message)
        if entry.checksum is not None and digest.hexdigest() != entry.checksum:
            message = "content does not match the manifest's checksum"
            raise _DamagedError(message)
        self.size_bytes += size

    def finish(self) -> None:
        """Give folders their modes and times last: writing into them changed both."""
        for folder, entry in reversed(self.folders):
            with contextlib.suppress(OSError):
                os.chmod(folder, entry.mode & 0o7777)
                os.utime(folder, (entry.mtime, entry.mtime))
        self.syncer.finish(self.folders_ready)


def place_files(
    project: Project,
    manifest: Manifest,
    scratch: Path,
    *,
    to: Path | None,
    dry_run: bool,
    also_listed: frozenset[str] = frozenset(),
) -> SourceRestore:
    """Put the ``files`` source restored under ``scratch`` in place (or under ``to``); in a
    dry run, check the manifest's entries and write nothing. Paths of the snapshot that are
    neither in the manifest nor in ``also_listed`` (the manifest itself) are refused.
    """
    targets = sorted(file_targets(project, to), key=lambda t: len(t.prefix), reverse=True)
    placement = _Placement(targets, scratch, manifest.checksum_algorithm, dry_run)
    entries = [entry for entry in manifest.files if entry.source == _paths.SOURCE]
    for entry in entries:
        placement.entry(entry)
    if dry_run:
        placement.syncer.close()
    else:
        placement.refused += _unlisted(scratch, manifest, also_listed)
        placement.finish()
    target = str(to.resolve() if to is not None else project.root)
    detail = f"{len(placement.restored)} entries, {placement.size_bytes} bytes"
    refused = placement.refused
    return SourceRestore(_paths.SOURCE, target, placement.restored, refused, detail, ok=not refused)


def _unlisted(scratch: Path, manifest: Manifest, also_listed: frozenset[str]) -> list[Refusal]:
    """What the snapshot holds beyond the manifest (and the folders leading to it)."""
    listed = {entry.path for entry in manifest.files} | also_listed
    leading = {str(parent) for path in listed for parent in Path(path).parents}
    refused = []
    for folder, dirs, files in os.walk(scratch):
        for name in [*dirs, *files]:
            original = "/" + (Path(folder) / name).relative_to(scratch).as_posix()
            if original not in listed and original not in leading:
                refused.append(Refusal(original, "in the snapshot, not listed in the manifest"))
    return refused
