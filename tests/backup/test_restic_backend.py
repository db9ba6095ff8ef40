"""The restic backend end to end through the CLI: the real restic binary, a local repository
in a temporary folder, real files and a real redis-server under the stack's supervisord.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from opsctl.backup._restic import ResticRepository
from tests.backup._helpers import BackupProject, make_project, tree
from tests.backup.test_redis import contents, fill, redis_stack_toml
from tests.runtime.conftest import StackProject
from tests.support import free_port

pytestmark = pytest.mark.slow

PASSWORD = "restic-backend-password-5d2a81"
RESTIC = 'backend = "restic"'
MakeStack = Callable[..., StackProject]


@pytest.fixture(autouse=True)
def restic_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTIC_PASSWORD", PASSWORD)
    monkeypatch.setenv("RESTIC_CACHE_DIR", str(tmp_path / "restic-cache"))
    for name in ("RESTIC_REPOSITORY", "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND"):
        monkeypatch.delenv(name, raising=False)


def snapshots(project: BackupProject) -> list[str]:
    """The full ids of the repository's snapshots, read with restic itself."""
    repository = ResticRepository(str(project.backups), environ=dict(os.environ))
    return sorted(snapshot.id for snapshot in repository.snapshots())


def test_run_list_verify_restore_gives_the_same_files(tmp_path: Path) -> None:
    """A run makes one tagged snapshot; list and verify see it; restore --to and in place
    give back the same files, links and folders, excludes still excluded.
    """
    project = make_project(tmp_path / "app", RESTIC)
    before = tree(project.data)

    backup = project.run_json()

    assert project.listed() == [backup["id"]]
    assert len(snapshots(project)) == 1
    assert backup["archive"]["name"] == snapshots(project)[0]
    verify = project.cli("backup", "verify", "--json")
    assert verify.exit_code == 0, verify.output
    assert json.loads(verify.stdout)["backups"][0]["status"] == "pass"
    restored = project.cli("backup", "restore", backup["id"], "--to", str(tmp_path / "out"))
    assert restored.exit_code == 0, restored.output
    expected = {k: v for k, v in before.items() if not k.endswith(".tmp") and "cache" not in k}
    assert tree(tmp_path / "out" / "data") == expected
    for path in list(project.data.rglob("*"))[::-1]:
        if path.is_file() or path.is_symlink():
            path.unlink()
    in_place = project.cli("backup", "restore", "latest", "--yes", "--json")
    assert in_place.exit_code == 0, in_place.output
    assert json.loads(in_place.stdout)["status"] == "pass"
    assert {k: v for k, v in tree(project.data).items() if k in expected} == expected
    assert (project.data / "private.key").stat().st_mode & 0o777 == 0o640


def test_verify_all_reads_every_byte_and_passes(tmp_path: Path) -> None:
    """verify --all runs restic check --read-data and checks each snapshot's manifest."""
    project = make_project(tmp_path / "app", RESTIC)
    first = project.run_json()["id"]
    (project.data / "notes.txt").write_text("changed\n")
    second = project.run_json()["id"]

    result = project.cli("backup", "verify", "--all", "--json")

    assert result.exit_code == 0, result.output
    verdicts = {row["id"]: row["status"] for row in json.loads(result.stdout)["backups"]}
    assert verdicts == {first: "pass", second: "pass"}


def test_redis_keys_are_back_after_flushall(make_stack: MakeStack, tmp_path: Path) -> None:
    """The stack's Redis: back up with restic, FLUSHALL, restore in place: every key is back."""
    port, data = free_port(), tmp_path / "redis-data"
    data.mkdir()
    stack = make_stack(redis_stack_toml(port, data, RESTIC))
    assert stack.cli("up").exit_code == 0
    client = redis.Redis(port=port)
    fill(client)
    before = contents(port)

    run = stack.cli("backup", "run", "--json")
    assert run.exit_code == 0, run.output
    backup = json.loads(run.stdout)
    assert backup["sources"][0]["metadata"]["keys"] == 8
    client.flushall()
    restore = stack.cli("backup", "restore", backup["id"], "--yes", "--json")

    assert restore.exit_code == 0, restore.output
    outcome = json.loads(restore.stdout)["sources"][0]
    assert "8 keys after the restore, 8 at backup time" in outcome["detail"]
    assert contents(port) == before


def test_prune_forgets_exactly_the_planned_snapshots(tmp_path: Path) -> None:
    """keep_last = 2 over three backups: the dry run forgets nothing, the prune forgets the
    oldest backup's snapshot and no other.
    """
    project = make_project(tmp_path / "app", f"{RESTIC}\n[backup.retention]\nkeep_last = 2")
    ids = [project.run_json()["id"] for _ in range(3)]
    made = snapshots(project)
    listed = json.loads(project.cli("backup", "list", "--json").stdout)["backups"]
    oldest_snapshot = next(row for row in listed if row["id"] == ids[0])

    dry = project.cli("backup", "prune", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert snapshots(project) == made
    result = project.cli("backup", "prune", "--yes", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["removed"] == [ids[0]]
    assert json.loads(dry.stdout)["backups"] == json.loads(result.stdout)["backups"]
    assert project.listed() == ids[:0:-1]
    assert len(snapshots(project)) == 2
    assert oldest_snapshot["status"] == "complete"


def test_wrong_password_exits_2_without_printing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(tmp_path / "app", RESTIC)
    project.run_json()
    wrong = "not-the-password-93ab1"
    monkeypatch.setenv("RESTIC_PASSWORD", wrong)

    for command in (("backup", "list"), ("backup", "run")):
        result = project.cli(*command)

        assert result.exit_code == 2, result.output
        assert "password is wrong" in result.stderr
        assert wrong not in result.output
        assert PASSWORD not in result.output


def test_missing_password_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(tmp_path / "app", RESTIC)
    monkeypatch.delenv("RESTIC_PASSWORD")

    result = project.cli("backup", "run")

    assert result.exit_code == 2, result.output
    assert "RESTIC_PASSWORD" in result.stderr


def test_restic_missing_from_path_exits_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path / "app", RESTIC)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    result = project.cli("backup", "run")

    assert result.exit_code == 4, result.output
    assert "restic" in result.stderr
    assert "Traceback" not in result.output


def test_run_while_the_destination_is_locked_exits_75(tmp_path: Path) -> None:
    """The destination lock is shared with the archive backend: a second operation waits."""
    from opsctl.backup._store import Store

    project = make_project(tmp_path / "app", RESTIC)

    with Store(project.backups).locked("backup run"):
        result = project.cli("backup", "run")

    assert result.exit_code == 75, result.output
    assert "Another backup operation holds" in result.stderr
