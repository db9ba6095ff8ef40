"""The exception family every core package raises, and the exit codes they carry.

The command layer turns an :class:`OpsctlError` into one line on stderr and its exit code;
anything else is a bug and is reported with a hint to rerun with ``--debug``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, documented in the README."""

    OK = 0
    FAILED = 1
    USAGE = 2
    DEGRADED = 3
    UNAVAILABLE = 4
    BUSY = 75
    INTERRUPTED = 130


class OpsctlError(Exception):
    """Base class of every error opsctl reports to an operator.

    ``message`` is a sentence naming what went wrong; ``hint`` says what to do about it.
    """

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(OpsctlError):
    """The configuration is missing, malformed or inconsistent; nothing was started."""

    exit_code = ExitCode.USAGE


class UsageError(OpsctlError):
    """The command line asks for something that cannot be done as asked."""

    exit_code = ExitCode.USAGE


class ResourceUnavailableError(OpsctlError):
    """A required resource (an engine, a binary, a device) is absent."""

    exit_code = ExitCode.UNAVAILABLE


class OperationFailedError(OpsctlError):
    """An operation was attempted and did not succeed."""

    exit_code = ExitCode.FAILED


class BusyError(OpsctlError):
    """Another run holds the lock; the caller may retry later."""

    exit_code = ExitCode.BUSY
