"""The loaded project: the validated config plus the paths and environment it resolves to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from opsctl.config._model import Config, ServiceSection


class RedisTarget(NamedTuple):
    """Where the stack's Redis answers, and the password to use (``None``: none)."""

    url: str
    password: str | None


@dataclass(frozen=True)
class Project:
    """Everything a command needs to know about the project it runs against.

    ``environ`` is what services and ``${VAR}`` see: the ``.env`` file overlaid by the
    process environment.
    """

    config: Config
    config_path: Path
    root: Path
    state_dir: Path
    env_file: Path
    dotenv: Mapping[str, str]
    environ: Mapping[str, str]

    @property
    def name(self) -> str:
        """The project's name: ``project.name`` or the name of its root folder."""
        return self.config.project.name or self.root.name

    @property
    def services(self) -> Mapping[str, ServiceSection]:
        """The declared services, by name."""
        return self.config.services

    def service(self, name: str) -> ServiceSection:
        """Return the service ``name``; raise :class:`~opsctl.errors.UsageError` if unknown."""
        from opsctl.errors import UsageError

        try:
            return self.config.services[name]
        except KeyError:
            known = ", ".join(sorted(self.config.services)) or "none"
            message = f"No service named '{name}' in {self.config_path} (services: {known})."
            raise UsageError(message) from None

    def redis(self) -> RedisTarget | None:
        """The stack's own Redis: ``[redis].url``, else the port of ``[redis].service``,
        else the service named ``redis``, else the only service with a redis health check.
        ``None`` when the project has none.
        """
        section = self.config.redis
        password = section.password.get_secret_value() if section.password else None
        if section.url:
            return RedisTarget(section.url, password)
        name = section.service or self._redis_service_name()
        if name is None or name not in self.services:
            return None
        return self.service_redis(name, password=password)

    def service_redis(self, name: str, *, password: str | None = None) -> RedisTarget | None:
        """Where the Redis run as service ``name`` answers: its redis health check's URL,
        else its port on 127.0.0.1. ``password`` wins over the health check's. ``None`` when
        the service has neither a URL nor a port.
        """
        service = self.services[name]
        for check in service.health:
            if check.kind == "redis" and (check.url or check.password):
                check_password = check.password.get_secret_value() if check.password else None
                if check.url:
                    return RedisTarget(check.url, password or check_password)
                password = password or check_password
        if service.port is None:
            return None
        return RedisTarget(f"redis://127.0.0.1:{service.port}/0", password)

    def _redis_service_name(self) -> str | None:
        """The service called ``redis``, else the only one with a redis health check."""
        if "redis" in self.services:
            return "redis"
        candidates = [
            name
            for name, service in self.services.items()
            if any(check.kind == "redis" for check in service.health)
        ]
        return candidates[0] if len(candidates) == 1 else None
