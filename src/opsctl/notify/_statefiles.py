"""The queue's two one-number files, ``sequence`` and ``hold-until``, read with suspicion:
whatever they hold, a reader neither blocks, nor reads much, nor believes a number that
cannot be right.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import stat
import time
from pathlib import Path

logger = logging.getLogger(__name__)

LONGEST_HOLD_SECONDS = 3600.0
# Twelve digits, as in the file names; a recorded number beyond it is taken as damage.
LARGEST_SEQUENCE = 10**12 - 1
# Each file holds one number: more than this is damage.
_LONGEST_BYTES = 64


def seconds_held(path: Path) -> float:
    """How long the hold in ``path`` still asks to wait; 0 when there is none.

    A hold that cannot be read, or that reaches more than :data:`LONGEST_HOLD_SECONDS`
    ahead (damage, or a clock set back), is logged and removed, so that it cannot silence
    notifications.
    """
    try:
        text = _read_small(path)
    except FileNotFoundError:
        return 0.0
    except OSError as error:
        logger.warning("Ignoring %s, which cannot be read: %s", path, error)
        return 0.0
    left = _float(text)
    if left is not None:
        left -= time.time()
    if left is None or not math.isfinite(left) or left > LONGEST_HOLD_SECONDS:
        logger.warning(
            "Ignoring %s: %r is no time within the next hour; sending without waiting.",
            path,
            text,
        )
        with contextlib.suppress(OSError):
            path.unlink()
        return 0.0
    return max(left, 0.0)


def recorded_sequence(path: Path) -> int | None:
    """The next message number as ``path`` records it; ``None`` when the file is absent,
    or damaged (logged).
    """
    try:
        text = _read_small(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        logger.warning("Ignoring %s, which cannot be read: %s", path, error)
        return None
    recorded = _integer(text)
    if recorded is None or not 1 <= recorded <= LARGEST_SEQUENCE:
        logger.warning(
            "Ignoring %s: %r is no message number; going on after the highest one in use.",
            path,
            text,
        )
        return None
    return recorded


def _read_small(path: Path) -> str:
    """The text of a one-number file; a marker in its place when it is far longer.

    Raises :class:`OSError` when it cannot be read, including when it is no regular file,
    so that a FIFO there cannot block the caller.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            message = "not a regular file"
            raise OSError(message)
        data = handle.read(_LONGEST_BYTES + 1)
    if len(data) > _LONGEST_BYTES:
        return f"(more than {_LONGEST_BYTES} bytes)"
    return data.decode("utf-8", errors="replace").strip()


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _integer(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None
