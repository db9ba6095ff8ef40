"""The loaded project: the validated config plus the paths and environment it resolves to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from opsctl.config._model import Config, ServiceSection


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
