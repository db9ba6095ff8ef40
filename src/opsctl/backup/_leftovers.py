"""Temporary files of restores: named after the restoring process, removed once it is gone.

A restore writes each file as ``.<name>.opsctl-restore-<pid>`` beside its destination and
renames it into place when it is checked. A restore killed in between leaves that file;
the next restore into the same folder, or the next run for a destination, removes those
whose process no longer exists. Those of a live process (another restore at work) stay.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path

logger = logging.getLogger(__name__)

_MARK = ".opsctl-restore-"
_TEMPORARY = re.compile(r"^\..+\.opsctl-restore-([0-9]+)$")


def temporary_path(destination: Path) -> Path:
    """Where this process writes ``destination`` before renaming it into place."""
    return destination.parent / f".{destination.name}{_MARK}{os.getpid()}"


def remove_dead_temporaries(folder: Path) -> list[str]:
    """Remove the restore temporaries in ``folder`` whose process is gone; return their
    names. Folders are never removed; a folder that cannot be read is left alone.
    """
    removed = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if _MARK not in entry.name or entry.is_dir(follow_symlinks=False):
                    continue
                match = _TEMPORARY.match(entry.name)
                if match is None or _alive(int(match.group(1))):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(entry.name)
    except OSError as error:
        logger.debug("Cannot look for restore leftovers in %s: %s", folder, error)
    if removed:
        logger.info("Removed leftovers of interrupted restores in %s: %s", folder, removed)
    return sorted(removed)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # this restore's own files are its business
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # it exists, run by another user
    return True
