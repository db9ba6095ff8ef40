"""The check engine shared by ``health``, ``verify`` and ``monitor``."""

from opsctl.checks._registry import KINDS, BuildContext, build_check
from opsctl.checks._result import (
    Check,
    CheckResult,
    Outcome,
    Report,
    effective_status,
    health_status,
    utc_now,
)
from opsctl.checks._runner import run_checks

__all__ = [
    "KINDS",
    "BuildContext",
    "Check",
    "CheckResult",
    "Outcome",
    "Report",
    "build_check",
    "effective_status",
    "health_status",
    "run_checks",
    "utc_now",
]
