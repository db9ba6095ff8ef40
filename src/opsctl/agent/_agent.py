"""The agent a component embeds: it reports to Redis and serves opsctl's requests.

The application must keep running whatever Redis does: every Redis call here is caught,
an outage is logged once when it starts and once when it ends, and the background
threads retry until Redis answers again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opsctl.agent import _layout

if TYPE_CHECKING:
    import redis

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], dict[str, Any]]

# Stamps the heartbeat with Redis's clock, writes the fields and renews the TTL in one
# step, so readers on other hosts never compare two machines' clocks.
_HEARTBEAT_SCRIPT = """
local now = redis.call('TIME')
local seen = now[1] .. '.' .. string.format('%06d', tonumber(now[2]))
redis.call('HSET', KEYS[1], 'last_seen', seen, unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return seen
"""
_REDIS_TIMEOUT_SECONDS = 5.0
# How long one wait for a request blocks: it bounds how late stop() returns.
_POLL_SECONDS = 1.0
_FIRST_BACKOFF_SECONDS = 0.5
_REPLY_KEEP_SECONDS = 60
_JOIN_SECONDS = _REDIS_TIMEOUT_SECONDS + _POLL_SECONDS


class Agent:
    """Reports one process of a component to opsctl and answers its requests.

    ``url``, ``password`` and ``project`` default to ``OPSCTL_REDIS_URL``,
    ``OPSCTL_REDIS_PASSWORD`` and ``OPSCTL_PROJECT``, which opsctl sets for every program
    of the stack. Without a URL or a project the agent is off: it logs that once and its
    methods do nothing but validate. The report expires ``ttl_seconds`` after the last
    heartbeat. Raises :class:`ValueError` for an invalid component name or TTL. All
    methods are thread-safe and never raise because of Redis.
    """

    def __init__(
        self,
        component: str,
        *,
        url: str | None = None,
        password: str | None = None,
        project: str | None = None,
        ttl_seconds: float = 30.0,
    ) -> None:
        self.component = _layout.validate_component(component)
        ttl_seconds = _layout.finite_number(ttl_seconds, what="ttl_seconds")
        if ttl_seconds < 1:
            message = f"ttl_seconds must be at least 1, not {ttl_seconds:g}."
            raise ValueError(message)
        self.ttl_seconds = ttl_seconds
        self._url, self._password, self.project = _layout.from_environment(
            os.environ, url=url, password=password, project=project
        )
        self._host = _layout.this_host()
        self._started_at = time.time()

        self._lock = threading.Lock()
        self._lifecycle = threading.Lock()  # start() and stop() from different threads
        self._status = "ok"
        self._detail = ""
        self._gauges: dict[str, float] = {}
        self._handlers: dict[str, Handler] = {}
        self._client: redis.Redis | None = None
        self._script: Any = None
        self._outage = _Outage(self.component)
        self._interval_seconds: float | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._serving = threading.Event()
        self._stopped = False

        if not self.enabled:
            logger.warning(
                "opsctl agent '%s' is off: no %s; set %s and %s, as opsctl does for the "
                "programs of a stack with a Redis",
                component,
                "Redis URL" if self._url is None else "project name",
                _layout.ENV_URL,
                _layout.ENV_PROJECT,
            )

    @property
    def enabled(self) -> bool:
        """True when the agent knows its Redis and project, and so reports."""
        return self._url is not None and self.project is not None

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return bool(self._threads)

    def heartbeat(self) -> None:
        """Publish the report now (status, detail, gauges, served kinds) and renew its TTL.

        Does nothing after :meth:`stop`, until the agent is started again.
        """
        if self.enabled and not self._stopped:
            self._publish()

    def set_status(self, status: str, detail: str = "") -> None:
        """Set the status (``ok``, ``degraded`` or ``failing``) and a one-line detail, and
        publish them at once (from the background thread when started). Raises
        :class:`ValueError` for another status or a detail that is not a string.
        """
        _layout.validate_status(status)
        if not isinstance(detail, str):
            message = f"detail must be a string, not {type(detail).__name__}."
            raise ValueError(message)
        with self._lock:
            self._status = status
            self._detail = _layout.one_line(detail)
        self._publish_soon()

    def gauge(self, name: str, value: float) -> None:
        """Record a custom figure; it is published with the next heartbeat. Raises
        :class:`ValueError` for a bad name or a value that is not a finite int or float
        (a bool, or an int too large for a float, included).
        """
        name, number = _layout.validate_gauge(name, value)
        with self._lock:
            self._gauges[name] = number

    def on_request(self, kind: str, handler: Handler) -> None:
        """Serve requests of ``kind`` (e.g. ``gpu.free_caches``) with ``handler``.

        The handler gets the request's payload and returns a JSON-serializable dict, sent
        back as the reply's result; an exception it raises becomes a failed reply carrying
        its message. Handlers run one at a time on the agent's thread. Registering a kind
        again replaces its handler. Raises :class:`ValueError` for a bad kind or a handler
        that is not callable.
        """
        _layout.validate_kind(kind)
        if not callable(handler):
            message = f"The handler for '{kind}' must be callable, not {type(handler).__name__}."
            raise ValueError(message)
        with self._lock:
            self._handlers[kind] = handler
        self._serving.set()
        self._publish_soon()

    def start(self, interval_seconds: float = 10.0) -> Agent:
        """Heartbeat every ``interval_seconds`` and serve requests on daemon threads; return
        the agent. Starting a running agent does nothing. Raises :class:`ValueError` unless
        the interval is positive and shorter than the TTL.
        """
        interval_seconds = _layout.finite_number(interval_seconds, what="interval_seconds")
        if not 0 < interval_seconds < self.ttl_seconds:
            message = (
                f"interval_seconds ({interval_seconds:g}) must be above 0 and below "
                f"ttl_seconds ({self.ttl_seconds:g}), or the report expires between heartbeats."
            )
            raise ValueError(message)
        with self._lifecycle:
            if self.enabled and not self._threads:
                self._start_threads(interval_seconds)
        return self

    def _start_threads(self, interval_seconds: float) -> None:
        self._interval_seconds = interval_seconds
        self._stopped = False
        self._stopping.clear()
        with self._lock:
            if not self._handlers:
                self._serving.clear()
        self._threads = [
            threading.Thread(target=self._heartbeat_loop, name=f"opsctl-agent-{self.component}"),
            threading.Thread(target=self._request_loop, name=f"opsctl-agent-{self.component}-rq"),
        ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def stop(self) -> None:
        """Stop the threads and remove this process's report and inbox from Redis, so it
        disappears at once instead of when its TTL runs out.
        """
        with self._lifecycle:
            self._stopped = True
            self._stopping.set()
            self._wake.set()
            self._serving.set()
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join(_JOIN_SECONDS)
            self._threads = []
            if self.enabled:
                self._deregister()

    def __enter__(self) -> Agent:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # The rest runs on the agent's threads, or on the caller's when it is not started.

    def _publish_soon(self) -> None:
        if self._threads:
            self._wake.set()
        else:
            self.heartbeat()

    def _heartbeat_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            self._publish()
            self._wake.wait(self._interval_seconds)

    def _request_loop(self) -> None:
        backoff = _FIRST_BACKOFF_SECONDS
        while not self._stopping.is_set():
            if not self._serving.wait(_POLL_SECONDS) or self._stopping.is_set():
                continue
            try:
                popped = self._redis().blpop([self._inbox()], timeout=_POLL_SECONDS)
            except Exception as error:  # the app runs on whatever fails here
                self._outage.failed(error)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self._interval_seconds or _POLL_SECONDS)
                continue
            self._outage.recovered()
            backoff = _FIRST_BACKOFF_SECONDS
            if popped is not None:
                self._serve(_text(popped[1]))

    def _publish(self) -> None:
        with self._lock:
            handles = sorted(self._handlers)
            fields = {
                "component": self.component,
                "pid": str(os.getpid()),
                "host": self._host,
                "status": self._status,
                "detail": self._detail,
                "gauges": json.dumps(self._gauges, sort_keys=True),
                "handles": json.dumps(handles),
                "started_at": f"{self._started_at:.6f}",
                "ttl_seconds": f"{self.ttl_seconds:g}",
            }
        flat = [item for pair in fields.items() for item in pair]
        try:
            self._heartbeat_script()(keys=[self._key()], args=[int(self.ttl_seconds * 1000), *flat])
        except Exception as error:  # the app runs on whatever fails here
            self._outage.failed(error)
            return
        self._outage.recovered()

    def _serve(self, request_id: str) -> None:
        """Answer one request, unless its deadline passed while it waited."""
        project = str(self.project)
        try:
            body = self._redis().get(_layout.request_key(project, request_id))
            if body is None:
                logger.debug("Request %s expired before it was served", request_id)
                return
            reply = self._answer(json.loads(body))
            pipeline = self._redis().pipeline(transaction=True)
            pipeline.rpush(_layout.reply_key(project, request_id), reply)
            pipeline.expire(_layout.reply_key(project, request_id), _REPLY_KEEP_SECONDS)
            pipeline.execute()
        except Exception as error:  # the app runs on whatever fails here
            self._outage.failed(error)

    def _answer(self, request: Any) -> str:
        """Run the handler for ``request``; return the reply as JSON, never raising."""
        kind = request.get("kind") if isinstance(request, dict) else None
        payload = request.get("payload") if isinstance(request, dict) else None
        with self._lock:
            handler = self._handlers.get(kind) if isinstance(kind, str) else None
        result: dict[str, Any] = {}
        error: str | None = None
        if handler is None or not isinstance(payload, dict):
            error = f"'{self.component}' does not serve requests of kind {kind!r}"
        else:
            try:
                answer = handler(payload)
                if not isinstance(answer, dict):
                    error = f"the handler returned {type(answer).__name__}, not a dict"
                else:
                    json.dumps(answer, allow_nan=False)
                    result = answer
            except Exception as raised:  # a failing handler is a failed reply
                error = _describe(raised)
                logger.warning(
                    "Handler for request '%s' failed\n%s", kind, _traceback(raised, error)
                )
        return json.dumps(
            {
                "component": self.component,
                "instance": self._instance(),
                "pid": os.getpid(),
                "host": self._host,
                "ok": error is None,
                "result": result,
                "error": error,
            },
            allow_nan=False,
        )

    def _deregister(self) -> None:
        try:
            self._redis().delete(self._key(), self._inbox())
        except Exception:  # the report then expires by its TTL
            logger.debug("Could not remove the report of '%s'", self.component, exc_info=True)

    def _redis(self) -> redis.Redis:
        with self._lock:
            if self._client is None:
                from opsctl.clients import redis_client
                from opsctl.secrets import register

                register(self._password)
                self._client = redis_client(
                    str(self._url), password=self._password, timeout_seconds=_REDIS_TIMEOUT_SECONDS
                )
            return self._client

    def _heartbeat_script(self) -> Any:
        client = self._redis()
        with self._lock:
            if self._script is None:
                self._script = client.register_script(_HEARTBEAT_SCRIPT)
            return self._script

    def _instance(self) -> str:
        # The pid is read each time: a process forked after the agent was made is another
        # process of the component.
        return _layout.instance_id(os.getpid(), self._host)

    def _key(self) -> str:
        return _layout.component_key(str(self.project), self.component, self._instance())

    def _inbox(self) -> str:
        return _layout.inbox_key(str(self.project), self.component, self._instance())


class _Outage:
    """Logs a Redis outage once when it starts and once when it ends, whichever thread
    sees it first.
    """

    def __init__(self, component: str) -> None:
        self._component = component
        self._lock = threading.Lock()
        self._down = False

    def failed(self, error: Exception) -> None:
        with self._lock:
            if self._down:
                return
            self._down = True
        logger.warning(
            "opsctl agent '%s' cannot reach Redis (%s); the application runs on and the "
            "agent retries",
            self._component,
            _describe(error),
        )

    def recovered(self) -> None:
        with self._lock:
            if not self._down:
                return
            self._down = False
        logger.info("opsctl agent '%s' reaches Redis again", self._component)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _describe(error: BaseException) -> str:
    """``Type: message`` on one line, secrets scrubbed, at most 500 characters: it goes to
    logs and Redis. A message of megabytes is cut before anything else reads it.
    """
    name = type(error).__name__
    try:
        text = _layout.one_line(str(error))
    except Exception:  # an exception whose message cannot be made
        text = "(its message could not be read)"
    return _layout.cut(f"{name}: {text}" if text else name)


def _traceback(error: BaseException, described: str) -> str:
    """The traceback of ``error`` with ``described`` as its last line in place of the full
    message, which may be huge or hold secrets.
    """
    frames = "".join(traceback.format_tb(error.__traceback__))
    return f"Traceback (most recent call last):\n{frames}{described}"
