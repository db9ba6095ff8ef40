"""opsctl's side of the reports: read what every component process last published."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsctl.agent import _layout

if TYPE_CHECKING:
    import redis

    from opsctl.config._project import RedisTarget

logger = logging.getLogger(__name__)

_SCAN_BATCH = 200


@dataclass(frozen=True)
class ComponentReport:
    """What one process of a component last reported.

    ``last_seen`` is the time of its last heartbeat by Redis's clock (UTC); ``stale`` is
    true when that is older than the threshold the reader was given. ``age_seconds`` is
    how long ago that was, and ``handles`` the request kinds it serves.
    """

    component: str
    pid: int | None
    host: str | None
    status: str
    detail: str
    gauges: dict[str, float]
    last_seen: datetime
    stale: bool
    handles: tuple[str, ...] = ()
    age_seconds: float = 0.0
    instance: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values; ``last_seen`` in UTC ISO 8601."""
        return {
            "component": self.component,
            "pid": self.pid,
            "host": self.host,
            "status": self.status,
            "detail": self.detail,
            "gauges": dict(self.gauges),
            "last_seen": self.last_seen.isoformat(),
            "age_seconds": round(self.age_seconds, 3),
            "stale": self.stale,
            "handles": list(self.handles),
        }


@dataclass(frozen=True)
class RawComponent:
    """One component hash as found, before it is judged stale or not."""

    key: str
    component: str
    instance: str
    fields: dict[str, str]


def read_components(
    target: RedisTarget, project: str, *, stale_after_seconds: float, timeout_seconds: float = 5.0
) -> list[ComponentReport]:
    """Return the reports of ``project``'s components, sorted by name, host and pid.

    A process whose hash expired (no heartbeat within its TTL, or stopped) is absent; one
    whose last heartbeat is older than ``stale_after_seconds`` is marked stale. Raises
    :class:`~opsctl.errors.OperationFailedError` when Redis cannot be read.
    """
    with redis_errors(target, "read component reports"):
        client = connect(target, timeout_seconds=timeout_seconds)
        raw = scan_components(client, project)
        now = server_time(client)
    reports = [report for item in raw if (report := _report(item, now, stale_after_seconds))]
    return sorted(reports, key=lambda r: (r.component, r.host or "", r.pid or 0, r.instance))


def connect(target: RedisTarget, *, timeout_seconds: float) -> redis.Redis:
    """A client for the stack's Redis, through opsctl's one factory."""
    from opsctl.clients import redis_client

    return redis_client(target.url, password=target.password, timeout_seconds=timeout_seconds)


@contextmanager
def redis_errors(target: RedisTarget, action: str) -> Iterator[None]:
    """Turn a Redis failure into an :class:`~opsctl.errors.OperationFailedError` that names
    the server (password masked) and the action.
    """
    import redis

    from opsctl.errors import OperationFailedError
    from opsctl.secrets import mask_url, register, scrub

    register(target.password)
    try:
        yield
    except (redis.RedisError, OSError) as error:
        message = f"Cannot {action}: Redis at {mask_url(target.url)} failed: {scrub(str(error))}"
        raise OperationFailedError(
            message, hint="Check that the stack's Redis runs (`opsctl status`)."
        ) from None


def scan_components(client: redis.Redis, project: str) -> list[RawComponent]:
    """Return every component hash of ``project`` that exists now."""
    start = len(_layout.prefix(project)) + len("component:")
    keys = [
        key.decode("utf-8", "replace")
        for key in client.scan_iter(match=_layout.component_pattern(project), count=_SCAN_BATCH)
    ]
    pipeline = client.pipeline(transaction=False)
    for key in keys:
        pipeline.hgetall(key)
    found = []
    for key, values in zip(keys, pipeline.execute(), strict=True):
        component, _, instance = key[start:].partition(":")
        if not values or not instance:
            continue  # expired between SCAN and HGETALL, or not an agent's key
        fields = {
            k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in values.items()
        }
        found.append(RawComponent(key, component, instance, fields))
    return found


def server_time(client: redis.Redis) -> float:
    """Redis's clock in epoch seconds: heartbeats are stamped with it, so hosts' clocks
    do not have to agree.
    """
    seconds, microseconds = client.time()
    return float(seconds) + microseconds / 1_000_000


def _report(raw: RawComponent, now: float, stale_after_seconds: float) -> ComponentReport | None:
    fields = raw.fields
    try:
        last_seen = float(fields["last_seen"])
    except (KeyError, ValueError):
        logger.debug("Ignoring %s: it has no valid last_seen", raw.key)
        return None
    age_seconds = max(0.0, now - last_seen)
    return ComponentReport(
        component=raw.component,
        pid=_integer(fields.get("pid")),
        host=fields.get("host") or None,
        status=fields.get("status", "unknown"),
        detail=fields.get("detail", ""),
        gauges=_gauges(fields.get("gauges")),
        last_seen=datetime.fromtimestamp(last_seen, UTC),
        stale=age_seconds > stale_after_seconds,
        handles=tuple(_strings(fields.get("handles"))),
        age_seconds=age_seconds,
        instance=raw.instance,
    )


def _integer(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _gauges(text: str | None) -> dict[str, float]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {
        str(name): float(number)
        for name, number in value.items()
        if isinstance(number, int | float)
        and not isinstance(number, bool)
        and math.isfinite(number)
    }


def _strings(text: str | None) -> list[str]:
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
