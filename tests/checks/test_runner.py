"""The check runner: concurrency, deadlines, failures and result shapes."""

from __future__ import annotations

import threading
import time

from opsctl.checks import Check, Outcome, Report, health_status, run_checks, utc_now


def make_check(name: str, probe: object, *, timeout: float = 1.0, severity: str = "error") -> Check:
    return Check(
        name=name, kind="test", target=name, probe=probe, timeout_seconds=timeout, severity=severity
    )  # type: ignore[arg-type]


def test_checks_run_concurrently_and_keep_input_order() -> None:
    """Ten checks of 0.3 s finish in about 0.3 s, reported in the order given."""

    def slow(_timeout: float) -> Outcome:
        time.sleep(0.3)
        return Outcome("pass", "slept")

    checks = [make_check(f"c{i}", slow) for i in range(10)]
    begin = time.monotonic()
    results = run_checks(checks, concurrency=10)
    elapsed = time.monotonic() - begin

    assert [r.name for r in results] == [f"c{i}" for i in range(10)]
    assert all(r.status == "pass" for r in results)
    assert elapsed < 2.0


def test_check_that_ignores_its_timeout_fails_at_its_deadline() -> None:
    """A probe that never returns is reported failed shortly after its own timeout."""
    release = threading.Event()

    def hang(_timeout: float) -> Outcome:
        release.wait(30)
        return Outcome("pass", "too late")

    begin = time.monotonic()
    results = run_checks(
        [make_check("hang", hang, timeout=0.5), make_check("ok", lambda _t: Outcome("pass", ""))]
    )
    elapsed = time.monotonic() - begin
    release.set()

    assert results[0].status == "fail"
    assert results[0].detail == "no answer within 0.5 s"
    assert results[1].status == "pass"
    assert elapsed < 2.0


def test_probe_exception_becomes_a_failed_result() -> None:
    """An exception inside a probe fails that check with the error, not the run."""

    def broken(_timeout: float) -> Outcome:
        raise ValueError("bad probe")

    (result,) = run_checks([make_check("broken", broken)])
    assert result.status == "fail"
    assert result.detail == "ValueError: bad probe"


def test_warning_severity_failure_degrades_instead_of_failing() -> None:
    """A failed check of severity warning makes the report degraded, not unhealthy."""
    results = run_checks(
        [
            make_check("soft", lambda _t: Outcome("fail", "meh"), severity="warning"),
            make_check("fine", lambda _t: Outcome("pass", "")),
        ]
    )
    assert health_status(results) == "degraded"
    assert (
        health_status(
            [*results, *run_checks([make_check("hard", lambda _t: Outcome("fail", "x"))])]
        )
        == "unhealthy"
    )
    assert (
        health_status(run_checks([make_check("fine", lambda _t: Outcome("pass", ""))])) == "healthy"
    )


def test_report_dict_has_the_documented_shape() -> None:
    """Report.to_dict has status, checks, summary, UTC started_at and duration."""
    results = run_checks([make_check("a", lambda _t: Outcome("warn", "w"))])
    report = Report(
        status=health_status(results), checks=results, started_at=utc_now(), duration_ms=3
    ).to_dict()
    assert report["summary"] == {"pass": 0, "warn": 1, "fail": 0, "skip": 0}
    assert report["status"] == "degraded"
    assert report["started_at"].endswith("Z")
    assert report["checks"][0]["detail"] == "w"
