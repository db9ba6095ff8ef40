"""Which sources a project backs up, by name: ``files`` (``backup.paths``) and ``redis``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from opsctl.backup import _paths
from opsctl.backup import _redis as redis_source
from opsctl.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from opsctl.config import Project

SOURCE_NAMES = (_paths.SOURCE, redis_source.SOURCE)


class Progress(Protocol):
    """Where a long operation reports how far it got; the command layer draws it."""

    def begin(self, description: str, total_bytes: int | None) -> None: ...

    def advance(self, size_bytes: int) -> None: ...


def destination(project: Project) -> Path:
    """The destination folder, relative paths taken from the project root."""
    folder = Path(project.config.backup.destination).expanduser()
    return folder if folder.is_absolute() else project.root / folder


def configured_sources(project: Project) -> list[str]:
    """The sources ``[backup]`` declares, in archive order."""
    names = []
    if project.config.backup.paths:
        names.append(_paths.SOURCE)
    if project.config.backup.redis is not None:
        names.append(redis_source.SOURCE)
    return names


def select_sources(project: Project, wanted: Sequence[str]) -> list[str]:
    """``wanted`` checked against what is configured (all of it when empty). Raises
    :class:`ConfigError` when nothing is configured, :class:`UsageError` for an unknown or
    unconfigured name.
    """
    configured = configured_sources(project)
    if not configured:
        message = f"{project.config_path} configures nothing to back up."
        raise ConfigError(message, hint="Set backup.paths, backup.redis, or both.")
    for name in wanted:
        if name not in configured:
            message = (
                f"'{name}' is not a configured backup source (configured: {', '.join(configured)})."
            )
            raise UsageError(message)
    return [name for name in configured if not wanted or name in wanted]
