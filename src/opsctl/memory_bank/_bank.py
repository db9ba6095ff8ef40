"""The memory bank as a whole: which files it has, how fresh they are, and what to record.

opsctl's own records (activations) live under the project's state folder, never in the
memory-bank folder, because assistants read every file there.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from opsctl.config import Project
from opsctl.errors import ConfigError
from opsctl.memory_bank._parse import Finding, ParsedFile, parse
from opsctl.memory_bank._profiles import expected_files

CHARS_PER_TOKEN = 4
"""Tokens are estimated as one per four characters, rounded up: close for English prose
with the tokenizers assistants use, and the same on every machine."""


@dataclass(frozen=True)
class FileReport:
    """One file of the bank as it is now."""

    name: str
    expected: bool
    present: bool
    size_bytes: int = 0
    tokens: int = 0
    entries: int = 0
    newest_entry: datetime | None = None
    age_seconds: float | None = None
    age_source: str | None = None
    stale: bool = False
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of this report."""
        return {
            "name": self.name,
            "expected": self.expected,
            "present": self.present,
            "size_bytes": self.size_bytes,
            "tokens": self.tokens,
            "entries": self.entries,
            "newest_entry": self.newest_entry.isoformat() if self.newest_entry else None,
            "age_seconds": round(self.age_seconds) if self.age_seconds is not None else None,
            "age_source": self.age_source,
            "stale": self.stale,
            "findings": [finding.__dict__ for finding in self.findings],
            "error": self.error,
        }


@dataclass(frozen=True)
class BankReport:
    """The whole bank: active when every expected file is present and readable."""

    folder: Path
    profile: str
    active: bool
    files: list[FileReport]
    checked_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of this report."""
        return {
            "status": "active" if self.active else "inactive",
            "folder": str(self.folder),
            "profile": self.profile,
            "checked_at": self.checked_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "files": [report.to_dict() for report in self.files],
        }


def bank_folder(project: Project) -> Path:
    """The memory-bank folder of ``project``."""
    return project.root / project.config.memory_bank.path


def history_file(project: Project) -> Path:
    """Where activations are recorded, outside the bank."""
    return project.state_dir / "memory-bank" / "activations.jsonl"


def bank_zone(project: Project) -> tzinfo | None:
    """The zone timestamps are read and written in: ``timezone`` if set, else UTC for
    ``timestamps = "utc"``, else ``None``: this machine's local time, whose offset is the
    one in force on each date (summer and winter time differ).
    """
    section = project.config.memory_bank
    if section.timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            return ZoneInfo(section.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            message = (
                f"memory_bank.timezone '{section.timezone}' in {project.config_path} "
                "is not a known time zone."
            )
            raise ConfigError(
                message, hint="Use an IANA name such as 'Europe/Berlin' or 'UTC'."
            ) from None
    if section.timestamps == "utc":
        return UTC
    return None


def read_file(path: Path, *, zone: tzinfo | None) -> tuple[str, ParsedFile]:
    """Read and parse one bank file (undecodable bytes are replaced, never fatal)."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    return text, parse(text, zone=zone)


def inspect_bank(project: Project, *, now: datetime | None = None) -> BankReport:
    """Return the state of every expected file, and of any other markdown file in the bank."""
    section = project.config.memory_bank
    folder = bank_folder(project)
    zone = bank_zone(project)
    now = now or datetime.now(UTC)
    stale_after = timedelta(days=section.stale_after_days)

    expected = expected_files(section)
    others = (
        sorted(p.name for p in folder.glob("*.md") if p.name not in expected)
        if folder.is_dir()
        else []
    )
    files = [
        _inspect_file(folder / name, name in expected, zone=zone, now=now, stale_after=stale_after)
        for name in [*expected, *others]
    ]
    active = folder.is_dir() and all(f.present and f.error is None for f in files if f.expected)
    return BankReport(
        folder=folder, profile=section.profile, active=active, files=files, checked_at=now
    )


def _inspect_file(
    path: Path, expected: bool, *, zone: tzinfo | None, now: datetime, stale_after: timedelta
) -> FileReport:
    if not path.is_file():
        return FileReport(name=path.name, expected=expected, present=False)
    try:
        text, parsed = read_file(path, zone=zone)
        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError as error:
        return FileReport(
            name=path.name, expected=expected, present=True, error=error.strerror or str(error)
        )

    newest = parsed.newest
    reference, source = (newest, "entry") if newest else (modified, "modified")
    age = (now - reference).total_seconds()
    return FileReport(
        name=path.name,
        expected=expected,
        present=True,
        size_bytes=path.stat().st_size,
        tokens=estimate_tokens(text),
        entries=len(parsed.entries),
        newest_entry=newest,
        age_seconds=age,
        age_source=source,
        stale=age > stale_after.total_seconds(),
        findings=parsed.findings,
    )


def estimate_tokens(text: str) -> int:
    """Estimate the tokens of ``text`` by the documented rule (:data:`CHARS_PER_TOKEN`)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def record_activation(project: Project, report: BankReport) -> None:
    """Append one activation to the history, as a single line written in one call."""
    record = {
        "at": report.checked_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "active": report.active,
        "files": {
            f.name: {
                "present": f.present,
                "entries": f.entries,
                "size_bytes": f.size_bytes,
                "age_seconds": round(f.age_seconds) if f.age_seconds is not None else None,
                "stale": f.stale,
            }
            for f in report.files
        },
    }
    path = history_file(project)
    project.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    line = (json.dumps(record) + "\n").encode("utf-8")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _well_shaped(record: object) -> bool:
    """A record as :func:`record_activation` writes it: files map to finite numbers."""
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        return False
    for name, figures in record["files"].items():
        if not isinstance(name, str) or not isinstance(figures, dict):
            return False
        for key in ("entries", "size_bytes", "age_seconds"):
            value = figures.get(key)
            if value is not None and (
                not isinstance(value, int | float) or not math.isfinite(value)
            ):
                return False
    return True


def load_history(project: Project) -> tuple[list[dict[str, Any]], list[int]]:
    """Return the recorded activations, oldest first, and the numbers of unreadable lines."""
    path = history_file(project)
    records: list[dict[str, Any]] = []
    broken: list[int] = []
    if not path.is_file():
        return records, broken
    for number, line in enumerate(
        path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1
    ):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            broken.append(number)
            continue
        if _well_shaped(record):
            records.append(record)
        else:
            broken.append(number)
    return records, broken
