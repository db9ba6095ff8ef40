"""Check results and reports, in the JSON shapes scripts and CI read (see DESIGN.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal["pass", "warn", "fail", "skip"]
STATUSES: tuple[Status, ...] = ("pass", "warn", "fail", "skip")


@dataclass(frozen=True)
class Outcome:
    """What one probe found."""

    status: Status
    detail: str


@dataclass(frozen=True)
class Check:
    """One runnable check: ``probe`` is called with the check's timeout in seconds."""

    name: str
    kind: str
    target: str
    probe: Callable[[float], Outcome]
    severity: Literal["error", "warning"] = "error"
    timeout_seconds: float = 5.0
    service: str | None = None
    section: str = "checks"
    tags: tuple[str, ...] = ()
    retries: int = 0
    retry_delay_seconds: float = 1.0

    @property
    def budget_seconds(self) -> float:
        """The longest this check may take: every attempt at its timeout, and the delays."""
        attempts = self.retries + 1
        return attempts * self.timeout_seconds + self.retries * self.retry_delay_seconds


@dataclass(frozen=True)
class CheckResult:
    """The result of one check."""

    name: str
    kind: str
    target: str
    status: Status
    severity: str
    duration_ms: int
    detail: str
    service: str | None = None
    section: str = "checks"
    tags: tuple[str, ...] = ()
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Return the result as the JSON object DESIGN.md documents."""
        data = asdict(self)
        data["tags"] = list(self.tags)
        return data


@dataclass(frozen=True)
class Report:
    """A set of check results with an overall status."""

    status: str
    checks: Sequence[CheckResult]
    started_at: datetime
    duration_ms: int

    @property
    def summary(self) -> dict[str, int]:
        """Count of results per status; a failed check of severity warning counts as a warning."""
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for result in self.checks:
            counts[effective_status(result)] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """Return the report as the JSON object DESIGN.md documents."""
        return {
            "status": self.status,
            "checks": [result.to_dict() for result in self.checks],
            "summary": self.summary,
            "started_at": self.started_at.isoformat().replace("+00:00", "Z"),
            "duration_ms": self.duration_ms,
        }


def effective_status(result: CheckResult) -> Status:
    """A failed check of severity ``warning`` counts as a warning."""
    if result.status == "fail" and result.severity == "warning":
        return "warn"
    return result.status


def health_status(results: Sequence[CheckResult]) -> str:
    """Return ``unhealthy`` if any check failed, ``degraded`` if any warned, else ``healthy``."""
    statuses = {effective_status(result) for result in results}
    if "fail" in statuses:
        return "unhealthy"
    if "warn" in statuses:
        return "degraded"
    return "healthy"


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)
