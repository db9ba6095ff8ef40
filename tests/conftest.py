"""Test isolation: every test gets its own home, no stray OPSCTL_* variables, no colour."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsctl import secrets
from tests.support import kill_supervisord


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run each test in a temporary home and working folder with a clean environment."""
    for name in list(os.environ):
        if name.startswith("OPSCTL_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    yield
    secrets._known.clear()


@pytest.fixture
def stack_dirs() -> Iterator[list[Path]]:
    """Collects state folders of stacks a test starts; any supervisord left running is killed."""
    folders: list[Path] = []
    yield folders
    for folder in folders:
        kill_supervisord(folder)
