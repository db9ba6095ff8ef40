"""The request channel between opsctl and component processes, all of them real."""

from __future__ import annotations

import json
import logging
import signal
import socket

import pytest

from opsctl.agent import Agent, ComponentReport, Reply, read_components, request
from opsctl.config._project import RedisTarget
from opsctl.errors import OperationFailedError
from tests.agent.conftest import PASSWORD, PROJECT, SpawnComponent
from tests.support import free_port, wait_for

KIND = "gpu.free_caches"


def wait_until_serving(target: RedisTarget, count: int) -> list[ComponentReport]:
    """Wait until ``count`` processes report; return their reports."""

    def serving() -> bool:
        return len(read_components(target, PROJECT, stale_after_seconds=60)) == count

    wait_for(serving, timeout_seconds=30, message=f"{count} component processes to register")
    return read_components(target, PROJECT, stale_after_seconds=60)


def test_request_collects_a_result_and_a_handler_error_from_two_processes(
    target: RedisTarget, spawn_component: SpawnComponent
) -> None:
    """Each process that serves the kind replies: one with its result, one with the
    message of the exception its handler raised; a process serving another kind is not asked.
    """
    answering = spawn_component("embedder", "ok")
    spawn_component("reranker", "raise")
    spawn_component("indexer", "other")
    found = wait_until_serving(target, 3)
    assert {r.component: r.handles for r in found} == {
        "embedder": (KIND,),
        "indexer": ("other.kind",),
        "reranker": (KIND,),
    }
    assert {r.component: r.gauges for r in found}["embedder"] == {"queue_depth": 7.0}

    replies = request(target, PROJECT, KIND, {"factor": 3, "holder": "pid 42"}, timeout_seconds=20)

    assert [r.component for r in replies] == ["embedder", "reranker"]
    embedder, reranker = replies
    result = {"freed_bytes": 3000, "pid": answering.pid}
    assert embedder == Reply("embedder", answering.pid, True, result, None, socket.gethostname())
    assert reranker.ok is False
    assert reranker.result == {}
    assert reranker.error == "RuntimeError: cache pinned by pid 42"


def test_process_that_does_not_answer_in_time_gets_a_failed_reply(
    target: RedisTarget, spawn_component: SpawnComponent
) -> None:
    """The requester waits only until the timeout; a silent process is reported as such."""
    spawn_component("embedder", "ok")
    slow = spawn_component("trainer", "slow")
    wait_until_serving(target, 2)

    replies = request(target, PROJECT, KIND, {"factor": 1}, timeout_seconds=2)

    assert [(r.component, r.ok) for r in replies] == [("embedder", True), ("trainer", False)]
    assert replies[1].pid == slow.pid
    assert replies[1].error == "no reply within 2 s"


def test_request_to_a_stopped_process_is_not_served_when_it_resumes(
    target: RedisTarget, spawn_component: SpawnComponent
) -> None:
    """A request whose deadline passed is dropped, not run late, by a process that was paused."""
    process = spawn_component("embedder", "ok")
    wait_until_serving(target, 1)
    process.send_signal(signal.SIGSTOP)
    try:
        replies = request(target, PROJECT, KIND, {"factor": 1}, timeout_seconds=1)
    finally:
        process.send_signal(signal.SIGCONT)
    assert [(r.ok, r.error) for r in replies] == [(False, "no reply within 1 s")]

    replies = request(target, PROJECT, KIND, {"factor": 2}, timeout_seconds=20)
    assert [(r.ok, r.result["freed_bytes"]) for r in replies] == [(True, 2000)]


def test_processes_of_one_component_are_each_asked(
    target: RedisTarget, spawn_component: SpawnComponent
) -> None:
    """Two processes of one component report separately and both reply (each frees its own
    caches); component= limits the request to that component.
    """
    first = spawn_component("worker", "ok")
    second = spawn_component("worker", "ok")
    spawn_component("embedder", "ok")
    found = wait_until_serving(target, 3)
    assert [(r.component, r.pid) for r in found if r.component == "worker"] == sorted(
        [("worker", first.pid), ("worker", second.pid)]
    )

    replies = request(target, PROJECT, KIND, {"factor": 1}, component="worker", timeout_seconds=20)

    assert sorted(r.pid for r in replies if r.ok) == sorted([first.pid, second.pid])
    assert {r.component for r in replies} == {"worker"}


def test_in_process_agent_serves_requests_and_replies_are_cleaned_up(
    target: RedisTarget, redis_server: object
) -> None:
    """An agent in this process answers; afterwards no request, reply or inbox key is left."""
    agent = Agent("local", url=target.url, password=target.password, project=PROJECT)
    agent.on_request("echo", lambda payload: {"echo": payload})
    agent.on_request("bad", lambda payload: {"value": float("nan")})
    agent.start(interval_seconds=0.2)
    try:
        wait_until_serving(target, 1)
        replies = request(target, PROJECT, "echo", {"a": [1, "b"]}, timeout_seconds=10)
        assert [(r.ok, r.result) for r in replies] == [(True, {"echo": {"a": [1, "b"]}})]
        bad = request(target, PROJECT, "bad", {}, timeout_seconds=10)
        assert bad[0].ok is False
        assert "ValueError" in (bad[0].error or "")
    finally:
        agent.stop()

    client = redis_server.client()  # type: ignore[attr-defined]
    assert [key.decode() for key in client.keys("*")] == []


def test_request_with_no_process_serving_the_kind_returns_no_reply(
    target: RedisTarget, spawn_component: SpawnComponent
) -> None:
    """Nobody serves the kind: an empty list at once, nothing left in Redis."""
    spawn_component("indexer", "other")
    wait_until_serving(target, 1)

    assert request(target, PROJECT, KIND, {}, timeout_seconds=30) == []
    assert request(target, PROJECT, "other.kind", {}, component="embedder") == []


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (("free caches", {}), "Invalid request kind 'free caches'"),
        ((KIND, ["not", "a", "dict"]), "must be a dict, not list"),
        ((KIND, {"when": object()}), "is not JSON"),
    ],
)
def test_invalid_requests_raise_value_error(
    target: RedisTarget, arguments: tuple[str, object], expected: str
) -> None:
    """A bad kind or payload is refused before anything is sent."""
    kind, payload = arguments
    with pytest.raises(ValueError) as raised:
        request(target, PROJECT, kind, payload, timeout_seconds=1)  # type: ignore[arg-type]
    assert expected in str(raised.value)


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [
        (10**400, "timeout_seconds needs a finite number"),
        (True, "timeout_seconds needs a number, not bool"),
        (float("nan"), "timeout_seconds needs a finite number"),
        (0, "timeout_seconds must be positive, not 0"),
    ],
    ids=["huge int", "bool", "nan", "zero"],
)
def test_invalid_request_timeouts_raise_value_error(
    target: RedisTarget, timeout: object, expected: str
) -> None:
    """A timeout that is not a positive finite number is refused before anything is sent."""
    with pytest.raises(ValueError) as raised:
        request(target, PROJECT, KIND, {}, timeout_seconds=timeout)  # type: ignore[arg-type]
    assert expected in str(raised.value)


def test_a_handler_error_with_a_huge_message_is_cut_before_anything_reads_it(
    target: RedisTarget, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A 60 KB exception message is shortened before it is scrubbed, logged or sent: the
    reply carries at most 500 characters, and a secret cut in half by the shortening does
    not show.
    """
    import opsctl.secrets

    scrubbed_lengths: list[int] = []
    real_scrub = opsctl.secrets.scrub

    def recording_scrub(text: str) -> str:
        scrubbed_lengths.append(len(text))
        return real_scrub(text)

    monkeypatch.setattr(opsctl.secrets, "scrub", recording_scrub)
    message = " " * 3990 + PASSWORD + "x" * 60_000

    def fail(payload: dict[str, object]) -> dict[str, object]:
        raise RuntimeError(message)

    agent = Agent("local", url=target.url, password=target.password, project=PROJECT)
    agent.on_request(KIND, fail)
    agent.start(interval_seconds=0.2)
    try:
        wait_until_serving(target, 1)
        with caplog.at_level(logging.WARNING, logger="opsctl.agent"):
            [reply] = request(target, PROJECT, KIND, {}, timeout_seconds=10)
    finally:
        agent.stop()

    assert reply.ok is False
    assert reply.error is not None
    assert reply.error.startswith("RuntimeError:")
    assert len(reply.error) <= 500
    assert PASSWORD[:6] not in reply.error
    assert max(scrubbed_lengths) <= 5000
    assert "Handler for request 'gpu.free_caches' failed" in caplog.text
    assert len(caplog.text) < 5000
    assert PASSWORD[:6] not in caplog.text


def test_request_to_an_unreachable_redis_raises_operation_failed() -> None:
    """No Redis: a clear OperationFailedError naming the request and the server."""
    target = RedisTarget(f"redis://127.0.0.1:{free_port()}/0", "some-password-77")
    with pytest.raises(OperationFailedError) as raised:
        request(target, PROJECT, KIND, {}, timeout_seconds=1)
    assert raised.value.message.startswith(f"Cannot send the request '{KIND}': Redis at ")
    assert "some-password-77" not in raised.value.message


def test_reply_to_dict_is_json_ready() -> None:
    """A reply serialises with the fields callers print."""
    reply = Reply("embedder", 12, True, {"freed_bytes": 5}, None, host="h")
    assert json.loads(json.dumps(reply.to_dict())) == {
        "component": "embedder",
        "pid": 12,
        "host": "h",
        "ok": True,
        "result": {"freed_bytes": 5},
        "error": None,
    }
