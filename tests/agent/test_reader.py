"""opsctl's side reading reports it did not write: malformed records, a server that is not
Redis, and secrets inside what components report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from opsctl.agent import Agent, ComponentReport, read_components, request
from opsctl.config._project import RedisTarget
from opsctl.errors import OperationFailedError
from opsctl.secrets import mask, register
from tests.agent.conftest import PASSWORD, PROJECT, GarbageServer
from tests.support import RedisServer

PREFIX = f"opsctl:{PROJECT}:component:"
KEY = f"{PREFIX}intruder:4242@host-b"
# A hash as an agent writes it; each case below spoils one thing about it.
VALID = {
    "component": "intruder",
    "pid": "4242",
    "host": "host-b",
    "status": "ok",
    "detail": "",
    "gauges": "{}",
    "handles": '["gpu.free_caches"]',
    "last_seen": "1700000000.000001",
    "started_at": "1699999999.000000",
    "ttl_seconds": "30",
}
DEEP_JSON = "[" * 100_000

# Writes one record; the suffix (empty but in one test) makes its key unique.
Writer = Callable[[Any, str], None]


def write_hash(key: str | bytes = KEY, **fields: str | bytes | None) -> Writer:
    """A writer of VALID with ``fields`` replacing its own (``None`` leaves one out)."""

    def write(client: Any, suffix: str = "") -> None:
        values = {name: value for name, value in {**VALID, **fields}.items() if value is not None}
        client.hset(key + (suffix.encode() if isinstance(key, bytes) else suffix), mapping=values)

    return write


MALFORMED: dict[str, Writer] = {
    "last_seen past year 9999": write_hash(last_seen="99999999999999"),
    "last_seen before 1970": write_hash(last_seen="-99999999999"),
    "last_seen nan": write_hash(last_seen="nan"),
    "last_seen inf": write_hash(last_seen="1e400"),
    "last_seen words": write_hash(last_seen="soon"),
    "last_seen missing": write_hash(last_seen=None),
    "status unknown": write_hash(status="sleeping"),
    "status missing": write_hash(status=None),
    "pid words": write_hash(pid="abc"),
    "pid negative": write_hash(pid="-1"),
    "pid missing": write_hash(pid=None),
    "host missing": write_hash(host=None),
    "detail missing": write_hash(detail=None),
    "gauges not json": write_hash(gauges="{queue: 1"),
    "gauges a list": write_hash(gauges="[1, 2]"),
    "gauge a string": write_hash(gauges='{"queue": "3"}'),
    "gauge a bool": write_hash(gauges='{"queue": true}'),
    "gauge infinite": write_hash(gauges='{"queue": 1e999}'),
    "gauge too large": write_hash(gauges='{"queue": 1' + "0" * 400 + "}"),
    "gauge bad name": write_hash(gauges='{"queue depth": 1}'),
    "gauges nested deep": write_hash(gauges=DEEP_JSON),
    "handles an object": write_hash(handles='{"gpu.free_caches": 1}'),
    "handles numbers": write_hash(handles="[1]"),
    "handles bad kind": write_hash(handles='["free caches!"]'),
    "handles nested deep": write_hash(handles=DEEP_JSON),
    "value not utf-8": write_hash(detail=b"model \xff\xfe"),
    "field name not utf-8": lambda c, s: c.hset(KEY + s, mapping={**VALID, b"\xffx": "1"}),
    "key not utf-8": write_hash(key=PREFIX.encode() + b"intr\xffuder:1@h"),
    "key without instance": write_hash(key=f"{PREFIX}notahash"),
    "key with a bad name": write_hash(key=f"{PREFIX}bad name:1@h"),
    "key a string": lambda c, s: c.set(f"{PREFIX}notahash{s}", "x"),
    "key a string with instance": lambda c, s: c.set(KEY + s, "x"),
    "key a list": lambda c, s: c.rpush(KEY + s, "x"),
    "key a set": lambda c, s: c.sadd(KEY + s, "x"),
    "key a sorted set": lambda c, s: c.zadd(KEY + s, {"x": 1.0}),
    "key a stream": lambda c, s: c.xadd(KEY + s, {"x": "1"}),
}


def good_agent(target: RedisTarget) -> Agent:
    """An agent of the test project that reported once."""
    agent = Agent("worker", url=target.url, password=target.password, project=PROJECT)
    agent.gauge("queue_depth", 3)
    agent.on_request("gpu.free_caches", lambda payload: {"freed_bytes": 1})
    agent.heartbeat()
    return agent


def read(target: RedisTarget) -> list[ComponentReport]:
    return read_components(target, PROJECT, stale_after_seconds=60, timeout_seconds=2)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("opsctl.agent") and record.levelno >= logging.WARNING
    ]


def test_a_complete_hash_written_by_hand_is_read(
    redis_server: RedisServer, target: RedisTarget
) -> None:
    """The baseline the malformed cases spoil is itself a valid report."""
    write_hash()(redis_server.client(), "")

    [report] = read(target)
    assert (report.component, report.pid, report.host, report.status) == (
        "intruder",
        4242,
        "host-b",
        "ok",
    )
    assert report.handles == ("gpu.free_caches",)


@pytest.mark.parametrize("write", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_record_is_skipped_and_the_good_ones_are_read(
    redis_server: RedisServer,
    target: RedisTarget,
    caplog: pytest.LogCaptureFixture,
    write: Writer,
) -> None:
    """One bad record (bad numbers, wrong types, missing fields, non-UTF-8, another key
    type) is left out with one warning; the other components are still returned.
    """
    good_agent(target)
    write(redis_server.client(), "")

    with caplog.at_level(logging.WARNING, logger="opsctl.agent"):
        found = read(target)
    assert [report.component for report in found] == ["worker"]
    [warning] = warnings_of(caplog)
    assert warning.startswith(
        f"Ignored 1 malformed component record of project '{PROJECT}' in Redis"
    )


def test_many_malformed_records_are_counted_in_one_warning(
    redis_server: RedisServer, target: RedisTarget, caplog: pytest.LogCaptureFixture
) -> None:
    """Every kind of malformed record at once: all skipped, counted in a single line."""
    good_agent(target)
    client = redis_server.client()
    for number, write in enumerate(MALFORMED.values()):
        write(client, f"-{number}")

    with caplog.at_level(logging.WARNING, logger="opsctl.agent"):
        found = read(target)
    assert [report.component for report in found] == ["worker"]
    [warning] = warnings_of(caplog)
    assert warning.startswith(f"Ignored {len(MALFORMED)} malformed component records")


def test_a_request_reaches_good_components_past_malformed_records(
    redis_server: RedisServer, target: RedisTarget
) -> None:
    """A stray key and a spoiled hash do not stop a request to the components that serve it."""
    agent = good_agent(target).start(interval_seconds=0.5)
    client = redis_server.client()
    client.set(f"{PREFIX}notahash", "x")
    write_hash(handles=DEEP_JSON)(client, "")
    try:
        replies = request(target, PROJECT, "gpu.free_caches", {}, timeout_seconds=10)
    finally:
        agent.stop()
    assert [(reply.component, reply.ok, reply.result) for reply in replies] == [
        ("worker", True, {"freed_bytes": 1})
    ]


GARBAGE = {
    "array": b"*1\r\n$1\r\nx\r\n",
    "simple string": b"+OK\r\n",
    "integer": b":1\r\n",
    "null": b"$-1\r\n",
    "error": b"-ERR nothing here\r\n",
    "not resp": b"hello there\r\n",
    "scan-shaped": b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nx\r\n",
}


@pytest.mark.parametrize("password", [None, PASSWORD], ids=["no password", "password"])
@pytest.mark.parametrize("reply", GARBAGE.values(), ids=GARBAGE.keys())
def test_a_server_answering_nonsense_is_an_operation_failure(
    garbage_server: Callable[[bytes], GarbageServer], reply: bytes, password: str | None
) -> None:
    """Whatever comes back instead of Redis's answers, reading fails the way an
    unreachable Redis does: OperationFailedError naming the server, never another error.
    """
    server = garbage_server(reply)

    with pytest.raises(OperationFailedError) as raised:
        read(RedisTarget(server.url, password))
    message = raised.value.message
    assert message.startswith(f"Cannot read component reports: Redis at {server.url} ")
    assert "\n" not in message
    with pytest.raises(OperationFailedError):
        request(
            RedisTarget(server.url, password), PROJECT, "gpu.free_caches", {}, timeout_seconds=1
        )


def test_secrets_in_what_a_component_reported_are_masked(
    redis_server: RedisServer, target: RedisTarget
) -> None:
    """The Redis password in a status detail, and a registered secret used as a host, gauge
    name or request kind, come back masked in the reports.
    """
    other = "Secret_value_2024"
    register(other)
    agent = Agent("worker", url=target.url, password=PASSWORD, project=PROJECT)
    agent.set_status("degraded", f"reloading {PASSWORD} model")
    write_hash(host=other, gauges=f'{{"{other}": 1}}', handles=f'["{other}"]')(
        redis_server.client(), ""
    )

    found = {report.component: report for report in read(target)}
    assert found["worker"].detail == f"reloading {mask(PASSWORD)} model"
    intruder = found["intruder"].to_dict()
    assert (intruder["host"], intruder["gauges"], intruder["handles"]) == (
        mask(other),
        {mask(other): 1.0},
        [mask(other)],
    )
    assert PASSWORD not in repr([report.to_dict() for report in found.values()])


def test_a_long_detail_written_by_hand_is_cut_before_it_is_shown(
    redis_server: RedisServer, target: RedisTarget
) -> None:
    """A detail no agent could have written (megabytes, a secret at the end) comes back as
    one line of at most 500 characters, without the secret.
    """
    write_hash(detail="word " * 200_000 + PASSWORD)(redis_server.client(), "")

    [report] = read(target)
    assert len(report.detail) == 500
    assert report.detail.endswith("…")
    assert PASSWORD[:6] not in report.detail
