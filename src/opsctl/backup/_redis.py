"""The ``redis`` source: a consistent snapshot of the stack's Redis, and putting one back.

Taking a snapshot: BGSAVE, then wait until Redis reports a newer save (a save already in
progress is waited out, then ours follows, so the data is never older than the run), then
take ``dump.rdb`` from the host path, from the container through the runtime's file copy,
or, without file access, over the network the way ``redis-cli --rdb`` does (SYNC).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from opsctl import secrets
from opsctl.backup._redis_sync import fetch_over_network
from opsctl.errors import ConfigError, OperationFailedError, UsageError

if TYPE_CHECKING:
    import redis

    from opsctl.config import Project

logger = logging.getLogger(__name__)

SOURCE = "redis"
MEMBER = f"{SOURCE}/dump.rdb"
SAVE_TIMEOUT_SECONDS = 3600.0
_POLL_SECONDS = 0.05
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True)
class RedisSource:
    """Where the Redis to back up answers, and the stack service that runs it, if any."""

    url: str
    password: str | None
    service: str | None

    @property
    def shown_url(self) -> str:
        return secrets.mask_url(self.url)


@dataclass(frozen=True)
class RdbSnapshot:
    """A taken snapshot: an open file positioned at its start, its size, what was noted."""

    handle: IO[bytes]
    size_bytes: int
    metadata: dict[str, Any]


def resolve_source(project: Project) -> RedisSource | None:
    """``backup.redis``: a service of the stack or a ``redis://`` URL; ``None`` when unset.

    Raises :class:`ConfigError` naming ``backup.redis`` when it names neither.
    """
    setting = project.config.backup.redis
    if setting is None:
        return None
    section = project.config.redis
    password = section.password.get_secret_value() if section.password else None
    if "://" in setting:
        return RedisSource(
            setting, password or _url_password(setting), _service_at(project, setting)
        )
    if setting not in project.services:
        known = ", ".join(sorted(project.services)) or "none"
        message = (
            f"backup.redis in {project.config_path} is '{setting}', which is neither a service "
            f"(services: {known}) nor a redis:// URL."
        )
        raise ConfigError(message)
    return RedisSource(*_service_target(project, setting, password), setting)


def _service_target(project: Project, name: str, password: str | None) -> tuple[str, str | None]:
    target = project.redis()
    if target is not None and (project.config.redis.service or "redis") == name:
        return target.url, target.password
    service = project.services[name]
    for check in service.health:
        if check.kind == "redis":
            check_password = check.password.get_secret_value() if check.password else None
            password = password or check_password
            if check.url:
                return check.url, password
    if service.port is None:
        message = f"backup.redis names the service '{name}', which declares no port."
        raise ConfigError(message, hint=f"Set services.{name}.port or give a redis:// URL.")
    return f"redis://127.0.0.1:{service.port}/0", password


def _service_at(project: Project, url: str) -> str | None:
    """The service whose port ``url`` points at on this host, so a restore can stop it."""
    parts = urlsplit(url)
    if parts.hostname not in _LOOPBACK:
        return None
    for name, service in project.services.items():
        if service.port is not None and service.port == parts.port:
            return name
    return None


def _url_password(url: str) -> str | None:
    password = urlsplit(url).password
    return unquote(password) if password else None


def client_for(source: RedisSource) -> redis.Redis:
    from opsctl.clients import redis_client

    return redis_client(source.url, password=source.password, timeout_seconds=30.0)


def key_count(client: redis.Redis) -> int:
    """Keys in every database, from INFO keyspace."""
    keyspace = client.info("keyspace")
    return sum(int(db.get("keys", 0)) for db in keyspace.values() if isinstance(db, dict))


@contextlib.contextmanager
def take_snapshot(project: Project, source: RedisSource, *, workdir: Path) -> Iterator[RdbSnapshot]:
    """Take a consistent snapshot and yield it open for reading. Temporary copies live in
    ``workdir`` and are removed on the way out. Raises :class:`OperationFailedError` with
    what Redis said when it cannot be taken.
    """
    import redis

    client = client_for(source)
    try:
        version = str(client.info("server").get("redis_version", "?"))
        location = rdb_location(client)
        method = _choose_method(project, source, location)
        logger.info("Snapshotting Redis at %s (%s)", source.shown_url, method)
        if method == "network":
            keys_before = key_count(client)
            path = workdir / f".redis-{os.getpid()}.rdb.tmp"
            with _cleanup(path):
                fetch_over_network(source, path)
                keys_after = key_count(client)
                with path.open("rb") as handle:
                    yield _snapshot(handle, method, version, keys_before, keys_after, None)
            return
        keys_before = key_count(client)
        saved_at = background_save(client, source)
        keys_after = key_count(client)
    except redis.RedisError as error:
        message = f"Redis at {source.shown_url} failed during the snapshot: {error}."
        raise OperationFailedError(secrets.scrub(message)) from None
    finally:
        client.close()

    assert location is not None  # noqa: S101 (host and container methods need it)
    remote = f"{location[0]}/{location[1]}"
    if method == "container":
        path = workdir / f".redis-{os.getpid()}.rdb.tmp"
        with _cleanup(path):
            _runtime(project).copy_out(remote, path)
            with path.open("rb") as handle:
                yield _snapshot(handle, method, version, keys_before, keys_after, saved_at)
        return
    try:
        handle = open(remote, "rb")  # noqa: SIM115 (closed below)
    except OSError as error:
        message = f"Redis saved to {remote}, which cannot be read here: {error.strerror}."
        raise OperationFailedError(
            message, hint="Give opsctl read access to Redis's dir."
        ) from None
    with handle:
        yield _snapshot(handle, method, version, keys_before, keys_after, saved_at)


def _snapshot(
    handle: IO[bytes],
    method: str,
    version: str,
    keys_before: int,
    keys_after: int,
    saved_at: int | None,
) -> RdbSnapshot:
    size = os.fstat(handle.fileno()).st_size
    header = handle.read(5)
    handle.seek(0)
    if header != b"REDIS":
        message = f"The snapshot taken from Redis ({method}) is not an RDB file."
        raise OperationFailedError(message)
    metadata: dict[str, Any] = {
        "method": method,
        "redis_version": version,
        "keys": keys_after,
        "keys_exact": keys_before == keys_after,
        "rdb_bytes": size,
    }
    if saved_at is not None:
        metadata["lastsave"] = saved_at
    return RdbSnapshot(handle, size, metadata)


@contextlib.contextmanager
def _cleanup(path: Path) -> Iterator[None]:
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def rdb_location(client: redis.Redis) -> tuple[str, str] | None:
    """Redis's ``dir`` and ``dbfilename``; ``None`` where CONFIG is disabled or renamed."""
    import redis

    try:
        found: dict[Any, Any] = {**client.config_get("dir"), **client.config_get("dbfilename")}
    except redis.ResponseError:
        return None
    # Keys are bytes or text depending on the client's decoding.
    values = {_text(key): _text(value) for key, value in found.items()}
    if not values.get("dir") or not values.get("dbfilename"):
        return None
    return values["dir"], values["dbfilename"]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _choose_method(project: Project, source: RedisSource, location: tuple[str, str] | None) -> str:
    if location is None:
        return "network"
    if source.service is not None and project.config.runtime.kind == "docker":
        return "container"
    host = urlsplit(source.url).hostname
    local = source.url.startswith("unix://") or host in _LOOPBACK
    # Before the first save there is no file yet: a readable folder is enough.
    if local and os.path.isdir(location[0]) and os.access(location[0], os.R_OK | os.X_OK):
        return "host"
    return "network"


def background_save(client: redis.Redis, source: RedisSource) -> int:
    """Run BGSAVE and wait until a save that began after this call has finished. Return
    LASTSAVE. Raises :class:`OperationFailedError` when the save fails or never ends.
    """
    import redis

    deadline = time.monotonic() + SAVE_TIMEOUT_SECONDS
    before = client.info("persistence")
    saves_before = before.get("rdb_saves")
    lastsave_before = int(before.get("rdb_last_save_time", 0))
    if saves_before is None:
        # LASTSAVE counts seconds: start in a later second than the last save.
        while int(time.time()) <= lastsave_before:
            time.sleep(_POLL_SECONDS)
    while True:
        try:
            client.bgsave()
            break
        except redis.ResponseError as error:
            if "in progress" not in str(error):
                message = f"Redis at {source.shown_url} refused BGSAVE: {error}."
                raise OperationFailedError(message) from None
            # Someone else's save (or an AOF rewrite) runs: it may predate this run, so
            # wait it out and save again.
            logger.info("A save is already running in Redis; waiting for it")
            before = _wait_idle(client, source, deadline)
            saves_before = before.get("rdb_saves")
            lastsave_before = int(before.get("rdb_last_save_time", 0))
    return _wait_saved(client, source, saves_before, lastsave_before, deadline)


def _wait_idle(client: redis.Redis, source: RedisSource, deadline: float) -> dict[str, Any]:
    while True:
        info = client.info("persistence")
        if not int(info.get("rdb_bgsave_in_progress", 0)) and not int(
            info.get("aof_rewrite_in_progress", 0)
        ):
            return info
        _check_deadline(source, deadline)
        time.sleep(_POLL_SECONDS)


def _wait_saved(
    client: redis.Redis,
    source: RedisSource,
    saves_before: int | None,
    lastsave_before: int,
    deadline: float,
) -> int:
    while True:
        info = client.info("persistence")
        if not int(info.get("rdb_bgsave_in_progress", 0)):
            lastsave = int(info.get("rdb_last_save_time", 0))
            moved = (
                int(info["rdb_saves"]) > saves_before
                if saves_before is not None
                else lastsave > lastsave_before
            )
            if info.get("rdb_last_bgsave_status") != "ok":
                message = (
                    f"Redis at {source.shown_url} could not write its snapshot: its last "
                    "background save failed (rdb_last_bgsave_status: err)."
                )
                hint = "See the Redis log: a full disk or an unwritable 'dir' is usual."
                raise OperationFailedError(message, hint=hint)
            if moved:
                return lastsave
        _check_deadline(source, deadline)
        time.sleep(_POLL_SECONDS)


def _check_deadline(source: RedisSource, deadline: float) -> None:
    if time.monotonic() > deadline:
        message = (
            f"Redis at {source.shown_url} did not finish its snapshot within "
            f"{SAVE_TIMEOUT_SECONDS:g} s."
        )
        raise OperationFailedError(message)


def _runtime(project: Project) -> Any:
    from opsctl.runtime import get_runtime

    return get_runtime(project)


def require_service(source: RedisSource) -> str:
    """The service to stop for an in-place restore; :class:`UsageError` when there is none."""
    if source.service is None:
        message = (
            f"Redis at {source.shown_url} is not a service of this stack, so opsctl cannot "
            "stop it to swap its data."
        )
        hint = "Restore with --to DIR and load DIR/redis/dump.rdb into that Redis yourself."
        raise UsageError(message, hint=hint)
    return source.service
