"""What a notification says, independent of where it is delivered."""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

EVENTS = (
    "firing",
    "resolved",
    "repeat",
    "flapping",
    "test",
    "backup_failed",
    "backup_succeeded",
)
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Notification:
    """One message about one thing (``key``), for one event.

    ``title`` is a single line; every text field is scrubbed of known secrets before it
    is written to disk or sent, but callers should not put secrets in them to begin with.
    Unknown events and severities are delivered too, read as a generic message.
    """

    key: str
    event: str
    severity: str
    title: str
    service: str | None = None
    value: str | None = None
    threshold: str | None = None
    hint: str | None = None
    detail: str | None = None
    host: str = field(default_factory=socket.gethostname)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        """The notification as JSON-ready values; ``at`` as UTC ISO 8601."""
        data = asdict(self)
        data["at"] = _utc(self.at).isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notification:
        """Rebuild a notification written by :meth:`to_dict`; raises ``KeyError`` or
        ``ValueError`` when ``data`` is not one.
        """
        optional = ("service", "value", "threshold", "hint", "detail")
        return cls(
            key=str(data["key"]),
            event=str(data["event"]),
            severity=str(data["severity"]),
            title=str(data["title"]),
            host=str(data.get("host") or ""),
            at=_utc(datetime.fromisoformat(str(data["at"]))),
            **{name: None if data.get(name) is None else str(data[name]) for name in optional},
        )


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
