"""Delivery: the queue first, in order, each message retried within a time budget.

Guarantee: at least once, in order. A message is written to the queue before it is sent
and its file is deleted only after Slack confirmed it, so a crash between the two sends
that one message again on the next flush (Slack has no idempotency key): a crash can
cause at most one duplicate, never a loss. The delivery lock keeps two processes from
sending the same file.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from opsctl.errors import OpsctlError
from opsctl.notify._blocks import render_message
from opsctl.notify._message import Notification
from opsctl.notify._queue import MessageQueue, QueuedMessage
from opsctl.notify._slack import Attempt, Transport
from opsctl.notify._statefiles import LONGEST_HOLD_SECONDS

if TYPE_CHECKING:
    from opsctl.config._model import NotifySection

logger = logging.getLogger(__name__)

# No request starts with less time than this left in the budget (or than half the budget,
# or the request timeout, when smaller): it could hardly be answered in time.
_SHORTEST_TIMEOUT_SECONDS = 1.0
_OUT_OF_TIME = "the time budget of this call (notify.max_total_seconds) ran out"


@dataclass(frozen=True)
class DeliverySettings:
    """How hard to try: per request, per message, and per call of send or flush."""

    timeout_seconds: float = 10.0
    max_attempts: int = 4
    backoff_seconds: float = 1.0
    retry_cap_seconds: float = 30.0
    max_total_seconds: float = 60.0

    @classmethod
    def from_section(cls, section: NotifySection) -> DeliverySettings:
        """The settings of ``[notify]``."""
        return cls(
            timeout_seconds=section.timeout_seconds,
            max_attempts=section.max_attempts,
            backoff_seconds=section.backoff_seconds,
            retry_cap_seconds=section.retry_cap_seconds,
            max_total_seconds=section.max_total_seconds,
        )


@dataclass(frozen=True)
class FlushResult:
    """What one flush did: sequence numbers delivered and given up on, what is left."""

    delivered: tuple[int, ...] = ()
    dead: tuple[tuple[int, str], ...] = ()
    remaining: int = 0
    reason: str | None = None
    busy: bool = False
    requests: int = 0


@dataclass(frozen=True)
class SendResult:
    """What became of one notification handed to :meth:`Notifier.deliver`: delivered;
    queued for a later try; dead (Slack refused it for good, kept as a dead letter); or
    failed (not delivered, and the queue could not be written).
    """

    status: Literal["delivered", "queued", "dead", "failed"]
    sequence: int | None
    reason: str | None = None
    flush: FlushResult = field(default_factory=FlushResult)


class Notifier:
    """Sends notifications through one transport, with the on-disk queue in front of it.

    No method raises for a delivery problem, and each returns within about
    ``max_total_seconds``: no request outlives that budget.
    """

    def __init__(
        self,
        transport: Transport,
        queue: MessageQueue,
        *,
        settings: DeliverySettings,
        source: str,
    ) -> None:
        self.transport = transport
        self.queue = queue
        self.settings = settings
        self.source = source

    def send(self, notification: Notification) -> bool:
        """Deliver what is queued, in order, then ``notification``. ``True`` when it was
        delivered now; ``False`` when it waits in the queue or Slack refused it for good
        (it is then a dead letter, and an error is logged).
        """
        return self.deliver(notification).status == "delivered"

    def flush(self) -> int:
        """Deliver the queued messages, in order; return how many were delivered."""
        return len(self.flush_queue().delivered)

    def queued_count(self) -> int:
        """How many messages wait in the queue (dead letters not counted). Raises
        :class:`~opsctl.errors.OperationFailedError` when the queue's folder cannot be read.
        """
        return len(self.queue.sequences())

    def enqueue(self, notification: Notification) -> None:
        """Write ``notification`` to the queue, after every message already there, without
        trying to deliver anything: the next :meth:`send` or :meth:`flush` delivers it.

        For a caller out of time (a monitor shutting down). The file is written atomically.
        Never raises: a notification the queue cannot take is logged as an error, with its
        title, and lost.
        """
        try:
            message = self.queue.put(notification)
        except (OSError, OpsctlError) as error:
            logger.error(
                "Cannot queue the notification %r, so it is lost: %s", notification.title, error
            )
            return
        logger.debug("Queued notification #%d without delivering it.", message.sequence)

    def deliver(self, notification: Notification) -> SendResult:
        """Like :meth:`send`, and say what happened and why."""
        deadline = time.monotonic() + self.settings.max_total_seconds
        try:
            message = self.queue.put(notification)
        except (OSError, OpsctlError) as error:
            logger.error("Cannot queue the notification (%s); sending it without a queue.", error)
            return self._deliver_unqueued(notification, deadline)

        flushed = self._flush(deadline)
        return self._fate(message.sequence, flushed)

    def _fate(self, sequence: int, flushed: FlushResult) -> SendResult:
        """What became of message ``sequence`` after a flush, by this process or another
        one that held the delivery lock meanwhile.
        """
        for number, reason in flushed.dead:
            if number == sequence:
                return SendResult("dead", sequence, reason, flushed)
        if sequence in self.queue.sequences():
            reason = flushed.reason or "another process is delivering the queue"
            logger.warning("Notification #%d queued: %s", sequence, reason)
            return SendResult("queued", sequence, reason, flushed)
        for dead in self.queue.dead():
            if dead.sequence == sequence:
                return SendResult("dead", sequence, dead.last_error, flushed)
        # Gone from the queue: delivered, here or by the process that held the lock.
        return SendResult("delivered", sequence, flush=flushed)

    def flush_queue(self, *, include_dead: bool = False) -> FlushResult:
        """Deliver the queue in order (first moving dead letters back when ``include_dead``),
        stopping at the first message that cannot be delivered yet.
        """
        if include_dead:
            try:
                self.queue.revive_dead()
            except (OSError, OpsctlError) as error:
                logger.error("Cannot move dead letters back into the queue: %s", error)
        return self._flush(time.monotonic() + self.settings.max_total_seconds)

    def _flush(self, deadline: float) -> FlushResult:
        try:
            with self.queue.delivering(deadline=deadline) as held:
                if not held:
                    remaining = self.queued_count()
                    busy = "another process held the delivery lock for the whole time budget"
                    return FlushResult(remaining=remaining, reason=busy, busy=True)
                return self._flush_held(deadline)
        except (OSError, OpsctlError) as error:
            logger.error("Cannot deliver queued notifications: %s", error)
            return FlushResult(remaining=self._count_safely(), reason=str(error))

    def _count_safely(self) -> int:
        try:
            return self.queued_count()
        except (OSError, OpsctlError):
            return 0

    def _flush_held(self, deadline: float) -> FlushResult:
        delivered: list[int] = []
        dead: list[tuple[int, str]] = []
        seen: set[int] = set()
        requests = 0
        reason = None
        # List again after each message: others may queue while this process delivers.
        while sequences := [number for number in self.queue.sequences() if number not in seen]:
            sequence = sequences[0]
            seen.add(sequence)
            message = self.queue.read(sequence)
            if message is None:
                continue
            if time.monotonic() >= deadline:
                reason = _OUT_OF_TIME
                break
            attempt, count = self._attempt(message, deadline)
            requests += count
            if attempt.delivered:
                self.queue.remove(message)
                delivered.append(sequence)
                logger.info("Delivered notification #%d: %s", sequence, message.notification.title)
            elif attempt.retryable:
                self.queue.record_failure(message, attempt.reason, requests=count)
                reason = attempt.reason
                break
            else:
                self.queue.bury(message, attempt.reason, requests=count)
                dead.append((sequence, attempt.reason))
                logger.error(
                    "Slack refused notification #%d for good (%s); kept as a dead letter: "
                    "fix the configuration, then run 'opsctl notify flush --dead'.",
                    sequence,
                    attempt.reason,
                )
        remaining = len(self.queue.sequences())
        return FlushResult(tuple(delivered), tuple(dead), remaining, reason, requests=requests)

    def _attempt(self, message: QueuedMessage, deadline: float) -> tuple[Attempt, int]:
        """Send one message, retrying what is worth retrying, each request within what is
        left of the budget; return the last outcome and the number of requests made.
        """
        payload = render_message(message.notification, source=self.source)
        attempt = Attempt(delivered=False, retryable=True, reason=_OUT_OF_TIME)
        requests = 0
        while requests < self.settings.max_attempts:
            wait = self.queue.held_for_seconds()
            if wait > self.settings.retry_cap_seconds or time.monotonic() + wait > deadline:
                held = f"rate limited by Slack for another {wait:.0f} s"
                return Attempt(delivered=False, retryable=True, reason=held), requests
            if wait > 0:
                time.sleep(wait)
            timeout = min(self.settings.timeout_seconds, deadline - time.monotonic())
            if timeout < self._shortest_timeout():
                break
            attempt = self.transport.post(payload, timeout_seconds=timeout)
            requests += 1
            if attempt.delivered or not attempt.retryable:
                return attempt, requests

            logger.info(
                "Notification #%d, attempt %d of %d: %s",
                message.sequence,
                requests,
                self.settings.max_attempts,
                attempt.reason,
            )
            if attempt.retry_after_seconds is not None:
                # Remembered on disk: the next call, in any process, waits as well.
                seconds = min(attempt.retry_after_seconds, LONGEST_HOLD_SECONDS)
                self.queue.hold_until(time.time() + seconds)
                continue
            delay = self._backoff(requests)
            if requests >= self.settings.max_attempts or time.monotonic() + delay > deadline:
                break
            time.sleep(delay)
        return attempt, requests

    def _shortest_timeout(self) -> float:
        settings = self.settings
        return min(
            _SHORTEST_TIMEOUT_SECONDS, settings.timeout_seconds, settings.max_total_seconds / 2
        )

    def _backoff(self, failures: int) -> float:
        """Exponential backoff, capped, with jitter so that processes do not retry in step."""
        base = self.settings.backoff_seconds * 2.0 ** (failures - 1)
        return min(base, max(self.settings.retry_cap_seconds, self.settings.backoff_seconds)) * (
            random.uniform(0.75, 1.0)  # noqa: S311 (jitter, not cryptography)
        )

    def _deliver_unqueued(self, notification: Notification, deadline: float) -> SendResult:
        message = QueuedMessage(0, notification, notification.at)
        attempt, _ = self._attempt(message, deadline)
        if attempt.delivered:
            return SendResult("delivered", None)
        logger.error("Notification not delivered and not queued: %s", attempt.reason)
        return SendResult("failed", None, attempt.reason)
