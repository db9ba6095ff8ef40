"""The monitor's helper threads: probes run with a deadline, and notifications handed to
the notifier in order, off the cycle, so neither a hanging probe nor a hanging Slack
delays the watching.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from opsctl.monitor._text import one_line

if TYPE_CHECKING:
    from opsctl.notify import Notification, Notifier

logger = logging.getLogger(__name__)

_DRAIN_SECONDS = 10.0


class Guarded:
    """Runs one probe on a daemon thread with a deadline; while an earlier call still
    hangs, it is not started again, so a stuck probe costs one thread, not one per cycle.
    """

    def __init__(self, name: str, function: Callable[[], Any]) -> None:
        self.name = name
        self.function = function
        self._thread: threading.Thread | None = None
        self._result: Any = None
        self._error: BaseException | None = None

    def start(self) -> bool:
        if self._thread is not None and self._thread.is_alive():
            return False
        self._result, self._error = None, None
        self._thread = threading.Thread(target=self._run, name=f"probe-{self.name}", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        try:
            self._result = self.function()
        except Exception as error:  # every failure of a probe is reported by the loop
            self._error = error

    def wait(self, deadline: float) -> Any:
        assert self._thread is not None  # noqa: S101 (start() ran)
        self._thread.join(max(deadline - time.monotonic(), 0.0))
        if self._thread.is_alive():
            message = "no answer within the cycle's deadline"
            raise TimeoutError(message)
        if self._error is not None:
            raise self._error
        return self._result


class Dispatcher:
    """Hands notices to the notifier on its own thread, in order: each is first written to
    the notifier's queue on disk, then the queue is delivered; when idle the queue is
    delivered again, so what waited for Slack goes out once it answers.

    Which notices Slack confirmed is collected for :meth:`take_delivered`, so that the
    history says "notified" only for those. At :meth:`close`, what the thread could not
    hand over in time is written to the queue on disk for the next start.
    """

    def __init__(self, notifier: Notifier | None, *, idle_seconds: float) -> None:
        self.notifier = notifier
        self.idle_seconds = idle_seconds
        self.failures = 0
        self._pending: deque[Notification] = deque()
        self._delivered: list[tuple[str, float]] = []
        self._known: dict[int, tuple[str, float]] = {}
        self._waiting_reason: str | None = None
        # Held while notices move from memory to disk (never while Slack is asked), so
        # that close() and the thread never both take, or both miss, one notice.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        if notifier is not None:
            self._thread.start()

    def put(self, notification: Notification) -> None:
        """Hand ``notification`` to the thread (dropped when there is no notifier)."""
        if self.notifier is None:
            return
        with self._lock:
            self._pending.append(notification)
        self._wake.set()

    def pending(self) -> int:
        """How many notices wait in memory, not yet written to the notifier's queue."""
        with self._lock:
            return len(self._pending)

    def queued(self) -> int | None:
        """How many messages wait in the notifier's queue on disk (``None``: unknown)."""
        if self.notifier is None:
            return None
        try:
            return int(self.notifier.queued_count())
        except Exception:  # noqa: BLE001 (a count is informative only)
            return None

    def take_delivered(self) -> list[tuple[str, float]]:
        """The (alert key, Unix time) of each notice Slack confirmed since the last call."""
        with self._lock:
            delivered, self._delivered = self._delivered, []
        return delivered

    def _run(self) -> None:
        while True:
            self._wake.wait(self.idle_seconds)
            self._wake.clear()
            direct = self._hand_over()
            if direct is None:
                return
            for notification in direct:
                self._call(partial(self._send_direct, notification))
            self._call(self._deliver_queue)
            with self._lock:
                if self._closing and not self._pending:
                    return

    def _hand_over(self) -> list[Notification] | None:
        """Write the pending notices to the queue on disk, in order; return those that
        could not be written (to be sent without the queue), or ``None`` once closed.
        """
        with self._lock:
            if self._closed:
                return None
            unwritten = [item for item in self._pending if not self._write(item)]
            self._pending.clear()
        return unwritten

    def _write(self, notification: Notification) -> bool:
        assert self.notifier is not None  # noqa: S101 (started only with one)
        try:
            self.notifier.queue.put(notification)
        except Exception as error:  # noqa: BLE001 (the notifier must never stop the monitor)
            self.failures += 1
            logger.warning(
                "Cannot write a notification to the queue on disk (%s); sending it without",
                one_line(error),
            )
            return False
        return True

    def _send_direct(self, notification: Notification) -> None:
        assert self.notifier is not None  # noqa: S101 (started only with one)
        if self.notifier.send(notification):
            with self._lock:
                self._delivered.append((notification.key, notification.at.timestamp()))

    def _deliver_queue(self) -> None:
        """Deliver the queue on disk, noting which of its messages Slack confirmed."""
        assert self.notifier is not None  # noqa: S101 (started only with one)
        queue = self.notifier.queue
        sequences = queue.sequences()
        self._known = {number: self._known[number] for number in sequences if number in self._known}
        if not sequences:
            return
        for number in sequences:
            if number not in self._known and (message := queue.read(number)) is not None:
                notification = message.notification
                self._known[number] = (notification.key, notification.at.timestamp())
        result = self.notifier.flush_queue()
        with self._lock:
            self._delivered += [self._known[n] for n in result.delivered if n in self._known]
        self._note_waiting(result.remaining, result.reason)

    def _note_waiting(self, remaining: int, reason: str | None) -> None:
        """Warn when messages start waiting (or wait for another reason), not every flush."""
        if not remaining:
            if self._waiting_reason is not None:
                logger.info("The notifier's queue on disk is delivered")
            self._waiting_reason = None
            return
        reason = reason or "not delivered yet"
        if reason != self._waiting_reason:
            logger.warning(
                "%d notification(s) wait in the queue on disk: %s", remaining, one_line(reason)
            )
            self._waiting_reason = reason

    def _call(self, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as error:  # noqa: BLE001 (the notifier must never stop the monitor)
            self.failures += 1
            logger.warning("The notifier failed: %s", one_line(error))

    def close(self) -> None:
        """Give the thread a few seconds to deliver, then write what it could not take to
        the notifier's queue on disk, where the next start (or ``opsctl notify flush``)
        finds it. Safe to call twice.
        """
        if self.notifier is None:
            return
        with self._lock:
            self._closing = True
        self._wake.set()
        self._thread.join(_DRAIN_SECONDS)
        with self._lock:
            self._closed = True
            # No time left to send them: on disk, the next start delivers them in order.
            for item in self._pending:
                self.notifier.enqueue(item)
            self._pending.clear()
        waiting = self.queued()
        if waiting:
            logger.warning(
                "%d notification(s) wait in the queue on disk; the next monitor start "
                "(or opsctl notify flush) delivers them",
                waiting,
            )
