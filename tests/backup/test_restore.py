"""Restore housekeeping: temporary files a killed restore left behind, and what loading a
config with a retention duration imports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from opsctl.backup._durable import Syncer
from opsctl.backup._reader import DecompressError, read_archive
from tests.backup._helpers import make_project


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    command = [sys.executable, "-c", "import os; print(os.getpid())"]
    process = subprocess.run(command, check=True, capture_output=True, text=True)
    return int(process.stdout)


def test_a_restore_removes_temporary_files_of_dead_restores_only(tmp_path: Path) -> None:
    """A killed restore's ``.NAME.opsctl-restore-PID`` files go; a live pid's stay."""
    project = make_project(tmp_path / "proj")
    backup_id = project.run_json()["id"]
    target = tmp_path / "out"
    first = project.cli("backup", "restore", backup_id, "--to", str(target))
    assert first.exit_code == 0, first.output
    folder = target / "data" / "sub"
    dead = folder / f".empty.dat.opsctl-restore-{dead_pid()}"
    dead.write_bytes(b"half written")
    alive = folder / f".empty.dat.opsctl-restore-{os.getppid()}"
    alive.write_bytes(b"another restore at work")
    unrelated = folder / ".keep.opsctl-restore-notapid"
    unrelated.write_bytes(b"")

    second = project.cli("backup", "restore", backup_id, "--to", str(target), "--yes")

    assert second.exit_code == 0, second.output
    assert not dead.exists()
    assert alive.exists()
    assert unrelated.exists()


def test_a_run_removes_restore_leftovers_in_the_destination(tmp_path: Path) -> None:
    """Temporary restore files of dead processes in the destination go with other leftovers."""
    project = make_project(tmp_path / "proj")
    project.run_json()
    leftover = project.backups / f".dump.rdb.opsctl-restore-{dead_pid()}"
    leftover.write_bytes(b"")

    removed = project.run_json()["leftovers_removed"]

    assert removed == [leftover.name]
    assert not leftover.exists()


def test_a_restore_syncs_what_it_wrote_before_it_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every file is fsynced, then every folder written to, after the last file is in place."""
    project = make_project(tmp_path / "proj")
    backup_id = project.run_json()["id"]
    target = tmp_path / "out"
    synced: list[set[Path]] = []

    def recording(syncer: Syncer, folders: Iterable[Path]) -> None:
        folders = set(folders)
        assert (target / "data/sub/deeper/model.bin").exists()
        synced.append(folders)
        finish(syncer, folders)

    finish = Syncer.finish
    monkeypatch.setattr(Syncer, "finish", recording)
    result = project.cli("backup", "restore", backup_id, "--to", str(target))

    assert result.exit_code == 0, result.output
    assert len(synced) == 1
    assert target / "data/sub/deeper" in synced[0]


@pytest.mark.parametrize("program", ["zstd", None], ids=["zstd-program", "zstandard-library"])
def test_both_decompressors_read_the_same_members_and_data(
    tmp_path: Path, program: str | None
) -> None:
    """The zstd program and the library fallback give the same members and bytes."""
    if program is not None and shutil.which(program) is None:
        pytest.skip("no zstd program on PATH")
    project = make_project(tmp_path / "proj")
    backup_id = project.run_json()["id"]
    archive = project.backups / f"{backup_id}.tar.zst"

    with read_archive(archive, program=program) as opened:
        contents = {
            member.name: b"".join(opened.data(member)) for member in opened if member.isreg()
        }

    assert contents["files/root/data/notes.txt"] == b"hello\n"
    assert (
        contents["files/root/data/sub/deeper/model.bin"]
        == (project.data / "sub/deeper/model.bin").read_bytes()
    )


@pytest.mark.parametrize("program", ["zstd", None], ids=["zstd-program", "zstandard-library"])
def test_a_damaged_frame_is_a_decompress_error(tmp_path: Path, program: str | None) -> None:
    """A flipped byte in the compressed stream is reported, whichever decompresses."""
    if program is not None and shutil.which(program) is None:
        pytest.skip("no zstd program on PATH")
    project = make_project(tmp_path / "proj")
    backup_id = project.run_json()["id"]
    archive = project.backups / f"{backup_id}.tar.zst"
    flip_compressed_byte(archive)

    with pytest.raises(DecompressError, match="zstd cannot decompress it"):
        read_everything(archive, program)


def read_everything(archive: Path, program: str | None) -> None:
    with read_archive(archive, program=program) as opened:
        for member in opened:
            for _ in opened.data(member) if member.isreg() else ():
                pass


def test_restoring_a_damaged_archive_fails_with_a_clear_message(tmp_path: Path) -> None:
    """Exit 1, the backup named, no traceback, nothing half-written left behind."""
    project = make_project(tmp_path / "proj")
    backup_id = project.run_json()["id"]
    flip_compressed_byte(project.backups / f"{backup_id}.tar.zst")
    target = tmp_path / "out"

    result = project.cli("backup", "restore", backup_id, "--to", str(target))

    assert result.exit_code == 1
    assert f"The archive of backup {backup_id} is damaged: zstd cannot" in result.stderr
    assert "Traceback" not in result.output
    assert not [p for p in target.rglob("*") if ".opsctl-restore-" in p.name]


def flip_compressed_byte(archive: Path) -> None:
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))


def test_loading_a_retention_duration_does_not_import_the_backup_package(
    tmp_path: Path,
) -> None:
    """Validating ``within`` needs only the duration parser, not ``opsctl.backup``."""
    project = make_project(tmp_path / "proj", '[backup.retention]\nwithin = "7d"')
    code = (
        "import sys; from pathlib import Path; from opsctl.config import load_project; "
        f"load_project(Path({str(project.config)!r})); "
        "print(sorted(m for m in sys.modules if m.startswith('opsctl.backup')))"
    )

    loaded = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )

    assert loaded.stdout.strip() == "[]"
