"""The on-disk queue of notifications not delivered yet, and the dead letters.

Layout under ``STATE/notify/`` (0700): ``queue/NNNNNNNNNNNN.json`` and ``dead/...json``,
one 0600 file per message named by its sequence number, written atomically; ``sequence``
(the next number); ``files.lock`` (held briefly by anything that creates, rewrites or
removes a message file); ``deliver.lock`` (held by the one process delivering, for the
whole flush); ``hold-until`` (a Retry-After that outlives the call that received it, at
most an hour ahead). A damaged queued message is moved aside as ``dead/NNN.unreadable``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsctl import secrets
from opsctl._files import fsync_folder, write_atomic
from opsctl.errors import OperationFailedError, OpsctlError
from opsctl.notify._message import Notification
from opsctl.notify._statefiles import LONGEST_HOLD_SECONDS, recorded_sequence, seconds_held

logger = logging.getLogger(__name__)

_SUFFIX = ".json"
_UNREADABLE_SUFFIX = ".unreadable"
_LOCK_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class QueuedMessage:
    """One message waiting in the queue, or given up on in the dead-letter folder."""

    sequence: int
    notification: Notification
    queued_at: datetime
    attempts: int = 0
    last_error: str | None = None
    dead: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The message as written to its file, and as ``notify queue --json`` shows it."""
        return {
            "sequence": self.sequence,
            "queued_at": self.queued_at.isoformat(),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "dead": self.dead,
            "notification": self.notification.to_dict(),
        }


class MessageQueue:
    """Sequence-numbered message files under ``folder``; at most ``max_messages`` kept in
    the queue and as many in the dead-letter folder (the oldest are dropped, with a warning).
    """

    def __init__(self, folder: Path, *, max_messages: int) -> None:
        self.folder = folder
        self.max_messages = max_messages
        self._queue = folder / "queue"
        self._dead = folder / "dead"

    def put(self, notification: Notification) -> QueuedMessage:
        """Write ``notification`` as the newest message, scrubbed of known secrets, and
        return it. Raises :class:`OSError` when the folder cannot be written.
        """
        clean = Notification.from_dict(
            {
                name: secrets.scrub(value) if isinstance(value, str) else value
                for name, value in notification.to_dict().items()
            }
        )
        with self._files_locked():
            sequence = self._next_sequence()
            message = QueuedMessage(sequence, clean, datetime.now(UTC))
            self._write(message)
            self._drop_oldest(self._queue, "queued")
        return message

    def sequences(self) -> list[int]:
        """The sequence numbers waiting in the queue, oldest first."""
        return _numbers(self._queue)

    def read(self, sequence: int) -> QueuedMessage | None:
        """The queued message ``sequence``; ``None`` when it is gone (delivered or dropped).
        A file that cannot be read is moved aside as ``dead/NNN.unreadable``.
        """
        path = self._queue / _name(sequence)
        try:
            return _parse(json.loads(path.read_text(encoding="utf-8")), dead=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            logger.warning("Queued notification %s is unreadable (%s); moved aside.", path, error)
            self._dead.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                path.replace(self._dead / _name(sequence, _UNREADABLE_SUFFIX))
            return None

    def pending(self) -> list[QueuedMessage]:
        """Every readable queued message, oldest first."""
        found = (self.read(sequence) for sequence in self.sequences())
        return [message for message in found if message is not None]

    def dead(self) -> list[QueuedMessage]:
        """Every readable dead letter, oldest first."""
        return self._read_dead()[0]

    def damaged(self) -> list[str]:
        """The names of the files under ``dead/`` that will never be delivered because they
        cannot be read: queued messages moved aside as ``NNN.unreadable``, and dead letters
        that are damaged. Oldest first.
        """
        unreadable = _numbers(self._dead, suffix=_UNREADABLE_SUFFIX)
        names = [_name(number, _UNREADABLE_SUFFIX) for number in unreadable]
        names += [_name(number) for number in self._read_dead()[1]]
        return sorted(names)

    def check(self) -> None:
        """Raise :class:`~opsctl.errors.OperationFailedError`, naming the path, when the
        queue's folder or one of its subfolders exists and is not a folder.
        """
        for folder in (self.folder.parent, self.folder, self._queue, self._dead):
            if folder.exists() and not folder.is_dir():
                raise _not_a_folder(folder)

    def _read_dead(self) -> tuple[list[QueuedMessage], list[int]]:
        """The readable dead letters, and the numbers of those that cannot be read."""
        messages, unreadable = [], []
        for sequence in _numbers(self._dead):
            try:
                text = (self._dead / _name(sequence)).read_text(encoding="utf-8")
                messages.append(_parse(json.loads(text), dead=True))
            except (OSError, ValueError, KeyError, TypeError):
                unreadable.append(sequence)
        return messages, unreadable

    def remove(self, message: QueuedMessage) -> None:
        """Delete a delivered message's file (already gone is fine)."""
        with self._files_locked():
            (self._queue / _name(message.sequence)).unlink(missing_ok=True)
            fsync_folder(self._queue)

    def record_failure(self, message: QueuedMessage, reason: str, *, requests: int) -> None:
        """Add ``requests`` failed requests and the last reason to the message's file,
        unless it was dropped meanwhile.
        """
        with self._files_locked():
            if (self._queue / _name(message.sequence)).exists():
                attempts = message.attempts + requests
                self._write(_replace(message, attempts=attempts, last_error=reason))

    def bury(self, message: QueuedMessage, reason: str, *, requests: int) -> None:
        """Move a message Slack refused for good into the dead-letter folder."""
        with self._files_locked():
            source = self._queue / _name(message.sequence)
            if not source.exists():
                return
            self._write(
                _replace(
                    message, attempts=message.attempts + requests, last_error=reason, dead=True
                )
            )
            source.unlink(missing_ok=True)
            self._drop_oldest(self._dead, "dead")

    def revive_dead(self) -> int:
        """Move every dead letter back into the queue, in its old place; return how many."""
        moved = 0
        with self._files_locked():
            for message in self.dead():
                self._write(_replace(message, dead=False))
                (self._dead / _name(message.sequence)).unlink(missing_ok=True)
                moved += 1
        return moved

    @contextlib.contextmanager
    def delivering(self, *, deadline: float) -> Iterator[bool]:
        """Hold the delivery lock while the block runs; yields ``False`` when another
        process held it until ``deadline`` (a ``time.monotonic()`` value).
        """
        self._make_folders()
        with (self.folder / "deliver.lock").open("a") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(_LOCK_POLL_SECONDS)
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def hold_until(self, moment: float) -> None:
        """Ask every process to send nothing before ``moment`` (``time.time()`` seconds),
        at most an hour from now. Never raises: a hold that cannot be written is logged.
        """
        latest = time.time() + LONGEST_HOLD_SECONDS
        if math.isnan(moment):
            return
        try:
            self._make_folders()
            write_atomic(self.folder / "hold-until", f"{min(moment, latest):.3f}\n")
        except (OSError, OpsctlError) as error:
            logger.warning("Cannot record Slack's Retry-After in %s: %s", self.folder, error)

    def held_for_seconds(self) -> float:
        """How long a Retry-After still asks to wait; 0 when it does not.

        A hold that cannot be read, or that reaches more than an hour ahead (damage, or a
        clock set back), is logged and removed, so that it cannot silence notifications.
        """
        return seconds_held(self.folder / "hold-until")

    @contextlib.contextmanager
    def _files_locked(self) -> Iterator[None]:
        self._make_folders()
        with (self.folder / "files.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _make_folders(self) -> None:
        # The state folder too: created here first, it would get the umask's mode.
        for folder in (self.folder.parent, self.folder, self._queue, self._dead):
            try:
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise _not_a_folder(folder) from None

    def _next_sequence(self) -> int:
        """One more than any number handed out, kept in a file so that numbers are never
        reused, even once the queue is empty. When that file is damaged or behind the
        numbers on disk, numbering goes on after the highest number found, with a warning.
        """
        counter = self.folder / "sequence"
        used = [
            *_numbers(self._queue),
            *_numbers(self._dead),
            *_numbers(self._dead, suffix=_UNREADABLE_SUFFIX),
        ]
        following = max(used, default=0) + 1
        recorded = recorded_sequence(counter)
        if recorded is None:
            recorded = following
        elif recorded < following:
            logger.warning(
                "%s says %d, below numbers already used; going on from %d.",
                counter,
                recorded,
                following,
            )
            recorded = following
        write_atomic(counter, f"{recorded + 1}\n")
        return recorded

    def _write(self, message: QueuedMessage) -> None:
        folder = self._dead if message.dead else self._queue
        text = json.dumps(message.to_dict(), indent=2, ensure_ascii=False) + "\n"
        write_atomic(folder / _name(message.sequence), text, mode=0o600)

    def _drop_oldest(self, folder: Path, kind: str) -> None:
        numbers = _numbers(folder)
        for sequence in numbers[: max(len(numbers) - self.max_messages, 0)]:
            (folder / _name(sequence)).unlink(missing_ok=True)
            logger.warning(
                "Dropped %s notification #%d: at most %d are kept (notify.queue_max).",
                kind,
                sequence,
                self.max_messages,
            )


def _parse(data: dict[str, Any], *, dead: bool) -> QueuedMessage:
    return QueuedMessage(
        sequence=int(data["sequence"]),
        notification=Notification.from_dict(data["notification"]),
        queued_at=datetime.fromisoformat(str(data["queued_at"])),
        attempts=int(data.get("attempts") or 0),
        last_error=None if data.get("last_error") is None else str(data["last_error"]),
        dead=dead,
    )


def _replace(message: QueuedMessage, **changes: Any) -> QueuedMessage:
    from dataclasses import replace

    return replace(message, **changes)


def _numbers(folder: Path, *, suffix: str = _SUFFIX) -> list[int]:
    """The sequence numbers of the ``NNN<suffix>`` files in ``folder``, smallest first.

    Raises :class:`~opsctl.errors.OperationFailedError` when ``folder`` cannot be listed,
    naming it.
    """
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise _not_a_folder(folder) from None
    except OSError as error:
        message = f"Cannot list the notification folder {folder}: {error.strerror or error}."
        raise OperationFailedError(message, hint="Check its owner and mode.") from None
    return sorted(
        int(name.removesuffix(suffix))
        for name in names
        if name.endswith(suffix) and name.removesuffix(suffix).isdigit()
    )


def _name(sequence: int, suffix: str = _SUFFIX) -> str:
    return f"{sequence:012d}{suffix}"


def _not_a_folder(path: Path) -> OperationFailedError:
    message = (
        f"{path} is not a folder, so the notification queue there can be neither read nor written."
    )
    hint = f"Move {path} out of the way (opsctl does not write a file there), then run it again."
    return OperationFailedError(message, hint=hint)
