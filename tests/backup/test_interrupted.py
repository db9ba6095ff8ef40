"""Runs killed at any point: only complete backups are listed, older ones stay intact, and
the next run removes the leftovers. Concurrent runs and a dead lock holder.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.backup._helpers import BackupProject, make_project
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]


def start(project: BackupProject, stage: str, signal_name: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "tests.backup._interrupt", stage, signal_name]
    argv += ["-c", str(project.config), "backup", "run"]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def leftovers(project: BackupProject, keep: set[str]) -> set[str]:
    names = {path.name for path in project.backups.iterdir()}
    return names - keep - {".opsctl-backup.lock"}


@pytest.mark.parametrize("stage", ["mid-archive", "before-commit", "mid-manifest"])
def test_a_run_killed_midway_leaves_no_listed_backup_and_is_cleaned_next(
    tmp_path: Path, stage: str
) -> None:
    """SIGKILL at each step: the older backup is the only one listed and still verifies;
    the next run removes what the killed one left and succeeds.
    """
    project = make_project(tmp_path / "proj")
    older = project.run_json()["id"]
    kept = {f"{older}.json", f"{older}.tar.zst"}

    process = start(project, stage, "SIGKILL")
    process.wait(timeout=60)

    assert process.returncode == -9
    assert project.listed() == [older]
    left = leftovers(project, kept)
    assert left, "the kill should have left something behind"
    assert project.cli("backup", "verify", older).exit_code == 0
    newer = project.run_json()
    assert set(newer["leftovers_removed"]) == left
    assert leftovers(project, kept | {f"{newer['id']}.json", f"{newer['id']}.tar.zst"}) == set()
    assert project.listed() == [newer["id"], older]


def test_a_run_killed_after_its_commit_is_a_complete_backup(tmp_path: Path) -> None:
    """Once the manifest is written the backup exists, whatever happens next."""
    project = make_project(tmp_path / "proj")

    process = start(project, "after-commit", "SIGKILL")
    process.wait(timeout=60)

    assert process.returncode == -9
    listed = project.listed()
    assert len(listed) == 1
    assert project.cli("backup", "verify", listed[0]).exit_code == 0


def test_a_concurrent_run_exits_75_and_a_dead_holder_is_taken_over(tmp_path: Path) -> None:
    """While one run works (stopped mid-archive), a second exits 75; once the first is
    killed, its lock is free and the next run succeeds.
    """
    project = make_project(tmp_path / "proj")
    first = start(project, "mid-archive", "SIGSTOP")
    partials = lambda: any(p.name.endswith(".partial") for p in project.backups.glob(".*"))  # noqa: E731
    wait_for(lambda: project.backups.is_dir() and partials(), timeout_seconds=30, message="partial")

    second = project.cli("backup", "run")
    assert second.exit_code == 75
    assert "pid" in second.stderr

    first.kill()
    first.wait(timeout=30)
    third = project.cli("backup", "run", "--json")
    assert third.exit_code == 0, third.output
    assert len(project.listed()) == 1
