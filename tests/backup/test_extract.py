"""Hostile archives: traversal, absolute paths, escaping symlinks and hard links, device
files. Each is refused and reported, and nothing is written outside the target.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zstandard

from opsctl.backup._checksum import checksum_of
from opsctl.backup._manifest import FileEntry, Manifest, SourceEntry
from tests.backup._helpers import BackupProject, make_project

BACKUP_ID = "20260101T000000Z-beef"


def member(
    name: str, kind: bytes = tarfile.REGTYPE, *, data: bytes = b"", link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o644
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = link
    return info, data


_KINDS = {
    tarfile.REGTYPE: "file",
    tarfile.LNKTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
}


def plant(
    project: BackupProject,
    members: list[tuple[tarfile.TarInfo, bytes]],
    *,
    types: dict[str, str] | None = None,
) -> None:
    """Write an archive with exactly ``members`` and a manifest that lists every one, each
    with its own type unless ``types`` records another for it.
    """
    types = types or {}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    archive = zstandard.ZstdCompressor().compress(buffer.getvalue())
    project.backups.mkdir(mode=0o700, exist_ok=True)
    (project.backups / f"{BACKUP_ID}.tar.zst").write_bytes(archive)
    now = datetime.now(UTC)
    entries = tuple(
        FileEntry(
            info.name,
            "files",
            info.name,
            types.get(info.name, _KINDS.get(info.type, "other")),
            size_bytes=info.size,
            checksum=checksum_of(data) if info.isreg() else None,
            link=info.linkname if info.issym() else None,
        )
        for info, data in members
    )
    manifest = Manifest(
        BACKUP_ID,
        now,
        now,
        "host",
        "proj",
        "0",
        "",
        f"{BACKUP_ID}.tar.zst",
        len(archive),
        (SourceEntry("files", "paths", 0, 0),),
        entries,
    )
    (project.backups / f"{BACKUP_ID}.json").write_text(manifest.to_json())


def everything_under(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*")}


def outside_project(tmp_path: Path) -> set[str]:
    return {name for name in everything_under(tmp_path) if name.split("/")[0] != "proj"}


def restore_to(project: BackupProject, target: Path) -> tuple[int, dict[str, str]]:
    result = project.cli("backup", "restore", BACKUP_ID, "--to", str(target), "--json")
    document = json.loads(result.stdout)
    refused = {r["name"]: r["reason"] for s in document["sources"] for r in s["refused"]}
    return result.exit_code, refused


def test_hostile_members_are_refused_and_nothing_lands_outside(tmp_path: Path) -> None:
    """Traversal, absolute names, escaping and absolute symlinks, foreign hard links,
    devices and FIFOs are each refused with a reason; the honest file is restored.
    """
    project = make_project(tmp_path / "proj")
    plant(
        project,
        [
            member("files/root/good.txt", data=b"fine"),
            member("files/root/../../../escaped.txt", data=b"evil"),
            member("files/root/a/../../../../escaped2.txt", data=b"evil"),
            member("/tmp/absolute-evil.txt", data=b"evil"),
            member("files/root//etc/evil.conf", data=b"evil"),
            member("files/root/up", tarfile.SYMTYPE, link="../../.."),
            member("files/root/etc-link", tarfile.SYMTYPE, link="/etc"),
            member("files/root/hard", tarfile.LNKTYPE, link="/etc/passwd"),
            member("files/root/hard2", tarfile.LNKTYPE, link="files/root/../../outside"),
            member("files/root/null", tarfile.CHRTYPE),
            member("files/root/disk", tarfile.BLKTYPE),
            member("files/root/pipe", tarfile.FIFOTYPE),
            member("elsewhere/file.txt", data=b"evil"),
        ],
    )
    target = tmp_path / "restore"
    outside_before = outside_project(tmp_path)

    code, refused = restore_to(project, target)

    assert code == 1
    assert (target / "good.txt").read_bytes() == b"fine"
    assert everything_under(target) == {"good.txt"}
    assert outside_project(tmp_path) - outside_before == {"restore", "restore/good.txt"}
    assert "'..'" in refused["files/root/../../../escaped.txt"]
    assert "'..'" in refused["files/root/a/../../../../escaped2.txt"]
    assert "absolute" in refused["/tmp/absolute-evil.txt"]
    assert "absolute" in refused["files/root//etc/evil.conf"]
    assert "leaves the restore target" in refused["files/root/up"]
    assert "absolute path '/etc'" in refused["files/root/etc-link"]
    assert "hard link" in refused["files/root/hard"]
    assert "hard link" in refused["files/root/hard2"]
    assert "character device" in refused["files/root/null"]
    assert "block device" in refused["files/root/disk"]
    assert "FIFO" in refused["files/root/pipe"]
    assert "outside every folder" in refused["elsewhere/file.txt"]


def test_a_file_written_through_a_link_the_archive_made_is_refused(tmp_path: Path) -> None:
    """A symlink inside the target is allowed, but nothing is written through it."""
    project = make_project(tmp_path / "proj")
    plant(
        project,
        [
            member("files/root/real", tarfile.DIRTYPE),
            member("files/root/alias", tarfile.SYMTYPE, link="real"),
            member("files/root/alias/through.txt", data=b"via link"),
        ],
    )
    target = tmp_path / "restore"

    code, refused = restore_to(project, target)

    assert code == 1
    assert (target / "alias").is_symlink()
    assert not (target / "real" / "through.txt").exists()
    assert "symlink" in refused["files/root/alias/through.txt"]


def test_a_hard_link_to_a_restored_member_is_restored(tmp_path: Path) -> None:
    """A hard link to a file this restore wrote is fine and shares its content."""
    project = make_project(tmp_path / "proj")
    plant(
        project,
        [
            member("files/root/one.txt", data=b"same"),
            member("files/root/two.txt", tarfile.LNKTYPE, link="files/root/one.txt"),
        ],
    )
    target = tmp_path / "restore"

    code, refused = restore_to(project, target)

    assert code == 0, refused
    assert (target / "two.txt").read_bytes() == b"same"
    assert (target / "two.txt").stat().st_ino == (target / "one.txt").stat().st_ino


def test_in_place_an_archive_cannot_write_outside_the_configured_paths(tmp_path: Path) -> None:
    """Restoring in place writes only under what backup.paths names now: an archive entry
    for another folder of the root, or an absolute path, is refused.
    """
    project = make_project(tmp_path / "proj")
    victim = tmp_path / "victim.txt"
    plant(
        project,
        [
            member("files/root/data/notes.txt", data=b"restored"),
            member("files/root/opsctl.toml", data=b"[evil]"),
            member(f"files/abs{victim}", data=b"evil"),
        ],
    )
    config_before = project.config.read_text()

    result = project.cli("backup", "restore", BACKUP_ID, "--yes", "--json")

    assert result.exit_code == 1
    assert (project.data / "notes.txt").read_bytes() == b"restored"
    assert project.config.read_text() == config_before
    assert not victim.exists()
    refused = json.loads(result.stdout)["sources"][0]["refused"]
    assert {r["name"] for r in refused} == {"files/root/opsctl.toml", f"files/abs{victim}"}


def test_a_symlink_member_at_the_target_root_cannot_redirect_it(tmp_path: Path) -> None:
    """``files/root`` as a symlink to ``.`` then ``files/root/evil.txt``: under --to, nothing
    lands beside the target folder.
    """
    project = make_project(tmp_path / "proj")
    plant(
        project,
        [
            member("files/root", tarfile.SYMTYPE, link="."),
            member("files/root/evil.txt", data=b"evil"),
        ],
    )
    outer = tmp_path / "outer"
    outer.mkdir()

    code, refused = restore_to(project, outer / "newdir")

    assert code == 1
    assert not (outer / "evil.txt").exists()
    assert not (outer / "newdir").is_symlink()
    assert "files/root" in refused


def test_in_place_a_symlink_member_cannot_replace_a_missing_configured_folder(
    tmp_path: Path,
) -> None:
    """The configured folder is missing and the archive makes it a symlink to a sibling:
    refused, and nothing is written into the sibling.
    """
    project = make_project(tmp_path / "proj", paths='["data", "srv/uploads"]')
    (project.root / "srv").mkdir()
    plant(
        project,
        [
            member("files/root/srv/uploads", tarfile.SYMTYPE, link="other"),
            member("files/root/srv/uploads/evil.txt", data=b"evil"),
        ],
    )

    result = project.cli("backup", "restore", BACKUP_ID, "--yes", "--json")

    assert result.exit_code == 1
    assert not (project.root / "srv" / "other").exists()
    assert not (project.root / "srv" / "uploads").is_symlink()


def test_a_symlink_already_on_disk_is_not_followed(tmp_path: Path) -> None:
    """``data/sub`` replaced by a symlink to a folder outside: restoring in place puts the
    folder back and writes nothing through the link.
    """
    project = make_project(tmp_path / "proj")
    backup_id = project.run_json()["id"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(project.data / "sub")
    (project.data / "sub").symlink_to("../../elsewhere")

    result = project.cli("backup", "restore", backup_id, "--yes", "--json")

    assert list(elsewhere.iterdir()) == []
    assert result.exit_code == 0, result.output
    assert not (project.data / "sub").is_symlink()
    assert (project.data / "sub" / "empty.dat").is_file()


def test_a_file_under_a_symlink_already_on_disk_is_refused(tmp_path: Path) -> None:
    """A member below a symlink the restore did not make (and no folder member for it):
    refused, the link's target untouched.
    """
    project = make_project(tmp_path / "proj")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (project.data / "link").symlink_to("../../elsewhere")
    plant(project, [member("files/root/data/link/evil.txt", data=b"evil")])

    result = project.cli("backup", "restore", BACKUP_ID, "--yes", "--json")

    assert result.exit_code == 1
    assert list(elsewhere.iterdir()) == []


def test_a_member_whose_type_differs_from_the_manifest_is_refused(tmp_path: Path) -> None:
    """The manifest records a file, the archive holds a symlink: verify fails and restore
    refuses it.
    """
    project = make_project(tmp_path / "proj")
    plant(
        project,
        [member("files/root/data/notes.txt", tarfile.SYMTYPE, link="x")],
        types={"files/root/data/notes.txt": "file"},
    )

    verify = project.cli("backup", "verify", BACKUP_ID)
    code, refused = restore_to(project, tmp_path / "out")

    assert verify.exit_code == 1
    assert code == 1
    assert "type" in refused["files/root/data/notes.txt"]
    assert not (tmp_path / "out" / "data" / "notes.txt").is_symlink()


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership is restored only as root")
def test_as_root_owners_and_special_mode_bits_come_back(tmp_path: Path) -> None:
    """A setgid folder owned 1234:1234 and a setuid file come back with owner and mode."""
    project = make_project(tmp_path / "proj")
    shared = project.data / "shared"
    shared.mkdir()
    tool = shared / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    os.chown(shared, 1234, 1234)
    os.chown(tool, 1234, 1234)
    shared.chmod(0o2770)
    tool.chmod(0o4755)
    backup_id = project.run_json()["id"]
    out = tmp_path / "out"

    result = project.cli("backup", "restore", backup_id, "--to", str(out))

    assert result.exit_code == 0, result.output
    folder, program = (out / "data" / "shared").stat(), (out / "data" / "shared" / "tool").stat()
    assert (folder.st_uid, folder.st_gid, folder.st_mode & 0o7777) == (1234, 1234, 0o2770)
    assert (program.st_uid, program.st_gid, program.st_mode & 0o7777) == (1234, 1234, 0o4755)
