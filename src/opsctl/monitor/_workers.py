"""The monitor's helper threads: probes run with a deadline, and notifications handed to
the notifier in order, off the cycle, so neither a hanging probe nor a hanging Slack
delays the watching.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsctl.notify import Notifier

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
    """Hands notices to the notifier on its own thread, in order, and flushes the
    notifier's disk queue when idle, so what waited for Slack goes out once it answers.
    """

    def __init__(self, notifier: Notifier | None, *, idle_seconds: float) -> None:
        self.notifier = notifier
        self.idle_seconds = idle_seconds
        self._queue: queue.Queue[Any] = queue.Queue()
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        if notifier is not None:
            self._thread.start()

    def put(self, notification: Any) -> None:
        if self.notifier is not None:
            self._queue.put(notification)

    def pending(self) -> int:
        return self._queue.qsize()

    def queued(self) -> int | None:
        counter = getattr(self.notifier, "queued_count", None)
        if counter is None:
            return None
        try:
            return int(counter())
        except Exception:  # a count is informative only
            return None

    def _run(self) -> None:
        assert self.notifier is not None  # noqa: S101 (started only with one)
        while True:
            try:
                item = self._queue.get(timeout=self.idle_seconds)
            except queue.Empty:
                self._call(self.notifier.flush)
                continue
            if item is None:
                return
            self._call(partial(self.notifier.send, item))

    def _call(self, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as error:  # the notifier must never stop the monitor
            self.failures += 1
            logger.warning("The notifier failed: %s", error)

    def close(self) -> None:
        """Deliver what is pending, waiting at most a few seconds."""
        if self.notifier is None or not self._thread.is_alive():
            return
        self._queue.put(None)
        self._thread.join(_DRAIN_SECONDS)
        left = self._queue.qsize()
        if left:
            logger.warning("%d notification(s) not handed to the notifier before exit", left)
