"""Calendar durations as restic writes them (``1y2m3d4h``), for ``[backup.retention] within``.

They live with the configuration, not with the retention rules, so that validating a config
does not import the backup package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DURATION_EXAMPLE = "1y2m3d4h"

_DURATION_PART = re.compile(r"([0-9]+)([ymdh])")


@dataclass(frozen=True)
class Duration:
    """A calendar duration as restic writes it: whole years, months, days and hours."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @property
    def is_zero(self) -> bool:
        """True when every part is zero; such a duration keeps nothing."""
        return not (self.years or self.months or self.days or self.hours)

    def __str__(self) -> str:
        parts = zip((self.years, self.months, self.days, self.hours), "ymdh", strict=True)
        return "".join(f"{number}{unit}" for number, unit in parts if number)


def parse_duration(text: str) -> Duration:
    """Read a duration such as ``1y2m3d4h`` (``m`` is months); each unit at most once.

    Raises :class:`ValueError` with a sentence saying what is wrong; a negative number is
    refused (restic reads it, but a negative retention makes no sense here).
    """
    stripped = text.strip()
    if "-" in stripped:
        message = f"'{text}' is negative; a retention duration must be zero or more"
        raise ValueError(message)
    if not stripped or _DURATION_PART.sub("", stripped):
        message = (
            f"'{text}' is not a duration: write whole numbers with the units y (years), "
            f"m (months), d (days), h (hours), e.g. '{DURATION_EXAMPLE}'"
        )
        raise ValueError(message)

    values: dict[str, int] = {}
    for number, unit in _DURATION_PART.findall(stripped):
        if unit in values:
            message = f"'{text}' names the unit '{unit}' twice"
            raise ValueError(message)
        values[unit] = int(number)
    return Duration(
        years=values.get("y", 0),
        months=values.get("m", 0),
        days=values.get("d", 0),
        hours=values.get("h", 0),
    )
