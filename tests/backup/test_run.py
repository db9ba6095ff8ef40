"""backup run, list, verify and restore of files, through the real CLI."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

from opsctl.backup import Store
from tests.backup._helpers import make_project, tree
from tests.support import run_cli


def test_run_then_restore_in_place_brings_back_every_file(tmp_path: Path) -> None:
    """Files changed, deleted and added after a backup are put back as they were."""
    project = make_project(tmp_path / "proj")
    before = tree(project.data)
    backup = project.run_json()

    (project.data / "notes.txt").write_text("overwritten\n")
    shutil.rmtree(project.data / "sub")
    (project.data / "link-to-notes").unlink()
    result = project.cli("backup", "restore", backup["id"], "--yes")

    assert result.exit_code == 0, result.output
    assert tree(project.data) == before
    assert stat.S_IMODE((project.data / "private.key").stat().st_mode) == 0o640


def test_excluded_files_are_not_in_the_backup(tmp_path: Path) -> None:
    """Patterns in backup.exclude match base names and folders."""
    project = make_project(tmp_path / "proj")
    target = tmp_path / "out"

    backup = project.run_json()
    project.cli("backup", "restore", backup["id"], "--to", str(target))

    restored = tree(target / "data")
    assert "scratch.tmp" not in restored
    assert not any(name.startswith("cache/") for name in restored)
    assert restored["notes.txt"] == b"hello\n"
    assert restored["link-to-notes"] == "-> notes.txt"
    assert restored["empty-dir"] == "dir"


def test_manifest_records_checksums_and_sources_and_files_are_private(tmp_path: Path) -> None:
    """The manifest names its checksum algorithm and each file with size and xxh3-128
    checksum; files 0600, folder 0700.
    """
    import xxhash

    project = make_project(tmp_path / "proj")
    backup = project.run_json()

    manifest = json.loads((project.backups / f"{backup['id']}.json").read_text())
    entries = {entry["name"]: entry for entry in manifest["files"]}
    model = entries["files/root/data/sub/deeper/model.bin"]
    content = (project.data / "sub/deeper/model.bin").read_bytes()
    assert manifest["checksum"] == "xxh3-128"
    assert model["checksum"] == xxhash.xxh3_128(content).hexdigest()
    assert "sha256" not in model
    assert model["size_bytes"] == len(content)
    assert manifest["sources"][0]["name"] == "files"
    assert manifest["host"] and manifest["opsctl_version"] and len(manifest["config_sha256"]) == 64
    assert manifest["started_at"].endswith("Z")
    assert stat.S_IMODE(project.backups.stat().st_mode) == 0o700
    for path in project.backups.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_run_is_silent_without_a_terminal(tmp_path: Path) -> None:
    """Cron sees nothing on success: no output at all, exit 0."""
    project = make_project(tmp_path / "proj")

    result = project.cli("backup", "run")

    assert result.exit_code == 0
    assert result.output == ""


def test_list_json_shows_complete_backups_newest_first(tmp_path: Path) -> None:
    """Every run appears once, newest first, with size and file count."""
    project = make_project(tmp_path / "proj")
    first = project.run_json()["id"]
    second = project.run_json()["id"]

    result = project.cli("backup", "list", "--json")

    rows = json.loads(result.stdout)["backups"]
    assert [row["id"] for row in rows] == [second, first]
    assert rows[0]["files"] == 5
    assert rows[0]["status"] == "complete"


def test_list_human_output_has_a_row_per_backup(tmp_path: Path) -> None:
    """The table names each id and its sources."""
    project = make_project(tmp_path / "proj")
    backup_id = project.run_json()["id"]

    result = project.cli("backup", "list")

    assert result.exit_code == 0
    assert backup_id in result.stdout
    assert "complete" in result.stdout


def test_verify_passes_then_fails_once_a_byte_changes(tmp_path: Path) -> None:
    """verify re-reads the archive: a flipped byte makes it exit 1 and say so."""
    project = make_project(tmp_path / "proj")
    backup_id = project.run_json()["id"]
    assert project.cli("backup", "verify", backup_id).exit_code == 0

    archive = project.backups / f"{backup_id}.tar.zst"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    result = project.cli("backup", "verify", "--all", "--json")

    assert result.exit_code == 1
    verdict = json.loads(result.stdout)["backups"][0]
    assert verdict["status"] == "fail"
    assert verdict["problems"], verdict


def test_restore_refuses_a_damaged_file_and_keeps_the_current_one(tmp_path: Path) -> None:
    """A member whose content differs from its checksum never replaces the live file."""
    project = make_project(tmp_path / "proj", paths='["data/notes.txt"]')
    backup_id = project.run_json()["id"]
    manifest_path = project.backups / f"{backup_id}.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][0]["checksum"] = "0" * 32
    manifest_path.write_text(json.dumps(manifest))
    (project.data / "notes.txt").write_text("current\n")

    result = project.cli("backup", "restore", backup_id, "--yes")

    assert result.exit_code == 1
    assert "checksum" in result.stdout
    assert (project.data / "notes.txt").read_text() == "current\n"


def test_restore_in_place_without_yes_off_a_terminal_is_refused(tmp_path: Path) -> None:
    """A destructive restore from a script needs --yes; nothing is touched (exit 2)."""
    project = make_project(tmp_path / "proj")
    backup_id = project.run_json()["id"]
    (project.data / "notes.txt").write_text("current\n")

    result = project.cli("backup", "restore", backup_id)

    assert result.exit_code == 2
    assert "--yes" in result.stderr
    assert (project.data / "notes.txt").read_text() == "current\n"


def test_restore_dry_run_changes_nothing(tmp_path: Path) -> None:
    """--dry-run reports what it would restore and writes nothing."""
    project = make_project(tmp_path / "proj")
    backup_id = project.run_json()["id"]
    (project.data / "notes.txt").write_text("current\n")

    result = project.cli("backup", "restore", backup_id, "--dry-run", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sources"][0]["restored"] >= 5
    assert (project.data / "notes.txt").read_text() == "current\n"


def test_restore_accepts_an_id_prefix_and_latest(tmp_path: Path) -> None:
    """An unambiguous prefix and 'latest' both name a backup; an unknown id exits 2."""
    project = make_project(tmp_path / "proj")
    backup_id = project.run_json()["id"]

    by_prefix = project.cli("backup", "restore", backup_id[:18], "--to", str(tmp_path / "a"))
    latest = project.cli("backup", "restore", "latest", "--to", str(tmp_path / "b"))
    unknown = project.cli("backup", "restore", "19990101", "--to", str(tmp_path / "c"))

    assert by_prefix.exit_code == 0, by_prefix.output
    assert latest.exit_code == 0, latest.output
    assert unknown.exit_code == 2
    assert "No backup '19990101'" in unknown.stderr


def test_files_outside_the_root_restore_to_their_absolute_path(tmp_path: Path) -> None:
    """An absolute path in backup.paths comes back where it was."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "state.db").write_bytes(b"v1")
    project = make_project(tmp_path / "proj", paths=f'["data", "{outside}"]')
    backup_id = project.run_json()["id"]
    (outside / "state.db").write_bytes(b"v2")

    result = project.cli("backup", "restore", backup_id, "--yes")

    assert result.exit_code == 0, result.output
    assert (outside / "state.db").read_bytes() == b"v1"


def test_a_missing_literal_path_fails_the_run(tmp_path: Path) -> None:
    """A configured folder that vanished fails the run with its name, and commits nothing."""
    project = make_project(tmp_path / "proj", paths='["data", "uploads"]')

    result = project.cli("backup", "run")

    assert result.exit_code == 1
    assert "'uploads'" in result.stderr
    assert project.listed() == []


def test_nothing_configured_is_a_config_error(tmp_path: Path) -> None:
    """Without paths or redis, run exits 2 and says what to set."""
    (tmp_path / "opsctl.toml").write_text("[backup]\n")

    result = run_cli("-c", str(tmp_path / "opsctl.toml"), "backup", "run")

    assert result.exit_code == 2
    assert "backup.paths" in result.stderr
    assert "Traceback" not in result.output


def test_an_unknown_source_is_a_usage_error(tmp_path: Path) -> None:
    """--source names a configured source or the run stops before writing (exit 2)."""
    project = make_project(tmp_path / "proj")

    result = project.cli("backup", "run", "--source", "redis")

    assert result.exit_code == 2
    assert "'redis' is not a configured backup source" in result.stderr


def test_a_second_run_while_the_lock_is_held_exits_75(tmp_path: Path) -> None:
    """One run per destination: a second one exits 75 with a clear message."""
    project = make_project(tmp_path / "proj")
    store = Store(project.backups)

    with store.locked("test"):
        result = project.cli("backup", "run")

    assert result.exit_code == 75
    assert "Another backup operation holds" in result.stderr
    assert project.listed() == []


def test_help_lists_every_backup_command() -> None:
    """The group offers run, list, verify, restore and prune."""
    result = run_cli("backup", "--help")

    for command in ("run", "list", "verify", "restore", "prune"):
        assert command in result.stdout


def test_backing_up_the_whole_root_leaves_out_the_destination(tmp_path: Path) -> None:
    """paths = ["."] takes everything under the root except the backups themselves."""
    project = make_project(tmp_path / "proj", paths='["."]')
    project.run_json()

    second = project.run_json()

    names = [
        entry["name"]
        for entry in json.loads((project.backups / f"{second['id']}.json").read_text())["files"]
    ]
    assert "files/root/data/notes.txt" in names
    assert "files/root/opsctl.toml" in names
    assert not any(name.startswith("files/root/backups") for name in names)
