"""backup prune and prune after run, on real archives (the rules are tested with retention)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.backup._helpers import BackupProject, make_project


def project_with_backups(
    tmp_path: Path, retention: str, count: int
) -> tuple[BackupProject, list[str]]:
    project = make_project(tmp_path / "proj", f"\n[backup.retention]\n{retention}\n")
    ids = [project.run_json()["id"] for _ in range(count)]
    return project, ids[::-1]


def test_prune_keeps_the_newest_per_policy_and_removes_the_rest(tmp_path: Path) -> None:
    """keep_last = 2 over four backups removes the two oldest, manifest and archive."""
    project, newest_first = project_with_backups(tmp_path, "keep_last = 2", 4)

    result = project.cli("backup", "prune", "--yes", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["removed"] == newest_first[2:]
    assert project.listed() == newest_first[:2]
    for backup_id in newest_first[2:]:
        assert not (project.backups / f"{backup_id}.tar.zst").exists()


def test_prune_dry_run_removes_nothing(tmp_path: Path) -> None:
    """--dry-run shows the plan and leaves every backup."""
    project, newest_first = project_with_backups(tmp_path, "keep_last = 1", 3)

    result = project.cli("backup", "prune", "--dry-run")

    assert result.exit_code == 0, result.output
    assert result.stdout.count("would remove") == 2
    assert project.listed() == newest_first


def test_prune_off_a_terminal_without_yes_is_refused(tmp_path: Path) -> None:
    """Removing backups from a script needs --yes (exit 2), and removes nothing."""
    project, newest_first = project_with_backups(tmp_path, "keep_last = 1", 2)

    result = project.cli("backup", "prune")

    assert result.exit_code == 2
    assert project.listed() == newest_first


def test_an_empty_policy_is_a_config_error(tmp_path: Path) -> None:
    """No retention rule at all: prune refuses with exit 2 naming backup.retention."""
    project = make_project(tmp_path / "proj")
    project.run_json()

    result = project.cli("backup", "prune", "--yes")

    assert result.exit_code == 2
    assert "backup.retention" in result.stderr
    assert len(project.listed()) == 1


def test_a_negative_count_is_a_config_error(tmp_path: Path) -> None:
    """A negative count is refused at load, before anything runs."""
    project = make_project(tmp_path / "proj", "\n[backup.retention]\ndaily = -1\n")

    result = project.cli("backup", "run")

    assert result.exit_code == 2
    assert "retention" in result.stderr
    assert not project.backups.exists()


def test_run_prunes_after_a_success_when_configured(tmp_path: Path) -> None:
    """prune_after_run with keep_last = 2: never more than two backups after a run."""
    project = make_project(
        tmp_path / "proj", "prune_after_run = true\n[backup.retention]\nkeep_last = 2\n"
    )
    runs = [project.run_json() for _ in range(3)]

    assert project.listed() == [runs[2]["id"], runs[1]["id"]]
    assert runs[2]["pruned"] == [runs[0]["id"]]


def test_prune_after_run_with_an_empty_policy_fails_before_backing_up(tmp_path: Path) -> None:
    """The policy is checked first: a run that could not prune writes nothing (exit 2)."""
    project = make_project(tmp_path / "proj", "prune_after_run = true\n")

    result = project.cli("backup", "run")

    assert result.exit_code == 2
    assert project.listed() == []
