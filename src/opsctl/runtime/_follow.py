"""Follow a growing log file like ``tail -F``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path


def follow(path: Path, *, poll_seconds: float) -> Iterator[str]:
    """Yield each complete line appended to ``path`` from now on; reopen it when rotated."""
    handle = None
    inode = None
    position = 0
    pending = b""
    try:
        while True:
            if handle is None:
                try:
                    handle = path.open("rb")
                except FileNotFoundError:
                    time.sleep(poll_seconds)
                    continue
                stat = os.fstat(handle.fileno())
                if inode is None:
                    handle.seek(0, os.SEEK_END)
                inode, position = stat.st_ino, handle.tell()

            chunk = handle.read()
            if chunk:
                position += len(chunk)
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    yield line.decode("utf-8", errors="replace")
                continue

            time.sleep(poll_seconds)
            try:
                current = path.stat()
            except FileNotFoundError:
                continue
            if current.st_ino != inode or current.st_size < position:
                handle.close()
                handle = None
                inode = -1  # the new file is read from its start
    finally:
        if handle is not None:
            handle.close()
