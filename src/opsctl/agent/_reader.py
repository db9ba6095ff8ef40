"""opsctl's side of the reports: read what every component process last published."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsctl.agent import _layout
from opsctl.agent._records import MalformedRecordError, StoredComponent, parse_record

if TYPE_CHECKING:
    import redis

    from opsctl.config._project import RedisTarget

logger = logging.getLogger(__name__)

_SCAN_BATCH = 200
_LONGEST_PROBLEM = 300


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


def read_components(
    target: RedisTarget, project: str, *, stale_after_seconds: float, timeout_seconds: float = 5.0
) -> list[ComponentReport]:
    """Return the reports of ``project``'s components, sorted by name, host and pid.

    A process whose hash expired (no heartbeat within its TTL, or stopped) is absent; one
    whose last heartbeat is older than ``stale_after_seconds`` is marked stale. A record
    no agent would have written (a field missing or out of range, text that is not UTF-8,
    a key of another type) is left out and counted in one warning. Reported text comes
    back on one line with known secrets masked. Raises
    :class:`~opsctl.errors.OperationFailedError` when Redis cannot be read or answers
    something that is not a Redis reply.
    """
    with redis_errors(target, "read component reports"):
        client = connect(target, timeout_seconds=timeout_seconds)
        stored = scan_components(client, project)
        now = server_time(client)
    reports = [_report(item, now, stale_after_seconds) for item in stored]
    return sorted(reports, key=lambda r: (r.component, r.host or "", r.pid or 0, r.instance))


def connect(target: RedisTarget, *, timeout_seconds: float) -> redis.Redis:
    """A client for the stack's Redis, through opsctl's one factory."""
    from opsctl.clients import redis_client

    return redis_client(target.url, password=target.password, timeout_seconds=timeout_seconds)


@contextmanager
def redis_errors(target: RedisTarget, action: str) -> Iterator[None]:
    """Turn a Redis failure, or a reply the client cannot make sense of, into an
    :class:`~opsctl.errors.OperationFailedError` that names the server (password masked)
    and the action.
    """
    import redis

    from opsctl.errors import OperationFailedError
    from opsctl.secrets import mask_url, register

    register(target.password)
    try:
        yield
    except (redis.RedisError, OSError) as error:
        problem = f"failed: {_layout.one_line(str(error))}"
    except Exception as error:  # a server that is not Redis: its replies break the client
        logger.debug("Unreadable reply while trying to %s", action, exc_info=True)
        problem = f"sent a reply that is not Redis's ({type(error).__name__})"
    else:
        return
    message = f"Cannot {action}: Redis at {mask_url(target.url)} {problem}"
    raise OperationFailedError(
        message, hint="Check that the stack's Redis runs (`opsctl status`)."
    ) from None


def scan_components(client: redis.Redis, project: str) -> list[StoredComponent]:
    """Return every well-formed component record of ``project`` that exists now; log one
    warning counting the malformed ones left out.
    """
    keys = list(client.scan_iter(match=_layout.component_pattern(project), count=_SCAN_BATCH))
    pipeline = client.pipeline(transaction=False)
    for key in keys:
        pipeline.hgetall(key)
    found = []
    problems = []
    # A key of another type answers WRONGTYPE: that record is malformed, not Redis down.
    for key, values in zip(keys, pipeline.execute(raise_on_error=False), strict=True):
        if values == {}:
            continue  # expired between SCAN and HGETALL
        try:
            found.append(parse_record(key, values, project=project))
        except MalformedRecordError as error:
            problems.append(str(error))
    if problems:
        logger.warning(
            "Ignored %d malformed component %s of project '%s' in Redis (the first: %s)",
            len(problems),
            "record" if len(problems) == 1 else "records",
            project,
            _layout.one_line(problems[0], limit=_LONGEST_PROBLEM),
        )
    return found


def server_time(client: redis.Redis) -> float:
    """Redis's clock in epoch seconds: heartbeats are stamped with it, so hosts' clocks
    do not have to agree.
    """
    seconds, microseconds = client.time()
    return float(seconds) + microseconds / 1_000_000


def _report(stored: StoredComponent, now: float, stale_after_seconds: float) -> ComponentReport:
    """The report as shown: its age by Redis's clock, and any secret in its names masked
    (the detail was masked when it was read).
    """
    from opsctl.secrets import scrub

    age_seconds = max(0.0, now - stored.last_seen.timestamp())
    return ComponentReport(
        component=scrub(stored.component),
        pid=stored.pid,
        host=scrub(stored.host),
        status=stored.status,
        detail=stored.detail,
        gauges={scrub(name): value for name, value in stored.gauges.items()},
        last_seen=stored.last_seen,
        stale=age_seconds > stale_after_seconds,
        handles=tuple(scrub(kind) for kind in stored.handles),
        age_seconds=age_seconds,
        instance=stored.instance,
    )
