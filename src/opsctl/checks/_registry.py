"""Check kinds, registered by name and built from config by one factory.

Each kind lives in its own module under ``opsctl.checks.kinds`` with a ``build`` function;
the module is imported only when a check of that kind is built, so a health run without
HTTP checks never imports an HTTP library.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from opsctl.checks._result import Check, Outcome
from opsctl.errors import ConfigError

KINDS: dict[str, str] = {
    "tcp": "opsctl.checks.kinds.tcp",
    "http": "opsctl.checks.kinds.http",
    "redis": "opsctl.checks.kinds.redis",
    "command": "opsctl.checks.kinds.command",
    "disk": "opsctl.checks.kinds.disk",
    "file": "opsctl.checks.kinds.file",
    "env": "opsctl.checks.kinds.env",
}


@dataclass(frozen=True)
class BuildContext:
    """What a check may need beyond its own table: its service, section, root, environment."""

    service: str | None = None
    service_port: int | None = None
    section: str = "checks"
    root: Path = field(default_factory=Path.cwd)
    environ: Mapping[str, str] = field(default_factory=dict)


class _Builder(Protocol):
    def __call__(self, spec: Any, context: BuildContext) -> Check: ...


def build_check(spec: Any, context: BuildContext | None = None) -> Check:
    """Build the :class:`Check` described by ``spec`` (a validated check table).

    Raises :class:`ConfigError` for a kind nobody registered.
    """
    kind = str(spec.kind)
    module_name = KINDS.get(kind)
    if module_name is None:
        message = f"Unknown check kind '{kind}'; known kinds: {', '.join(sorted(KINDS))}."
        raise ConfigError(message)
    builder: _Builder = importlib.import_module(module_name).build
    return builder(spec, context or BuildContext())


def make_check(
    spec: Any,
    context: BuildContext,
    *,
    default_name: str,
    target: str,
    probe: Callable[[float], Outcome],
) -> Check:
    """Return a :class:`Check` with the fields every kind shares taken from ``spec``."""
    return Check(
        name=check_name(spec, context, default_name),
        kind=str(spec.kind),
        target=target,
        probe=probe,
        severity=spec.severity,
        timeout_seconds=spec.timeout_seconds,
        service=context.service,
        section=context.section,
        tags=tuple(spec.tags),
        retries=spec.retries,
        retry_delay_seconds=spec.retry_delay_seconds,
    )


def check_name(spec: Any, context: BuildContext, default: str) -> str:
    """The check's configured name, else ``default`` prefixed by its service."""
    if spec.name:
        return str(spec.name)
    return f"{context.service}:{default}" if context.service else default
