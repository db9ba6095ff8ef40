"""Run checks concurrently, each within its own hard deadline."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence

from opsctl import secrets
from opsctl.checks._result import Check, CheckResult, Outcome

logger = logging.getLogger(__name__)

# A probe is given its timeout and normally returns within it; the runner gives up on it
# this much later, so a probe that ignores its timeout still cannot hold up the report.
_DEADLINE_GRACE_SECONDS = 0.25
_POLL_SECONDS = 0.02
_START_ORDER = {"http": 0, "redis": 0, "tcp": 1, "command": 1}


def run_checks(checks: Sequence[Check], *, concurrency: int = 16) -> list[CheckResult]:
    """Run ``checks`` with at most ``concurrency`` at a time; return results in input order.

    A check that raises fails with the error as its detail; one still running past its
    deadline fails as timed out and frees its slot. Each check runs in a daemon thread, so
    an abandoned one can never keep the process from exiting.
    """
    if not checks:
        return []

    finished: queue.Queue[tuple[int, CheckResult]] = queue.Queue()

    def run_one(index: int, check: Check) -> None:
        begin = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            outcome = _probe(check)
            if outcome.status != "fail" or attempt > check.retries:
                break
            logger.debug("Check %s failed (attempt %d): %s", check.name, attempt, outcome.detail)
            time.sleep(check.retry_delay_seconds)
        finished.put((index, _result(check, outcome, time.monotonic() - begin, attempts=attempt)))

    # Checks that wait on the network start first, so their waiting overlaps with the
    # work of the quick local ones instead of coming after it.
    waiting = deque(sorted(range(len(checks)), key=lambda i: _START_ORDER.get(checks[i].kind, 2)))
    running: dict[int, float] = {}
    results: list[CheckResult | None] = [None] * len(checks)
    while waiting or running:
        while waiting and len(running) < concurrency:
            index = waiting.popleft()
            running[index] = time.monotonic()
            thread = threading.Thread(
                target=run_one, args=(index, checks[index]), name=f"check-{index}", daemon=True
            )
            thread.start()
        try:
            index, result = finished.get(timeout=_POLL_SECONDS)
            if running.pop(index, None) is not None:
                results[index] = result
        except queue.Empty:
            pass
        now = time.monotonic()
        for index, begin in list(running.items()):
            check = checks[index]
            if now - begin > check.budget_seconds + _DEADLINE_GRACE_SECONDS:
                detail = f"no answer within {check.budget_seconds:g} s"
                results[index] = _result(check, Outcome("fail", detail), now - begin)
                del running[index]
    return [result for result in results if result is not None]


def _probe(check: Check) -> Outcome:
    try:
        return check.probe(check.timeout_seconds)
    except Exception as error:  # a probe's failure is the check's result
        logger.debug("Check %s raised", check.name, exc_info=True)
        return Outcome("fail", f"{type(error).__name__}: {error}")


def _result(
    check: Check, outcome: Outcome, elapsed_seconds: float, *, attempts: int = 1
) -> CheckResult:
    return CheckResult(
        name=check.name,
        kind=check.kind,
        target=secrets.scrub(check.target),
        status=outcome.status,
        severity=check.severity,
        duration_ms=round(elapsed_seconds * 1000),
        detail=secrets.scrub(outcome.detail),
        service=check.service,
        section=check.section,
        tags=check.tags,
        attempts=attempts,
    )
