"""Shared set-up for the memory-bank tests: a project folder, the seed file, crafted files."""

from __future__ import annotations

import shutil
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsctl.config import Project, load_project
from tests.support import write_project

SEED = Path("/work/shared/seed/000_ef42760f26ba73cd.txt")
ROO_FILES = (
    "productContext.md",
    "activeContext.md",
    "systemPatterns.md",
    "decisionLog.md",
    "progress.md",
)
CLINE_FILES = (
    "projectbrief.md",
    "productContext.md",
    "activeContext.md",
    "systemPatterns.md",
    "techContext.md",
    "progress.md",
)


def seed_text() -> str:
    """The seed systemPatterns.md as text (the test is skipped when the seed is absent)."""
    if not SEED.is_file():
        pytest.skip(f"seed file {SEED} is not available")
    return SEED.read_text(encoding="utf-8")


def copy_seed(destination: Path) -> Path:
    """Copy the seed file to ``destination`` (never modifying the original); return it."""
    seed_text()
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SEED, destination)
    return destination


def bank_toml(settings: str = "") -> str:
    """An ``opsctl.toml`` with a project name and the given ``[memory_bank]`` settings."""
    body = textwrap.dedent(settings).strip()
    return f'[project]\nname = "bankdemo"\n\n[memory_bank]\n{body}\n'


def make_project(root: Path, settings: str = "") -> Project:
    """Write a project into ``root`` with ``[memory_bank]`` ``settings`` and load it."""
    path = write_project(root, bank_toml(settings))
    return load_project(path)


def fill_bank(root: Path, names: tuple[str, ...] = ROO_FILES, folder: str = "memory-bank") -> Path:
    """Create every file of ``names`` with a heading only; return the bank folder."""
    bank = root / folder
    bank.mkdir(parents=True, exist_ok=True)
    for name in names:
        (bank / name).write_text(f"# {Path(name).stem}\n")
    return bank


def stamp(moment: datetime) -> str:
    """``moment`` in the bank's timestamp form, without brackets."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def numbered_entries(count: int, *, start: datetime | None = None) -> str:
    """A file with a heading and ``count`` entries one second apart, oldest first."""
    base = start or datetime(2024, 1, 1, tzinfo=UTC)
    parts = ["# Progress", ""]
    for index in range(count):
        parts += [f"[{stamp(base + timedelta(seconds=index))}] - Entry {index}", f"- step {index}"]
        parts.append("")
    return "\n".join(parts)


def bank_listing(bank: Path) -> dict[str, bytes]:
    """Every file under ``bank`` (hidden ones too) with its bytes."""
    return {
        str(path.relative_to(bank)): path.read_bytes()
        for path in sorted(bank.rglob("*"))
        if path.is_file()
    }
