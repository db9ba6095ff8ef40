"""opsctl's side of the request channel: ask components to act, collect their replies."""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsctl.agent import _layout
from opsctl.agent._reader import connect, redis_errors, scan_components
from opsctl.agent._records import StoredComponent

if TYPE_CHECKING:
    import redis

    from opsctl.config._project import RedisTarget

logger = logging.getLogger(__name__)

# Replies and inboxes outlive the request a little, so a late reply is not lost mid-read,
# and then expire: nothing is left behind by a requester that died.
_LEFTOVER_SECONDS = 60
# BLPOP blocks on the server; the socket must wait longer than the server does.
_SOCKET_MARGIN_SECONDS = 5.0


@dataclass(frozen=True)
class Reply:
    """One process's answer to a request.

    ``ok`` is false when its handler raised (``error`` holds the exception's message) or
    when no reply came before the timeout (``error`` says so).
    """

    component: str
    pid: int | None
    ok: bool
    result: dict[str, Any]
    error: str | None
    host: str | None = None
    instance: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The reply as JSON-ready values."""
        return {
            "component": self.component,
            "pid": self.pid,
            "host": self.host,
            "ok": self.ok,
            "result": self.result,
            "error": self.error,
        }


def request(
    target: RedisTarget,
    project: str,
    kind: str,
    payload: dict[str, Any],
    *,
    timeout_seconds: float = 10.0,
    component: str | None = None,
) -> list[Reply]:
    """Ask every live process that serves ``kind`` (only those of ``component`` when given)
    to act on ``payload``; return one :class:`Reply` per process asked, sorted by
    component, host and pid.

    Waits until all have answered or ``timeout_seconds`` passed; a process that did not
    answer in time gets ``Reply(ok=False, error="no reply within N s")``. An empty list
    means no live process serves ``kind``. Raises :class:`ValueError` for a bad kind,
    component name, timeout or a payload that is not a JSON object, and
    :class:`~opsctl.errors.OperationFailedError` when Redis cannot be reached.
    """
    _layout.validate_kind(kind)
    if component is not None:
        _layout.validate_component(component)
    timeout_seconds = _layout.finite_number(timeout_seconds, what="timeout_seconds")
    if timeout_seconds <= 0:
        message = f"timeout_seconds must be positive, not {timeout_seconds:g}."
        raise ValueError(message)
    body = _request_body(kind, payload)

    with redis_errors(target, f"send the request '{kind}'"):
        client = connect(target, timeout_seconds=timeout_seconds + _SOCKET_MARGIN_SECONDS)
        asked = [
            stored
            for stored in scan_components(client, project)
            if kind in stored.handles and (component is None or stored.component == component)
        ]
        if not asked:
            return []
        request_id = uuid.uuid4().hex
        logger.debug("Request %s '%s' to %d process(es)", request_id, kind, len(asked))
        _send(client, project, request_id, body, asked, timeout_seconds)
        try:
            answers = _collect(client, project, request_id, asked, timeout_seconds)
        finally:
            client.delete(_layout.request_key(project, request_id))
            client.delete(_layout.reply_key(project, request_id))

    replies = [
        answers.get((stored.component, stored.instance)) or _no_reply(stored, timeout_seconds)
        for stored in asked
    ]
    return sorted(replies, key=lambda r: (r.component, r.host or "", r.pid or 0, r.instance))


def _request_body(kind: str, payload: dict[str, Any]) -> str:
    if not isinstance(payload, dict):
        message = f"The payload of request '{kind}' must be a dict, not {type(payload).__name__}."
        raise ValueError(message)
    try:
        return json.dumps({"kind": kind, "payload": payload}, allow_nan=False)
    except (TypeError, ValueError) as error:
        message = f"The payload of request '{kind}' is not JSON: {error}."
        raise ValueError(message) from None


def _send(
    client: redis.Redis,
    project: str,
    request_id: str,
    body: str,
    asked: list[StoredComponent],
    timeout_seconds: float,
) -> None:
    """Store the body until the deadline, then put the id into each process's inbox."""
    pipeline = client.pipeline(transaction=True)
    pipeline.set(
        _layout.request_key(project, request_id), body, px=max(1, int(timeout_seconds * 1000))
    )
    for stored in asked:
        inbox = _layout.inbox_key(project, stored.component, stored.instance)
        pipeline.rpush(inbox, request_id)
        pipeline.expire(inbox, math.ceil(timeout_seconds) + _LEFTOVER_SECONDS)
    pipeline.execute()


def _collect(
    client: redis.Redis,
    project: str,
    request_id: str,
    asked: list[StoredComponent],
    timeout_seconds: float,
) -> dict[tuple[str, str], Reply]:
    """Wait for replies until every asked process answered or the deadline passed."""
    expected = {(stored.component, stored.instance) for stored in asked}
    answers: dict[tuple[str, str], Reply] = {}
    key = _layout.reply_key(project, request_id)
    deadline = time.monotonic() + timeout_seconds
    while expected - answers.keys():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        # A BLPOP timeout of 0 means forever: never pass it.
        popped = client.blpop([key], timeout=max(remaining, 0.01))
        if popped is None:
            break
        reply = _parse_reply(popped[1])
        if reply is not None and (reply.component, reply.instance) in expected:
            answers[reply.component, reply.instance] = reply
    return answers


def _parse_reply(data: bytes | str) -> Reply | None:
    try:
        value = json.loads(data)
        return Reply(
            component=str(value["component"]),
            pid=value.get("pid") if isinstance(value.get("pid"), int) else None,
            ok=bool(value["ok"]),
            result=value.get("result") if isinstance(value.get("result"), dict) else {},
            error=_layout.one_line(str(value["error"])) if value.get("error") is not None else None,
            host=value.get("host") if isinstance(value.get("host"), str) else None,
            instance=str(value["instance"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        logger.warning("Ignoring a malformed reply: %.200r", data)
        return None


def _no_reply(stored: StoredComponent, timeout_seconds: float) -> Reply:
    return Reply(
        component=stored.component,
        pid=stored.pid,
        ok=False,
        result={},
        error=f"no reply within {timeout_seconds:g} s",
        host=stored.host,
        instance=stored.instance,
    )
