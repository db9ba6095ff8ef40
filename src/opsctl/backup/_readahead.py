"""Reading and hashing files ahead of the tar writer, on a thread of its own."""

from __future__ import annotations

import contextlib
import os
import queue
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from opsctl.backup._checksum import new_hasher

CHUNK_BYTES = 1 << 20
_QUEUED_READS = 16

Progress = Callable[[int], None]


DONE = ("done",)


class ReadAhead:
    """Reads and hashes files on a thread of its own, ahead of the tar writer, so that
    reading and hashing overlap with compressing and writing. Events on a bounded queue,
    in item order: ``("entry", item, stat or None, error or None)``, then for a regular file
    its ``("data", bytes)`` chunks and ``("end", checksum, changed)``; ``("done",)`` last.
    """

    def __init__(self, items: list[tuple[str, Path, str]]) -> None:
        self.items = items
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=_QUEUED_READS)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="archive-reader", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop reading and wait for the thread (it may be blocked on a full queue)."""
        self.stopping.set()
        while self.thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self.events.get(timeout=0.05)

    def _put(self, event: tuple[Any, ...]) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(queue.Full):
                self.events.put(event, timeout=0.1)
                return

    def _run(self) -> None:
        for item in self.items:
            if self.stopping.is_set():
                return
            self._one(item)
        self._put(DONE)

    def _one(self, item: tuple[str, Path, str]) -> None:
        path = item[1]
        try:
            info = os.lstat(path)
            handle = open(path, "rb", buffering=0) if stat.S_ISREG(info.st_mode) else None  # noqa: SIM115
        except OSError as error:
            self._put(("entry", item, None, error))
            return
        self._put(("entry", item, info, None))
        if handle is None:
            return
        with handle:
            try:
                digest, changed = self._stream(handle, info)
            except OSError as error:
                self._put(("error", error))
                return
        self._put(("end", digest, changed))

    def _stream(self, handle: IO[bytes], info: os.stat_result) -> tuple[str, bool]:
        digest = new_hasher()
        remaining = info.st_size
        changed = False
        while remaining and not self.stopping.is_set():
            data = handle.read(min(CHUNK_BYTES, remaining))
            if not data:
                # The file shrank while it was read: pad, so the archive stays readable.
                changed = True
                data = b"\0" * min(CHUNK_BYTES, remaining)
            digest.update(data)
            remaining -= len(data)
            self._put(("data", data))
        return digest.hexdigest(), changed or grew(handle, info)


class QueueReader:
    """The file object tarfile copies a member's data from: chunks from the read-ahead."""

    def __init__(self, ahead: ReadAhead, progress: Progress | None) -> None:
        self.ahead = ahead
        self.progress = progress
        self.pending = b""
        self.end: tuple[str, bool] | None = None

    def read(self, size: int = -1) -> bytes:
        if not self.pending:
            chunk = self._next()
            if len(chunk) == size:
                return chunk
            self.pending = chunk
        while len(self.pending) < size and (chunk := self._next()):
            self.pending += chunk
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def finish(self) -> tuple[str, bool]:
        """Take the file's ``end`` event (tarfile stops reading at its size)."""
        while self.end is None:
            if self._next():
                message = "the read-ahead sent more data than the file's size"
                raise RuntimeError(message)
        return self.end

    def _next(self) -> bytes:
        if self.end is not None:
            return b""
        event = self.ahead.events.get()
        if event[0] == "data":
            if self.progress is not None:
                self.progress(len(event[1]))
            return bytes(event[1])
        if event[0] == "end":
            self.end = (event[1], event[2])
            return b""
        if event[0] == "error":
            raise event[1]
        message = f"unexpected read-ahead event {event[0]!r}"
        raise RuntimeError(message)


def grew(handle: IO[bytes], info: os.stat_result) -> bool:
    """True when the open file's size or time differs from ``info`` (it changed)."""
    try:
        now = os.fstat(handle.fileno())
    except (OSError, ValueError):
        return False
    return now.st_size != info.st_size or now.st_mtime_ns != info.st_mtime_ns
