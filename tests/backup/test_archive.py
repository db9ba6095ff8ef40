"""Files that change, vanish or cannot be read while a backup reads them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.backup._helpers import make_project

REAL_LSTAT = os.lstat


def fake_lstat(target: Path, replace: Any) -> Any:
    def lstat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if Path(path) == target:
            return replace(REAL_LSTAT(path, *args, **kwargs))
        return REAL_LSTAT(path, *args, **kwargs)

    return lstat


def test_a_file_that_shrank_is_padded_marked_and_still_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file shorter than when it was listed is stored padded, marked 'changed' in the
    manifest, and the archive still verifies.
    """
    project = make_project(tmp_path / "proj")
    target = project.data / "notes.txt"

    def bigger(info: os.stat_result) -> os.stat_result:
        values = list(info)
        values[6] = info.st_size + 100  # st_size: as if the file shrank after the listing
        return os.stat_result(values)

    monkeypatch.setattr(os, "lstat", fake_lstat(target, bigger))
    backup = project.run_json()
    monkeypatch.setattr(os, "lstat", REAL_LSTAT)

    manifest = json.loads((project.backups / f"{backup['id']}.json").read_text())
    entry = next(e for e in manifest["files"] if e["path"] == str(target))
    assert entry["changed"] is True
    assert entry["size_bytes"] == len(b"hello\n") + 100
    assert manifest["sources"][0]["metadata"]["changed_while_read"] == [str(target)]
    assert project.cli("backup", "verify", backup["id"]).exit_code == 0


def test_a_file_deleted_during_the_run_is_noted_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file gone between the listing and the reading is normal churn: noted, skipped."""
    project = make_project(tmp_path / "proj")
    target = project.data / "notes.txt"

    def gone(info: os.stat_result) -> os.stat_result:
        raise FileNotFoundError(2, "No such file or directory", str(target))

    monkeypatch.setattr(os, "lstat", fake_lstat(target, gone))
    backup = project.run_json()
    monkeypatch.setattr(os, "lstat", REAL_LSTAT)

    assert backup["sources"][0]["metadata"]["vanished"] == [str(target)]
    manifest = json.loads((project.backups / f"{backup['id']}.json").read_text())
    assert str(target) not in [entry["path"] for entry in manifest["files"]]


def test_an_unreadable_file_fails_the_run_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file opsctl may not read fails the run (exit 1) with its name; nothing is listed."""
    project = make_project(tmp_path / "proj")
    target = project.data / "notes.txt"

    def denied(info: os.stat_result) -> os.stat_result:
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(os, "lstat", fake_lstat(target, denied))
    result = project.cli("backup", "run")
    monkeypatch.setattr(os, "lstat", REAL_LSTAT)

    assert result.exit_code == 1
    assert f"Cannot read {target}: Permission denied." in result.stderr
    assert project.listed() == []
    assert [p.name for p in project.backups.iterdir()] == [".opsctl-backup.lock"]
