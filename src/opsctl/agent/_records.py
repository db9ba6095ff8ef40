"""Judging one component hash read back from Redis.

Anything may be written under the project's prefix (another program, an older or newer
agent, a person with redis-cli), so every record is checked field by field and a
malformed one is refused with the reason, never trusted or half-read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opsctl.agent import _layout

_PID = re.compile(r"[1-9][0-9]{0,9}")
# Epoch seconds as the heartbeat script writes them: digits, and microseconds.
_EPOCH_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")
_LONGEST_HOST = 255
# The fields an agent always writes and the reader relies on.
_REQUIRED = ("pid", "host", "status", "detail", "gauges", "handles", "last_seen")


class MalformedRecordError(ValueError):
    """A component hash that no agent of this version would have written."""


@dataclass(frozen=True)
class StoredComponent:
    """One well-formed component hash: who reported, what, and when by Redis's clock."""

    key: str
    component: str
    instance: str
    pid: int
    host: str
    status: str
    detail: str
    gauges: dict[str, float]
    handles: tuple[str, ...]
    last_seen: datetime


def parse_record(key: object, values: object, *, project: str) -> StoredComponent:
    """Return the record stored under ``key`` (as Redis gave it: bytes) from the reply to
    HGETALL ``values``. Raises :class:`MalformedRecordError` saying what is wrong with it.
    """
    name = _text(key, "its key")
    component, instance = _split_key(name, project)
    if isinstance(values, Exception):
        message = f"{name!r} is not a hash ({_layout.one_line(str(values), limit=100)})"
        raise MalformedRecordError(message)
    fields = _fields(name, values)
    missing = [field for field in _REQUIRED if field not in fields]
    if missing:
        message = f"{name!r} lacks {', '.join(missing)}"
        raise MalformedRecordError(message)

    try:
        return StoredComponent(
            key=name,
            component=component,
            instance=instance,
            pid=_pid(fields["pid"]),
            host=_host(fields["host"]),
            status=_layout.validate_status(fields["status"]),
            detail=_layout.one_line(fields["detail"]),
            gauges=_gauges(fields["gauges"]),
            handles=_handles(fields["handles"]),
            last_seen=_last_seen(fields["last_seen"]),
        )
    except ValueError as error:
        message = f"{name!r}: {error}"
        raise MalformedRecordError(message) from None


def _split_key(key: str, project: str) -> tuple[str, str]:
    start = _layout.prefix(project) + "component:"
    component, _, instance = key.removeprefix(start).partition(":")
    if not key.startswith(start) or not instance:
        message = f"{key!r} is not named component:NAME:INSTANCE"
        raise MalformedRecordError(message)
    try:
        _layout.validate_component(component)
    except ValueError as error:
        message = f"{key!r}: {error}"
        raise MalformedRecordError(message) from None
    return component, instance


def _fields(key: str, values: object) -> dict[str, str]:
    if not isinstance(values, dict):
        message = f"{key!r} is not a hash (Redis answered {type(values).__name__})"
        raise MalformedRecordError(message)
    return {
        _text(field, f"a field name of {key!r}"): _text(value, f"a field of {key!r}")
        for field, value in values.items()
    }


def _text(value: object, what: str) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, bytes):
        message = f"{what} is {type(value).__name__}, not a string"
        raise MalformedRecordError(message)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        shown = value[:80].decode("utf-8", "backslashreplace")
        message = f"{what} is not UTF-8: {shown!r}"
        raise MalformedRecordError(message) from None


def _pid(text: str) -> int:
    if not _PID.fullmatch(text):
        message = f"pid {text[:40]!r} is not a process id"
        raise ValueError(message)
    return int(text)


def _host(text: str) -> str:
    if not text or len(text) > _LONGEST_HOST or text != " ".join(text.split()):
        message = f"host {text[:40]!r} is not a host name"
        raise ValueError(message)
    return text


def _last_seen(text: str) -> datetime:
    if not _EPOCH_SECONDS.fullmatch(text):
        message = f"last_seen {text[:40]!r} is not epoch seconds"
        raise ValueError(message)
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except (OverflowError, OSError, ValueError):
        message = f"last_seen {text!r} is not a time a clock can show"
        raise ValueError(message) from None


def _gauges(text: str) -> dict[str, float]:
    value = _json(text, "gauges")
    if not isinstance(value, dict):
        message = "gauges is not a JSON object"
        raise ValueError(message)
    return dict(_layout.validate_gauge(name, number) for name, number in value.items())


def _handles(text: str) -> tuple[str, ...]:
    value = _json(text, "handles")
    if not isinstance(value, list):
        message = "handles is not a JSON list"
        raise ValueError(message)
    return tuple(_layout.validate_kind(kind) for kind in value)


def _json(text: str, field: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # deep nesting exhausts the parser's stack
        message = f"{field} is not JSON"
        raise ValueError(message) from None
