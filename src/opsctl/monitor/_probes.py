"""Resource probes: disk, memory, load, the stack's Redis, backup age, component heartbeats
and GPUs. Each returns plain figures or raises; the loop catches, logs and goes on.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

    from opsctl.agent import ComponentReport
    from opsctl.config import Project
    from opsctl.config._project import RedisTarget
    from opsctl.gpu._model import GpuSnapshot
    from opsctl.gpu._status import ProcessOwner

logger = logging.getLogger(__name__)

_MEMINFO = Path("/proc/meminfo")
REDIS_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class DiskFigures:
    """Space on the file system holding ``path``."""

    path: str
    free_bytes: int
    size_bytes: int

    @property
    def free_percent(self) -> float:
        """Free share of the file system, in percent."""
        return 100.0 * self.free_bytes / self.size_bytes if self.size_bytes else 0.0


@dataclass(frozen=True)
class HostFigures:
    """Memory and load of this host."""

    memory_total_bytes: int
    memory_available_bytes: int
    load1: float
    cpu_count: int

    @property
    def memory_used_percent(self) -> float:
        """Share of memory not available for new work, in percent."""
        total = self.memory_total_bytes
        return 100.0 * (total - self.memory_available_bytes) / total if total else 0.0

    @property
    def load_per_cpu(self) -> float:
        """One-minute load average divided by the CPUs."""
        return self.load1 / max(self.cpu_count, 1)


@dataclass(frozen=True)
class RedisFigures:
    """What the stack's Redis said in INFO; ``error`` when it did not answer."""

    url: str
    up: bool
    used_memory_bytes: int = 0
    maxmemory_bytes: int = 0
    connected_clients: int = 0
    last_save_timestamp: float | None = None
    last_bgsave_ok: bool | None = None
    error: str | None = None

    @property
    def memory_percent(self) -> float | None:
        """Used memory against maxmemory; ``None`` when Redis has no limit."""
        if not self.maxmemory_bytes:
            return None
        return 100.0 * self.used_memory_bytes / self.maxmemory_bytes


@dataclass(frozen=True)
class BackupFigures:
    """The newest complete backup in the destination; ``None`` when there is none yet."""

    destination: str
    newest_finished_at: datetime | None


def read_disk(paths: list[str], root: Path) -> list[DiskFigures]:
    """Read the space of each path's file system (relative paths are under ``root``)."""
    figures = []
    for path in paths:
        where = path if path.startswith("/") else str(root / path)
        usage = shutil.disk_usage(where)
        figures.append(DiskFigures(path, usage.free, usage.total))
    return figures


def read_host() -> HostFigures:
    """Read memory from /proc/meminfo and the load average from the kernel."""
    values: dict[str, int] = {}
    for line in _MEMINFO.read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in {"MemTotal", "MemAvailable"}:
            values[name] = int(rest.split()[0]) * 1024
    return HostFigures(
        memory_total_bytes=values["MemTotal"],
        memory_available_bytes=values["MemAvailable"],
        load1=os.getloadavg()[0],
        cpu_count=os.cpu_count() or 1,
    )


class RedisProbe:
    """Reads INFO from the stack's Redis, keeping one client (and its connection) between
    cycles; redis-py reconnects by itself after Redis restarts.
    """

    def __init__(self, target: RedisTarget) -> None:
        from opsctl import secrets

        secrets.register(target.password)
        self.target = target
        self._client: redis.Redis | None = None

    def read(self) -> RedisFigures:
        """Return Redis's figures; ``up`` is false (with the reason) when it does not answer."""
        import redis

        from opsctl import secrets
        from opsctl.clients import redis_client

        url = secrets.mask_url(self.target.url)
        if self._client is None:
            self._client = redis_client(
                self.target.url,
                password=self.target.password,
                timeout_seconds=REDIS_TIMEOUT_SECONDS,
            )
        try:
            info: dict[str, Any] = self._client.info()
        except (redis.RedisError, OSError) as error:
            # A fresh client next cycle: Redis may come back on a new connection.
            self._client.close()
            self._client = None
            return RedisFigures(url, up=False, error=secrets.scrub(str(error)))
        status = info.get("rdb_last_bgsave_status")
        last_save = info.get("rdb_last_save_time")
        return RedisFigures(
            url,
            up=True,
            used_memory_bytes=int(info.get("used_memory", 0)),
            maxmemory_bytes=int(info.get("maxmemory", 0)),
            connected_clients=int(info.get("connected_clients", 0)),
            last_save_timestamp=float(last_save) if last_save is not None else None,
            last_bgsave_ok=None if status is None else status == "ok",
        )

    def close(self) -> None:
        """Close the client's connections."""
        if self._client is not None:
            self._client.close()


def read_backup(project: Project) -> BackupFigures | None:
    """Find the newest complete backup in ``backup.destination``; ``None`` when the project
    backs nothing up. Only the archive backend's manifests are read: a restic repository
    is watched through the backup command's own metrics (``opsctl_backup_*``).
    """
    from opsctl.backup import configured_sources, destination, list_backups

    if not configured_sources(project) or project.config.backup.backend != "archive":
        return None
    complete = [stored for stored in list_backups(project) if stored.problem is None]
    newest = max((stored.manifest.finished_at for stored in complete), default=None)
    return BackupFigures(str(destination(project)), newest)


def read_heartbeats(
    target: RedisTarget, project: str, *, stale_after_seconds: float
) -> list[ComponentReport]:
    """Read what the components embedding ``opsctl.agent`` last reported."""
    from opsctl.agent import read_components

    return read_components(
        target,
        project,
        stale_after_seconds=stale_after_seconds,
        timeout_seconds=REDIS_TIMEOUT_SECONDS,
    )


class GpuProbe:
    """Reads the GPUs and which service holds their memory; on a host without one (or with
    a recording that cannot be read) it says so once and then stays quiet.
    """

    def __init__(self, project: Project | None = None) -> None:
        self.project = project
        self.absent_reason: str | None = None
        self.owners: list[ProcessOwner] | None = None

    def read(self) -> GpuSnapshot | None:
        """Return a snapshot of the GPUs, or ``None`` on a host without any."""
        from opsctl.errors import ConfigError
        from opsctl.gpu._model import NoGpuError
        from opsctl.gpu._nvml import read_snapshot
        from opsctl.gpu._status import process_owners

        if self.absent_reason is not None:
            return None
        try:
            snapshot = read_snapshot()
        except (NoGpuError, ConfigError) as error:
            self.absent_reason = error.message
            logger.info("No GPU figures: %s", error.message)
            return None
        self.owners, _ = process_owners(snapshot, self.project)
        return snapshot


def now_seconds() -> float:
    """The wall clock in Unix seconds (alerts and history use it)."""
    return time.time()
