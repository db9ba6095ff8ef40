"""The history database's file: created with mode 0600 without following links, and moved
aside when SQLite finds it damaged, so that a broken file costs its history, not a crash
loop of the monitor and of every command that reads it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path

from opsctl.errors import ConfigError

# SQLite keeps these next to the database; a link among them would redirect its writes.
COMPANION_SUFFIXES = ("-wal", "-shm", "-journal")
_DAMAGE = {"SQLITE_NOTADB", "SQLITE_CORRUPT"}


class DamagedStoreError(Exception):
    """The file is not a readable SQLite database (garbage, truncated, corrupt pages)."""


def prepare_file(path: Path) -> int:
    """Make sure ``path`` is a regular file of ours with mode 0600, creating it if needed,
    and return its inode (to recognise it later).

    Raises :class:`~opsctl.errors.ConfigError` when ``path`` or one of SQLite's companion
    files is a symbolic link or not a regular file; nothing is followed or changed then.
    """
    refuse_links(path)
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _link_error(path) from None
        raise
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise _not_a_file_error(path)
        # Another owner's file keeps its mode; opening it already worked, so it is readable.
        with contextlib.suppress(OSError):
            os.fchmod(descriptor, 0o600)
        return status.st_ino
    finally:
        os.close(descriptor)


def refuse_links(path: Path) -> None:
    """Raise :class:`~opsctl.errors.ConfigError` when ``path`` or a companion file of it is
    a symbolic link, or something other than a regular file.
    """
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in COMPANION_SUFFIXES)):
        try:
            mode = candidate.lstat().st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            raise _link_error(candidate)
        if not stat.S_ISREG(mode):
            raise _not_a_file_error(candidate)


def is_damage(error: sqlite3.DatabaseError) -> bool:
    """Tell whether SQLite's ``error`` says the file itself is damaged (not busy, not
    unreadable for want of permission).
    """
    return getattr(error, "sqlite_errorname", None) in _DAMAGE


def move_aside(path: Path, *, inode: int) -> Path | None:
    """Rename the damaged ``path`` (and its companions) to ``<name>.damaged-<UTC time>``;
    return the new path, or ``None`` when ``path`` is no longer the file with ``inode``
    (another process moved it aside and started a fresh one meanwhile).
    """
    with contextlib.suppress(FileNotFoundError):
        if path.lstat().st_ino != inode:
            return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    number = 1
    while any(os.path.lexists(f"{target}{suffix}") for suffix in ("", *COMPANION_SUFFIXES)):
        target = path.with_name(f"{path.name}.damaged-{stamp}-{number}")
        number += 1
    try:
        path.rename(target)
    except FileNotFoundError:
        return None
    for suffix in COMPANION_SUFFIXES:
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").rename(f"{target}{suffix}")
    return target


def _link_error(path: Path) -> ConfigError:
    message = (
        f"{path} is a symbolic link; opsctl does not follow links for the monitor's "
        "history, so nothing was read or written."
    )
    hint = "Replace the link with the file it points to, or remove it to start a fresh history."
    return ConfigError(message, hint=hint)


def _not_a_file_error(path: Path) -> ConfigError:
    message = f"{path} is not a regular file, so it cannot hold the monitor's history."
    return ConfigError(message, hint="Move it away; a fresh history is created.")
