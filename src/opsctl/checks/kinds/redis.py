"""``redis``: Redis answers PING with the configured auth and reports INFO."""

from __future__ import annotations

from opsctl.checks._registry import BuildContext, make_check
from opsctl.checks._result import Check, Outcome
from opsctl.config import RedisCheck


def build(spec: RedisCheck, context: BuildContext) -> Check:
    """Build a check of the Redis at ``spec.url``, or on the service's port."""
    url = spec.url or (
        f"redis://127.0.0.1:{context.service_port}" if context.service_port else None
    )
    if url is None:
        msg = "A redis check needs a url or a service port."
        raise ValueError(msg)
    password = spec.password.get_secret_value() if spec.password else None

    def probe(timeout_seconds: float) -> Outcome:
        return probe_redis(url, password=password, timeout_seconds=timeout_seconds)

    return make_check(spec, context, default_name="redis", target=url, probe=probe)


def probe_redis(url: str, *, password: str | None, timeout_seconds: float) -> Outcome:
    """PING the Redis at ``url``, then read INFO for the detail line."""
    import redis

    from opsctl.clients import redis_client

    client = redis_client(url, password=password, timeout_seconds=timeout_seconds)
    try:
        client.ping()
        info = client.info()
    except redis.AuthenticationError as error:
        return Outcome("fail", f"authentication failed: {error}")
    except redis.ResponseError as error:
        return Outcome("fail", f"Redis refused: {error}")
    except (redis.ConnectionError, redis.TimeoutError) as error:
        return Outcome("fail", f"no answer: {error}")
    finally:
        client.close()
    detail = (
        f"PONG; redis {info.get('redis_version', '?')}, role {info.get('role', '?')}, "
        f"{info.get('used_memory_human', '?')} used, {info.get('connected_clients', '?')} clients"
    )
    if info.get("loading") == 1:
        return Outcome("fail", "still loading its dataset: " + detail)
    return Outcome("pass", detail)
