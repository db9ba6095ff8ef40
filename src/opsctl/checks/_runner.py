"""Run checks concurrently, each within its own hard deadline."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

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
    deadline fails as timed out (its thread is abandoned, not waited for).
    """
    if not checks:
        return []

    started: dict[int, float] = {}
    lock = threading.Lock()

    def run_one(index: int, check: Check) -> CheckResult:
        begin = time.monotonic()
        with lock:
            started[index] = begin
        attempt = 0
        while True:
            attempt += 1
            outcome = _probe(check)
            if outcome.status != "fail" or attempt > check.retries:
                break
            logger.debug("Check %s failed (attempt %d): %s", check.name, attempt, outcome.detail)
            time.sleep(check.retry_delay_seconds)
        return _result(check, outcome, time.monotonic() - begin, attempts=attempt)

    pool = ThreadPoolExecutor(max_workers=min(concurrency, len(checks)), thread_name_prefix="check")
    # Checks that wait on the network start first, so their waiting overlaps with the
    # work of the quick local ones instead of coming after it.
    order = sorted(range(len(checks)), key=lambda index: _START_ORDER.get(checks[index].kind, 2))
    futures: dict[Future[CheckResult], int] = {
        pool.submit(run_one, index, checks[index]): index for index in order
    }
    results: list[CheckResult | None] = [None] * len(checks)
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                results[futures[future]] = future.result()
            now = time.monotonic()
            with lock:
                overdue = [
                    future
                    for future in pending
                    if futures[future] in started
                    and now - started[futures[future]]
                    > checks[futures[future]].budget_seconds + _DEADLINE_GRACE_SECONDS
                ]
            for future in overdue:
                check = checks[futures[future]]
                detail = f"no answer within {check.budget_seconds:g} s"
                results[futures[future]] = _result(
                    check, Outcome("fail", detail), now - started[futures[future]]
                )
                pending.discard(future)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
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
