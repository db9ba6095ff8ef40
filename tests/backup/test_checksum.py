"""The per-file checksum catches damaged content on its own, where zstd's frame checksum
cannot (the archive was recompressed around it), and manifests of version 1 (SHA-256)
still verify and restore.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard

from opsctl.backup._checksum import checksum_of, new_hasher
from tests.backup._helpers import BackupProject, make_project

MODEL = "files/root/data/sub/deeper/model.bin"


def _manifest_path(project: BackupProject, backup_id: str) -> Path:
    return project.backups / f"{backup_id}.json"


def _edit_manifest(project: BackupProject, backup_id: str, change: Any) -> None:
    path = _manifest_path(project, backup_id)
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def flip_a_content_byte(project: BackupProject, backup_id: str, member_name: str) -> None:
    """Flip one byte inside ``member_name``'s data and recompress the archive with a valid
    zstd frame (and fix the manifest's archive size): only the per-file checksum can tell.
    """
    archive = project.backups / f"{backup_id}.tar.zst"
    plain = bytearray(zstandard.ZstdDecompressor().stream_reader(archive.read_bytes()).read())
    with tarfile.open(fileobj=io.BytesIO(bytes(plain)), mode="r") as tar:
        member = tar.getmember(member_name)
    plain[member.offset_data + member.size // 2] ^= 0x01
    compressed = zstandard.ZstdCompressor(write_checksum=True).compress(bytes(plain))
    archive.write_bytes(compressed)
    _edit_manifest(
        project, backup_id, lambda manifest: manifest["archive"].update(size_bytes=len(compressed))
    )


def downgrade_to_version_1(project: BackupProject, backup_id: str) -> None:
    """Rewrite the manifest as version 1 wrote it: SHA-256 in each file's ``sha256``."""
    restored = _restore_contents(project, backup_id)

    def change(manifest: dict[str, Any]) -> None:
        manifest["version"] = 1
        del manifest["checksum"]
        for entry in manifest["files"]:
            if entry.pop("checksum", None) is not None:
                entry["sha256"] = hashlib.sha256(restored[entry["name"]]).hexdigest()

    _edit_manifest(project, backup_id, change)


def _restore_contents(project: BackupProject, backup_id: str) -> dict[str, bytes]:
    archive = project.backups / f"{backup_id}.tar.zst"
    plain = zstandard.ZstdDecompressor().stream_reader(archive.read_bytes()).read()
    contents = {}
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r") as tar:
        for member in tar:
            if member.isreg():
                handle = tar.extractfile(member)
                assert handle is not None
                contents[member.name] = handle.read()
    return contents


def test_the_checksum_is_xxh3_128_and_sha256_stays_known() -> None:
    """New manifests use xxh3-128; SHA-256 is kept for version 1; others are refused."""
    assert len(checksum_of(b"data")) == 32
    assert checksum_of(b"data", "sha256") == hashlib.sha256(b"data").hexdigest()
    with pytest.raises(ValueError, match="unknown checksum algorithm 'md5'"):
        new_hasher("md5")


def test_verify_fails_on_a_flipped_content_byte_inside_a_valid_zstd_frame(
    tmp_path: Path,
) -> None:
    """zstd's checksum passes after recompression; the member's checksum does not."""
    project = make_project(tmp_path / "proj")
    backup_id = project.run_json()["id"]
    flip_a_content_byte(project, backup_id, MODEL)

    result = project.cli("backup", "verify", backup_id, "--json")

    assert result.exit_code == 1, result.output
    problems = json.loads(result.stdout)["backups"][0]["problems"]
    assert problems == [f"{MODEL}: content differs from its checksum"]


def test_restore_refuses_a_flipped_content_byte_and_keeps_the_current_file(
    tmp_path: Path,
) -> None:
    """The damaged member is refused by its checksum; the live file stays as it was."""
    project = make_project(tmp_path / "proj")
    backup_id = project.run_json()["id"]
    flip_a_content_byte(project, backup_id, MODEL)
    live = project.data / "sub/deeper/model.bin"
    live.write_bytes(b"current")

    result = project.cli("backup", "restore", backup_id, "--yes", "--json")

    assert result.exit_code == 1, result.output
    refused = json.loads(result.stdout)["sources"][0]["refused"]
    assert refused == [
        {
            "name": MODEL,
            "reason": "content does not match the manifest's checksum (damaged archive)",
        }
    ]
    assert live.read_bytes() == b"current"
    assert not [p.name for p in live.parent.iterdir() if p.name != "model.bin"]


def test_a_version_1_manifest_verifies_and_restores_with_sha256(tmp_path: Path) -> None:
    """Backups written before xxh3-128 stay verifiable and restorable."""
    project = make_project(tmp_path / "proj")
    backup_id = project.run_json()["id"]
    downgrade_to_version_1(project, backup_id)
    target = tmp_path / "out"

    verified = project.cli("backup", "verify", backup_id)
    restored = project.cli("backup", "restore", backup_id, "--to", str(target))

    assert verified.exit_code == 0, verified.output
    assert restored.exit_code == 0, restored.output
    assert (target / "data/sub/deeper/model.bin").read_bytes() == (
        project.data / "sub/deeper/model.bin"
    ).read_bytes()


def test_a_version_1_manifest_still_catches_a_flipped_byte(tmp_path: Path) -> None:
    """SHA-256 of a version 1 manifest fails verify on damaged content."""
    project = make_project(tmp_path / "proj")
    backup_id = project.run_json()["id"]
    downgrade_to_version_1(project, backup_id)
    flip_a_content_byte(project, backup_id, MODEL)

    result = project.cli("backup", "verify", backup_id, "--json")

    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["backups"][0]["problems"] == [
        f"{MODEL}: content differs from its checksum"
    ]


def test_an_unknown_checksum_algorithm_makes_the_manifest_unreadable(tmp_path: Path) -> None:
    """A manifest naming an algorithm opsctl does not know is listed as damaged only."""
    project = make_project(tmp_path / "proj")
    backup_id = project.run_json()["id"]
    _edit_manifest(project, backup_id, lambda manifest: manifest.update(checksum="md5"))

    result = project.cli("backup", "list", "--json")

    rows = json.loads(result.stdout)["backups"]
    assert [(row["id"], row["status"]) for row in rows] == [(backup_id, "damaged")]
    assert "md5" in rows[0]["problem"]
