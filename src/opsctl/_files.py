"""Atomic file writing: a temporary name in the same folder, fsync, rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: str | bytes, *, mode: int = 0o600) -> bool:
    """Write ``data`` to ``path`` so that readers see the old or the new content, never a mix.

    The file gets ``mode`` before any byte is written. Returns ``False`` (and writes nothing)
    when the file already holds exactly ``data``.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path = _regular_target(path)
    try:
        if path.stat().st_size == len(payload) and path.read_bytes() == payload:
            return False
    except OSError:
        pass

    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    fsync_folder(path.parent)
    return True


def _regular_target(path: Path) -> Path:
    """The file to replace: a symlink's target (so the link stays a link), which must be a
    regular file or not exist yet. A device, FIFO, socket or folder is refused, never
    replaced.
    """
    from opsctl.errors import UsageError

    try:
        target = path.resolve(strict=False) if path.is_symlink() else path
    except (OSError, RuntimeError) as error:
        message = f"{path} cannot be resolved: {error}."
        raise UsageError(message) from None
    if target.exists() and not target.is_file():
        message = f"{path} exists and is not a regular file; nothing was written to it."
        raise UsageError(message)
    return target


def fsync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries to disk, so that a rename or unlink in it survives a crash."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def tail_lines(path: Path, count: int, *, max_bytes: int = 1 << 20) -> list[str]:
    """Return the last ``count`` lines of ``path`` (reading at most ``max_bytes`` from its end)."""
    if count <= 0:
        return []
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(size - max_bytes, 0))
            data = handle.read()
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-count:]
