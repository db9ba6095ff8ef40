"""``backup verify``: re-read an archive end to end and re-hash everything in it."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from typing import Any

from opsctl.backup._checksum import new_hasher
from opsctl.backup._extract import member_type_problem
from opsctl.backup._manifest import FileEntry
from opsctl.backup._reader import Archive, DecompressError, read_archive
from opsctl.backup._store import StoredBackup

_MOST_PROBLEMS_SHOWN = 20


@dataclass(frozen=True)
class VerifyResult:
    """One backup's verdict: ``ok`` when the archive and every member match the manifest."""

    id: str
    ok: bool
    files_checked: int
    size_bytes: int
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": "pass" if self.ok else "fail",
            "files_checked": self.files_checked,
            "size_bytes": self.size_bytes,
            "problems": self.problems,
        }


def verify_backup(stored: StoredBackup) -> VerifyResult:
    """Check ``stored``: the archive decompresses with a valid zstd checksum, each member's
    content matches the manifest's checksum (xxh3-128; SHA-256 in version 1 manifests), and
    the archive holds exactly what the manifest lists. Never raises for a damaged archive:
    the damage is the result.
    """
    manifest = stored.manifest
    if stored.problem is not None:
        return VerifyResult(manifest.id, False, 0, 0, [stored.problem])
    expected = {entry.name: entry for entry in manifest.files}
    problems: list[str] = []
    seen: set[str] = set()
    checked = size = 0
    try:
        with read_archive(stored.archive) as archive:
            checked, size = _check_members(
                archive, expected, seen, problems, algorithm=manifest.checksum_algorithm
            )
    except (OSError, DecompressError, tarfile.TarError, EOFError) as error:
        problems.append(f"the archive cannot be read: {error}")
    missing = sorted(set(expected) - seen)
    problems += [f"{name}: listed in the manifest, absent from the archive" for name in missing]
    if len(problems) > _MOST_PROBLEMS_SHOWN:
        more = len(problems) - _MOST_PROBLEMS_SHOWN
        problems = [*problems[:_MOST_PROBLEMS_SHOWN], f"... and {more} more"]
    return VerifyResult(manifest.id, not problems, checked, size, problems)


def _check_members(
    archive: Archive,
    expected: dict[str, FileEntry],
    seen: set[str],
    problems: list[str],
    *,
    algorithm: str,
) -> tuple[int, int]:
    checked = size = 0
    for member in archive:
        seen.add(member.name)
        entry = expected.get(member.name)
        if entry is None:
            problems.append(f"{member.name}: in the archive, not in the manifest")
            continue
        mismatch = member_type_problem(member, entry)
        if mismatch is not None:
            problems.append(f"{member.name}: {mismatch}")
            continue
        if not member.isreg():
            continue
        digest = new_hasher(algorithm)
        for piece in archive.data(member):
            digest.update(piece)
        checked += 1
        size += member.size
        if digest.hexdigest() != entry.checksum:
            problems.append(f"{member.name}: content differs from its checksum")
    return checked, size
