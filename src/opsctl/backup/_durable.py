"""Getting restored files onto disk without making the restore wait for each one.

As soon as a file's data is written its writeback is started (``sync_file_range``:
queued, not waited for), and the file is handed to a thread of its own that fsyncs and
closes it while the next files are decompressed. When every file is in place, each folder
written to is fsynced once, so the renames are on disk too; only then does the restore
report success. Only the restore's own files are waited for, never the rest of the
filesystem (``syncfs`` would also wait for whatever else the machine had written). Where
the C library lacks ``sync_file_range``, writeback starts with the fsync.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import threading
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path

from opsctl._files import fsync_folder

_SYNC_FILE_RANGE_WRITE = 2
_QUEUED_FILES = 64


@cache
def _libc_function(name: str) -> Callable[..., int] | None:
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    return function


def start_writeback(descriptor: int) -> None:
    """Queue the open file's written data for the disk without waiting for it."""
    sync_file_range = _libc_function("sync_file_range")
    if sync_file_range is not None:
        sync_file_range(
            descriptor, ctypes.c_int64(0), ctypes.c_int64(0), ctypes.c_uint(_SYNC_FILE_RANGE_WRITE)
        )


class Syncer:
    """Fsyncs and closes the files handed to it, on a thread of its own. At most
    ``_QUEUED_FILES`` wait (each holds a file descriptor). :meth:`finish` waits for all of
    them, fsyncs the given folders, and raises the first error.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[int | None] = queue.Queue(maxsize=_QUEUED_FILES)
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._drain, name="restore-sync", daemon=True)
        self._thread.start()

    def submit(self, descriptor: int) -> None:
        """Take ownership of ``descriptor``: it is fsynced, then closed."""
        start_writeback(descriptor)
        self._queue.put(descriptor)

    def finish(self, folders: Iterable[Path]) -> None:
        """Wait for every submitted file, then fsync each of ``folders`` (their entries:
        the renames). Raises :class:`OSError` for the first failure.
        """
        self.close()
        if self._error is not None:
            raise self._error
        for folder in folders:
            fsync_folder(folder)

    def close(self) -> None:
        """Stop after the files already submitted (they are still fsynced and closed)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _drain(self) -> None:
        while (descriptor := self._queue.get()) is not None:
            try:
                if self._error is None:
                    os.fsync(descriptor)
            except OSError as error:
                self._error = error
            finally:
                with contextlib.suppress(OSError):
                    os.close(descriptor)
