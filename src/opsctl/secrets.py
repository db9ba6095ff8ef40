"""Masking and scrubbing of secret values.

The masking rule: a value shorter than 12 characters is shown as ``********``; a longer one
as its first 4 characters, an ellipsis and its last 2 (``sk-p…9Q``), enough to tell two
keys apart and too little to use one. Secret values known to opsctl are also scrubbed from
any text (log records, error messages) before it is shown.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import urlsplit, urlunsplit

MASK = "********"
_SHORTEST_PARTLY_SHOWN = 12
_SHORTEST_SCRUBBED = 6
_SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|PASS$|SECRET|TOKEN|API_?KEY|_KEY$|^KEY$|CREDENTIAL|AUTH_?KEY|WEBHOOK|PRIVATE",
    re.IGNORECASE,
)

_lock = threading.Lock()
_known: set[str] = set()


def mask(value: str) -> str:
    """Return ``value`` masked by the documented rule; never the whole value."""
    if len(value) < _SHORTEST_PARTLY_SHOWN:
        return MASK
    return f"{value[:4]}…{value[-2:]}"


def is_secret_name(name: str) -> bool:
    """Tell whether a variable or key name, by its wording, holds a secret."""
    return bool(_SECRET_NAME.search(name))


def mask_url(url: str) -> str:
    """Return ``url`` with the password of its user-info part masked, and the value of
    every query parameter whose name says it holds a secret (``password=``, ``auth=``...).
    """
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return _QUERY_SECRET.sub(rf"\g<1>{MASK}", url)
    if parts.password:
        user = parts.username or ""
        host = parts.hostname or ""
        parts = parts._replace(netloc=f"{user}:{MASK}@{host}{port}")
    if parts.query:
        parts = parts._replace(query=_QUERY_SECRET.sub(rf"\g<1>{MASK}", parts.query))
    return urlunsplit(parts)


def register(value: str | None) -> None:
    """Remember ``value`` as a secret, so that :func:`scrub` removes it from any text."""
    if value and len(value) >= _SHORTEST_SCRUBBED:
        with _lock:
            _known.add(value)


# A URL's password: ``scheme://user:PASSWORD@``. The scheme is bounded and must start a
# word, and no part may run past a "/", so the pattern scans any text in linear time
# (an unbounded ``\w+://`` retried at every letter of a long word took quadratic time).
_URL_PASSWORD = re.compile(
    r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s:/@]*:)[^\s@/]+@"
)


# A query parameter whose name holds a secret: ``?password=...``, ``&auth=...``. The name
# is bounded, so the scan stays linear.
_QUERY_SECRET = re.compile(
    r"((?:^|[?&;])[A-Za-z0-9_.-]{0,32}?"
    r"(?:pass|pwd|auth|secret|token|key|credential)[A-Za-z0-9_.-]{0,32}=)[^&;#\s]+",
    re.IGNORECASE,
)


def scrub(text: str) -> str:
    """Return ``text`` with every registered secret, URL password and secret query
    parameter masked.
    """
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, mask(value))
    text = _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text)
    return _QUERY_SECRET.sub(rf"\g<1>{MASK}", text)
