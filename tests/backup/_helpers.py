"""Project folders with data to back up, and the CLI run against them."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import CliResult, run_cli, write_project


@dataclass
class BackupProject:
    """A project folder whose ``data/`` is backed up into ``backups/``."""

    root: Path
    config: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def backups(self) -> Path:
        return self.root / "backups"

    def cli(self, *args: str) -> CliResult:
        return run_cli("-c", str(self.config), *args)

    def run_json(self, *args: str) -> dict[str, Any]:
        result = self.cli("backup", "run", "--json", *args)
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.stdout))

    def listed(self) -> list[str]:
        result = self.cli("backup", "list", "--json")
        assert result.exit_code == 0, result.output
        return [row["id"] for row in json.loads(result.stdout)["backups"]]


def make_project(root: Path, extra: str = "", *, paths: str = '["data"]') -> BackupProject:
    """A project backing up ``data`` (with a few files written into it) and ``extra`` TOML."""
    config = write_project(
        root,
        f"""
        [backup]
        paths = {paths}
        exclude = ["*.tmp", "cache"]
        {extra}
        """,
    )
    project = BackupProject(root, config)
    write_tree(project.data)
    return project


def write_tree(folder: Path) -> dict[str, bytes]:
    """Write a small mixed tree; return relative path -> content."""
    files = {
        "notes.txt": b"hello\n",
        "sub/deeper/model.bin": os.urandom(200_000),
        "sub/empty.dat": b"",
        "sub/unicode-\u00e9t\u00e9.md": "\u00e9t\u00e9\n".encode(),
        "scratch.tmp": b"excluded",
        "cache/blob": b"excluded too",
    }
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (folder / "private.key").write_bytes(b"secret-ish")
    (folder / "private.key").chmod(0o640)
    files["private.key"] = b"secret-ish"
    (folder / "link-to-notes").symlink_to("notes.txt")
    (folder / "empty-dir").mkdir()
    return {n: c for n, c in files.items() if not n.endswith(".tmp") and not n.startswith("cache")}


def tree(folder: Path) -> dict[str, bytes | str]:
    """Relative path -> content (files) or ``-> target`` (symlinks) or ``dir``."""
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_symlink():
            found[name] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            found[name] = "dir"
        else:
            found[name] = path.read_bytes()
    return found
