"""One factory for every outside connection, so auth, timeouts and retries are set once.

Each function imports its library when called: the CLI starts without any of them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

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


_shared_lock = threading.Lock()
_shared: list[httpx.Client] = []


def shared_http_client() -> httpx.Client:
    """Return one HTTP client shared by every check of this process.

    Building a client loads TLS settings, which costs more than a local request; checks pass
    their own timeout on each request.
    """
    import httpx

    with _shared_lock:
        if not _shared:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
            _shared.append(http_client(limits=limits))
        return _shared[0]


def supervisor_client(socket_path: Path, *, timeout_seconds: float = 10.0) -> SupervisorClient:
    """Return a client for the supervisord listening on ``socket_path``."""
    from opsctl.runtime._supervisor import SupervisorClient

    return SupervisorClient(socket_path, timeout_seconds=timeout_seconds)
