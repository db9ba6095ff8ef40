"""A damaged or linked ``.opsctl/monitor.sqlite``: moved aside and replaced, or refused,
never a crash loop and never a write through a link.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from opsctl.config import load_project
from opsctl.errors import ConfigError
from opsctl.monitor._store import open_store
from opsctl.monitor._store_file import move_aside
from tests.support import run_cli, write_project

COMMANDS = [
    ("monitor", "--once"),
    ("monitor", "alerts"),
    ("monitor", "silences"),
    ("monitor", "silence", "api", "1h"),
    ("health", "--history"),
]


def project(tmp_path: Path) -> tuple[str, Path]:
    root = tmp_path / "proj"
    config = write_project(
        root,
        f"""
        [project]
        name = "demo"
        [monitoring]
        disk = {{ paths = ["{root}"] }}
        """,
    )
    return str(config), load_project(config).state_dir


def garbage(path: Path) -> None:
    path.write_bytes(b"this is no SQLite database, just text\n" * 200)


def truncated(path: Path) -> None:
    store = open_store(path.parent)
    for index in range(300):
        store.add_silence(f"target-{index}", timedelta(hours=1), "x" * 200)
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", [garbage, truncated], ids=["garbage", "truncated"])
@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_damaged_history_is_moved_aside_and_a_fresh_one_started(
    tmp_path: Path, damage: Callable[[Path], None], command: tuple[str, ...]
) -> None:
    """Every reader and writer moves the damaged file aside, warns naming it, and works."""
    config, state_dir = project(tmp_path)
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "monitor.sqlite"
    damage(path)
    damaged_bytes = path.read_bytes()

    result = run_cli("-c", config, *command)

    assert result.exit_code == 0, result.output
    assert "unexpected" not in result.output
    moved = sorted(state_dir.glob("monitor.sqlite.damaged-*"))
    assert len(moved) == 1
    assert moved[0].read_bytes() == damaged_bytes
    assert f"moved it to {moved[0]}" in " ".join(result.stderr.split())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA quick_check").fetchone() == ("ok",)
    again = run_cli("-c", config, *command)
    assert again.exit_code == 0
    assert "damaged" not in again.stderr


def test_companion_files_move_aside_with_the_damaged_file(tmp_path: Path) -> None:
    """The -wal and -shm of a damaged database go with it, under the same new name."""
    path = tmp_path / "monitor.sqlite"
    garbage(path)
    Path(f"{path}-wal").write_bytes(b"old wal")
    Path(f"{path}-shm").write_bytes(b"old shm")

    moved = move_aside(path, inode=path.stat().st_ino)

    assert moved is not None
    assert moved.name.startswith("monitor.sqlite.damaged-")
    assert Path(f"{moved}-wal").read_bytes() == b"old wal"
    assert Path(f"{moved}-shm").read_bytes() == b"old shm"
    assert not os.path.lexists(path)
    assert not os.path.lexists(f"{path}-wal")


def test_file_replaced_meanwhile_is_not_moved(tmp_path: Path) -> None:
    """When another process already put a fresh database in place, it stays."""
    path = tmp_path / "monitor.sqlite"
    garbage(path)
    old_inode = path.stat().st_ino
    path.rename(tmp_path / "moved-by-another-process")
    open_store(tmp_path).close()

    assert move_aside(path, inode=old_inode) is None
    assert path.is_file()


@pytest.mark.parametrize("name", ["monitor.sqlite", "monitor.sqlite-wal", "monitor.sqlite-shm"])
@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_linked_history_is_refused_and_its_target_untouched(
    tmp_path: Path, name: str, command: tuple[str, ...]
) -> None:
    """A link in place of the database or a companion: exit 2 naming it; the file it
    points to keeps its content and mode.
    """
    config, state_dir = project(tmp_path)
    state_dir.mkdir(parents=True, exist_ok=True)
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    target.chmod(0o644)
    open_store(state_dir).close()
    (state_dir / name).unlink(missing_ok=True)
    (state_dir / name).symlink_to(target)

    result = run_cli("-c", config, *command)

    assert result.exit_code == 2, result.output
    assert f"{state_dir / name} is a symbolic link" in " ".join(result.stderr.split())
    assert target.read_text() == "precious\n"
    assert target.stat().st_mode & 0o777 == 0o644
    assert (state_dir / name).is_symlink()


def test_dangling_link_is_refused_and_nothing_created(tmp_path: Path) -> None:
    """A link to a missing file is refused too; no file appears where it points."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    target = tmp_path / "not-yet"
    (state_dir / "monitor.sqlite").symlink_to(target)

    with pytest.raises(ConfigError, match="is a symbolic link"):
        open_store(state_dir)

    assert not os.path.lexists(target)


def test_new_history_file_is_private(tmp_path: Path) -> None:
    """A new database is created with mode 0600."""
    open_store(tmp_path).close()
    assert (tmp_path / "monitor.sqlite").stat().st_mode & 0o777 == 0o600
