"""Where agents keep their reports and requests in Redis, and the names they may use.

Every key starts with ``opsctl:{project}:``. One process of a component owns one hash,
``component:{name}:{instance}`` (``instance`` is ``{pid}@{host}``), which expires unless
heartbeats keep it alive. A process that serves requests reads its ids from the list
``inbox:{name}:{instance}``; a request's body lives in ``request:{id}`` until its
deadline, and replies are pushed to ``reply:{id}``. Standard library only: the launcher
path and ``opsctl --help`` import this module.
"""

from __future__ import annotations

import math
import re
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opsctl.config import Project

ENV_PROJECT = "OPSCTL_PROJECT"
"""The project name agents report under; opsctl sets it for every program of the stack."""

ENV_URL = "OPSCTL_REDIS_URL"
"""The URL of the stack's Redis; opsctl sets it for every program when the stack has one."""

ENV_PASSWORD = "OPSCTL_REDIS_PASSWORD"  # noqa: S105 (the variable's name, not a value)
"""The password of the stack's Redis, when it has one."""

STATUSES = ("ok", "degraded", "failing")
"""What a component may say about itself, best first."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_KIND = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_GAUGE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,63}")
LONGEST_DETAIL = 500
"""Characters of a status detail or an error message kept in Redis; the rest is cut."""
# How much of a text one_line() reads, in multiples of the length it returns.
_WINDOW_FACTOR = 8


def validate_component(name: object) -> str:
    """Return ``name`` if it is a valid component name; raise :class:`ValueError` if not.

    Names go into key names and metric labels: 1 to 64 letters, digits, ``_``, ``.``
    or ``-``, starting with a letter or digit.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        message = (
            f"Invalid component name {name!r}: use 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit."
        )
        raise ValueError(message)
    return name


def validate_kind(kind: object) -> str:
    """Return ``kind`` if it is a valid request kind (like ``gpu.free_caches``); else raise
    :class:`ValueError`.
    """
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        message = (
            f"Invalid request kind {kind!r}: use 1 to 128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit (e.g. 'gpu.free_caches')."
        )
        raise ValueError(message)
    return kind


def validate_status(status: object) -> str:
    """Return ``status`` if it is one of :data:`STATUSES`; else raise :class:`ValueError`."""
    if status not in STATUSES:
        message = f"Invalid component status {status!r}: use one of {', '.join(STATUSES)}."
        raise ValueError(message)
    return str(status)


def validate_gauge(name: object, value: object) -> tuple[str, float]:
    """Return ``(name, float(value))`` for a valid gauge; raise :class:`ValueError` for a bad
    name or a value that is not a finite number.
    """
    if not isinstance(name, str) or not _GAUGE.fullmatch(name):
        message = (
            f"Invalid gauge name {name!r}: use 1 to 64 letters, digits, '_' or '.', "
            "starting with a letter or '_'."
        )
        raise ValueError(message)
    return name, finite_number(value, what=f"Gauge {name!r}")


def finite_number(value: object, *, what: str) -> float:
    """Return ``value`` as a float if it is an int or a float (not a bool) that is finite
    and fits a float; else raise :class:`ValueError` naming ``what``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        message = f"{what} needs a number, not {type(value).__name__}."
        raise ValueError(message)
    try:
        number = float(value)
    except OverflowError:
        message = f"{what} needs a finite number, not an integer too large for a float."
        raise ValueError(message) from None
    if not math.isfinite(number):
        message = f"{what} needs a finite number, not {number!r}."
        raise ValueError(message)
    return number


def this_host() -> str:
    """The host name agents report, as the system gives it."""
    return socket.gethostname()


def instance_id(pid: int, host: str) -> str:
    """Identify one process of a component: ``{pid}@{host}``."""
    return f"{pid}@{host}"


def prefix(project: str) -> str:
    """Every key of ``project`` starts with this."""
    return f"opsctl:{project}:"


def component_key(project: str, component: str, instance: str) -> str:
    """The hash one process of ``component`` reports in."""
    return f"{prefix(project)}component:{component}:{instance}"


def component_pattern(project: str) -> str:
    """A SCAN pattern matching every component hash of ``project``."""
    return f"{_glob_escape(prefix(project))}component:*"


def inbox_key(project: str, component: str, instance: str) -> str:
    """The list of request ids one process of ``component`` waits on."""
    return f"{prefix(project)}inbox:{component}:{instance}"


def request_key(project: str, request_id: str) -> str:
    """The body of one request; it expires at the request's deadline."""
    return f"{prefix(project)}request:{request_id}"


def reply_key(project: str, request_id: str) -> str:
    """The list the replies to one request are pushed to."""
    return f"{prefix(project)}reply:{request_id}"


def cut(text: str, *, limit: int = LONGEST_DETAIL) -> str:
    """Return ``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(text: str, *, limit: int = LONGEST_DETAIL) -> str:
    """Return ``text`` as one line fit to show: whitespace folded, known secrets masked,
    cut to ``limit`` characters.

    Only the first ``_WINDOW_FACTOR * limit`` characters are ever looked at, so a
    message of megabytes costs no more than a short one.
    """
    from opsctl.secrets import scrub

    window = _WINDOW_FACTOR * limit
    line = scrub(" ".join(text[:window].split()))
    if len(text) <= window:
        return cut(line, limit=limit)
    # The window may end inside a secret, which scrub cannot recognise in part: drop the
    # window's last half, longer than any secret, before cutting.
    return line[: min(limit - 1, max(0, len(line) - window // 2))] + "…"


def agent_environment(project: Project) -> dict[str, str]:
    """Return the variables opsctl gives every program of the stack so that an
    :class:`~opsctl.agent.Agent` finds its Redis without configuration: the project's name
    and, when the stack has a Redis, its URL and password.
    """
    environment = {ENV_PROJECT: project.name}
    target = project.redis()
    if target is not None:
        environment[ENV_URL] = target.url
        if target.password:
            environment[ENV_PASSWORD] = target.password
    return environment


def from_environment(
    environ: Mapping[str, str], *, url: str | None, password: str | None, project: str | None
) -> tuple[str | None, str | None, str | None]:
    """Fill ``url``, ``password`` and ``project`` that were not given from ``environ``."""
    url = url if url is not None else (environ.get(ENV_URL) or None)
    password = password if password is not None else (environ.get(ENV_PASSWORD) or None)
    project = project if project is not None else (environ.get(ENV_PROJECT) or None)
    return url, password, project


def _glob_escape(text: str) -> str:
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)
