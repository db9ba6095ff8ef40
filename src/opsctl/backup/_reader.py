"""Reading a backup archive front to back, with as few copies as Python allows.

The archive is decompressed by the ``zstd`` program when it is on PATH (a process of its
own: it runs on another core without sharing the interpreter's lock, as ``zstd -d | tar
-x`` does), otherwise by the zstandard library on a thread. tarfile parses the headers;
member data bypasses tarfile's buffers and comes out as views of the decompressed chunks,
which are hashed and written as they are. Either way the whole frame is read, so zstd's
frame checksum is always checked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol

CHUNK_BYTES = 1 << 20
_QUEUED_READS = 16
_STDERR_SHOWN = 300


class DecompressError(Exception):
    """The archive is not a valid zstd frame (damaged, truncated, wrong checksum). Not an
    :class:`OSError`, so that it is never taken for a failure to write what was read.
    """


class _Chunks(Protocol):
    def next(self) -> bytes:
        """The next decompressed chunk; ``b""`` at the end. Raises for a damaged frame."""

    def close(self, *, finished: bool) -> None:
        """Stop. When ``finished``, read to the end first so that the checksum is checked."""


class _ZstdProgram:
    """Decompressed chunks from a ``zstd -d`` process reading the archive on its stdin."""

    def __init__(self, program: str, archive: IO[bytes]) -> None:
        self._process = subprocess.Popen(  # noqa: S603 (a fixed argument list)
            [program, "-d", "-q", "-c"],
            stdin=archive,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self._process.stdout is not None  # noqa: S101 (stdout=PIPE)
        self._fd = self._process.stdout.fileno()
        self._error: DecompressError | None = None
        # A larger pipe: fewer, larger reads and writes on both sides.
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, CHUNK_BYTES)

    def next(self) -> bytes:
        data = os.read(self._fd, CHUNK_BYTES)
        if not data:
            self._check()
        return data

    def close(self, *, finished: bool) -> None:
        try:
            if finished:
                while os.read(self._fd, CHUNK_BYTES):
                    pass
                self._check()
        finally:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            for stream in (self._process.stdout, self._process.stderr):
                if stream is not None:
                    stream.close()

    def _check(self) -> None:
        """Wait for the process (its output ended); raise what it said if it failed."""
        assert self._process.stderr is not None  # noqa: S101 (stderr=PIPE)
        if self._error is None:
            said = self._process.stderr.read().decode(errors="replace").strip()
            code = self._process.wait()
            if code != 0:
                shown = said[-_STDERR_SHOWN:] or f"exit {code}"
                self._error = DecompressError(f"zstd cannot decompress it ({shown})")
        if self._error is not None:
            raise self._error


class _ZstdThread:
    """Decompressed chunks from the zstandard library, produced on a thread of its own so
    that decompressing overlaps with hashing and writing. At most ``_QUEUED_READS`` chunks
    wait. A damaged frame's error is raised to the reader.
    """

    def __init__(self, archive: IO[bytes]) -> None:
        import zstandard

        self._source = zstandard.ZstdDecompressor().stream_reader(archive, read_size=CHUNK_BYTES)
        self._chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=_QUEUED_READS)
        self._stopping = threading.Event()
        self._ended = False
        self._thread = threading.Thread(target=self._run, name="archive-decompress", daemon=True)
        self._thread.start()

    def next(self) -> bytes:
        if self._ended:
            return b""
        chunk = self._chunks.get()
        if isinstance(chunk, BaseException):
            self._ended = True
            raise chunk
        self._ended = not chunk
        return chunk

    def close(self, *, finished: bool) -> None:
        if finished:
            while self.next():
                pass
        self._stopping.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._chunks.get(timeout=0.05)

    def _put(self, item: bytes | BaseException) -> bool:
        while not self._stopping.is_set():
            with contextlib.suppress(queue.Full):
                self._chunks.put(item, timeout=0.1)
                return True
        return False

    def _run(self) -> None:
        try:
            while data := self._source.read(CHUNK_BYTES):
                if not self._put(data):
                    return
        except Exception as error:  # zstandard's ZstdError too: handed to the reader
            self._put(DecompressError(f"zstd cannot decompress it ({error})"))
            return
        self._put(b"")


class _Stream:
    """The decompressed stream as tarfile's plain read mode sees it: a file that only seeks
    forward (tarfile's stream mode "r|" would copy every block through a small buffer).
    """

    def __init__(self, chunks: _Chunks) -> None:
        self.chunks = chunks
        self.position = 0
        self._pending = memoryview(b"")

    def read(self, size: int = -1) -> bytes:
        parts = []
        wanted = size if size >= 0 else 1 << 62
        while wanted and (self._pending or self._fill()):
            piece = self._take(wanted)
            parts.append(piece)
            wanted -= len(piece)
        return b"".join(parts)

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        target = offset if whence == os.SEEK_SET else self.position + offset
        if whence not in {os.SEEK_SET, os.SEEK_CUR} or target < self.position:
            message = "a backup archive is read front to back only"
            raise OSError(message)
        while self.position < target and (self._pending or self._fill()):
            self._take(target - self.position)
        return self.position

    def pieces(self, size: int) -> Iterator[memoryview]:
        """The next ``size`` bytes as views of the decompressed chunks, without copies.
        Raises :class:`tarfile.ReadError` when the stream ends first.
        """
        while size:
            if not self._pending and not self._fill():
                message = "unexpected end of data"
                raise tarfile.ReadError(message)
            piece = self._take(size)
            size -= len(piece)
            yield piece

    def _take(self, most: int) -> memoryview:
        piece = self._pending[:most]
        self._pending = self._pending[len(piece) :]
        self.position += len(piece)
        return piece

    def _fill(self) -> bool:
        chunk = self.chunks.next()
        self._pending = memoryview(chunk)
        return bool(chunk)


class Archive:
    """An archive open for reading: its members in order, and each one's data."""

    def __init__(self, tar: tarfile.TarFile, stream: _Stream) -> None:
        self.tar = tar
        self._stream = stream

    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        return iter(self.tar)

    def data(self, member: tarfile.TarInfo) -> Iterator[memoryview]:
        """The data of ``member``, the member just read, as views (valid until the next
        chunk is read only if kept: each view holds its own chunk alive).
        """
        if self._stream.position != member.offset_data:
            message = f"{member.name}: its data was already passed (members are read in order)"
            raise tarfile.ReadError(message)
        return self._stream.pieces(member.size)


def zstd_program() -> str | None:
    """The ``zstd`` program on PATH, or ``None`` (the zstandard library is used then)."""
    return shutil.which("zstd")


@contextlib.contextmanager
def read_archive(path: Path, *, program: str | None = "") -> Iterator[Archive]:
    """Open the archive at ``path`` for reading its members in order. ``program`` is the
    zstd program to decompress with (default: the one on PATH; ``None``: the library).
    The whole frame is read before the archive is closed without an error, so zstd checks
    its checksum. Raises :class:`OSError` when the file cannot be opened,
    :class:`DecompressError` for a damaged frame and :class:`tarfile.TarError` for a
    damaged tar stream.
    """
    program = zstd_program() if program == "" else program
    with path.open("rb") as raw:
        chunks: _Chunks = _ZstdProgram(program, raw) if program else _ZstdThread(raw)
        finished = False
        try:
            stream = _Stream(chunks)
            with tarfile.TarFile(fileobj=stream, mode="r") as tar:  # type: ignore[arg-type]
                yield Archive(tar, stream)
            finished = True
        finally:
            chunks.close(finished=finished)
