"""The restic backend's access to a repository, through the ``restic`` command.

opsctl never hands restic a retention policy: it lists the snapshots, makes the plan with
:func:`opsctl.backup._retention.plan` and asks restic to forget exactly the snapshot ids the
plan removes, so both backends prune by the same rules, whatever restic version is installed
(Debian ships 0.14). The repository and its password reach restic through its environment
(``RESTIC_REPOSITORY``, ``RESTIC_PASSWORD`` or ``RESTIC_PASSWORD_FILE``), never its argument
list, and every message restic prints is scrubbed before opsctl shows it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from opsctl import secrets
from opsctl.backup._retention import Decision, Policy, Snapshot, plan
from opsctl.errors import (
    BusyError,
    ConfigError,
    OperationFailedError,
    OpsctlError,
    ResourceUnavailableError,
    UsageError,
)

logger = logging.getLogger(__name__)

RESTIC_BINARY = "restic"
RESTIC_REPOSITORY_ENV = "RESTIC_REPOSITORY"
RESTIC_PASSWORD_ENV = "RESTIC_PASSWORD"  # noqa: S105 (a variable name)
PASSWORD_SOURCES = (RESTIC_PASSWORD_ENV, "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND")
DEFAULT_TAG = "opsctl"
_MISSING_REPOSITORY_EXIT = 10  # restic 0.17 and later; older versions say so on stderr
_LOCKED_EXIT = 11  # likewise
_SHOWN_ERROR_LINES = 6


@dataclass(frozen=True)
class ResticSnapshot:
    """One snapshot as ``restic snapshots --json`` lists it."""

    id: str
    short_id: str
    time: datetime
    host: str
    paths: tuple[str, ...]
    tags: tuple[str, ...]


@dataclass(frozen=True)
class ResticPrune:
    """A retention plan over a repository's snapshots and what was forgotten."""

    decisions: list[Decision]
    forgotten: list[str]
    dry_run: bool


class ResticRepository:
    """One restic repository, driven by the ``restic`` binary.

    ``environ`` is the environment restic runs with (the project's, so that ``.env`` can hold
    the password); ``repository`` overrides its ``RESTIC_REPOSITORY``. Raises
    :class:`ConfigError` when no repository or password is given.
    """

    def __init__(
        self,
        repository: str | None,
        *,
        environ: Mapping[str, str],
        binary: str = RESTIC_BINARY,
        timeout_seconds: float | None = None,
    ) -> None:
        self.environment = _restic_environment(repository, environ)
        self.repository = self.environment[RESTIC_REPOSITORY_ENV]
        self.binary = binary
        self.timeout_seconds = timeout_seconds

    def exists(self) -> bool:
        """True when the repository has been initialised (its config can be read)."""
        done = self._run(["cat", "config"], check=False)
        if done.returncode == 0:
            return True
        if _is_missing_repository(done):
            return False
        action = "open"
        raise self._failure(action, done)

    def init(self) -> None:
        """Create the repository; restic refuses to overwrite an existing one."""
        self._run(["init", "--quiet"])
        logger.info("Initialised the restic repository %s", secrets.mask_url(self.repository))

    def ensure_initialized(self) -> None:
        """Create the repository unless it exists, so the first nightly run just works."""
        if not self.exists():
            self.init()

    def backup(
        self,
        paths: Sequence[Path],
        *,
        tags: Sequence[str] = (DEFAULT_TAG,),
        excludes: Sequence[str] = (),
        host: str | None = None,
        time: datetime | None = None,
        files_from: Path | None = None,
        parent: str | None = None,
    ) -> ResticSnapshot:
        """Back up ``paths`` (and the paths listed one a line in ``files_from``, taken
        verbatim) into one snapshot; return it.

        ``time`` overrides the recorded time (it is recorded in UTC); ``parent`` names the
        snapshot whose unchanged files need not be read again. Raises
        :class:`OperationFailedError` when restic fails or could not read some files (restic
        then still writes a snapshot, marked incomplete by its exit code 3).
        """
        if not paths and files_from is None:
            message = "Nothing to back up: no path was given to the restic backend."
            raise UsageError(message, hint="Set backup.paths.")
        arguments = ["backup", "--json"]
        arguments += [option for tag in tags for option in ("--tag", tag)]
        arguments += [option for pattern in excludes for option in ("--exclude", pattern)]
        if host is not None:
            arguments += ["--host", host]
        if time is not None:
            arguments += ["--time", time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")]
        if files_from is not None:
            arguments += ["--files-from-verbatim", str(files_from)]
        if parent is not None:
            arguments += ["--parent", parent]
        done = self._run([*arguments, "--", *(str(path) for path in paths)])

        short_id = _summary_snapshot_id(done.stdout)
        matches = [s for s in self.snapshots() if s.id.startswith(short_id)]
        if len(matches) != 1:
            message = f"restic reported snapshot {short_id}, but it is not listed."
            raise OperationFailedError(message)
        logger.info("restic snapshot %s written", matches[0].short_id)
        return matches[0]

    def snapshots(self, *, tag: str | None = None) -> list[ResticSnapshot]:
        """The repository's snapshots (with ``tag`` only, if given), newest first."""
        arguments = ["snapshots", "--json"] + (["--tag", tag] if tag else [])
        listed = json.loads(self._run(arguments).stdout or "[]")
        found = [
            ResticSnapshot(
                id=item["id"],
                short_id=item.get("short_id", item["id"][:8]),
                time=datetime.fromisoformat(item["time"]),
                host=item.get("hostname", ""),
                paths=tuple(item.get("paths") or ()),
                tags=tuple(item.get("tags") or ()),
            )
            for item in listed
        ]
        return sorted(found, key=lambda snapshot: (snapshot.time, snapshot.id), reverse=True)

    def forget(self, snapshot_ids: Sequence[str], *, prune: bool = True) -> None:
        """Forget exactly these snapshots (full ids), then free their data unless ``prune``
        is False. An empty list does nothing.
        """
        if not snapshot_ids:
            return
        self._run(["forget", "--", *snapshot_ids])
        if prune:
            self._run(["prune", "--quiet"])

    def restore(
        self,
        snapshot_id: str,
        target: Path,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> None:
        """Restore ``snapshot_id`` under ``target`` (restic recreates absolute paths there)."""
        arguments = ["restore", snapshot_id, "--target", str(target)]
        arguments += [option for pattern in include for option in ("--include", pattern)]
        arguments += [option for pattern in exclude for option in ("--exclude", pattern)]
        self._run(arguments)

    def dump(self, snapshot_id: str, path: str) -> str:
        """The text of the file ``path`` in ``snapshot_id``. Raises
        :class:`OperationFailedError` when the snapshot does not hold it.
        """
        return self._run(["dump", "--", snapshot_id, path]).stdout

    def read_snapshot(self, snapshot_id: str) -> None:
        """Read every byte of ``snapshot_id`` back (restic authenticates each blob as it
        decrypts it) and throw it away. Raises :class:`OperationFailedError` on damage.
        """
        self._run(["dump", "--", snapshot_id, "/"], discard_output=True)

    def nodes(self, snapshot_id: str) -> list[dict[str, object]]:
        """Every node (file, folder, link) of ``snapshot_id`` as ``restic ls --json`` lists
        it: ``path``, ``type``, ``size`` and more.
        """
        lines = self._run(["ls", "--json", "--", snapshot_id]).stdout.splitlines()
        found = [json.loads(line) for line in lines if line.strip()]
        return [node for node in found if node.get("struct_type") == "node"]

    def check(self, *, read_data: bool = False) -> None:
        """Verify the repository's structure, and with ``read_data`` every stored byte."""
        self._run(["check", *(["--read-data"] if read_data else [])])

    def _run(
        self, arguments: list[str], *, check: bool = True, discard_output: bool = False
    ) -> subprocess.CompletedProcess[str]:
        command = [self.binary, *arguments]
        logger.debug("Running %s", " ".join(command))
        try:
            done = subprocess.run(
                command,
                env=self.environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL if discard_output else subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                timeout=self.timeout_seconds,
                check=False,
            )
        except FileNotFoundError:
            message = f"The restic backend needs the '{self.binary}' command, which is not found."
            raise ResourceUnavailableError(
                message, hint="Install it: apt-get install restic"
            ) from None
        except subprocess.TimeoutExpired:
            message = f"restic {arguments[0]} took longer than {self.timeout_seconds} s."
            raise OperationFailedError(message) from None
        if check and done.returncode != 0:
            raise self._failure(arguments[0], done)
        return done

    def _failure(self, action: str, done: subprocess.CompletedProcess[str]) -> OpsctlError:
        """Turn a failed restic run into the error an operator can act on."""
        where = secrets.mask_url(self.repository)
        stderr = secrets.scrub(done.stderr)
        if "wrong password" in stderr:
            message = f"restic cannot open {where}: the password is wrong."
            return ConfigError(message, hint=f"Check {' or '.join(PASSWORD_SOURCES[:2])}.")
        if done.returncode == _LOCKED_EXIT or "already locked" in stderr:
            message = f"The restic repository {where} is locked by another restic process."
            hint = "Wait for it to finish; a stale lock is removed with: restic unlock"
            return BusyError(message, hint=hint)
        if _is_missing_repository(done):
            message = f"There is no restic repository at {where}."
            return UsageError(message, hint="Run 'opsctl backup run' once, or: restic init")
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        detail = "; ".join(lines[-_SHOWN_ERROR_LINES:]) or f"exit status {done.returncode}"
        message = f"restic {action} failed for {where}: {detail}"
        return OperationFailedError(message)


def plan_prune(
    repository: ResticRepository,
    policy: Policy,
    *,
    tag: str = DEFAULT_TAG,
    dry_run: bool,
    now: datetime | None = None,
) -> ResticPrune:
    """Apply ``policy`` to the repository's snapshots tagged ``tag``; forget what it removes.

    Times are planned in UTC, like the archive backend's. Raises :class:`OperationFailedError`
    if the plan would remove the newest snapshot or every one (it never should), before
    anything is forgotten.
    """
    listed = repository.snapshots(tag=tag)
    snapshots = [Snapshot(s.id, s.time.astimezone(UTC)) for s in listed]
    decisions = plan(snapshots, policy, now=now)
    doomed = [d.snapshot.id for d in decisions if not d.keep]
    if decisions and (not decisions[0].keep or len(doomed) == len(decisions)):
        message = "The retention plan would remove the newest snapshot; nothing was forgotten."
        raise OperationFailedError(message)
    if dry_run:
        return ResticPrune(decisions, [], dry_run=True)

    logger.info("Forgetting %d restic snapshots: %s", len(doomed), ", ".join(doomed))
    repository.forget(doomed)
    return ResticPrune(decisions, doomed, dry_run=False)


def _restic_environment(repository: str | None, environ: Mapping[str, str]) -> dict[str, str]:
    environment = dict(environ)
    if repository:
        environment[RESTIC_REPOSITORY_ENV] = repository
    if not environment.get(RESTIC_REPOSITORY_ENV):
        message = "The restic backend needs a repository: backup.destination is empty."
        raise ConfigError(message, hint="Set backup.destination to a path or restic URL.")
    if not any(environment.get(name) for name in PASSWORD_SOURCES):
        message = "The restic backend needs the repository password, and none is set."
        hint = f"Set {PASSWORD_SOURCES[0]} (or {PASSWORD_SOURCES[1]}) in .env or the environment."
        raise ConfigError(message, hint=hint)
    secrets.register(environment.get(RESTIC_PASSWORD_ENV))
    # Snapshots record their time in restic's local zone; UTC keeps them comparable with
    # the archive backend's and makes --time unambiguous.
    environment["TZ"] = "UTC"
    environment.setdefault("HOME", os.environ.get("HOME", "/root"))
    return environment


def _is_missing_repository(done: subprocess.CompletedProcess[str]) -> bool:
    return (
        done.returncode == _MISSING_REPOSITORY_EXIT
        or "Is there a repository at the following location" in done.stderr
    )


def _summary_snapshot_id(output: str) -> str:
    """The snapshot id from the summary line of ``restic backup --json``."""
    for line in reversed(output.splitlines()):
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(message, dict) and message.get("message_type") == "summary":
            return str(message["snapshot_id"])
    message_text = "restic backup finished without reporting a snapshot id."
    raise OperationFailedError(message_text)
