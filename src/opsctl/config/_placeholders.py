"""Placeholder expansion: ``{port}``, ``{services.NAME.port}``, ``{project.root}``, ``${VAR}``.

``{{`` and ``}}`` stand for literal braces and ``$$`` for a literal dollar sign.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_TOKEN = re.compile(
    r"(?P<escape>\{\{|\}\}|\$\$)"
    r"|\$\{(?P<env>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|\{(?P<ref>[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*)\}"
)


class PlaceholderError(ValueError):
    """A placeholder names nothing that is defined."""

    def __init__(self, placeholder: str, known: list[str]) -> None:
        self.placeholder = placeholder
        self.known = known
        super().__init__(placeholder)


def expand(text: str, *, refs: Mapping[str, str], environ: Mapping[str, str]) -> str:
    """Return ``text`` with every placeholder replaced.

    ``refs`` maps dotted names (``port``, ``services.redis.port``) to values; ``environ``
    resolves ``${VAR}``. Raises :class:`PlaceholderError` for a name that is not defined and
    has no ``:-default``.
    """

    def replace(match: re.Match[str]) -> str:
        escape = match.group("escape")
        if escape:
            return escape[0]

        env_name = match.group("env")
        if env_name is not None:
            value = environ.get(env_name)
            default = match.group("default")
            # As in the shell, ":-" also replaces a variable that is set but empty.
            if value is not None and (value or default is None):
                return value
            if default is None:
                raise PlaceholderError("${" + env_name + "}", [])
            return default

        ref = match.group("ref")
        if ref not in refs:
            raise PlaceholderError("{" + ref + "}", sorted(refs))
        return refs[ref]

    return _TOKEN.sub(replace, text)
