"""Declared keys resolved against the environment: value, source, format."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from opsctl.config import Project
from opsctl.config._model import KeySection
from opsctl.keys._providers import PROVIDERS


@dataclass(frozen=True)
class KeyState:
    """One declared key as it stands: where its value comes from and whether it is well-formed."""

    name: str
    section: KeySection
    variable: str
    value: str | None
    source: str | None
    secret_variable: str | None = None
    secret_value: str | None = None

    @property
    def provider(self) -> str:
        """The provider's name."""
        return self.section.provider

    @property
    def present(self) -> bool:
        """True when the key (and, for a pair, its secret) has a value."""
        return bool(self.value) and (self.secret_variable is None or bool(self.secret_value))

    @property
    def format_ok(self) -> bool | None:
        """Whether the values that are set have the provider's shape (each half of a pair
        on its own); ``None`` when nothing is set or no shape is known.
        """
        key_pattern, secret_pattern = _patterns(self.section)
        checked = [
            re.fullmatch(pattern, value) is not None
            for pattern, value in ((key_pattern, self.value), (secret_pattern, self.secret_value))
            if pattern and value
        ]
        return all(checked) if checked else None


def _patterns(section: KeySection) -> tuple[str | None, str | None]:
    provider = PROVIDERS.get(section.provider)
    if section.format:
        return section.format, provider.secret_format if provider else None
    if provider is None:
        return None, None
    return provider.format, provider.secret_format


def secret_variable(section: KeySection) -> str | None:
    """The variable holding the second half of a key pair (Alpaca's secret), if any."""
    provider = PROVIDERS.get(section.provider)
    return section.secret_env or (provider.default_secret_env if provider else None)


def key_states(project: Project) -> list[KeyState]:
    """Resolve every ``[keys.NAME]``: the process environment first, then ``.env``."""
    states = []
    for name, section in project.config.keys.items():
        variable = section.env or name
        value, source = _lookup(project, variable)
        secret_name = secret_variable(section)
        secret_value = _lookup(project, secret_name)[0] if secret_name else None
        states.append(KeyState(name, section, variable, value, source, secret_name, secret_value))
    return states


def _lookup(project: Project, variable: str) -> tuple[str | None, str | None]:
    if os.environ.get(variable):
        return os.environ[variable], "environment"
    if project.dotenv.get(variable):
        return project.dotenv[variable], ".env"
    return None, None
