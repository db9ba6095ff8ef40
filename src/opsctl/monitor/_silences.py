"""Silences: for a while, an alert (or every alert of a service) notifies nobody."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opsctl.errors import UsageError

# Whole numbers in ASCII digits, each unit at most once, largest first: 1d12h, 2h30m.
_DURATION = re.compile(
    r"(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?", re.ASCII
)
_UNIT_SECONDS = (7 * 86400, 86400, 3600, 60, 1)
_LONGEST_NUMBER_DIGITS = 12
LONGEST_SILENCE = timedelta(days=90)
LONGEST_DURATION = timedelta(days=3650)
LONGEST_TARGET_CHARACTERS = 200


def parse_duration(
    text: str, *, what: str = "duration", longest: timedelta = LONGEST_DURATION
) -> timedelta:
    """Parse ``45s``, ``30m``, ``2h``, ``1d``, ``2w`` or a combination, largest unit first
    and each unit once (``1d12h``, ``1h30m``), into a timedelta.

    Raises :class:`UsageError` naming ``what`` and the accepted form for anything else
    (zero, decimals, capitals, spaces, other digits than 0-9), and naming ``longest``
    for a duration longer than that.
    """
    cleaned = text.strip()
    match = _DURATION.fullmatch(cleaned)
    numbers = match.groups() if match else ()
    if not cleaned or not any(numbers):
        message = (
            f"'{shorten(text)}' is not a valid {what}: write whole numbers (digits 0-9), "
            "each followed by one of the units w, d, h, m, s, each unit at most once and "
            "the largest first, for example 30m, 2h, 1d, 1h30m or 1d12h."
        )
        raise UsageError(message)

    if any(number and len(number) > _LONGEST_NUMBER_DIGITS for number in numbers):
        seconds = longest.total_seconds() + 1
    else:
        seconds = sum(int(n or 0) * unit for n, unit in zip(numbers, _UNIT_SECONDS, strict=True))
    if seconds <= 0:
        message = (
            f"'{shorten(text)}' is not a valid {what}: it must be longer than zero, "
            "for example 30m or 2h."
        )
        raise UsageError(message)
    if seconds > longest.total_seconds():
        message = f"'{shorten(text)}' is too long for a {what}: at most {describe(longest)}."
        raise UsageError(message)
    return timedelta(seconds=seconds)


def describe(length: timedelta) -> str:
    """``length`` in the largest whole unit that fits it (``90 days``, ``36 hours``)."""
    seconds = int(length.total_seconds())
    for unit, name in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= unit and seconds % unit == 0:
            count = seconds // unit
            return f"{count} {name}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


def shorten(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (for messages that quote it)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
            "created_at": iso_utc(self.created_at),
            "expires_at": iso_utc(self.expires_at),
            "created_by": self.created_by,
            "active": self.active(moment),
            "remaining_seconds": max(0, round((self.expires_at - moment).total_seconds())),
        }


def is_silenced(silences: list[Silence], key: str, service: str | None, now: datetime) -> bool:
    """True when an active silence covers the alert ``key`` of ``service``."""
    return any(s.active(now) and s.matches(key, service) for s in silences)


def iso_utc(moment: datetime) -> str:
    """``moment`` in UTC as ISO 8601 to the second, with ``Z`` (``2024-05-01T12:00:00Z``)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
