"""Writing one backup archive: a tar stream compressed by zstd on every core, each member
hashed as it is read, under a temporary name until it is complete and on disk.
"""

from __future__ import annotations

import contextlib
import os
import queue
import stat
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from opsctl.backup._checksum import new_hasher
from opsctl.backup._manifest import FileEntry
from opsctl.backup._readahead import DONE, QueueReader, ReadAhead, grew

if TYPE_CHECKING:
    from typing_extensions import Buffer

COPY_CHUNK_BYTES = 1 << 20
_QUEUED_WRITES = 16
ZSTD_LEVEL = 3

Progress = Callable[[int], None]


class _BackgroundSink:
    """A write-only file whose writes happen on a thread of their own, so that writing the
    archive to disk overlaps with reading, hashing and compressing. At most
    ``_QUEUED_WRITES`` chunks wait, which bounds the memory used. A write error (a full
    disk) is raised by the next :meth:`write` or by :meth:`close`.

    The compressed stream is not hashed: zstd's frame checksum covers it, and every member
    has its own checksum in the manifest; a second hash would cost a core's worth of time.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.size_bytes = 0
        self.error: BaseException | None = None
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUED_WRITES)
        self._thread = threading.Thread(target=self._drain, name="archive-writer", daemon=True)
        self._thread.start()

    def write(self, data: Buffer) -> int:
        if self.error is not None:
            raise self.error
        chunk = bytes(data)
        self.size_bytes += len(chunk)
        self._queue.put(chunk)
        return len(chunk)

    def flush(self) -> None:
        """Writes are flushed by :meth:`close`."""

    def close(self) -> None:
        """Wait until every chunk is written; raise the first write error."""
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error
        self.raw.flush()

    def _drain(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self.error is not None:
                continue  # keep taking chunks so the producer never blocks forever
            try:
                self.raw.write(chunk)
            except BaseException as error:  # handed to the producing thread
                self.error = error


class _TarSink:
    """What tarfile writes to: straight into the compressor. Handing tarfile a plain file
    object (mode "w", not the stream mode "w|") keeps its small internal buffer out of
    the path, which otherwise copies every block several times.
    """

    def __init__(self, compressor: Any) -> None:
        self.compressor = compressor
        self.position = 0

    def write(self, data: bytes) -> int:
        self.compressor.write(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position


class _HashingReader:
    """Reads exactly ``size`` bytes from ``handle`` for tarfile, hashing them. A file that
    shrank while it was read is padded with zeros and marked ``changed``, so the archive
    stays readable; the manifest says so.
    """

    def __init__(self, handle: IO[bytes], size: int, progress: Progress | None) -> None:
        self.handle = handle
        self.remaining = size
        self.digest = new_hasher()
        self.changed = False
        self.progress = progress

    def read(self, count: int = -1) -> bytes:
        if count < 0 or count > self.remaining:
            count = self.remaining
        data = self.handle.read(count)
        if len(data) < count:
            self.changed = True
            data += b"\0" * (count - len(data))
        self.remaining -= len(data)
        self.digest.update(data)
        if self.progress is not None:
            self.progress(len(data))
        return data


@dataclass(frozen=True)
class PathResult:
    """What :meth:`ArchiveWriter.add_paths` stored, and what vanished before it was read."""

    entries: list[FileEntry]
    vanished: list[str]


class ArchiveWriter:
    """Writes members into ``path`` (a temporary name); :meth:`finish` flushes, fsyncs and
    renames it to ``final``. Leaving without :meth:`finish` removes the temporary file.
    """

    def __init__(self, path: Path, final: Path, *, progress: Progress | None = None) -> None:
        import zstandard

        self.path = path
        self.final = final
        self.progress = progress
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        self._raw = os.fdopen(descriptor, "wb")
        self._sink = _BackgroundSink(self._raw)
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1, write_checksum=True)
        self._zstd = compressor.stream_writer(
            self._sink,  # type: ignore[arg-type]
            closefd=False,
            write_size=COPY_CHUNK_BYTES,
        )
        # Large copy buffers: tarfile's default of 16 KiB costs a call per block.
        self._tar = tarfile.TarFile(
            fileobj=_TarSink(self._zstd),  # type: ignore[arg-type]
            mode="w",
            format=tarfile.PAX_FORMAT,
            copybufsize=COPY_CHUNK_BYTES,
        )
        self._finished = False

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._finished:
            with contextlib.suppress(BaseException):
                self._sink.close()
            self._raw.close()
            self.path.unlink(missing_ok=True)

    def add_paths(self, items: list[tuple[str, Path, str]], *, source: str) -> PathResult:
        """Add each ``(name, path, original)`` in order, reading ahead on another thread.
        Files deleted since they were listed are skipped and reported as vanished; sockets,
        FIFOs and devices are skipped. Raises :class:`OSError` (with its file name) for
        anything else that cannot be read.
        """
        ahead = ReadAhead(items)
        result = PathResult([], [])
        try:
            while (event := ahead.events.get()) != DONE:
                if event[0] == "error":
                    raise event[1]
                _, (name, path, original), info, error = event
                if isinstance(error, FileNotFoundError):
                    result.vanished.append(original)
                    continue
                if error is not None:
                    raise error
                entry = self._add_entry(ahead, name, path, original, info, source=source)
                if entry is not None:
                    result.entries.append(entry)
        finally:
            ahead.stop()
        return result

    def _add_entry(
        self,
        ahead: ReadAhead,
        name: str,
        path: Path,
        original: str,
        info: os.stat_result,
        *,
        source: str,
    ) -> FileEntry | None:
        if not stat.S_ISREG(info.st_mode):
            if stat.S_ISDIR(info.st_mode) or stat.S_ISLNK(info.st_mode):
                return self.add_path(name, path, source=source, original=original, info=info)
            return None
        member = self._member(name, info, tarfile.REGTYPE)
        reader = QueueReader(ahead, self.progress)
        self._tar.addfile(member, reader)
        digest, changed = reader.finish()
        return FileEntry(
            name,
            source,
            original,
            "file",
            size_bytes=info.st_size,
            checksum=digest,
            mode=member.mode,
            mtime=info.st_mtime,
            changed=changed,
        )

    def add_path(
        self,
        name: str,
        path: Path,
        *,
        source: str,
        original: str,
        info: os.stat_result | None = None,
    ) -> FileEntry | None:
        """Add the file, folder or symlink at ``path`` as ``name``. Returns its entry, or
        ``None`` for what a backup cannot hold (sockets, FIFOs, devices).
        Raises :class:`OSError` when it cannot be read.
        """
        info = info or os.lstat(path)
        if stat.S_ISDIR(info.st_mode):
            member = self._member(name, info, tarfile.DIRTYPE)
            self._tar.addfile(member)
            return FileEntry(name, source, original, "dir", mode=member.mode, mtime=info.st_mtime)
        if stat.S_ISLNK(info.st_mode):
            member = self._member(name, info, tarfile.SYMTYPE)
            member.linkname = os.readlink(path)
            self._tar.addfile(member)
            return FileEntry(
                name, source, original, "symlink", mtime=info.st_mtime, link=member.linkname
            )
        if not stat.S_ISREG(info.st_mode):
            return None
        with open(path, "rb", buffering=0) as handle:
            return self.add_stream(name, handle, info, source=source, original=original)

    def add_stream(
        self, name: str, handle: IO[bytes], info: os.stat_result, *, source: str, original: str
    ) -> FileEntry:
        """Add ``info.st_size`` bytes read from ``handle`` as the regular file ``name``."""
        member = self._member(name, info, tarfile.REGTYPE)
        reader = _HashingReader(handle, info.st_size, self.progress)
        self._tar.addfile(member, reader)
        changed = reader.changed or grew(handle, info)
        return FileEntry(
            name,
            source,
            original,
            "file",
            size_bytes=info.st_size,
            checksum=reader.digest.hexdigest(),
            mode=member.mode,
            mtime=info.st_mtime,
            changed=changed,
        )

    def finish(self) -> int:
        """Close the stream, fsync it, rename it to its final name; return its size."""
        self._tar.close()
        self._zstd.close()  # type: ignore[no-untyped-call]
        self._sink.close()
        os.fsync(self._raw.fileno())
        self._raw.close()
        os.replace(self.path, self.final)
        self._finished = True
        return self._sink.size_bytes

    @staticmethod
    def _member(name: str, info: os.stat_result, kind: bytes) -> tarfile.TarInfo:
        member = tarfile.TarInfo(name)
        member.type = kind
        member.mode = stat.S_IMODE(info.st_mode)
        member.mtime = int(info.st_mtime)
        member.uid, member.gid = info.st_uid, info.st_gid
        member.size = info.st_size if kind == tarfile.REGTYPE else 0
        return member
