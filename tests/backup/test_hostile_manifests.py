"""Manifests written by someone else into the destination: every field that names a file
is checked before it is acted on, and a manifest that does not pass is listed as damaged,
never used.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.backup._helpers import BackupProject, make_project

FORGED_ID = "20200101T000000Z-beef"


def forge(project: BackupProject, template_id: str, backup_id: str, **changes: Any) -> Path:
    """Copy the manifest and archive of ``template_id`` as ``backup_id``, then change fields
    of the manifest (``archive_name`` changes ``archive.name``). Returns the manifest path.
    """
    data = json.loads((project.backups / f"{template_id}.json").read_text())
    data["id"] = backup_id
    data["archive"]["name"] = f"{backup_id}.tar.zst"
    if "archive_name" in changes:
        data["archive"]["name"] = changes.pop("archive_name")
    data.update(changes)
    archive = (project.backups / f"{template_id}.tar.zst").read_bytes()
    (project.backups / f"{backup_id}.tar.zst").write_bytes(archive)
    path = project.backups / f"{backup_id}.json"
    path.write_text(json.dumps(data))
    return path


def listed_damaged(project: BackupProject) -> list[str]:
    result = project.cli("backup", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["backups"]
    return [row["id"] for row in rows if row["status"] == "damaged"]


@pytest.mark.parametrize("target", ["relative", "absolute", "another-backup"])
def test_prune_never_deletes_a_file_a_forged_archive_name_points_at(
    tmp_path: Path, target: str
) -> None:
    """archive.name outside the destination or naming another backup's archive: the
    manifest is damaged, prune removes nothing it names.
    """
    project = make_project(tmp_path / "proj", "\n[backup.retention]\nkeep_last = 1\n")
    older = project.run_json()["id"]
    newest = project.run_json()["id"]
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    name = {
        "relative": "../../victim.txt",
        "absolute": str(victim),
        "another-backup": f"{newest}.tar.zst",
    }[target]
    forge(project, older, FORGED_ID, archive_name=name)

    result = project.cli("backup", "prune", "--yes", "--json")

    assert result.exit_code == 0, result.output
    assert victim.read_text() == "precious"
    assert (project.backups / f"{newest}.tar.zst").exists()
    assert FORGED_ID not in json.loads(result.stdout)["removed"]
    assert (project.backups / f"{FORGED_ID}.json").exists()
    assert FORGED_ID in listed_damaged(project)
    assert project.cli("backup", "verify", newest).exit_code == 0


def test_prune_never_deletes_a_file_a_forged_id_points_at(tmp_path: Path) -> None:
    """An id that is not the file's own name (``../../settings``) is damaged, not pruned."""
    project = make_project(tmp_path / "proj", "\n[backup.retention]\nkeep_last = 1\n")
    older = project.run_json()["id"]
    project.run_json()
    settings = tmp_path / "settings.json"
    settings.write_text("{}")
    path = forge(project, older, FORGED_ID, id="../../settings")
    (project.backups / f"{FORGED_ID}.tar.zst").unlink()

    result = project.cli("backup", "prune", "--yes")

    assert result.exit_code == 0, result.output
    assert settings.exists()
    assert path.exists()
    assert FORGED_ID in listed_damaged(project)


def test_a_truncated_manifest_fails_verify_all_and_keeps_its_archive(tmp_path: Path) -> None:
    """A damaged newest manifest: verify --all exits 1 naming it, and the next run does not
    remove its archive as a leftover.
    """
    project = make_project(tmp_path / "proj")
    project.run_json()
    newest = project.run_json()["id"]
    manifest = project.backups / f"{newest}.json"
    manifest.write_text(manifest.read_text()[:100])

    verify = project.cli("backup", "verify", "--all")
    run = project.run_json()

    assert verify.exit_code == 1
    assert newest in verify.stdout
    assert (project.backups / f"{newest}.tar.zst").exists()
    assert f"{newest}.tar.zst" not in run["leftovers_removed"]
    assert newest in listed_damaged(project)


def test_an_archive_without_manifest_not_left_by_a_run_is_kept(tmp_path: Path) -> None:
    """An archive nobody's killed run was writing may be someone's only copy: kept."""
    project = make_project(tmp_path / "proj")
    first = project.run_json()["id"]
    copy = project.backups / f"{FORGED_ID}.tar.zst"
    copy.write_bytes((project.backups / f"{first}.tar.zst").read_bytes())

    run = project.run_json()

    assert copy.exists()
    assert run["leftovers_removed"] == []


def test_a_manifest_without_timezone_is_damaged_not_a_crash(tmp_path: Path) -> None:
    """``started_at`` without an offset: listed as damaged; list, verify, prune and restore
    of the others work.
    """
    project = make_project(tmp_path / "proj", "\n[backup.retention]\nkeep_last = 1\n")
    good = project.run_json()["id"]
    forge(project, good, FORGED_ID, started_at="2019-01-01T00:00:00")

    verify = project.cli("backup", "verify", "--all")
    prune = project.cli("backup", "prune", "--yes")
    restore = project.cli("backup", "restore", "latest", "--to", str(tmp_path / "out"))

    assert FORGED_ID in listed_damaged(project)
    assert verify.exit_code == 1
    assert "TypeError" not in verify.output
    assert prune.exit_code == 0, prune.output
    assert restore.exit_code == 0, restore.output


def test_a_backup_dated_in_the_future_is_not_latest_and_pushes_nothing_out(
    tmp_path: Path,
) -> None:
    """A manifest dated years ahead is damaged: not latest, and prune keeps real backups."""
    project = make_project(tmp_path / "proj", "\n[backup.retention]\nkeep_last = 1\n")
    real = project.run_json()["id"]
    future = datetime.now(UTC) + timedelta(days=400)
    future_id = f"{future:%Y%m%dT%H%M%SZ}-f00d"
    stamp = future.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    forge(project, real, future_id, started_at=stamp, finished_at=stamp)

    prune = project.cli("backup", "prune", "--yes", "--json")
    verify = project.cli("backup", "verify", "latest", "--json")

    assert prune.exit_code == 0, prune.output
    assert json.loads(prune.stdout)["removed"] == []
    assert json.loads(verify.stdout)["backups"][0]["id"] == real
    assert future_id in listed_damaged(project)


@pytest.mark.timeout(30)
def test_a_fifo_named_like_a_manifest_does_not_hang_list(tmp_path: Path) -> None:
    """A FIFO ``<id>.json`` is not a regular file: listed as damaged, never opened blocking."""
    project = make_project(tmp_path / "proj")
    project.run_json()
    os.mkfifo(project.backups / f"{FORGED_ID}.json")

    assert FORGED_ID in listed_damaged(project)


def test_restore_checks_the_id_before_asking(tmp_path: Path) -> None:
    """``restore ../x`` is refused as an unknown backup (exit 2) before any question."""
    project = make_project(tmp_path / "proj")
    project.run_json()

    result = project.cli("backup", "restore", "../x")

    assert result.exit_code == 2
    assert "../x" in result.stderr
    assert "standard input" not in result.stderr


def test_a_destination_that_is_a_dangling_symlink_is_named_clearly(tmp_path: Path) -> None:
    """backups -> a missing folder: exit 1 saying the link's target does not exist."""
    project = make_project(tmp_path / "proj")
    project.backups.symlink_to(tmp_path / "gone")

    result = project.cli("backup", "run")

    assert result.exit_code == 1
    assert "does not exist" in result.stderr
    assert "File exists" not in result.stderr
