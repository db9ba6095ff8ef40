"""Safe extraction: every member is checked before a byte is written, and written under a
temporary name, hashed against the manifest, then renamed into place.

Refused and reported, never written: absolute names, ``..`` components, symlinks whose
target is absolute or leaves the target folder, hard links to anything but a member
restored earlier in the same run, device files and FIFOs, members the manifest does not
list, and any path that would pass through a symlink this extraction created.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import queue
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from opsctl.backup._checksum import ALGORITHM, new_hasher
from opsctl.backup._durable import Syncer
from opsctl.backup._leftovers import remove_dead_temporaries, temporary_path
from opsctl.backup._manifest import FileEntry
from opsctl.backup._reader import Archive, read_archive

_QUEUED_WRITES = 16
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Refusal:
    """A member that was not restored, and why."""

    name: str
    reason: str


@dataclass
class ExtractResult:
    """What an extraction wrote (or would write, in a dry run) and refused."""

    restored: list[str] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    size_bytes: int = 0


@dataclass(frozen=True)
class Target:
    """Members whose name starts with ``prefix`` go under ``base``."""

    prefix: str
    base: Path


class _Extraction:
    def __init__(
        self,
        targets: list[Target],
        manifest: dict[str, FileEntry],
        *,
        skipped: tuple[str, ...],
        dry_run: bool,
        progress: Progress | None,
        algorithm: str,
    ) -> None:
        # The longest prefix wins, so a folder named twice goes where its own entry says.
        self.targets = sorted(targets, key=lambda target: len(target.prefix), reverse=True)
        self.skipped = skipped
        self.manifest = manifest
        self.algorithm = algorithm
        self.dry_run = dry_run
        self.progress = progress
        self.result = ExtractResult()
        self.links_made: set[Path] = set()
        self.restored_paths: dict[str, Path] = {}
        self.folders: list[tuple[Path, tarfile.TarInfo]] = []
        self.folders_ready: set[Path] = set()
        self.folders_made: set[Path] = set()  # folder members, real folders once written
        self.writer = _BackgroundWriter()
        self.syncer = Syncer()

    def member(self, archive: Archive, member: tarfile.TarInfo) -> None:
        problem = name_problem(member.name)
        placed = place(self.targets, member.name) if problem is None else None
        if problem is None and placed is None:
            if member.name.startswith(self.skipped):
                return  # a source this restore was not asked for
            problem = "outside every folder this restore writes to"
        if problem is not None or placed is None:
            self.result.refused.append(Refusal(member.name, problem or "refused"))
            return
        base, relative = placed
        problem = self._kind_problem(member, relative)
        if problem is None and member.name not in self.manifest:
            problem = "not listed in the manifest"
        if problem is None:
            problem = member_type_problem(member, self.manifest[member.name])
        destination = base / relative if relative else base
        if problem is None:
            problem = self._path_problem(base, destination)
        if problem is not None:
            self.result.refused.append(Refusal(member.name, problem))
            return
        if member.isdir():
            self.folders_made.add(destination)
        if self.dry_run:
            self.result.restored.append(member.name)
            self.result.size_bytes += member.size if member.isreg() else 0
            return
        self._write(archive, member, destination)

    def _kind_problem(self, member: tarfile.TarInfo, relative: str) -> str | None:
        if member.isreg() or member.isdir():
            return None
        if member.issym():
            if not relative:
                return "a symlink cannot take the place of the folder restored into"
            return symlink_problem(relative, member.linkname)
        if member.islnk():
            if member.linkname not in self.restored_paths:
                return f"hard link to '{member.linkname}', which this restore did not write"
            return None
        kinds = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device"}
        return f"{kinds.get(member.type, 'special file (FIFO or device)')} refused"

    def _path_problem(self, base: Path, destination: Path) -> str | None:
        """Why ``destination`` cannot be written: a folder on its way is a symlink, made by
        this restore or already on disk (a restore writes only into real folders, so a link
        cannot carry a file anywhere else on the host).
        """
        current = base
        for part in destination.relative_to(base).parts[:-1]:
            current = current / part
            if current in self.links_made:
                return f"passes through the symlink {current}, which this restore created"
            if current not in self.folders_made and current.is_symlink():
                return f"passes through the symlink {current}, which this restore did not create"
        if destination in self.links_made:
            return f"replaces the symlink {destination}, which this restore created"
        return None

    def _write(self, archive: Archive, member: tarfile.TarInfo, destination: Path) -> None:
        try:
            if member.isdir():
                if destination.is_symlink():
                    destination.unlink()  # the backup holds a folder here, not a link
                ready_folder(destination, self.folders_ready)
                self.folders.append((destination, member))
            else:
                ready_folder(destination.parent, self.folders_ready)
                if destination.is_dir() and not destination.is_symlink():
                    problem = "a folder is in the way of this file"
                    self.result.refused.append(Refusal(member.name, problem))
                    return
                self._write_leaf(archive, member, destination)
        except (OSError, _CorruptError) as error:
            reason = str(error) if isinstance(error, _CorruptError) else f"cannot write: {error}"
            self.result.refused.append(Refusal(member.name, reason))
            return
        self.result.restored.append(member.name)
        self.restored_paths[member.name] = destination

    def _write_leaf(self, archive: Archive, member: tarfile.TarInfo, destination: Path) -> None:
        temporary = temporary_path(destination)
        temporary.unlink(missing_ok=True)
        try:
            if member.issym():
                os.symlink(member.linkname, temporary)
                self.links_made.add(destination)
                _apply_owner(temporary, member)
            elif member.islnk():
                os.link(self.restored_paths[member.linkname], temporary)
            else:
                self._write_file(archive, member, temporary)
            os.replace(temporary, destination)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise

    def _write_file(self, archive: Archive, member: tarfile.TarInfo, path: Path) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        descriptor = os.open(path, flags, 0o600)
        digest = new_hasher(self.algorithm)
        try:
            for piece in archive.data(member):
                digest.update(piece)
                self.writer.write(descriptor, piece)
                if self.progress is not None:
                    self.progress(len(piece))
            self.writer.wait()
            # Owner first: a change of owner clears the setuid and setgid bits.
            _apply_owner(descriptor, member)
            os.fchmod(descriptor, member.mode & 0o7777)
            os.utime(descriptor, (member.mtime, member.mtime))
        except BaseException:
            self.writer.wait(raise_error=False)
            os.close(descriptor)
            raise
        self.syncer.submit(descriptor)  # fsynced and closed on the syncer's thread
        expected = self.manifest[member.name].checksum
        if expected is not None and digest.hexdigest() != expected:
            message = "content does not match the manifest's checksum (damaged archive)"
            raise _CorruptError(message)
        self.result.size_bytes += member.size

    def finish(self) -> None:
        """Give folders their owners, modes and times last: writing into them changed the
        times. Each is opened without following a symlink put in its place meanwhile.
        """
        for folder, member in reversed(self.folders):
            with contextlib.suppress(OSError):
                descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
                try:
                    _apply_owner(descriptor, member)
                    os.fchmod(descriptor, (member.mode & 0o7777) | 0o700)
                    os.utime(descriptor, (member.mtime, member.mtime))
                finally:
                    os.close(descriptor)


class _CorruptError(Exception):
    pass


def extract(
    archive: Path,
    targets: list[Target],
    manifest: dict[str, FileEntry],
    *,
    skipped: tuple[str, ...] = (),
    dry_run: bool = False,
    progress: Progress | None = None,
    algorithm: str = ALGORITHM,
) -> ExtractResult:
    """Restore the members of ``archive`` that fall under ``targets``; members whose name
    starts with one of ``skipped`` are passed over, any other is refused. Each file's content
    is checked against its manifest entry's checksum, computed with ``algorithm``. Raises
    :class:`OSError` or :class:`tarfile.TarError` when the archive cannot be read.
    """
    extraction = _Extraction(
        targets,
        manifest,
        skipped=skipped,
        dry_run=dry_run,
        progress=progress,
        algorithm=algorithm,
    )
    try:
        with read_archive(archive) as opened:
            for member in opened:
                extraction.member(opened, member)
    finally:
        extraction.writer.close()
        extraction.syncer.close()
    if not dry_run:
        extraction.finish()
        extraction.syncer.finish(extraction.folders_ready)
    return extraction.result


def place(targets: list[Target], name: str) -> tuple[Path, str] | None:
    """The folder member ``name`` goes under and its path below it, from the first of
    ``targets`` (longest prefix first) that holds it; ``None`` when none does.
    """
    for target in targets:
        if name.startswith(target.prefix):
            return target.base, name[len(target.prefix) :]
        if name == target.prefix.rstrip("/"):
            return target.base, ""
    return None


def ready_folder(folder: Path, ready: set[Path]) -> None:
    """Create ``folder`` (0700) once per restore (``ready`` holds those done); one that was
    there already is cleared of the temporary files of restores that were killed.
    """
    if folder in ready:
        return
    if folder.is_dir():
        remove_dead_temporaries(folder)
    else:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    ready.add(folder)


def name_problem(name: str) -> str | None:
    """Why member ``name`` cannot be restored (absolute, ``..``, NUL); ``None`` if it can."""
    if "\0" in name:
        return "name contains a NUL character"
    parts = name.split("/")
    if name.startswith("/") or "" in parts[:-1]:
        return "absolute path refused"
    if ".." in parts:
        return "'..' in the path refused"
    return None


def symlink_problem(relative: str, link: str) -> str | None:
    """Why a symlink at ``relative`` to ``link`` is refused (it leaves the target folder or
    is absolute); ``None`` if it stays inside.
    """
    if link.startswith("/"):
        return f"symlink to the absolute path '{link}' refused"
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relative), link))
    if resolved == ".." or resolved.startswith("../"):
        return f"symlink to '{link}' leaves the restore target"
    return None


class _BackgroundWriter:
    """Writes chunks to file descriptors on a thread of its own, so that writing overlaps
    with decompressing and hashing the next chunk. At most ``_QUEUED_WRITES`` chunks wait.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[int, memoryview] | None] = queue.Queue(
            maxsize=_QUEUED_WRITES
        )
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._drain, name="restore-writer", daemon=True)
        self._thread.start()

    def write(self, descriptor: int, data: memoryview) -> None:
        """Queue ``data`` for ``descriptor``; raise an earlier write's error."""
        if self._error is not None:
            self.wait()
        self._queue.put((descriptor, data))

    def wait(self, *, raise_error: bool = True) -> None:
        """Return once every queued chunk is written; raise the first error, then forget it."""
        self._queue.join()
        error, self._error = self._error, None
        if error is not None and raise_error:
            raise error

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            descriptor, data = item
            try:
                if self._error is None:
                    view = data
                    while view:
                        view = view[os.write(descriptor, view) :]
            except OSError as error:
                self._error = error
            finally:
                self._queue.task_done()
        self._queue.task_done()


def _apply_owner(where: Path | int, member: tarfile.TarInfo) -> None:
    """Restore ownership when running as root (services often run as their own user): of an
    open file or folder, or of a symlink itself.
    """
    if os.geteuid() != 0:
        return
    with contextlib.suppress(OSError):
        if isinstance(where, int):
            os.fchown(where, member.uid, member.gid)
        else:
            os.lchown(where, member.uid, member.gid)


_MEMBER_TYPES = {"file": tarfile.TarInfo.isfile, "dir": tarfile.TarInfo.isdir}


def member_type_problem(member: tarfile.TarInfo, entry: FileEntry) -> str | None:
    """Why ``member`` is not what the manifest recorded (a file that became a symlink)."""
    if entry.type == "symlink":
        if not member.issym():
            return "its type differs from the manifest's (a symlink there)"
        if entry.link is not None and entry.link != member.linkname:
            return "its link target differs from the manifest's"
        return None
    check = _MEMBER_TYPES.get(entry.type)
    if check is None or not (check(member) or (entry.type == "file" and member.islnk())):
        return f"its type differs from the manifest's (a {entry.type} there)"
    return None
