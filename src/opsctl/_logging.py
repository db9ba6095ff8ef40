"""Logging for the whole program, configured once in the root command.

Logs, warnings and progress go to stderr, results to stdout, so ``--json | jq`` works.
"""

from __future__ import annotations

import logging
import sys

from opsctl import secrets


def verbosity_level(*, verbose: int, quiet: int, interactive: bool) -> int:
    """Map stacked ``-v``/``-q`` flags to a log level.

    Without flags an operator at a terminal sees one line per action (INFO) and cron sees
    only problems (WARNING). Each ``-v`` goes one level more detailed, each ``-q`` one less.
    """
    levels = [logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG]
    start = levels.index(logging.INFO if interactive else logging.WARNING)
    index = min(max(start + verbose - quiet, 0), len(levels) - 1)
    return levels[index]


class ScrubSecretsFilter(logging.Filter):
    """Masks every known secret in a record before it is formatted."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = secrets.scrub(record.getMessage())
        record.args = None
        if record.exc_info:
            # Format the traceback now, scrubbed, so no handler formats the raw one.
            record.exc_text = secrets.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = secrets.scrub(record.exc_text)
        return True


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


def configure_logging(level: int) -> None:
    """Send opsctl's log records at ``level`` and above to stderr, secrets scrubbed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(message)s"))
    handler.addFilter(ScrubSecretsFilter())
    root = logging.getLogger("opsctl")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
