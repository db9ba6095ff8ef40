"""Publishing a registry: a Pushgateway push and a node_exporter textfile.

Batch commands (backup, verify) end before Prometheus could scrape them, so they hand
their figures to a Pushgateway or leave them in the folder node_exporter's textfile
collector reads.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from opsctl.errors import OperationFailedError, UsageError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

logger = logging.getLogger(__name__)

PUSH_TIMEOUT_SECONDS = 10.0
TEXTFILE_MODE = 0o644
_JOB = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ERROR_BODY_BYTES = 512


def publish(
    registry: CollectorRegistry,
    *,
    job: str,
    push_gateway: str | None = None,
    textfile_dir: str | Path | None = None,
) -> None:
    """Push and/or write ``registry`` (see :func:`opsctl.metrics.publish`)."""
    if not _JOB.fullmatch(job):
        message = f"Job name {job!r} must be 1 to 64 letters, digits, '_' or '-'."
        raise UsageError(message)

    if push_gateway:
        push(registry, job=job, url=push_gateway)
    if textfile_dir is not None and str(textfile_dir) != "":
        write_textfile(registry, job=job, folder=Path(textfile_dir))


def push(
    registry: CollectorRegistry,
    *,
    job: str,
    url: str,
    timeout_seconds: float = PUSH_TIMEOUT_SECONDS,
) -> None:
    """Replace the Pushgateway group ``job``/``instance=<hostname>`` with ``registry``.

    Credentials in the URL's user-info part are sent as HTTP basic auth and never shown.
    Raises UsageError for a URL that is not http(s) with a host, OperationFailedError when
    the gateway refuses, fails or does not answer within ``timeout_seconds``.
    """
    from prometheus_client import push_to_gateway

    gateway, handler = _gateway(url)
    shown = _shown(url)
    logger.debug("pushing job %r to the Pushgateway at %s", job, shown)
    try:
        push_to_gateway(
            gateway,
            job=job,
            registry=registry,
            grouping_key={"instance": socket.gethostname()},
            timeout=timeout_seconds,
            handler=handler,
        )
    except (OSError, ValueError) as error:
        message = f"Pushing metrics of job {job!r} to the Pushgateway at {shown} failed: "
        message += _describe(error, timeout_seconds)
        raise OperationFailedError(
            message, hint="Check that the Pushgateway runs and that the URL is right."
        ) from None
    logger.info("pushed metrics of job %r to %s", job, shown)


def write_textfile(registry: CollectorRegistry, *, job: str, folder: Path) -> Path:
    """Write ``registry`` to ``folder/opsctl_<job>.prom`` atomically (mode 0644); return it.

    The temporary file ends in ``.tmp``, which the textfile collector ignores, and is renamed
    over the old file, so a scrape sees the old or the new figures, never a part. Raises
    OperationFailedError when the folder is missing, is not a folder or cannot be written.
    """
    from prometheus_client import generate_latest

    from opsctl._files import write_atomic

    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        message = f"Textfile folder {str(folder)!r} {what}; no metrics were written."
        raise OperationFailedError(
            message,
            hint="Create it, or point --textfile / [monitoring].textfile_dir at "
            "node_exporter's --collector.textfile.directory.",
        )

    path = folder / textfile_name(job)
    try:
        write_atomic(path, generate_latest(registry), mode=TEXTFILE_MODE)
    except OSError as error:
        message = f"Writing metrics to {str(path)!r} failed: {error.strerror or error}."
        raise OperationFailedError(message) from None
    logger.info("wrote metrics of job %r to %s", job, path)
    return path


def validate_gateway_url(url: str) -> None:
    """Raise UsageError unless ``url`` is an http(s) URL with a host (credentials allowed)."""
    _gateway(url)


def _gateway(url: str) -> tuple[str, Callable[..., Callable[[], None]]]:
    """Return the URL without credentials and the handler that sends them, if any."""
    from prometheus_client.exposition import basic_auth_handler, default_handler

    try:
        parts = urlsplit(url.strip())
        hostname, _port = parts.hostname, parts.port
    except ValueError:
        hostname, parts = None, None
    if parts is None or parts.scheme not in {"http", "https"} or not hostname:
        message = (
            f"Pushgateway URL {_shown(url)!r} is not valid: give http://HOST:PORT or "
            "https://HOST:PORT."
        )
        raise UsageError(message)

    netloc = parts.netloc.rpartition("@")[2]
    gateway = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    if parts.username is None:
        return gateway, default_handler
    handler: Callable[..., Callable[[], None]] = partial(
        basic_auth_handler,
        username=unquote(parts.username),
        password=unquote(parts.password or ""),
    )
    return gateway, handler


def _shown(url: str) -> str:
    """The URL as it may be shown: without user name and password."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "<unparsable URL>"
    if "@" not in parts.netloc:
        return url.strip()
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _describe(error: Exception, timeout_seconds: float) -> str:
    """One phrase for what went wrong: the HTTP status and the gateway's reason, or why no
    connection was made.
    """
    from urllib.error import HTTPError, URLError

    if isinstance(error, HTTPError):
        body = _read_body(error)
        return f"it answered HTTP {error.code} {error.reason}" + (f" ({body})." if body else ".")
    reason: object = error.reason if isinstance(error, URLError) else error
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"no answer within {timeout_seconds:g} s."
    if isinstance(reason, ConnectionRefusedError):
        return "the connection was refused."
    if isinstance(reason, OSError) and reason.strerror:
        return f"{reason.strerror}."
    return f"{reason}."


def _read_body(error: Any) -> str:
    try:
        raw = error.read(_ERROR_BODY_BYTES)
    except (OSError, ValueError):
        return ""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else ""
    return " ".join(text.split())[:200]


def textfile_name(job: str) -> str:
    """The file name a job's metrics are written to."""
    return f"opsctl_{job}.prom"
