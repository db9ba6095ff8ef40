"""``verify``: the readiness verdict, built-in checks plus the user's ``[[verify.checks]]``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from opsctl.checks._registry import BuildContext, build_check
from opsctl.checks._result import Check, Report, effective_status, utc_now
from opsctl.checks._runner import run_checks
from opsctl.checks.readiness import readiness_checks
from opsctl.config import Project
from opsctl.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from opsctl.runtime import Runtime


def verify_checks(project: Project, runtime: Runtime, *, online: bool = False) -> list[Check]:
    """Return the built-in readiness checks followed by the user's, in config order."""
    snapshot = runtime.snapshot(window_seconds=project.config.runtime.crash_loop_window_seconds)
    checks = readiness_checks(project, runtime, snapshot, online=online)
    context = BuildContext(section="checks", root=project.root, environ=project.environ)
    checks += [build_check(spec, context) for spec in project.config.verify.checks]
    return checks


def select_checks(
    checks: Sequence[Check], *, only: Sequence[str] = (), skip: Sequence[str] = ()
) -> list[Check]:
    """Keep the checks whose name, section or a tag is in ``only`` (all when empty), less
    those named in ``skip``. Raises :class:`UsageError` when ``only`` matches nothing.
    """

    def labels(check: Check) -> set[str]:
        return {check.name, check.section, *check.tags}

    selected = [c for c in checks if not only or labels(c) & set(only)]
    if only and not selected:
        known = sorted({c.section for c in checks} | {t for c in checks for t in c.tags})
        message = (
            f"No check matches --only {', '.join(only)}; sections and tags: {', '.join(known)}."
        )
        raise UsageError(message)
    return [c for c in selected if not labels(c) & set(skip)]


def run_verify(
    project: Project,
    runtime: Runtime,
    *,
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    online: bool = False,
) -> Report:
    """Run the selected readiness checks concurrently; the report's status is ``fail`` when
    any check of severity ``error`` failed, else ``pass``.
    """
    started_at = utc_now()
    begin = time.monotonic()
    checks = select_checks(verify_checks(project, runtime, online=online), only=only, skip=skip)
    results = run_checks(checks, concurrency=project.config.verify.concurrency)
    failed = any(effective_status(result) == "fail" for result in results)
    return Report(
        status="fail" if failed else "pass",
        checks=results,
        started_at=started_at,
        duration_ms=round((time.monotonic() - begin) * 1000),
    )


def verify_exit_code(report: Report, *, strict: bool) -> ExitCode:
    """1 when a check failed; with ``strict``, 3 when only warnings; else 0."""
    if report.status == "fail":
        return ExitCode.FAILED
    if strict and report.summary["warn"]:
        return ExitCode.DEGRADED
    return ExitCode.OK
