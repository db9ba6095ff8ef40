"""The manifest: what one backup holds, written last so that it commits the backup.

A backup exists only once ``<id>.json`` is in the destination; its archive is renamed into
place before that, so a manifest always names a whole archive. The JSON shape is stable:
fields may be added, never renamed; a rename raises the version, and older versions stay
readable. Version 2 names the per-file checksum's algorithm (``checksum``, xxh3-128);
version 1 recorded SHA-256 in each file's ``sha256``.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from opsctl.backup._checksum import ALGORITHM, ALGORITHMS, LEGACY_ALGORITHM

FORMAT = "opsctl-backup"
VERSION = 2
READABLE_VERSIONS = (1, VERSION)
ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{4}$")


@dataclass(frozen=True)
class FileEntry:
    """One member of the archive: its name there, where it came from, and how to check it."""

    name: str
    source: str
    path: str
    type: str  # "file" | "dir" | "symlink"
    size_bytes: int = 0
    checksum: str | None = None  # hex, with the manifest's checksum algorithm
    mode: int = 0o600
    mtime: float = 0.0
    link: str | None = None
    changed: bool = False  # the file changed while it was read


@dataclass(frozen=True)
class SourceEntry:
    """One source of the backup and what it recorded about itself."""

    name: str
    kind: str  # "paths" | "redis"
    files: int
    size_bytes: int
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """Everything known about one committed backup."""

    id: str
    started_at: datetime
    finished_at: datetime
    host: str
    project: str
    opsctl_version: str
    config_sha256: str
    archive_name: str
    archive_size_bytes: int
    sources: tuple[SourceEntry, ...]
    files: tuple[FileEntry, ...]
    archive_sha256: str | None = None  # zstd's frame checksum covers the archive instead
    checksum_algorithm: str = ALGORITHM  # of every file's ``checksum``

    @property
    def file_count(self) -> int:
        """Regular files held, over every source."""
        return sum(1 for entry in self.files if entry.type == "file")

    @property
    def content_bytes(self) -> int:
        """Bytes of file content held, before compression."""
        return sum(entry.size_bytes for entry in self.files if entry.type == "file")

    @property
    def duration_seconds(self) -> float:
        """How long the run that made it took."""
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """The JSON document written to ``<id>.json``."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "id": self.id,
            "checksum": self.checksum_algorithm,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "host": self.host,
            "project": self.project,
            "opsctl_version": self.opsctl_version,
            "config_sha256": self.config_sha256,
            "archive": {
                "name": self.archive_name,
                "size_bytes": self.archive_size_bytes,
                "format": "tar+zstd",
                **({"sha256": self.archive_sha256} if self.archive_sha256 else {}),
            },
            "totals": {"files": self.file_count, "size_bytes": self.content_bytes},
            "sources": [asdict(source) for source in self.sources],
            "files": [
                {key: value for key, value in asdict(entry).items() if value is not None}
                for entry in self.files
            ],
        }

    def to_json(self) -> str:
        """The manifest as indented JSON text."""
        return json.dumps(self.to_dict(), indent=1, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest; raise :class:`ValueError` naming what is wrong."""
        try:
            data = json.loads(text)
            version = data.get("format") == FORMAT and data.get("version")
            if version not in READABLE_VERSIONS:
                message = f"not an {FORMAT} manifest of version {VERSION} or older"
                raise ValueError(message)
            algorithm, files = _checksums(data, version)
            archive = data["archive"]
            return cls(
                id=str(data["id"]),
                started_at=_moment(data, "started_at"),
                finished_at=_moment(data, "finished_at"),
                host=str(data["host"]),
                project=str(data["project"]),
                opsctl_version=str(data["opsctl_version"]),
                config_sha256=str(data["config_sha256"]),
                archive_name=str(archive["name"]),
                archive_size_bytes=int(archive["size_bytes"]),
                archive_sha256=archive.get("sha256"),
                sources=tuple(SourceEntry(**source) for source in data["sources"]),
                files=tuple(FileEntry(**entry) for entry in files),
                checksum_algorithm=algorithm,
            )
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as error:
            message = f"malformed manifest: {type(error).__name__}: {error}"
            raise ValueError(message) from None


def _moment(data: dict[str, Any], key: str) -> datetime:
    """A recorded time; one without a timezone cannot be ordered against the others."""
    moment = datetime.fromisoformat(data[key])
    if moment.tzinfo is None:
        message = f"{key} {data[key]!r} has no timezone"
        raise ValueError(message)
    return moment


def _checksums(data: dict[str, Any], version: int) -> tuple[str, list[dict[str, Any]]]:
    """The checksum algorithm and the file entries, with version 1's ``sha256`` renamed."""
    if version == 1:
        files = [
            {("checksum" if key == "sha256" else key): value for key, value in entry.items()}
            for entry in data["files"]
        ]
        return LEGACY_ALGORITHM, files
    algorithm = data["checksum"]
    if algorithm not in ALGORITHMS:
        message = f"unknown checksum algorithm {algorithm!r}"
        raise ValueError(message)
    return str(algorithm), list(data["files"])


def new_backup_id(now: datetime | None = None) -> str:
    """A new id: the UTC start time, sortable, and four random hex digits."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
