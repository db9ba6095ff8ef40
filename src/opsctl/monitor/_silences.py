"""Silences: for a while, an alert (or every alert of a service) notifies nobody."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opsctl.errors import UsageError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
LONGEST_SILENCE = timedelta(days=90)


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """Parse ``30m``, ``2h``, ``1d``, ``1h30m``, ``45s`` or ``2w`` into a timedelta.

    Raises :class:`UsageError` naming ``what`` for anything else, or for zero.
    """
    cleaned = text.strip().lower()
    position = 0
    seconds = 0.0
    for match in _DURATION_PART.finditer(cleaned):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not cleaned or position != len(cleaned) or seconds <= 0:
        message = (
            f"'{text}' is not a valid {what}: write a number and a unit (s, m, h, d, w), "
            "for example 30m, 2h, 1d or 1h30m."
        )
        raise UsageError(message)
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Silence:
    """One silence: ``target`` is an alert key, a glob over keys, an alert family (the part
    before the colon, ``disk_free``) or a service name.
    """

    id: int
    target: str
    reason: str
    created_at: datetime
    expires_at: datetime
    created_by: str

    def active(self, now: datetime) -> bool:
        """True until the silence expires."""
        return now < self.expires_at

    def matches(self, key: str, service: str | None) -> bool:
        """Tell whether this silence covers the alert ``key`` of ``service``."""
        if service is not None and service == self.target:
            return True
        return fnmatch.fnmatchcase(key, self.target) or key.startswith(f"{self.target}:")

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """The silence as a JSON object; ``remaining_seconds`` relative to ``now``."""
        moment = now or datetime.now(UTC)
        return {
            "id": self.id,
            "target": self.target,
            "reason": self.reason,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "created_by": self.created_by,
            "active": self.active(moment),
            "remaining_seconds": max(0, round((self.expires_at - moment).total_seconds())),
        }


def is_silenced(silences: list[Silence], key: str, service: str | None, now: datetime) -> bool:
    """True when an active silence covers the alert ``key`` of ``service``."""
    return any(s.active(now) and s.matches(key, service) for s in silences)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
