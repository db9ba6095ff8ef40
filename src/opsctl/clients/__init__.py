"""One factory for every outside connection, so auth, timeouts and retries are set once.

Each function imports its library when called: the CLI starts without any of them.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opsctl import __version__

if TYPE_CHECKING:
    import httpx
    import redis

    from opsctl.runtime._supervisor import SupervisorClient

USER_AGENT = f"opsctl/{__version__}"


def redis_client(
    url: str, *, password: str | None = None, timeout_seconds: float = 5.0
) -> redis.Redis:
    """Return a Redis client for ``url``; ``password`` overrides one in the URL."""
    import redis

    options: dict[str, object] = {
        "socket_timeout": timeout_seconds,
        "socket_connect_timeout": timeout_seconds,
        "retry_on_timeout": False,
        "decode_responses": False,
    }
    if password is not None:
        options["password"] = password
    return redis.Redis.from_url(url, **options)


def http_client(
    *, timeout_seconds: float = 10.0, limits: httpx.Limits | None = None
) -> httpx.Client:
    """Return an HTTP client with opsctl's user agent; it does not follow redirects and
    ignores proxy variables (checks aim at the stack itself).
    """
    import httpx

    return httpx.Client(
        timeout=httpx.Timeout(timeout_seconds),
        limits=limits or httpx.Limits(),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        trust_env=False,
    )


@dataclass(frozen=True)
class ProbeResponse:
    """What an HTTP probe got back: status, body (at most 1 MiB), and when."""

    status_code: int
    text: str
    elapsed_ms: float


_LARGEST_PROBE_BODY_BYTES = 1 << 20
_tls_lock = threading.Lock()
_tls_contexts: list[ssl.SSLContext] = []


def probe_http(method: str, url: str, *, timeout_seconds: float) -> ProbeResponse:
    """Send one request for a health or readiness check and return the response.

    Checks run by the hundred, concurrently: this uses the standard library's client, which
    costs half the CPU of httpx per request, keeps no connection and follows no redirect.
    Raises :class:`TimeoutError` when no answer comes within the timeout and :class:`OSError`
    (or :class:`http.client.HTTPException`) when the request fails.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        message = f"not an http(s) URL: {url!r}"
        raise ValueError(message)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout_seconds, context=_tls_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_seconds)
    begin = time.monotonic()
    try:
        connection.request(method, path, headers={"User-Agent": USER_AGENT, "Connection": "close"})
        response = connection.getresponse()
        body = response.read(_LARGEST_PROBE_BODY_BYTES)
    finally:
        connection.close()
    elapsed_ms = (time.monotonic() - begin) * 1000
    charset = response.headers.get_content_charset() or "utf-8"
    return ProbeResponse(response.status, body.decode(charset, errors="replace"), elapsed_ms)


def _tls_context() -> ssl.SSLContext:
    with _tls_lock:
        if not _tls_contexts:
            _tls_contexts.append(ssl.create_default_context())
        return _tls_contexts[0]


def supervisor_client(socket_path: Path, *, timeout_seconds: float = 10.0) -> SupervisorClient:
    """Return a client for the supervisord listening on ``socket_path``."""
    from opsctl.runtime._supervisor import SupervisorClient

    return SupervisorClient(socket_path, timeout_seconds=timeout_seconds)
